package backend

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/router"
)

// RabbitMQSettings configure the rabbitmq backend. The connection settings
// are the adapter's own, with its defaults.
type RabbitMQSettings struct {
	// ConnectionConfig says how to reach and log in to the broker (host,
	// port, user, password, vhost, TLS, timeouts).
	rabbitmqpubsub.ConnectionConfig
	// Prefetch is how many unacknowledged messages each consumer is sent
	// ahead. Default rabbitmqpubsub.DefaultPrefetch.
	Prefetch int
	// NackDelay is how long a failed message waits before it is queued
	// again. Default rabbitmqpubsub.DefaultNackDelay.
	NackDelay time.Duration
}

func (s RabbitMQSettings) validate() error {
	if s.Port < 0 || s.Port > 65535 {
		return fmt.Errorf("--rabbitmq-port must be between 1 and 65535, got %d", s.Port)
	}
	if s.Password != "" && s.PasswordFile != "" {
		return errors.New("set --rabbitmq-password or --rabbitmq-password-file, not both")
	}
	if s.Prefetch < 0 || s.Prefetch > 65535 {
		return fmt.Errorf("--rabbitmq-prefetch must be between 1 and 65535, got %d", s.Prefetch)
	}
	if s.NackDelay < 0 {
		return fmt.Errorf("--rabbitmq-nack-delay must not be negative, got %s", s.NackDelay)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		return errors.New("set both --rabbitmq-tls-cert-file and --rabbitmq-tls-key-file, or neither")
	}
	return nil
}

// address is the broker URL without credentials.
func (s RabbitMQSettings) address() string {
	c := s.ConnectionConfig
	c.Password, c.PasswordFile = "", ""
	if c.Host == "" {
		c.Host = rabbitmqpubsub.DefaultHost
	}
	u := c.URL()
	if i := strings.Index(u, "@"); i >= 0 {
		scheme := u[:strings.Index(u, "://")+3]
		u = scheme + u[i+1:]
	}
	return u
}

// rabbitmqBackend carries messages through RabbitMQ laid out as TrustGraph
// lays it out: a fanout exchange per queue name, a queue per subscription.
type rabbitmqBackend struct {
	cfg      Config
	settings RabbitMQSettings
	logger   watermill.LoggerAdapter
	pub      *rabbitmqpubsub.Publisher
	health   healthSet
}

func newRabbitMQBackend(_ context.Context, cfg Config, logger watermill.LoggerAdapter) (router.Backend, error) {
	s := cfg.RabbitMQ
	conn := s.ConnectionConfig
	if conn.ConnectionName == "" {
		conn.ConnectionName = cfg.ClientName
	}
	pub, err := rabbitmqpubsub.NewPublisher(rabbitmqpubsub.PublisherConfig{ConnectionConfig: conn}, logger)
	if err != nil {
		return nil, err
	}
	s.ConnectionConfig = conn
	b := &rabbitmqBackend{cfg: cfg, settings: s, logger: logger, pub: pub}
	b.health.add(pub)
	return b, nil
}

func (b *rabbitmqBackend) Name() string { return RabbitMQ }

func (b *rabbitmqBackend) Publisher() message.Publisher { return b.pub }

// NewSubscriber returns a subscriber for opts. Flow and request queues are
// consumed through the queue "{exchange}.{subscription}" shared by every
// consumer of that name; response and notify queues through a server-named
// queue of this subscriber's own. An exclusive subscriber on a shared class
// gets a unique subscription name.
func (b *rabbitmqBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	name := opts.Subscription
	if opts.Exclusive || name == "" {
		name = b.cfg.ClientName + "-" + watermill.NewShortUUID()
	}
	sub, err := rabbitmqpubsub.NewSubscriber(rabbitmqpubsub.SubscriberConfig{
		ConnectionConfig: b.settings.ConnectionConfig,
		SubscriptionName: name,
		Prefetch:         b.settings.Prefetch,
		NackDelay:        b.settings.NackDelay,
		AckWindow:        opts.AckWindow,
	}, b.logger)
	if err != nil {
		return nil, err
	}
	b.health.add(sub)
	return healthTracked{Subscriber: sub, set: &b.health}, nil
}

// Health reports whether the publisher and every open subscriber are
// connected.
func (b *rabbitmqBackend) Health() error { return b.health.Health() }

func (b *rabbitmqBackend) Close() error { return b.pub.Close() }
