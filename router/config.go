package router

import (
	"fmt"
	"strings"
	"time"
)

// Config holds everything a processor needs to reach its backend and run.
type Config struct {
	// Backend is one of "pulsar", "mqtt" or "memory".
	Backend string
	// ID names this processor. It is the subscription (consumer group) name,
	// so replicas with the same ID share the work.
	ID string
	// LogLevel is one of debug, info, warn, error.
	LogLevel string
	// Concurrency is how many messages one processor handles at once. No
	// more are taken from the broker while every slot is busy.
	Concurrency int
	// DrainTimeout bounds how long a stopping processor waits for in-flight
	// messages to finish.
	DrainTimeout time.Duration

	Pulsar PulsarSettings
	MQTT   MQTTSettings
}

// Defaults for Config fields left empty.
const (
	DefaultBackend      = BackendPulsar
	DefaultLogLevel     = "info"
	DefaultConcurrency  = 1
	DefaultDrainTimeout = 10 * time.Second
)

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	if c.Backend == "" {
		c.Backend = DefaultBackend
	}
	if c.LogLevel == "" {
		c.LogLevel = DefaultLogLevel
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	c.Pulsar.setDefaults()
	c.MQTT.setDefaults()
}

// Validate reports the first invalid setting as a one-line error. Empty
// strings stand for their defaults; numbers must be in range as they are.
func (c Config) Validate() error {
	switch c.Backend {
	case "", BackendPulsar, BackendMQTT, BackendMemory:
	default:
		return fmt.Errorf("--pubsub-backend %q is not one of %s", c.Backend, strings.Join(backendNames, ", "))
	}
	switch c.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q is not one of debug, info, warn, error", c.LogLevel)
	}
	if c.Concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("--drain-timeout must not be negative, got %s", c.DrainTimeout)
	}
	switch c.Backend {
	case BackendPulsar, "":
		return c.Pulsar.validate()
	case BackendMQTT:
		return c.MQTT.validate()
	}
	return nil
}
