package kafkapubsub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Defaults applied to zero configuration fields.
const (
	// DefaultBootstrapServers is TrustGraph's default (--kafka-bootstrap-servers).
	DefaultBootstrapServers = "kafka:9092"
	// DefaultSecurityProtocol is TrustGraph's default (--kafka-security-protocol).
	DefaultSecurityProtocol = ProtocolPlaintext
	DefaultClientID         = "switchyard"
	DefaultDialTimeout      = 10 * time.Second
	DefaultRequestTimeout   = 30 * time.Second
	DefaultSessionTimeout   = 6 * time.Second
	DefaultHeartbeat        = time.Second
	DefaultNackDelay        = time.Second
	// MaxMessageBytes is the largest record batch a producer sends and the
	// most a consumer fetches from one partition at once, as TrustGraph's
	// max_request_size and max_partition_fetch_bytes (10 MiB).
	MaxMessageBytes = 10485760
)

// Security protocols, as TrustGraph's --kafka-security-protocol spells them.
const (
	ProtocolPlaintext     = "PLAINTEXT"
	ProtocolSSL           = "SSL"
	ProtocolSASLPlaintext = "SASL_PLAINTEXT"
	ProtocolSASLSSL       = "SASL_SSL"
)

// SASL mechanisms, as TrustGraph's --kafka-sasl-mechanism spells them.
const (
	MechanismPlain       = "PLAIN"
	MechanismScramSHA256 = "SCRAM-SHA-256"
	MechanismScramSHA512 = "SCRAM-SHA-512"
)

// Config says how to reach and log in to the Kafka cluster. It is embedded
// in PublisherConfig and SubscriberConfig. The fields follow TrustGraph's
// --kafka-* flags, plus a password file, TLS files and timeouts.
type Config struct {
	// BootstrapServers is a comma-separated list of host:port seed brokers.
	// Default "kafka:9092".
	BootstrapServers string
	// SecurityProtocol is PLAINTEXT (default), SSL, SASL_PLAINTEXT or
	// SASL_SSL.
	SecurityProtocol string
	// SASLMechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; required with
	// the SASL protocols, rejected with the others.
	SASLMechanism string
	// SASLUsername is the SASL user.
	SASLUsername string
	// SASLPassword is the SASL password. It never appears in errors or logs.
	// Set SASLPassword or SASLPasswordFile, not both.
	SASLPassword string
	// SASLPasswordFile names a file holding the password (trailing white
	// space is dropped). It is read again at every connection, so a rotated
	// password is picked up; the constructor checks that it is readable.
	SASLPasswordFile string
	// TLSCAFile names a PEM file with the certificate authorities that sign
	// the brokers' certificates (SSL and SASL_SSL); empty uses the system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile name a PEM client certificate and its key
	// for mutual TLS. Set both or neither.
	TLSCertFile string
	// TLSKeyFile is the key of TLSCertFile.
	TLSKeyFile string
	// TLSServerName overrides the name checked in the brokers' certificates;
	// empty checks the host of each address dialled.
	TLSServerName string
	// TLSInsecureSkipVerify accepts any broker certificate. Only for tests.
	TLSInsecureSkipVerify bool
	// ClientID is the Kafka client id the broker logs and quotas see.
	// Default "switchyard".
	ClientID string
	// DialTimeout bounds establishing one connection, TLS and SASL included.
	// Default 10s.
	DialTimeout time.Duration
	// RequestTimeout bounds each request and the wait for a produce to be
	// confirmed, retries included, and topic creation: a broker that cannot
	// be reached is an error after about this long. Default 30s.
	RequestTimeout time.Duration
}

