package pulsarpubsub

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/apache/pulsar-client-go/pulsar"
)

// Defaults applied to zero configuration fields.
const (
	DefaultURL                 = "pulsar://localhost:6650"
	DefaultConnectionTimeout   = 10 * time.Second
	DefaultOperationTimeout    = 30 * time.Second
	DefaultReconnectMaxBackoff = 5 * time.Second
	DefaultSendTimeout         = 30 * time.Second
	DefaultCloseTimeout        = 30 * time.Second
	DefaultNackRedeliveryDelay = time.Second
	DefaultReceiverQueueSize   = 1000
	DefaultSlowConnectInterval = 5 * time.Second
)

// ClientConfig says how to reach and log in to the broker. It is embedded in
// PublisherConfig and SubscriberConfig, and used by NewClient.
type ClientConfig struct {
	// URL is the broker service URL, pulsar://host:6650 or
	// pulsar+ssl://host:6651; several hosts may be listed
	// (pulsar://h1:6650,h2:6650). Default pulsar://localhost:6650.
	URL string
	// Token is a JWT for token authentication. It never appears in errors
	// or logs. Set Token or TokenFile, not both.
	Token string
	// TokenFile names a file that holds the token. It is read again at every
	// connection, so a rotated token is picked up; the constructor checks
	// that it is readable and not empty.
	TokenFile string
	// ListenerName selects one of the broker's advertised listeners.
	ListenerName string
	// TLSTrustCertsFile names a PEM file with the certificate authorities
	// that sign the broker's certificate (pulsar+ssl:// only); empty uses the
	// system roots. It is read by the constructor.
	TLSTrustCertsFile string
	// TLSAllowInsecureConnection accepts any broker certificate. Only for
	// tests.
	TLSAllowInsecureConnection bool
	// TLSSkipHostnameVerification turns off the check that the broker's
	// certificate names the host connected to; the certificate must still be
	// signed by a trusted authority. The check is on by default.
	TLSSkipHostnameVerification bool
	// ConnectionTimeout bounds establishing one TCP (and TLS) connection.
	// Default 10s.
	ConnectionTimeout time.Duration
	// OperationTimeout bounds creating a producer or a consumer, topic
	// lookups and other requests, retries included: a broker that cannot be
	// reached or refuses the credentials is an error after about this long.
	// Default 30s.
	OperationTimeout time.Duration
	// ReconnectMaxBackoff caps the pause between attempts of a producer or a
	// consumer to get back to the broker after a lost connection (the client
	// library's own cap is one minute). Default 5s.
	ReconnectMaxBackoff time.Duration
	// OnSlowConnect, when set, is called every SlowConnectInterval while
	// creating a producer or a consumer is still pending, typically because
	// the broker cannot be reached yet, with the time waited so far and the
	// limit after which creating it fails (OperationTimeout). It lets the
	// caller log progress ("still connecting to pulsar://... (10s of
	// 30s)"). It runs on a goroutine of its own, never after the creation
	// returned, and must not block for long.
	OnSlowConnect func(elapsed, limit time.Duration)
	// SlowConnectInterval is the pause between OnSlowConnect calls. Default
	// 5s.
	SlowConnectInterval time.Duration
}

func (c *ClientConfig) setDefaults() {
	c.URL = strings.TrimSpace(c.URL)
	if c.URL == "" {
		c.URL = DefaultURL
	}
	if c.ConnectionTimeout == 0 {
		c.ConnectionTimeout = DefaultConnectionTimeout
	}
	if c.OperationTimeout == 0 {
		c.OperationTimeout = DefaultOperationTimeout
	}
	if c.ReconnectMaxBackoff == 0 {
		c.ReconnectMaxBackoff = DefaultReconnectMaxBackoff
	}
	if c.SlowConnectInterval == 0 {
		c.SlowConnectInterval = DefaultSlowConnectInterval
	}
}

// setSharedClientDefaults sets the defaults of the settings that still apply when
// a shared client is given (PublisherConfig.Client, SubscriberConfig.Client).
func (c *ClientConfig) setSharedClientDefaults() {
	if c.ReconnectMaxBackoff == 0 {
		c.ReconnectMaxBackoff = DefaultReconnectMaxBackoff
	}
	if c.SlowConnectInterval == 0 {
		c.SlowConnectInterval = DefaultSlowConnectInterval
	}
}

