package middleware

import (
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"golang.org/x/time/rate"
)

// Throttle limits how often the handler is called with a token bucket of the
// given rate (calls per second) and burst. It waits for a token, so excess
// messages stay unconsumed at the broker rather than piling up in memory. Use
// one Throttle per handler: every call of the returned middleware shares the
// bucket.
func Throttle(perSecond float64, burst int) (message.HandlerMiddleware, error) {
	if perSecond <= 0 {
		return nil, fmt.Errorf("throttle: rate must be positive, got %g", perSecond)
	}
	if burst < 1 {
		return nil, fmt.Errorf("throttle: burst must be at least 1, got %d", burst)
	}
	limiter := rate.NewLimiter(rate.Limit(perSecond), burst)
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			if err := limiter.Wait(msg.Context()); err != nil {
				return nil, fmt.Errorf("throttle: waiting for a token: %w", err)
			}
			return h(msg)
		}
	}, nil
}

// BackoffConfig says how long to pause after a too-many-requests answer.
type BackoffConfig struct {
	// Default is the pause when the error carries no RetryAfter.
	Default time.Duration
	// Max caps any pause, RetryAfter included.
	Max time.Duration
	// Logger reports each backoff; nil logs nothing.
	Logger watermill.LoggerAdapter
}

// DefaultBackoff is the policy processors get unless they choose another.
var DefaultBackoff = BackoffConfig{Default: time.Second, Max: 30 * time.Second}

// Backoff pauses before letting a TooManyRequestsError through, so the nacked
// message is redelivered only after the downstream service had time to
// recover. The pause is the error's RetryAfter, or cfg.Default, capped at
// cfg.Max; it ends early if the message context is cancelled.
func Backoff(cfg BackoffConfig) message.HandlerMiddleware {
	if cfg.Default <= 0 {
		cfg.Default = DefaultBackoff.Default
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultBackoff.Max
	}
	logger := cfg.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			out, err := h(msg)
			if err == nil || !IsTooManyRequests(err) {
				return out, err
			}
			var tmr *TooManyRequestsError
			pause := cfg.Default
			if asTooMany(err, &tmr) && tmr.RetryAfter > 0 {
				pause = tmr.RetryAfter
			}
			pause = min(pause, cfg.Max)
			logger.Info("Downstream rate limited; backing off before redelivery", watermill.LogFields{
				"message_uuid": msg.UUID, "pause": pause,
			})
			_ = sleep(msg.Context(), pause)
			return nil, err
		}
	}
}
