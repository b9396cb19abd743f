package rabbitmqpubsub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults applied to zero configuration fields. Host, Port, Username,
// Password and VHost equal TrustGraph's `--rabbitmq-*` defaults except the
// host: TrustGraph defaults to "rabbitmq" (the name of the broker's
// container in its deployments), this library to "localhost"; a command-line
// layer that wants TrustGraph's behaviour sets Host to "rabbitmq" itself.
const (
	DefaultHost                = "localhost"
	DefaultPort                = 5672
	DefaultTLSPort             = 5671
	DefaultUsername            = "guest"
	DefaultPassword            = "guest"
	DefaultVHost               = "/"
	DefaultConnectTimeout      = 10 * time.Second
	DefaultHeartbeat           = 10 * time.Second
	DefaultReconnectMaxBackoff = 5 * time.Second
	DefaultPublishTimeout      = 30 * time.Second
	DefaultPrefetch            = 64
	DefaultNackDelay           = time.Second
	DefaultCloseTimeout        = 30 * time.Second
)

// maxPrefetch is the largest prefetch count AMQP 0-9-1 can express.
const maxPrefetch = 65535

// TLSConfig turns on TLS (amqps) and says how to check the broker.
type TLSConfig struct {
	// Enabled connects with TLS. The default port becomes 5671.
	Enabled bool
	// CAFile names a PEM file with the certificate authorities that sign the
	// broker's certificate; empty uses the system roots.
	CAFile string
	// CertFile and KeyFile name the PEM client certificate and its key, for
	// brokers that require one. Set both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name the broker's certificate must carry; empty
	// uses Host.
	ServerName string
	// InsecureSkipVerify accepts any broker certificate. Only for tests.
	InsecureSkipVerify bool
}

// ConnectionConfig says how to reach and log in to the broker. It is
// embedded in PublisherConfig and SubscriberConfig. It carries everything
// TrustGraph's `--rabbitmq-host`, `--rabbitmq-port`, `--rabbitmq-username`,
// `--rabbitmq-password` and `--rabbitmq-vhost` carry, plus a password file,
// TLS and timeouts.
type ConnectionConfig struct {
	// Host is the broker's host name or address. Default "localhost"
	// (TrustGraph's flag defaults to "rabbitmq").
	Host string
	// Port is the broker's AMQP port. Default 5672, or 5671 with TLS.
	Port int
	// Username logs in with SASL PLAIN. Default "guest".
	Username string
	// Password is the user's password; it never appears in errors or logs.
	// Default "guest" unless PasswordFile is set. Set Password or
	// PasswordFile, not both.
	Password string
	// PasswordFile names a file whose content (trailing whitespace removed)
	// is the password. It is read again at every connection, so a rotated
	// password is picked up; the constructor checks that it is readable and
	// not empty.
	PasswordFile string
	// VHost is the virtual host. Default "/".
	VHost string
	// TLS turns on amqps.
	TLS TLSConfig
	// ConnectTimeout bounds the TCP, TLS and AMQP handshakes of one
	// connection attempt. Default 10s.
	ConnectTimeout time.Duration
	// Heartbeat is the AMQP heartbeat interval proposed to the broker; a
	// broker that goes silent for about three intervals is taken as lost.
	// Default 10s.
	Heartbeat time.Duration
	// ReconnectMaxBackoff caps the pause between attempts to reconnect after
	// a lost connection (pauses start at 100ms and double). Default 5s.
	ReconnectMaxBackoff time.Duration
	// ConnectionName is shown by the broker's management tools for this
	// connection. Default "switchyard".
	ConnectionName string
}

func (c *ConnectionConfig) setDefaults() {
	c.Host = strings.TrimSpace(c.Host)
	if c.Host == "" {
		c.Host = DefaultHost
	}
	if c.Port == 0 {
		c.Port = DefaultPort
		if c.TLS.Enabled {
			c.Port = DefaultTLSPort
		}
	}
	if c.Username == "" {
		c.Username = DefaultUsername
	}
	if c.Password == "" && c.PasswordFile == "" {
		c.Password = DefaultPassword
	}
	if c.VHost == "" {
		c.VHost = DefaultVHost
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = DefaultHeartbeat
	}
	if c.ReconnectMaxBackoff == 0 {
		c.ReconnectMaxBackoff = DefaultReconnectMaxBackoff
	}
	if c.ConnectionName == "" {
		c.ConnectionName = "switchyard"
	}
}