// Validate reports the first invalid setting. It does not read files.
func (c ClientConfig) Validate() error {
	if err := validateURL(c.URL); err != nil {
		return err
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("pulsarpubsub: set Token or TokenFile, not both")
	}
	if c.TLSTrustCertsFile != "" && !strings.HasPrefix(c.URL, "pulsar+ssl://") {
		return errors.New("pulsarpubsub: TLSTrustCertsFile needs a pulsar+ssl:// URL")
	}
	if c.ConnectionTimeout < 0 {
		return fmt.Errorf("pulsarpubsub: ConnectionTimeout must not be negative, got %s", c.ConnectionTimeout)
	}
	if c.OperationTimeout < 0 {
		return fmt.Errorf("pulsarpubsub: OperationTimeout must not be negative, got %s", c.OperationTimeout)
	}
	if c.ReconnectMaxBackoff < 0 {
		return fmt.Errorf("pulsarpubsub: ReconnectMaxBackoff must not be negative, got %s", c.ReconnectMaxBackoff)
	}
	if c.SlowConnectInterval < 0 {
		return fmt.Errorf("pulsarpubsub: SlowConnectInterval must not be negative, got %s", c.SlowConnectInterval)
	}
	return nil
}

// validateURL checks the service URL. Errors show it without any user
// information it may carry.
func validateURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("pulsarpubsub: broker URL %q is not a URL", redactURL(raw))
	}
	switch u.Scheme {
	case "pulsar", "pulsar+ssl":
	default:
		return fmt.Errorf("pulsarpubsub: broker URL %q must start with pulsar:// or pulsar+ssl://", redactURL(raw))
	}
	if u.User != nil {
		return fmt.Errorf("pulsarpubsub: broker URL %q must not carry credentials; use Token or TokenFile", redactURL(raw))
	}
	if u.Host == "" {
		return fmt.Errorf("pulsarpubsub: broker URL %q has no host", redactURL(raw))
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("pulsarpubsub: broker URL %q must not have a path", redactURL(raw))
	}
	return nil
}

// redactURL returns raw with any user information replaced by "***".
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			return "***@" + raw[i+1:]
		}
		return raw
	}
	host := rest
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		host = rest[:i]
	}
	if i := strings.LastIndex(host, "@"); i >= 0 {
		return scheme + "://***@" + rest[i+1:]
	}
	return raw
}

// clientOptions turns c (defaults applied, valid) into pulsar client options.
func (c ClientConfig) clientOptions(logger watermill.LoggerAdapter, diag *connDiag) (pulsar.ClientOptions, error) {
	opts := pulsar.ClientOptions{
		URL:               c.URL,
		ConnectionTimeout: c.ConnectionTimeout,
		OperationTimeout:  c.OperationTimeout,
		ListenerName:      c.ListenerName,
		Logger:            newClientLogger(logger, diag),
	}
	if strings.HasPrefix(c.URL, "pulsar+ssl://") {
		tlsConfig, err := c.tlsConfig()
		if err != nil {
			return pulsar.ClientOptions{}, err
		}
		opts.TLSConfig = tlsConfig
	}
	switch {
	case c.Token != "":
		opts.Authentication = pulsar.NewAuthenticationToken(c.Token)
	case c.TokenFile != "":
		if err := checkTokenFile(c.TokenFile); err != nil {
			return pulsar.ClientOptions{}, err
		}
		opts.Authentication = pulsar.NewAuthenticationTokenFromFile(c.TokenFile)
	}
	return opts, nil
}

// tlsConfig returns the TLS configuration of pulsar+ssl:// connections. The
// broker's certificate is checked against TLSTrustCertsFile (or the system
// roots) and, unless TLSSkipHostnameVerification, against the host name of
// each broker connected to (the TLS library takes it from the address
// dialled, as ServerName is left empty).
func (c ClientConfig) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.TLSTrustCertsFile != "" {
		pem, err := os.ReadFile(c.TLSTrustCertsFile)
		if err != nil {
			return nil, fmt.Errorf("pulsarpubsub: reading TLS trust certificates: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pulsarpubsub: TLS trust certificates file %s holds no PEM certificate", c.TLSTrustCertsFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case c.TLSAllowInsecureConnection:
		cfg.InsecureSkipVerify = true
	case c.TLSSkipHostnameVerification:
		// Verify the chain, not the name: the standard check is turned off
		// and done here without a DNS name.
		roots := cfg.RootCAs
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("broker sent no TLS certificate")
			}
			opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool()}
			for _, cert := range cs.PeerCertificates[1:] {
				opts.Intermediates.AddCert(cert)
			}
			_, err := cs.PeerCertificates[0].Verify(opts)
			return err
		}
	}
	return cfg, nil
}

