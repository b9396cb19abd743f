package router

import (
	"fmt"
	"time"
)

// Config says how a Router consumes. It holds nothing about the broker: the
// Backend given to New does.
type Config struct {
	// ID names the processor. It is the default subscription (consumer
	// group) name, so replicas with the same ID share the work.
	ID string
	// Concurrency is how many messages each handler handles at once. No more
	// are taken from the broker while every slot is busy.
	Concurrency int
	// DrainTimeout bounds how long a stopping router waits for in-flight
	// messages to finish.
	DrainTimeout time.Duration
}

// Defaults for Config fields left empty.
const (
	DefaultConcurrency  = 1
	DefaultDrainTimeout = 10 * time.Second
)

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
}

// Validate reports the first invalid setting as a one-line error that names
// the command-line flag and echoes the value. Zero values stand for their
// defaults.
func (c Config) Validate() error {
	if c.Concurrency < 0 {
		return fmt.Errorf("--concurrency must be at least 1, got %d", c.Concurrency)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("--drain-timeout must not be negative, got %s", c.DrainTimeout)
	}
	return nil
}
