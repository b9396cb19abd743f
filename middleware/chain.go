package middleware

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Policy is the delivery policy of one handler.
type Policy struct {
	// Delivery says how failures end: max deliveries, poison queue, error
	// responses, draining. Its Counters and Logger default to the policy's.
	Delivery DeliveryConfig
	// Retry bounds in-process retries; the zero value means DefaultRetry.
	Retry *RetryConfig
	// Backoff is the pause after a too-many-requests answer.
	Backoff BackoffConfig
	// RateLimit, if positive, caps handler calls per second.
	RateLimit float64
	// RateBurst is the token bucket size; defaults to 1 when RateLimit is set.
	RateBurst int
	// Counters receives the tallies; required.
	Counters *Counters
	// Logger receives policy events; nil logs nothing.
	Logger watermill.LoggerAdapter
}

// Chain wraps h in the full policy, outermost first:
// Deliver, Recover, Backoff, Retry, Throttle.
func Chain(h message.HandlerFunc, p Policy) (message.HandlerFunc, error) {
	if p.Counters == nil {
		return nil, errors.New("policy: counters are required")
	}
	logger := p.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	retryCfg := DefaultRetry
	if p.Retry != nil {
		retryCfg = *p.Retry
	}
	retryCfg.Counters = p.Counters
	retryCfg.Logger = logger
	retry, err := Retry(retryCfg)
	if err != nil {
		return nil, err
	}
	if p.Delivery.Logger == nil {
		p.Delivery.Logger = logger
	}
	if p.Delivery.Counters == nil {
		p.Delivery.Counters = p.Counters
	}
	deliver, err := Deliver(p.Delivery)
	if err != nil {
		return nil, err
	}
	if p.Backoff.Logger == nil {
		p.Backoff.Logger = logger
	}
	layers := []message.HandlerMiddleware{deliver, Recover(logger), Backoff(p.Backoff), retry}
	if p.RateLimit > 0 {
		burst := p.RateBurst
		if burst == 0 {
			burst = 1
		}
		throttle, err := Throttle(p.RateLimit, burst)
		if err != nil {
			return nil, fmt.Errorf("policy: %w", err)
		}
		layers = append(layers, throttle)
	}
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i](h)
	}
	return h, nil
}

func asTooMany(err error, target **TooManyRequestsError) bool { return errors.As(err, target) }
