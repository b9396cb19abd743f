package router

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"
	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/pulsarpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// PulsarSettings configure the pulsar backend.
type PulsarSettings struct {
	// Host is the broker URL, pulsar:// or pulsar+ssl://.
	Host string
	// APIKey is a JWT token for token authentication. Never logged.
	APIKey string
	// APIKeyFile names a file holding the token, read at every connection;
	// an alternative to APIKey.
	APIKeyFile string
	// Listener is the advertised listener name to connect through.
	Listener string
	// TLSTrustCerts names a PEM file with the certificate authorities of the
	// broker's TLS certificate (pulsar+ssl:// only).
	TLSTrustCerts string
	// TLSAllowInsecure accepts any broker certificate. Only for tests.
	TLSAllowInsecure bool
	// TLSSkipHostnameVerification turns off the check that the broker's
	// certificate names the host.
	TLSSkipHostnameVerification bool
	// ConnectionTimeout bounds establishing one connection.
	ConnectionTimeout time.Duration
	// OperationTimeout bounds creating a producer or consumer, retries
	// included: an unreachable broker or a refused token is an error after it.
	OperationTimeout time.Duration
	// NackDelay is how long a nacked message waits before it is delivered again.
	NackDelay time.Duration
	// ReceiverQueueSize bounds the messages each consumer fetches ahead.
	ReceiverQueueSize int
}

// Defaults of the pulsar backend settings.
const (
	DefaultPulsarHost              = "pulsar://localhost:6650"
	DefaultPulsarConnectionTimeout = 10 * time.Second
	DefaultPulsarOperationTimeout  = 30 * time.Second
	DefaultPulsarNackDelay         = time.Second
	DefaultPulsarReceiverQueueSize = 1000
)

func (s *PulsarSettings) setDefaults() {
	if s.Host == "" {
		s.Host = DefaultPulsarHost
	}
	if s.ConnectionTimeout == 0 {
		s.ConnectionTimeout = DefaultPulsarConnectionTimeout
	}
	if s.OperationTimeout == 0 {
		s.OperationTimeout = DefaultPulsarOperationTimeout
	}
	if s.NackDelay == 0 {
		s.NackDelay = DefaultPulsarNackDelay
	}
	if s.ReceiverQueueSize == 0 {
		s.ReceiverQueueSize = DefaultPulsarReceiverQueueSize
	}
}

// validate reports the first invalid setting; zero values stand for the
// defaults.
func (s PulsarSettings) validate() error {
	if s.APIKey != "" && s.APIKeyFile != "" {
		return errors.New("set --pulsar-api-key or --pulsar-api-key-file, not both")
	}
	if s.TLSTrustCerts != "" && !strings.HasPrefix(s.Host, "pulsar+ssl://") {
		return errors.New("--pulsar-tls-trust-certs needs a pulsar+ssl:// --pulsar-host")
	}
	if s.ConnectionTimeout < 0 || s.OperationTimeout < 0 || s.NackDelay < 0 {
		return errors.New("--pulsar-connection-timeout, --pulsar-operation-timeout and --pulsar-nack-delay must not be negative")
	}
	if s.ReceiverQueueSize < 0 {
		return fmt.Errorf("--pulsar-receiver-queue-size must be at least 1, got %d", s.ReceiverQueueSize)
	}
	c := s.clientConfig()
	if c.URL == "" {
		c.URL = DefaultPulsarHost
	}
	if err := c.Validate(); err != nil {
		// What is left to find wrong is the URL.
		return fmt.Errorf("--pulsar-host: %s", strings.TrimPrefix(err.Error(), "pulsarpubsub: "))
	}
	return nil
}

func (s PulsarSettings) clientConfig() pulsarpubsub.ClientConfig {
	return pulsarpubsub.ClientConfig{
		URL:                         s.Host,
		Token:                       s.APIKey,
		TokenFile:                   s.APIKeyFile,
		ListenerName:                s.Listener,
		TLSTrustCertsFile:           s.TLSTrustCerts,
		TLSAllowInsecureConnection:  s.TLSAllowInsecure,
		TLSSkipHostnameVerification: s.TLSSkipHostnameVerification,
		ConnectionTimeout:           s.ConnectionTimeout,
		OperationTimeout:            s.OperationTimeout,
	}
}