func (c *Config) setDefaults() {
	c.BootstrapServers = strings.TrimSpace(c.BootstrapServers)
	if c.BootstrapServers == "" {
		c.BootstrapServers = DefaultBootstrapServers
	}
	c.SecurityProtocol = strings.ToUpper(strings.TrimSpace(c.SecurityProtocol))
	if c.SecurityProtocol == "" {
		c.SecurityProtocol = DefaultSecurityProtocol
	}
	c.SASLMechanism = strings.ToUpper(strings.TrimSpace(c.SASLMechanism))
	if c.ClientID == "" {
		c.ClientID = DefaultClientID
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
}

// seeds returns the bootstrap servers as a list.
func (c Config) seeds() []string {
	var out []string
	for _, s := range strings.Split(c.BootstrapServers, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c Config) sasl() bool {
	return c.SecurityProtocol == ProtocolSASLPlaintext || c.SecurityProtocol == ProtocolSASLSSL
}

func (c Config) tls() bool {
	return c.SecurityProtocol == ProtocolSSL || c.SecurityProtocol == ProtocolSASLSSL
}

// Validate reports the first invalid setting (defaults applied first to a
// copy). It does not read files.
func (c Config) Validate() error {
	c.setDefaults()
	seeds := c.seeds()
	if len(seeds) == 0 {
		return errors.New("kafkapubsub: BootstrapServers lists no broker")
	}
	for _, s := range seeds {
		if strings.Contains(s, "@") {
			return errors.New("kafkapubsub: BootstrapServers must not carry credentials; use SASLUsername and SASLPassword")
		}
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return fmt.Errorf("kafkapubsub: bootstrap server %q must be host:port", s)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("kafkapubsub: bootstrap server %q has an invalid port", s)
		}
	}
	switch c.SecurityProtocol {
	case ProtocolPlaintext, ProtocolSSL, ProtocolSASLPlaintext, ProtocolSASLSSL:
	default:
		return fmt.Errorf("kafkapubsub: SecurityProtocol %q must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL", c.SecurityProtocol)
	}
	if c.sasl() {
		switch c.SASLMechanism {
		case MechanismPlain, MechanismScramSHA256, MechanismScramSHA512:
		case "":
			return fmt.Errorf("kafkapubsub: SecurityProtocol %s needs SASLMechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SecurityProtocol)
		default:
			return fmt.Errorf("kafkapubsub: SASLMechanism %q must be PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism)
		}
		if c.SASLUsername == "" {
			return fmt.Errorf("kafkapubsub: SecurityProtocol %s needs SASLUsername", c.SecurityProtocol)
		}
		if c.SASLPassword != "" && c.SASLPasswordFile != "" {
			return errors.New("kafkapubsub: set SASLPassword or SASLPasswordFile, not both")
		}
		if c.SASLPassword == "" && c.SASLPasswordFile == "" {
			return fmt.Errorf("kafkapubsub: SecurityProtocol %s needs SASLPassword or SASLPasswordFile", c.SecurityProtocol)
		}
	} else if c.SASLMechanism != "" || c.SASLUsername != "" || c.SASLPassword != "" || c.SASLPasswordFile != "" {
		return fmt.Errorf("kafkapubsub: SASL settings need SecurityProtocol SASL_PLAINTEXT or SASL_SSL, got %s", c.SecurityProtocol)
	}
	if !c.tls() && (c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSKeyFile != "" || c.TLSServerName != "" || c.TLSInsecureSkipVerify) {
		return fmt.Errorf("kafkapubsub: TLS settings need SecurityProtocol SSL or SASL_SSL, got %s", c.SecurityProtocol)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("kafkapubsub: set both TLSCertFile and TLSKeyFile, or neither")
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("kafkapubsub: DialTimeout must not be negative, got %s", c.DialTimeout)
	}
	if c.RequestTimeout < 0 {
		return fmt.Errorf("kafkapubsub: RequestTimeout must not be negative, got %s", c.RequestTimeout)
	}
	return nil
}

// clientOpts returns the kgo options of c (defaults applied, valid): seeds,
// timeouts, TLS and SASL. It reads the TLS files and checks the password file.
func (c Config) clientOpts() ([]kgo.Opt, error) {
	opts := []kgo.Opt{
		kgo.SeedBrokers(c.seeds()...),
		kgo.ClientID(c.ClientID),
		kgo.DialTimeout(c.DialTimeout),
		kgo.RetryTimeout(c.RequestTimeout),
		kgo.BrokerMaxWriteBytes(2 * MaxMessageBytes),
	}
	if c.tls() {
		cfg, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if c.sasl() {
		m, err := c.saslMechanism()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (c Config) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLSServerName, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as for tests
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("kafkapubsub: reading TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafkapubsub: TLS CA file %s holds no PEM certificate", c.TLSCAFile)
		}
		cfg.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafkapubsub: loading TLS client certificate %s: %w", c.TLSCertFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// password returns the SASL password, from SASLPasswordFile when set.
func (c Config) password() (string, error) {
	if c.SASLPasswordFile == "" {
		return c.SASLPassword, nil
	}
	b, err := os.ReadFile(c.SASLPasswordFile)
	if err != nil {
		// The error names the file, never its content.
		return "", fmt.Errorf("kafkapubsub: reading SASL password file: %w", err)
	}
	p := strings.TrimRight(string(b), " \t\r\n")
	if p == "" {
		return "", fmt.Errorf("kafkapubsub: SASL password file %s is empty", c.SASLPasswordFile)
	}
	return p, nil
}

func (c Config) saslMechanism() (sasl.Mechanism, error) {
	if _, err := c.password(); err != nil {
		return nil, err
	}
	switch c.SASLMechanism {
	case MechanismPlain:
		return plain.Plain(func(ctx context.Context) (plain.Auth, error) {
			p, err := c.password()
			return plain.Auth{User: c.SASLUsername, Pass: p}, err
		}), nil
	case MechanismScramSHA256, MechanismScramSHA512:
		auth := func(ctx context.Context) (scram.Auth, error) {
			p, err := c.password()
			return scram.Auth{User: c.SASLUsername, Pass: p}, err
		}
		if c.SASLMechanism == MechanismScramSHA256 {
			return scram.Sha256(auth), nil
		}
		return scram.Sha512(auth), nil
	}
	return nil, fmt.Errorf("kafkapubsub: unsupported SASL mechanism %q", c.SASLMechanism)
}

// InitialOffset says where a new consumer group starts reading a topic.
type InitialOffset int

const (
	// OffsetDefault follows TrustGraph: latest for shared subscriptions
	// (flow, request and other queues), earliest for per-client ones
	// (response, notify).
	OffsetDefault InitialOffset = iota
	// OffsetLatest starts a new group at the end of the topic.
	OffsetLatest
	// OffsetEarliest starts a new group at the oldest retained message.
	OffsetEarliest
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	Config
}

func (c *PublisherConfig) setDefaults() { c.Config.setDefaults() }

// Validate reports the first invalid setting.
func (c PublisherConfig) Validate() error { return c.Config.Validate() }

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	Config
	// SubscriptionName is the consumer group of shared queues (flow, request
	// and others), and the prefix of the per-client group
	// "{SubscriptionName}-{uuid}" of response and notify queues. Required.
	SubscriptionName string
	// InitialOffset says where a group without committed offsets starts.
	// Default OffsetDefault (TrustGraph's choice per class).
	InitialOffset InitialOffset
	// NackDelay is how long after a nack the message's copy is published
	// again. Default 1s.
	NackDelay time.Duration
	// SessionTimeout is the group session timeout: a consumer that stops
	// heartbeating (a killed process) loses its partitions after this long.
	// Default 6s, as TrustGraph.
	SessionTimeout time.Duration
	// HeartbeatInterval is the group heartbeat interval. Default 1s, as
	// TrustGraph.
	HeartbeatInterval time.Duration
	// AckWindow is how many messages one Subscribe call hands out before the
	// oldest of them is acked or nacked. Default 1: the next message waits
	// for the previous one's ack or nack, as watermill's Pub/Sub contract
	// expects. A larger window lets a consumer take the next message while
	// earlier ones are still being confirmed; acks and nacks may then come in
	// any order and each is passed on as it comes (an ack marks its record,
	// and the committed offset still moves only past records all acked; a
	// nack publishes the record's copy). When the Subscribe context ends or
	// the subscriber closes, every message handed out and not yet acked is
	// nacked (so it is delivered again), exactly as for window 1: it goes to
	// another Subscribe call on the topic, or is not committed and comes
	// again when the group resumes.
	AckWindow int
}

func (c *SubscriberConfig) setDefaults() {
	c.Config.setDefaults()
	c.SubscriptionName = strings.TrimSpace(c.SubscriptionName)
	if c.NackDelay == 0 {
		c.NackDelay = DefaultNackDelay
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = DefaultSessionTimeout
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = DefaultHeartbeat
	}
	if c.AckWindow == 0 {
		c.AckWindow = 1
	}
}

// Validate reports the first invalid setting (defaults applied first to a copy).
func (c SubscriberConfig) Validate() error {
	c.setDefaults()
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if c.SubscriptionName == "" {
		return errors.New("kafkapubsub: SubscriptionName is required")
	}
	if c.InitialOffset < OffsetDefault || c.InitialOffset > OffsetEarliest {
		return fmt.Errorf("kafkapubsub: unknown InitialOffset %d", c.InitialOffset)
	}
	if c.NackDelay < 0 {
		return fmt.Errorf("kafkapubsub: NackDelay must not be negative, got %s", c.NackDelay)
	}
	if c.SessionTimeout < 0 || c.HeartbeatInterval < 0 {
		return errors.New("kafkapubsub: SessionTimeout and HeartbeatInterval must not be negative")
	}
	if c.AckWindow < 0 {
		return fmt.Errorf("kafkapubsub: AckWindow must not be negative, got %d", c.AckWindow)
	}
	if c.HeartbeatInterval >= c.SessionTimeout {
		return fmt.Errorf("kafkapubsub: HeartbeatInterval %s must be shorter than SessionTimeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	return nil
}