// Validate reports the first invalid setting. It does not read files.
func (c ConnectionConfig) Validate() error {
	if c.Host == "" {
		return errors.New("rabbitmqpubsub: Host is empty")
	}
	if strings.ContainsAny(c.Host, "/@?# ") {
		return fmt.Errorf("rabbitmqpubsub: Host %q must be a host name or address, not a URL", c.Host)
	}
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("rabbitmqpubsub: Port must be between 1 and 65535, got %d", c.Port)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("rabbitmqpubsub: set Password or PasswordFile, not both")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("rabbitmqpubsub: set both TLS.CertFile and TLS.KeyFile, or neither")
	}
	if !c.TLS.Enabled && (c.TLS.CAFile != "" || c.TLS.CertFile != "" || c.TLS.ServerName != "" || c.TLS.InsecureSkipVerify) {
		return errors.New("rabbitmqpubsub: TLS settings are given but TLS.Enabled is false")
	}
	for name, d := range map[string]time.Duration{
		"ConnectTimeout": c.ConnectTimeout, "Heartbeat": c.Heartbeat, "ReconnectMaxBackoff": c.ReconnectMaxBackoff,
	} {
		if d < 0 {
			return fmt.Errorf("rabbitmqpubsub: %s must not be negative, got %s", name, d)
		}
	}
	return nil
}

// URL returns the broker's address as an amqp:// or amqps:// URL without
// credentials, as errors and logs show it.
func (c ConnectionConfig) URL() string {
	scheme := "amqp"
	if c.TLS.Enabled {
		scheme = "amqps"
	}
	vhost := "/" + url.PathEscape(c.VHost)
	if c.VHost == "/" {
		vhost = "/"
	}
	return scheme + "://" + net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) + vhost
}

// password returns the password, from PasswordFile when set. The error
// names the file, never its content.
func (c ConnectionConfig) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	data, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("rabbitmqpubsub: reading password file: %w", err)
	}
	pw := strings.TrimRight(string(data), " \t\r\n")
	if pw == "" {
		return "", fmt.Errorf("rabbitmqpubsub: password file %s is empty", c.PasswordFile)
	}
	return pw, nil
}

