package mqttpubsub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"
)

// PayloadMode says how a watermill message is written into an MQTT payload.
type PayloadMode string

const (
	// PayloadEnvelope wraps the UUID, the metadata and the payload in a JSON
	// envelope (see the package documentation). It is the default.
	PayloadEnvelope PayloadMode = "envelope"
	// PayloadRaw sends the payload alone. The UUID and the metadata are lost;
	// a received message gets a new UUID and no metadata.
	PayloadRaw PayloadMode = "raw"
)

// Defaults applied to zero configuration fields.
const (
	// DefaultConnectTimeout is the default ConnectionConfig.ConnectTimeout.
	DefaultConnectTimeout = 10 * time.Second
	// DefaultKeepAlive is the default ConnectionConfig.KeepAlive.
	DefaultKeepAlive = 30 * time.Second
	// DefaultMaxReconnectInterval is the default ConnectionConfig.MaxReconnectInterval.
	DefaultMaxReconnectInterval = 2 * time.Second
	// DefaultDisconnectTimeout is the default ConnectionConfig.DisconnectTimeout.
	DefaultDisconnectTimeout = time.Second
	// DefaultPublishTimeout is the default PublisherConfig.PublishTimeout.
	DefaultPublishTimeout = 30 * time.Second
	// DefaultMaxInFlight is the default PublisherConfig.MaxInFlight.
	DefaultMaxInFlight = 256
	// DefaultNackDelay is the default SubscriberConfig.NackDelay.
	DefaultNackDelay = time.Second
	// DefaultMaxBufferedQoS0 is the default SubscriberConfig.MaxBufferedQoS0.
	DefaultMaxBufferedQoS0 = 10000
	// DefaultMaxUnacked is the default SubscriberConfig.MaxUnacked.
	DefaultMaxUnacked = 256
	// DefaultMaxPacketSize is the default PublisherConfig.MaxPacketSize: the
	// largest packet MQTT 3.1.1 can carry (and Mosquitto's default limit).
	DefaultMaxPacketSize = 268435455
	// DefaultReconnectGrace is the default PublisherConfig.ReconnectGrace.
	DefaultReconnectGrace = time.Second
)

// ConnectionConfig says how to reach and log in to the broker. It is shared
// by PublisherConfig and SubscriberConfig.
type ConnectionConfig struct {
	// Broker is the broker URL: tcp://host:port (also mqtt://), ssl://host:port
	// (also tls://, mqtts://, tcps://) for TLS, ws:// or wss:// for
	// WebSocket. A bare host:port means tcp://host:port. Credentials do not
	// belong in the URL: use Username and Password.
	Broker string
	// Username for password authentication; empty connects anonymously.
	Username string
	// Password for password authentication. It never appears in errors or logs.
	Password string
	// PasswordFile names a file whose content (without a trailing newline) is
	// the password. It is read by the constructor; set Password or PasswordFile,
	// not both.
	PasswordFile string
	// CAFile names a PEM file with the certificate authorities that sign the
	// broker's TLS certificate. It requires a TLS broker URL.
	CAFile string
	// TLSConfig is the TLS configuration for TLS broker URLs; nil uses the
	// system roots (or CAFile). It is cloned, never modified.
	TLSConfig *tls.Config
	// ConnectTimeout bounds connecting and logging in, and each subscribe
	// request. Default 10s.
	ConnectTimeout time.Duration
	// KeepAlive is the MQTT keep-alive interval. Default 30s.
	KeepAlive time.Duration
	// MaxReconnectInterval caps the pause between reconnection attempts after
	// a lost connection. Default 2s.
	MaxReconnectInterval time.Duration
	// DisconnectTimeout bounds how long closing waits for the DISCONNECT
	// packet to be sent. Default 1s.
	DisconnectTimeout time.Duration
}

func (c *ConnectionConfig) setDefaults() {
	c.Broker = strings.TrimSpace(c.Broker)
	if c.Broker != "" && !strings.Contains(c.Broker, "://") {
		c.Broker = "tcp://" + c.Broker
	}
	if u, err := url.Parse(c.Broker); err == nil && u.Host != "" && u.Port() == "" && u.User == nil {
		switch u.Scheme {
		case "tcp", "mqtt":
			u.Host += ":1883"
		case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps":
			u.Host += ":8883"
		}
		c.Broker = u.String()
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = DefaultConnectTimeout
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = DefaultKeepAlive
	}
	if c.MaxReconnectInterval == 0 {
		c.MaxReconnectInterval = DefaultMaxReconnectInterval
	}
	if c.DisconnectTimeout == 0 {
		c.DisconnectTimeout = DefaultDisconnectTimeout
	}
}

