package backend

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/router"
)

// KafkaSettings configure the kafka backend. The connection settings are
// the adapter's own, with its defaults.
type KafkaSettings struct {
	// Config says how to reach and log in to the cluster (bootstrap servers,
	// security protocol, SASL, TLS, timeouts).
	kafkapubsub.Config
	// NackDelay is how long after a nack the message is published again.
	// Default kafkapubsub.DefaultNackDelay.
	NackDelay time.Duration
}

// DefaultKafkaBootstrapServers is the default of --kafka-bootstrap-servers,
// on this host like the other backends' defaults.
const DefaultKafkaBootstrapServers = "localhost:9092"

func (s KafkaSettings) validate() error {
	if s.NackDelay < 0 {
		return fmt.Errorf("--kafka-nack-delay must not be negative, got %s", s.NackDelay)
	}
	if s.SASLPassword != "" && s.SASLPasswordFile != "" {
		return errors.New("set --kafka-sasl-password or --kafka-sasl-password-file, not both")
	}
	c := s.Config
	if c.BootstrapServers == "" {
		c.BootstrapServers = DefaultKafkaBootstrapServers
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("kafka settings: %w", err)
	}
	return nil
}

// kafkaBackend carries messages through Kafka with TrustGraph's topic names.
type kafkaBackend struct {
	cfg      Config
	settings KafkaSettings
	logger   watermill.LoggerAdapter
	pub      *kafkapubsub.Publisher
	health   healthSet
}

func newKafkaBackend(_ context.Context, cfg Config, logger watermill.LoggerAdapter) (router.Backend, error) {
	s := cfg.Kafka
	if s.BootstrapServers == "" {
		s.BootstrapServers = DefaultKafkaBootstrapServers
	}
	if s.ClientID == "" {
		s.ClientID = cfg.ClientName
	}
	pub, err := kafkapubsub.NewPublisher(kafkapubsub.PublisherConfig{Config: s.Config}, logger)
	if err != nil {
		return nil, err
	}
	b := &kafkaBackend{cfg: cfg, settings: s, logger: logger, pub: pub}
	b.health.add(pub)
	return b, nil
}

func (b *kafkaBackend) Name() string { return Kafka }

func (b *kafkaBackend) Publisher() message.Publisher { return b.pub }

// NewSubscriber returns a subscriber for opts: flow and request topics are
// read by the consumer group named by the subscription, response and notify
// topics by a group of this subscriber's own that starts at the earliest
// retained message, as TrustGraph's clients read them.
func (b *kafkaBackend) NewSubscriber(opts router.SubscribeOptions) (message.Subscriber, error) {
	name := opts.Subscription
	if opts.Exclusive || name == "" {
		name = b.cfg.ClientName + "-" + watermill.NewShortUUID()
	}
	cfg := kafkapubsub.SubscriberConfig{Config: b.settings.Config, SubscriptionName: name, NackDelay: b.settings.NackDelay, AckWindow: opts.AckWindow}
	switch opts.InitialPosition {
	case router.PositionEarliest:
		cfg.InitialOffset = kafkapubsub.OffsetEarliest
	case router.PositionLatest:
		if opts.Exclusive {
			cfg.InitialOffset = kafkapubsub.OffsetLatest
		}
	}
	sub, err := kafkapubsub.NewSubscriber(cfg, b.logger)
	if err != nil {
		return nil, err
	}
	b.health.add(sub)
	return healthTracked{Subscriber: sub, set: &b.health}, nil
}

// Health reports whether the publisher and every open subscriber are
// connected.
func (b *kafkaBackend) Health() error { return b.health.Health() }

func (b *kafkaBackend) Close() error { return b.pub.Close() }