func pulsarFlags(s *PulsarSettings) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "pulsar-host", EnvVars: []string{"PULSAR_HOST"}, Value: DefaultPulsarHost, Usage: "Pulsar broker URL (pulsar:// or pulsar+ssl://)", Destination: &s.Host, Category: "Pulsar"},
		// No Value: --help must never show the token.
		&cli.StringFlag{Name: "pulsar-api-key", EnvVars: []string{"PULSAR_API_KEY"}, Usage: "Pulsar token for authentication", Destination: &s.APIKey, Category: "Pulsar"},
		&cli.StringFlag{Name: "pulsar-api-key-file", EnvVars: []string{"PULSAR_API_KEY_FILE"}, Usage: "file holding the Pulsar token (read at every connection)", Destination: &s.APIKeyFile, Category: "Pulsar"},
		&cli.StringFlag{Name: "pulsar-listener", EnvVars: []string{"PULSAR_LISTENER"}, Usage: "Pulsar advertised listener name", Destination: &s.Listener, Category: "Pulsar"},
		&cli.StringFlag{Name: "pulsar-tls-trust-certs", EnvVars: []string{"PULSAR_TLS_TRUST_CERTS"}, Usage: "PEM file of the CAs of the broker's TLS certificate (pulsar+ssl://)", Destination: &s.TLSTrustCerts, Category: "Pulsar"},
		&cli.BoolFlag{Name: "pulsar-tls-allow-insecure", EnvVars: []string{"PULSAR_TLS_ALLOW_INSECURE"}, Usage: "accept any broker TLS certificate (tests only)", Destination: &s.TLSAllowInsecure, Category: "Pulsar"},
		&cli.BoolFlag{Name: "pulsar-tls-skip-hostname-verification", EnvVars: []string{"PULSAR_TLS_SKIP_HOSTNAME_VERIFICATION"}, Usage: "do not check that the broker's TLS certificate names its host", Destination: &s.TLSSkipHostnameVerification, Category: "Pulsar"},
		&cli.DurationFlag{Name: "pulsar-connection-timeout", EnvVars: []string{"PULSAR_CONNECTION_TIMEOUT"}, Value: DefaultPulsarConnectionTimeout, Usage: "bound on establishing one broker connection", Destination: &s.ConnectionTimeout, Category: "Pulsar"},
		&cli.DurationFlag{Name: "pulsar-operation-timeout", EnvVars: []string{"PULSAR_OPERATION_TIMEOUT"}, Value: DefaultPulsarOperationTimeout, Usage: "bound on subscribing and creating producers, retries included", Destination: &s.OperationTimeout, Category: "Pulsar"},
		&cli.DurationFlag{Name: "pulsar-nack-delay", EnvVars: []string{"PULSAR_NACK_DELAY"}, Value: DefaultPulsarNackDelay, Usage: "delay before a failed message is delivered again", Destination: &s.NackDelay, Category: "Pulsar"},
		&cli.IntFlag{Name: "pulsar-receiver-queue-size", EnvVars: []string{"PULSAR_RECEIVER_QUEUE_SIZE"}, Value: DefaultPulsarReceiverQueueSize, Usage: "messages each consumer fetches ahead of the handlers", Destination: &s.ReceiverQueueSize, Category: "Pulsar"},
	}
}

// pulsarBackend carries messages on Apache Pulsar through one client shared
// by the publisher and every subscriber.
type pulsarBackend struct {
	settings PulsarSettings
	logger   watermill.LoggerAdapter
	client   pulsar.Client
	pub      *pulsarpubsub.Publisher

	closeOnce sync.Once
	closeErr  error
}

func newPulsarBackend(_ context.Context, cfg Config, logger watermill.LoggerAdapter) (Backend, error) {
	s := cfg.Pulsar
	s.setDefaults()
	client, err := pulsarpubsub.NewClient(s.clientConfig(), logger)
	if err != nil {
		return nil, fmt.Errorf("pulsar backend: %w", err)
	}
	pub, err := pulsarpubsub.NewPublisher(pulsarpubsub.PublisherConfig{Client: client}, logger)
	if err != nil {
		client.Close()
		return nil, fmt.Errorf("pulsar backend: %w", err)
	}
	return &pulsarBackend{settings: s, logger: logger, client: client, pub: pub}, nil
}