// Validate reports the first invalid setting. It does not read files.
func (c ConnectionConfig) Validate() error {
	if c.Broker == "" {
		return errors.New("mqtt: broker URL is empty")
	}
	u, err := url.Parse(c.Broker)
	if err != nil {
		// url.Error quotes the URL, which holds no credentials (checked below
		// for valid URLs); keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("mqtt: broker URL is not valid: %w", err)
	}
	if u.User != nil {
		return errors.New("mqtt: broker URL must not contain credentials; set Username and Password instead")
	}
	if u.Host == "" {
		return fmt.Errorf("mqtt: broker URL %q has no host", c.Broker)
	}
	tlsScheme := false
	switch u.Scheme {
	case "tcp", "mqtt", "ws":
	case "ssl", "tls", "mqtts", "mqtt+ssl", "tcps", "wss":
		tlsScheme = true
	default:
		return fmt.Errorf("mqtt: broker URL %q: scheme %q is not one of tcp, mqtt, ssl, tls, mqtts, tcps, ws, wss", c.Broker, u.Scheme)
	}
	if c.Password != "" && c.PasswordFile != "" {
		return errors.New("mqtt: set a password or a password file, not both")
	}
	if (c.Password != "" || c.PasswordFile != "") && c.Username == "" {
		return errors.New("mqtt: a password needs a user name")
	}
	if c.CAFile != "" && !tlsScheme {
		return fmt.Errorf("mqtt: a CA file needs a TLS broker URL (ssl://, tls://, mqtts:// or wss://), got %q", c.Broker)
	}
	if c.ConnectTimeout < 0 || c.KeepAlive < 0 || c.MaxReconnectInterval < 0 || c.DisconnectTimeout < 0 {
		return errors.New("mqtt: timeouts and intervals must not be negative")
	}
	if c.KeepAlive > 0 && c.KeepAlive < time.Second {
		return fmt.Errorf("mqtt: keep-alive %s is shorter than one second", c.KeepAlive)
	}
	return nil
}