// checkTokenFile makes a missing, unreadable or empty token file an error at
// construction rather than at the first connection. The error names the file,
// never its content.
func checkTokenFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("pulsarpubsub: reading token file: %w", err)
	}
	if strings.TrimSpace(string(data)) == "" {
		return fmt.Errorf("pulsarpubsub: token file %s is empty", path)
	}
	return nil
}

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// ClientConfig says how to connect. It is not used when Client is set,
	// except ReconnectMaxBackoff and OnSlowConnect (which, when not set,
	// is the one given to NewClient for Client).
	ClientConfig
	// Client, when not nil, is used instead of a client of the publisher's
	// own. Close does not close it.
	Client pulsar.Client

	// DisableBatching sends every message in a frame of its own. By default
	// messages published at about the same time are batched; every Publish
	// call still returns only after the broker acknowledged its messages,
	// and the batch is sent when its last message was handed over, without
	// waiting for BatchingMaxPublishDelay.
	DisableBatching bool
	// BatchingMaxPublishDelay is the longest a batch waits for more
	// messages when neither a Publish call nor FlushBatches flushes it
	// (messages given to PublishAsync wait up to this long); zero keeps the
	// client library's default (10ms).
	BatchingMaxPublishDelay time.Duration
	// BatchingMaxMessages caps the messages in one batch; zero keeps the
	// client library's default (1000).
	BatchingMaxMessages uint
	// BatchingMaxSize caps the bytes in one batch; zero keeps the client
	// library's default (128 KiB).
	BatchingMaxSize uint
	// EnableChunking splits a message bigger than the broker's maximum
	// message size (5 MiB by default) into chunks that the consumer puts
	// together again. Chunking needs batching off, so it turns batching off.
	EnableChunking bool
	// ChunkMaxMessageSize caps the size of one chunk; zero uses the broker's
	// maximum message size.
	ChunkMaxMessageSize uint
	// CompressionType compresses payloads (pulsar.LZ4, ZLIB, ZSTD); the
	// default is none.
	CompressionType pulsar.CompressionType
	// SendTimeout bounds how long a message may wait for the broker's
	// acknowledgement, reconnects included; Publish fails after it. Negative
	// waits forever. Default 30s.
	SendTimeout time.Duration
	// MaxPendingMessages bounds the messages of one topic waiting for the
	// broker's acknowledgement; Publish and PublishAsync block while it is
	// reached. Zero keeps the client library's default (1000).
	MaxPendingMessages int
	// MessageKeyMetadata names a metadata key whose value becomes the Pulsar
	// message key, so that a key_shared subscription keeps the messages of
	// one key in order on one consumer. Empty sends no key.
	MessageKeyMetadata string
	// OmitUUID sends messages without their UUID (UUIDProperty), as
	// TrustGraph's Python clients do: their only property is `id`. A
	// Subscriber names such a message after its Pulsar message ID on a
	// persistent topic, which it keeps when delivered again, and gives it a
	// new UUID on a non-persistent topic. Each message then carries, and
	// each consumer parses, one property less. By default the UUID is sent,
	// so that a Subscriber hands out the UUID that was published.
	OmitUUID bool
	// ProducerName prefixes the names of this publisher's producers; empty
	// lets the broker choose unique names.
	ProducerName string
	// CloseTimeout bounds how long Close waits for Publish calls in flight,
	// for the broker to confirm the messages given to PublishAsync and for
	// the producers to flush. Default 30s.
	CloseTimeout time.Duration
}