func (b *pulsarBackend) Name() string { return BackendPulsar }

func (b *pulsarBackend) Publisher() message.Publisher { return b.pub }

// NewSubscriber returns a subscriber of opts.Subscription, shared among the
// subscribers of that name. Topics of the response and notify classes, and
// every topic when opts.Exclusive is set or no subscription is named, are
// consumed through an exclusive, non-durable subscription of a unique name,
// so that this client sees every message and leaves nothing behind on the
// broker when it is gone.
func (b *pulsarBackend) NewSubscriber(opts SubscribeOptions) (message.Subscriber, error) {
	s := &pulsarSubscriber{backend: b, opts: opts}
	if !opts.Exclusive && opts.Subscription != "" {
		sub, err := b.subscriber(opts.Subscription, pulsarpubsub.Shared, false, opts.InitialPosition)
		if err != nil {
			return nil, err
		}
		s.shared = sub
	}
	return s, nil
}

func (b *pulsarBackend) subscriber(name string, typ pulsarpubsub.SubscriptionType, nonDurable bool, pos InitialPosition) (*pulsarpubsub.Subscriber, error) {
	cfg := pulsarpubsub.SubscriberConfig{
		Client:              b.client,
		SubscriptionName:    name,
		SubscriptionType:    typ,
		NonDurable:          nonDurable,
		NackRedeliveryDelay: b.settings.NackDelay,
		ReceiverQueueSize:   b.settings.ReceiverQueueSize,
	}
	if pos == PositionEarliest {
		cfg.InitialPosition = pulsarpubsub.Earliest
	}
	sub, err := pulsarpubsub.NewSubscriber(cfg, b.logger)
	if err != nil {
		return nil, fmt.Errorf("pulsar backend: %w", err)
	}
	return sub, nil
}

func (b *pulsarBackend) Close() error {
	b.closeOnce.Do(func() {
		b.closeErr = b.pub.Close()
		b.client.Close()
	})
	return b.closeErr
}

// pulsarSubscriber picks, per topic, the shared subscription of its name or
// its own exclusive one (see pulsarBackend.NewSubscriber).
type pulsarSubscriber struct {
	backend *pulsarBackend
	opts    SubscribeOptions
	shared  *pulsarpubsub.Subscriber // nil when every topic is exclusive

	mu        sync.Mutex
	exclusive *pulsarpubsub.Subscriber
	closed    bool
}

func (s *pulsarSubscriber) pick(topic string) (*pulsarpubsub.Subscriber, error) {
	t, err := schema.ParseTopic(topic)
	if err != nil {
		return nil, err
	}
	if s.shared != nil && !t.Class().Exclusive() {
		return s.shared, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, pulsarpubsub.ErrSubscriberClosed
	}
	if s.exclusive == nil {
		prefix := s.opts.Subscription
		if prefix == "" {
			prefix = "switchyard"
		}
		sub, err := s.backend.subscriber(prefix+"-"+watermill.NewShortUUID(), pulsarpubsub.Exclusive, true, s.opts.InitialPosition)
		if err != nil {
			return nil, err
		}
		s.exclusive = sub
	}
	return s.exclusive, nil
}

// Subscribe consumes topic; see message.Subscriber.
func (s *pulsarSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	sub, err := s.pick(topic)
	if err != nil {
		return nil, err
	}
	return sub.Subscribe(ctx, topic)
}

// SubscribeInitialize creates the subscription on topic ahead of Subscribe.
func (s *pulsarSubscriber) SubscribeInitialize(topic string) error {
	sub, err := s.pick(topic)
	if err != nil {
		return err
	}
	return sub.SubscribeInitialize(topic)
}

// Close closes the subscriptions without unsubscribing.
func (s *pulsarSubscriber) Close() error {
	s.mu.Lock()
	s.closed = true
	excl := s.exclusive
	s.mu.Unlock()
	var errs []error
	if s.shared != nil {
		errs = append(errs, s.shared.Close())
	}
	if excl != nil {
		errs = append(errs, excl.Close())
	}
	return errors.Join(errs...)
}