// tlsConfig builds the TLS configuration (nil without TLS), reading the
// certificate files.
func (c ConnectionConfig) tlsConfig() (*tls.Config, error) {
	if !c.TLS.Enabled {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName}
	if cfg.ServerName == "" {
		cfg.ServerName = c.Host
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("rabbitmqpubsub: reading TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("rabbitmqpubsub: TLS CA file %s holds no PEM certificate", c.TLS.CAFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("rabbitmqpubsub: loading TLS client certificate %s: %w", c.TLS.CertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	cfg.InsecureSkipVerify = c.TLS.InsecureSkipVerify
	return cfg, nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	ConnectionConfig
	// PublishTimeout bounds one Publish call: waiting for a connection, the
	// broker's confirms, and publishing again what a lost connection left
	// unconfirmed. Default 30s.
	PublishTimeout time.Duration
	// MaxIdleChannels caps the confirm-mode channels kept open for later
	// Publish calls; concurrent calls each use a channel of their own.
	// Default 8.
	MaxIdleChannels int
	// CloseTimeout bounds how long Close waits for Publish calls in flight.
	// Default 30s.
	CloseTimeout time.Duration
}

func (c *PublisherConfig) setDefaults() {
	c.ConnectionConfig.setDefaults()
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxIdleChannels == 0 {
		c.MaxIdleChannels = 8
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
}

// Validate reports the first invalid setting.
func (c PublisherConfig) Validate() error {
	if err := c.ConnectionConfig.Validate(); err != nil {
		return err
	}
	if c.PublishTimeout < 0 {
		return fmt.Errorf("rabbitmqpubsub: PublishTimeout must not be negative, got %s", c.PublishTimeout)
	}
	if c.MaxIdleChannels < 0 {
		return fmt.Errorf("rabbitmqpubsub: MaxIdleChannels must not be negative, got %d", c.MaxIdleChannels)
	}
	if c.CloseTimeout < 0 {
		return fmt.Errorf("rabbitmqpubsub: CloseTimeout must not be negative, got %s", c.CloseTimeout)
	}
	return nil
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	ConnectionConfig
	// SubscriptionName is the consumer group of flow and request queues (and
	// of queues of no class): the queue consumed is
	// "{exchange}.{SubscriptionName}", shared by every consumer that uses
	// the name. TrustGraph names it "{id}--{workspace}--{flow}--{spec}".
	// Response and notify queues do not use it: each Subscriber gets a
	// server-named queue of its own. Required for the shared classes.
	SubscriptionName string
	// Prefetch is how many unacknowledged messages the broker sends ahead to
	// each Subscribe call's consumer (AMQP basic.qos prefetch count).
	// TrustGraph's Python consumer uses 1, which costs one round trip per
	// message; the default here is 64. A consumer's prefetch is raised to
	// AckWindow when that is larger, so that the window can fill.
	Prefetch int
	// AckWindow is how many messages one Subscribe call hands out before the
	// oldest of them is acked or nacked. Default 1: the next message waits
	// for the previous one's ack or nack, as watermill's Pub/Sub contract
	// expects. A larger window lets a consumer take the next message while
	// earlier ones are still being confirmed; acks and nacks may then come in
	// any order and each is passed to the broker as it comes (an ack by its
	// delivery tag, a nack as described in the package documentation). When
	// the Subscribe context ends or the subscriber closes, every message
	// handed out and not yet acked is nacked (so it is delivered again),
	// exactly as for window 1: the consumer's channel closes and the broker
	// queues its unacknowledged messages again. At most 65535, the largest
	// prefetch AMQP can express.
	AckWindow int
	// NackDelay is how long a nacked message waits before it is queued
	// again, behind the messages that arrived meanwhile. Default 1s.
	NackDelay time.Duration
	// CloseTimeout bounds how long Close waits for the consumers to end.
	// Default 30s.
	CloseTimeout time.Duration
}

func (c *SubscriberConfig) setDefaults() {
	c.ConnectionConfig.setDefaults()
	if c.Prefetch == 0 {
		c.Prefetch = DefaultPrefetch
	}
	if c.AckWindow == 0 {
		c.AckWindow = 1
	}
	if c.NackDelay == 0 {
		c.NackDelay = DefaultNackDelay
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
}

// Validate reports the first invalid setting.
func (c SubscriberConfig) Validate() error {
	if err := c.ConnectionConfig.Validate(); err != nil {
		return err
	}
	if c.Prefetch < 1 || c.Prefetch > maxPrefetch {
		return fmt.Errorf("rabbitmqpubsub: Prefetch must be between 1 and %d, got %d", maxPrefetch, c.Prefetch)
	}
	if c.AckWindow < 0 {
		return fmt.Errorf("rabbitmqpubsub: AckWindow must not be negative, got %d", c.AckWindow)
	}
	if c.AckWindow > maxPrefetch {
		return fmt.Errorf("rabbitmqpubsub: AckWindow must be at most %d (the largest AMQP prefetch), got %d", maxPrefetch, c.AckWindow)
	}
	if c.NackDelay < 0 {
		return fmt.Errorf("rabbitmqpubsub: NackDelay must not be negative, got %s", c.NackDelay)
	}
	if c.CloseTimeout < 0 {
		return fmt.Errorf("rabbitmqpubsub: CloseTimeout must not be negative, got %s", c.CloseTimeout)
	}
	if strings.ContainsAny(c.SubscriptionName, " \t\r\n") {
		return fmt.Errorf("rabbitmqpubsub: SubscriptionName %q must not contain whitespace", c.SubscriptionName)
	}
	return nil
}