func (c *PublisherConfig) setDefaults() {
	if c.Client == nil {
		c.ClientConfig.setDefaults()
	} else {
		c.ClientConfig.setSharedClientDefaults()
	}
	if c.EnableChunking {
		c.DisableBatching = true
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.CloseTimeout == 0 {
		c.CloseTimeout = DefaultCloseTimeout
	}
}

// Validate reports the first invalid setting.
func (c PublisherConfig) Validate() error {
	if c.Client == nil {
		if err := c.ClientConfig.Validate(); err != nil {
			return err
		}
	}
	if c.EnableChunking && !c.DisableBatching {
		return errors.New("pulsarpubsub: EnableChunking needs DisableBatching")
	}
	if c.BatchingMaxPublishDelay < 0 {
		return fmt.Errorf("pulsarpubsub: BatchingMaxPublishDelay must not be negative, got %s", c.BatchingMaxPublishDelay)
	}
	if c.MaxPendingMessages < 0 {
		return fmt.Errorf("pulsarpubsub: MaxPendingMessages must not be negative, got %d", c.MaxPendingMessages)
	}
	if c.CloseTimeout < 0 {
		return fmt.Errorf("pulsarpubsub: CloseTimeout must not be negative, got %s", c.CloseTimeout)
	}
	return nil
}

// SubscriptionType says how the consumers of one subscription share its
// messages.
type SubscriptionType string

const (
	// Shared hands each message to one of the subscription's consumers,
	// round robin; a nacked message may go to another consumer. The default.
	Shared SubscriptionType = "shared"
	// Exclusive allows one consumer on the subscription; another one is
	// refused. Several Subscribe calls on one Subscriber share its consumer.
	Exclusive SubscriptionType = "exclusive"
	// Failover lets one consumer receive while the others stand by and take
	// over when it leaves. Several Subscribe calls on one Subscriber share
	// its consumer.
	Failover SubscriptionType = "failover"
	// KeyShared hands all messages of one key to the same consumer, in order
	// (see PublisherConfig.MessageKeyMetadata).
	KeyShared SubscriptionType = "key_shared"
)

func (t SubscriptionType) pulsar() (pulsar.SubscriptionType, error) {
	switch t {
	case Shared:
		return pulsar.Shared, nil
	case Exclusive:
		return pulsar.Exclusive, nil
	case Failover:
		return pulsar.Failover, nil
	case KeyShared:
		return pulsar.KeyShared, nil
	}
	return 0, fmt.Errorf("pulsarpubsub: subscription type %q is not one of shared, exclusive, failover, key_shared", string(t))
}

// oneConsumer reports whether the Subscribe calls of one Subscriber on a
// topic must share one consumer, because the broker lets only one receive.
func (t SubscriptionType) oneConsumer() bool { return t == Exclusive || t == Failover }

// InitialPosition says where a new subscription starts.
type InitialPosition string

const (
	// Latest starts a new subscription after the last message published. The default.
	Latest InitialPosition = "latest"
	// Earliest starts a new subscription at the oldest message the topic retains.
	Earliest InitialPosition = "earliest"
)

// DeadLetterPolicy moves a message that was delivered MaxDeliveries times
// without an ack to a dead-letter topic, and acks it on its own topic. The
// broker counts deliveries for shared and key_shared subscriptions only.
type DeadLetterPolicy struct {
	// MaxDeliveries is how many deliveries a message gets before it is dead
	// lettered. It must be at least 1.
	MaxDeliveries uint32
	// Topic is the dead-letter queue name, in any form schema.ParseTopic
	// accepts. Empty means {topic}-{subscription}-DLQ next to the topic.
	Topic string
	// InitialSubscription, when set, is created on the dead-letter topic
	// together with it, so that its messages are kept until read.
	InitialSubscription string
}

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	// ClientConfig says how to connect. It is not used when Client is set,
	// except ReconnectMaxBackoff and OnSlowConnect (which, when not set,
	// is the one given to NewClient for Client).
	ClientConfig
	// Client, when not nil, is used instead of a client of the subscriber's
	// own. Close does not close it.
	Client pulsar.Client

	// SubscriptionName is the subscription, the consumer group: subscribers
	// with the same name share a topic's messages. Required.
	SubscriptionName string
	// SubscriptionType is shared (default), exclusive, failover or key_shared.
	SubscriptionType SubscriptionType
	// NonDurable makes the subscription disappear when its last consumer
	// leaves, with everything it has not read. Right for a subscription of a
	// unique name that nobody will come back to (a durable one would keep
	// its backlog on a persistent topic forever). SubscribeInitialize does
	// nothing for a non-durable subscription.
	NonDurable bool
	// InitialPosition is where a new subscription starts: latest (default)
	// or earliest.
	InitialPosition InitialPosition
	// NackRedeliveryDelay is how long a nacked message waits before it is
	// delivered again. Default 1s (the client library's default is a minute).
	NackRedeliveryDelay time.Duration
	// DeadLetter, when set, moves messages that keep failing to a
	// dead-letter topic.
	DeadLetter *DeadLetterPolicy
	// ReceiverQueueSize bounds the messages each consumer fetches ahead of
	// the application, which are unavailable to the subscription's other
	// consumers until handled. Default 1000.
	ReceiverQueueSize int
	// ConsumerName names this subscriber's consumers (visible in topic
	// stats); empty lets the client choose.
	ConsumerName string
	// MessageKeyMetadata names a metadata key that receives the Pulsar
	// message key when the message has one and its metadata does not
	// already hold the key.
	MessageKeyMetadata string
	// AckWithResponse makes every ack wait for the broker's confirmation, so
	// that a failed ack is logged. Slower; off by default.
	AckWithResponse bool
	// EnableBatchIndexAcknowledgment acks the messages of a batch one by
	// one, so that a consumer that crashes, or nacks one message of a
	// batch, gets only the messages of the batch it had not acked again.
	// Without it a batch is acknowledged to the broker only when all its
	// messages were acked, and the whole batch, the messages already acked
	// included, comes again. It needs acknowledgmentAtBatchIndexLevelEnabled=true
	// on the broker (scripts/pulsar.sh sets it).
	//
	// It is off by default because it loses messages: against Pulsar 4.0.8
	// with pulsar-client-go v0.19.0, after a consumer was killed with
	// SIGKILL, about one run in six left several batches (hundreds of
	// messages) in the subscription's backlog that the broker never
	// delivered again (TestKill9RedeliversOnlyUnacked with
	// SWITCHYARD_PULSAR_KILL9_INDEX_ACK=1).
	EnableBatchIndexAcknowledgment bool
	// AckWindow is how many messages one Subscribe call hands out before
	// the oldest of them is acked or nacked. Default 1: the next message
	// waits for the previous one's ack or nack, as watermill's Pub/Sub
	// contract expects. A larger window lets a consumer take the next
	// message while earlier ones are still being confirmed; acks and nacks
	// may then come in any order and each is passed to the broker soon
	// after it comes. With a window the channel Subscribe returns is
	// buffered (up to 8 messages, counted in the window), so that the
	// subscriber and a busy consumer each run for several messages at a
	// time instead of waiting for each other on every one. When the
	// Subscribe context ends or the subscriber closes, every message handed
	// out and not yet acked is nacked (so it is delivered again), exactly as
	// for window 1, and the messages still in the buffer are dropped from
	// the channel before it closes (nacked too, so on a persistent topic
	// they come again as a further delivery attempt). Messages are handed
	// out in the order the broker delivers them either way.
	AckWindow int
}

