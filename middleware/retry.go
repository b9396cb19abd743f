package middleware

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// RetryConfig bounds in-process retries of transient errors.
type RetryConfig struct {
	// MaxRetries is how many times a failed call is repeated; 0 disables retry.
	MaxRetries int
	// InitialInterval is the pause before the first retry.
	InitialInterval time.Duration
	// Multiplier grows the pause after each retry.
	Multiplier float64
	// MaxInterval caps a single pause.
	MaxInterval time.Duration
	// Counters, if set, counts each retry attempt.
	Counters *Counters
	// Logger reports each retry; nil logs nothing.
	Logger watermill.LoggerAdapter
}

// DefaultRetry is the in-process retry policy processors get unless they
// choose another: none. A failed message is nacked and the broker delivers
// it again, at most max-deliveries times; in-process retries multiply the
// handler calls of each delivery.
var DefaultRetry = RetryConfig{MaxRetries: 0, InitialInterval: 100 * time.Millisecond, Multiplier: 2, MaxInterval: 2 * time.Second}

// SetDefaults fills zero fields other than MaxRetries from DefaultRetry.
func (c *RetryConfig) SetDefaults() {
	if c.InitialInterval == 0 {
		c.InitialInterval = DefaultRetry.InitialInterval
	}
	if c.Multiplier == 0 {
		c.Multiplier = DefaultRetry.Multiplier
	}
	if c.MaxInterval == 0 {
		c.MaxInterval = DefaultRetry.MaxInterval
	}
}

// Validate reports settings that make no sense.
func (c RetryConfig) Validate() error {
	if c.MaxRetries < 0 {
		return fmt.Errorf("retry: max retries must not be negative, got %d", c.MaxRetries)
	}
	if c.Multiplier < 1 {
		return fmt.Errorf("retry: multiplier must be at least 1, got %g", c.Multiplier)
	}
	if c.InitialInterval < 0 || c.MaxInterval < c.InitialInterval {
		return fmt.Errorf("retry: intervals must satisfy 0 <= initial (%s) <= max (%s)", c.InitialInterval, c.MaxInterval)
	}
	return nil
}

// Retry calls the handler again after a transient error, pausing with
// exponential backoff, at most cfg.MaxRetries times. Permanent errors,
// too-many-requests errors, panics and streams that already published
// outputs are not retried here. A cancelled message context or the start of
// a drain ends the retries at once and the last error is returned.
func Retry(cfg RetryConfig) (message.HandlerMiddleware, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			pause := cfg.InitialInterval
			for attempt := 0; ; attempt++ {
				out, err := h(msg)
				if err == nil || attempt >= cfg.MaxRetries || !retryable(err) {
					return out, err
				}
				if cfg.Counters != nil {
					cfg.Counters.retries.Add(1)
				}
				logger.Debug("Retrying after error", watermill.LogFields{
					"message_uuid": msg.UUID, "attempt": attempt + 1, "pause": pause, "error": err.Error(),
				})
				if werr := sleep(msg.Context(), pause); werr != nil {
					return nil, err
				}
				pause = min(time.Duration(float64(pause)*cfg.Multiplier), cfg.MaxInterval)
			}
		}
	}, nil
}

func retryable(err error) bool {
	var p *PanicError
	_, started := OutputsPublished(err)
	return !IsPermanent(err) && !IsTooManyRequests(err) && !errors.As(err, &p) && !started
}

// errDraining ends a pause because the processor is stopping.
var errDraining = errors.New("processor is draining")

// sleep waits for d, or until ctx ends or the processor starts draining,
// whichever is first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-Draining(ctx):
		return errDraining
	}
}
