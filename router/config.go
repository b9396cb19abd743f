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
	// MaxInFlight is how many inputs of one handler may be taken from the
	// broker and not yet acked. Above Concurrency, a handler's outputs are
	// sent without waiting for the broker and each input is acked once its
	// outputs are confirmed, so the next input is handled meanwhile; at
	// Concurrency (e.g. 1 and 1) every output is confirmed before the
	// handler's slot takes the next input. Backends whose publisher cannot
	// send asynchronously always work the second way. Default
	// DefaultMaxInFlight, or what the backend suggests (InFlightDefaulter),
	// and at least Concurrency.
	MaxInFlight int
	// DrainTimeout bounds how long a stopping router waits for in-flight
	// messages to finish.
	DrainTimeout time.Duration
}

// Defaults for Config fields left empty.
const (
	DefaultConcurrency  = 1
	DefaultDrainTimeout = 10 * time.Second
	DefaultMaxInFlight  = 256
)

// SetDefaults fills every empty field with its default.
func (c *Config) SetDefaults() {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = max(DefaultMaxInFlight, c.Concurrency)
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
	if c.MaxInFlight < 0 {
		return fmt.Errorf("--max-in-flight must be at least 1, got %d", c.MaxInFlight)
	}
	if c.MaxInFlight > 0 && c.MaxInFlight < max(c.Concurrency, 1) {
		return fmt.Errorf("--max-in-flight (%d) must be at least --concurrency (%d)", c.MaxInFlight, c.Concurrency)
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("--drain-timeout must not be negative, got %s", c.DrainTimeout)
	}
	return nil
}