func (c *SubscriberConfig) setDefaults() {
	if c.Client == nil {
		c.ClientConfig.setDefaults()
	} else {
		c.ClientConfig.setSharedClientDefaults()
	}
	if c.SubscriptionType == "" {
		c.SubscriptionType = Shared
	}
	if c.InitialPosition == "" {
		c.InitialPosition = Latest
	}
	if c.NackRedeliveryDelay == 0 {
		c.NackRedeliveryDelay = DefaultNackRedeliveryDelay
	}
	if c.ReceiverQueueSize == 0 {
		c.ReceiverQueueSize = DefaultReceiverQueueSize
	}
	if c.AckWindow == 0 {
		c.AckWindow = 1
	}
}

// Validate reports the first invalid setting.
func (c SubscriberConfig) Validate() error {
	if c.Client == nil {
		if err := c.ClientConfig.Validate(); err != nil {
			return err
		}
	}
	if strings.TrimSpace(c.SubscriptionName) == "" {
		return errors.New("pulsarpubsub: SubscriptionName is required")
	}
	if _, err := c.SubscriptionType.pulsar(); err != nil {
		return err
	}
	switch c.InitialPosition {
	case Latest, Earliest:
	default:
		return fmt.Errorf("pulsarpubsub: initial position %q is not latest or earliest", string(c.InitialPosition))
	}
	if c.NackRedeliveryDelay < 0 {
		return fmt.Errorf("pulsarpubsub: NackRedeliveryDelay must not be negative, got %s", c.NackRedeliveryDelay)
	}
	if c.ReceiverQueueSize < 0 {
		return fmt.Errorf("pulsarpubsub: ReceiverQueueSize must not be negative, got %d", c.ReceiverQueueSize)
	}
	if c.AckWindow < 0 {
		return fmt.Errorf("pulsarpubsub: AckWindow must not be negative, got %d", c.AckWindow)
	}
	if d := c.DeadLetter; d != nil {
		if d.MaxDeliveries < 1 {
			return errors.New("pulsarpubsub: DeadLetter.MaxDeliveries must be at least 1")
		}
		if d.Topic != "" {
			if _, err := TopicName(d.Topic); err != nil {
				return fmt.Errorf("pulsarpubsub: DeadLetter.Topic: %w", err)
			}
		}
	}
	return nil
}
