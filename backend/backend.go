package backend

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/router"
)

// Backend names accepted by Config.Name and --pubsub-backend, in any case.
const (
	Pulsar   = "pulsar"
	MQTT     = "mqtt"
	RabbitMQ = "rabbitmq"
	Kafka    = "kafka"
	Memory   = "memory"
)

// DefaultName is the backend used when none is named, as in TrustGraph.
const DefaultName = Pulsar

// Names lists every backend name in the order --help shows them.
func Names() []string { return []string{Pulsar, MQTT, RabbitMQ, Kafka, Memory} }

// Config selects a backend and says how to reach it.
type Config struct {
	// Name is the backend: pulsar, mqtt or memory. Matching ignores case.
	Name string
	// ClientName names this client to the broker where the broker shows
	// names (MQTT client ids); processors use their id. Default "switchyard".
	ClientName string
	// Debug passes the client libraries' debug lines to the logger.
	Debug bool
	// OnSlowConnect, if set, is called every few seconds while a backend
	// that connects lazily (Pulsar creates producers and consumers on first
	// use) waits for its broker, with the time waited and the bound.
	OnSlowConnect func(elapsed, limit time.Duration)
	// Pulsar configures the pulsar backend.
	Pulsar PulsarSettings
	// MQTT configures the mqtt backend.
	MQTT MQTTSettings
	// RabbitMQ configures the rabbitmq backend.
	RabbitMQ RabbitMQSettings
	// Kafka configures the kafka backend.
	Kafka KafkaSettings
}

// SetDefaults normalises the name and fills empty fields with defaults.
func (c *Config) SetDefaults() {
	c.Name = strings.ToLower(strings.TrimSpace(c.Name))
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.ClientName == "" {
		c.ClientName = "switchyard"
	}
	c.MQTT.setDefaults()
}

// Validate reports the first invalid setting as a one-line error that names
// the flag and echoes the bad value. Empty values stand for their defaults.
func (c Config) Validate() error {
	switch strings.ToLower(strings.TrimSpace(c.Name)) {
	case "", Pulsar:
		return c.Pulsar.validate()
	case MQTT:
		return c.MQTT.validate()
	case RabbitMQ:
		return c.RabbitMQ.validate()
	case Kafka:
		return c.Kafka.validate()
	case Memory:
		return nil
	default:
		return fmt.Errorf("--pubsub-backend %q is not one of %s", c.Name, strings.Join(Names(), ", "))
	}
}

// Secrets returns the configured secrets, for redacting them from any text
// that might quote them.
func (c Config) Secrets() []string {
	return append([]string{c.Pulsar.Token, c.MQTT.Password, c.RabbitMQ.Password, c.Kafka.SASLPassword}, c.MQTT.fileSecrets()...)
}

// Address returns the broker address the configuration points at, with no
// credentials: what a ready line or a progress line may print.
func (c Config) Address() string {
	switch strings.ToLower(c.Name) {
	case MQTT:
		s := c.MQTT
		s.setDefaults()
		return s.brokerURL()
	case RabbitMQ:
		return c.RabbitMQ.address()
	case Kafka:
		if c.Kafka.BootstrapServers == "" {
			return "kafka://" + DefaultKafkaBootstrapServers
		}
		return "kafka://" + c.Kafka.BootstrapServers
	case Memory:
		return "in-process"
	default:
		if c.Pulsar.URL == "" {
			return defaultPulsarURL
		}
		return c.Pulsar.URL
	}
}

// New validates cfg and connects to the backend it names. The error says
// what is wrong with the configuration or the connection; secrets are never
// part of it.
func New(ctx context.Context, cfg Config, logger watermill.LoggerAdapter) (router.Backend, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.SetDefaults()
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	switch cfg.Name {
	case Memory:
		return NewMemory(logger), nil
	case Pulsar:
		return newPulsarBackend(ctx, cfg, logger)
	case RabbitMQ:
		return newRabbitMQBackend(ctx, cfg, logger)
	case Kafka:
		return newKafkaBackend(ctx, cfg, logger)
	default:
		return newMQTTBackend(ctx, cfg, logger)
	}
}