// resolved returns a copy of c with the password file read and the TLS
// configuration built. The copy never reveals the password in errors.
func (c ConnectionConfig) resolved() (ConnectionConfig, error) {
	if c.PasswordFile != "" {
		b, err := os.ReadFile(c.PasswordFile)
		if err != nil {
			return c, fmt.Errorf("mqtt: reading the password file: %w", err)
		}
		c.Password = strings.TrimRight(string(b), "\r\n")
		c.PasswordFile = ""
		if c.Password == "" {
			return c, errors.New("mqtt: the password file is empty")
		}
	}
	if c.TLSConfig != nil {
		c.TLSConfig = c.TLSConfig.Clone()
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return c, fmt.Errorf("mqtt: reading the CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return c, fmt.Errorf("mqtt: the CA file %s holds no PEM certificate", c.CAFile)
		}
		if c.TLSConfig == nil {
			c.TLSConfig = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		c.TLSConfig.RootCAs = pool
	}
	return c, nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	ConnectionConfig

	// ClientID is the MQTT client id of the publisher's connection. Default:
	// "switchyard-pub-" followed by a unique suffix. Two connections with the
	// same client id take over each other's session, so it must be unique on
	// the broker.
	ClientID string
	// PayloadMode is PayloadEnvelope (default) or PayloadRaw.
	PayloadMode PayloadMode
	// PublishTimeout bounds how long Publish and PublishAsync wait for the
	// connection to be up, and for the broker to acknowledge each message
	// from the moment it was sent. Default 30s.
	PublishTimeout time.Duration
	// MaxInFlight caps the messages of one Publish call sent but not yet
	// acknowledged by the broker, and, separately, those of all PublishAsync
	// calls together: PublishAsync blocks while that many wait for their
	// acknowledgement. Default 256.
	MaxInFlight int
	// MaxPacketSize is the largest MQTT packet the broker accepts (Mosquitto:
	// message_size_limit / max_packet_size). A message whose packet would be
	// larger fails with a *PermanentError before it is sent: MQTT 3.1.1
	// brokers drop the connection of a client that sends one. Default
	// 268435455, the protocol's limit.
	MaxPacketSize int
	// ReconnectGrace is how long Publish waits after the publisher
	// reconnected before it publishes again, so that subscribers have
	// renewed their subscriptions first: a broker that lost its
	// subscriptions in a restart (Mosquitto forgets shared subscriptions)
	// acknowledges and drops messages for which no subscription exists yet.
	// Default 1s; negative disables it.
	ReconnectGrace time.Duration
}

func (c *PublisherConfig) setDefaults() {
	c.ConnectionConfig.setDefaults()
	if c.PayloadMode == "" {
		c.PayloadMode = PayloadEnvelope
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = DefaultMaxInFlight
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ReconnectGrace == 0 {
		c.ReconnectGrace = DefaultReconnectGrace
	}
}

// Validate reports the first invalid setting.
func (c PublisherConfig) Validate() error {
	if err := c.ConnectionConfig.Validate(); err != nil {
		return err
	}
	if err := c.PayloadMode.validate(); err != nil {
		return err
	}
	if c.PublishTimeout < 0 {
		return errors.New("mqtt: publish timeout must not be negative")
	}
	if c.MaxInFlight < 0 {
		return errors.New("mqtt: max in flight must not be negative")
	}
	if c.MaxPacketSize < 0 || c.MaxPacketSize > DefaultMaxPacketSize {
		return fmt.Errorf("mqtt: max packet size %d is not between 1 and %d", c.MaxPacketSize, DefaultMaxPacketSize)
	}
	return validateClientID(c.ClientID)
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	ConnectionConfig

	// Group is the subscription (consumer group) name. Subscribers of one
	// group share the messages of a topic through the shared subscription
	// $share/{Group}/{topic} and persistent sessions. Empty: every
	// subscription is exclusive and sees every message published while it is
	// subscribed. It must not contain '/', '+' or '#'.
	Group string
	// Durable applies to a subscriber without a Group: its subscriptions use
	// a persistent session of their own, with a client id made from ClientID
	// (required), so that they see every message of the topic, also the ones
	// published while they are away. One process at a time may use a
	// ClientID.
	Durable bool
	// ClientID is the first part of the client ids of the subscriber's
	// sessions (see the package documentation). With a Group it names this
	// process among the others that share the group; processes that share a
	// group on one broker must each set a different one. Optional with a
	// Group, required with Durable.
	ClientID string
	// PayloadMode is PayloadEnvelope (default) or PayloadRaw.
	PayloadMode PayloadMode
	// NackDelay is how long a nacked message waits before it is delivered
	// again, behind the messages that arrived meanwhile (see the package
	// documentation). Default 1s.
	NackDelay time.Duration
	// MaxUnacked caps the QoS 1 and 2 messages of one subscription (all its
	// Subscribe calls) received from the broker and not yet acknowledged to
	// it, nacked ones waiting for redelivery included. When it is reached the
	// subscription stops reading from the connection until a message is
	// acknowledged, so TCP pushes back on the broker. Default 256.
	MaxUnacked int
	// MaxBufferedQoS0 caps the QoS 0 messages waiting in one session; more
	// are dropped. Default 10000.
	MaxBufferedQoS0 int
	// AckWindow is how many messages one Subscribe call hands out before
	// the oldest of them is acked or nacked. Default 1: the next message
	// waits for the previous one's ack or nack, as watermill's Pub/Sub
	// contract expects. A larger window lets a consumer take the next
	// message while earlier ones are still being confirmed: a Subscribe
	// call then holds at most AckWindow messages that are neither acked nor
	// nacked, acks and nacks may come in any order, and each is passed to
	// the broker as it comes. When the Subscribe context ends or the
	// subscriber closes, every message handed out and not yet acked or
	// nacked goes back to the subscription (so it is delivered again),
	// exactly as for window 1.
	//
	// The messages a Subscribe call holds count toward MaxUnacked, which
	// bounds what the subscription (all its Subscribe calls together)
	// receives from the broker: a window larger than MaxUnacked, or windows
	// of several Subscribe calls that add up to more, are not an error, but
	// a call then waits for acks once MaxUnacked QoS 1 and 2 messages are
	// out, as if its window were smaller.
	AckWindow int
}

func (c *SubscriberConfig) setDefaults() {
	c.ConnectionConfig.setDefaults()
	if c.PayloadMode == "" {
		c.PayloadMode = PayloadEnvelope
	}
	if c.NackDelay == 0 {
		c.NackDelay = DefaultNackDelay
	}
	if c.MaxBufferedQoS0 == 0 {
		c.MaxBufferedQoS0 = DefaultMaxBufferedQoS0
	}
	if c.MaxUnacked == 0 {
		c.MaxUnacked = DefaultMaxUnacked
	}
	if c.AckWindow == 0 {
		c.AckWindow = 1
	}
}

// Validate reports the first invalid setting.
func (c SubscriberConfig) Validate() error {
	if err := c.ConnectionConfig.Validate(); err != nil {
		return err
	}
	if err := c.PayloadMode.validate(); err != nil {
		return err
	}
	if strings.ContainsAny(c.Group, "/+#\x00") {
		return fmt.Errorf("mqtt: subscription group %q must not contain '/', '+', '#' or NUL", c.Group)
	}
	if c.Durable && c.Group == "" && c.ClientID == "" {
		return errors.New("mqtt: a durable subscriber needs a client id")
	}
	if c.NackDelay < 0 {
		return errors.New("mqtt: nack delay must not be negative")
	}
	if c.MaxUnacked < 0 {
		return errors.New("mqtt: max unacked messages must not be negative")
	}
	if c.MaxBufferedQoS0 < 0 {
		return errors.New("mqtt: max buffered QoS 0 messages must not be negative")
	}
	if c.AckWindow < 0 {
		return fmt.Errorf("mqtt: AckWindow %d must not be negative (0 means 1)", c.AckWindow)
	}
	return validateClientID(c.ClientID)
}

func (m PayloadMode) validate() error {
	switch m {
	case PayloadEnvelope, PayloadRaw:
		return nil
	default:
		return fmt.Errorf("mqtt: payload mode %q is not one of envelope, raw", string(m))
	}
}

func validateClientID(id string) error {
	if strings.ContainsRune(id, 0) {
		return errors.New("mqtt: client id must not contain NUL")
	}
	if len(id) > 65000 {
		return errors.New("mqtt: client id is too long")
	}
	return nil
}
