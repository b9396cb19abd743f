package middleware

import (
	"errors"
	"sync/atomic"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

// Counters tally the outcomes of one handler. They are safe for concurrent use.
type Counters struct {
	received    atomic.Int64
	redelivered atomic.Int64
	inFlight    atomic.Int64
	published   atomic.Int64
	ok          atomic.Int64
	errs        atomic.Int64
	poisoned    atomic.Int64
	rateLimited atomic.Int64
	panics      atomic.Int64
	retries     atomic.Int64
}

// Snapshot is a point-in-time copy of Counters.
type Snapshot struct {
	// Received counts inputs taken from the broker, redeliveries included.
	Received int64 `json:"received"`
	// Redelivered counts inputs delivered more than once (their delivery
	// attempt, schema.DeliveryAttemptKey, is above 1).
	Redelivered int64 `json:"redelivered"`
	// InFlight is the number of inputs being handled now.
	InFlight int64 `json:"in_flight"`
	// Published counts outputs the broker confirmed.
	Published int64 `json:"published"`
	// OK counts inputs handled successfully (acked after their outputs).
	OK int64 `json:"ok"`
	// Errors counts inputs nacked for a transient error (panics included).
	Errors int64 `json:"error"`
	// Poisoned counts inputs sent to the poison queue and acked.
	Poisoned int64 `json:"poison"`
	// RateLimited counts inputs nacked after a too-many-requests answer.
	RateLimited int64 `json:"rate_limited"`
	// Panics counts handler panics (each is also an error).
	Panics int64 `json:"panics"`
	// Retries counts in-process retry attempts.
	Retries int64 `json:"retries"`
}

// Snapshot returns the current values.
func (c *Counters) Snapshot() Snapshot {
	return Snapshot{
		Received:    c.received.Load(),
		Redelivered: c.redelivered.Load(),
		InFlight:    c.inFlight.Load(),
		Published:   c.published.Load(),
		OK:          c.ok.Load(),
		Errors:      c.errs.Load(),
		Poisoned:    c.poisoned.Load(),
		RateLimited: c.rateLimited.Load(),
		Panics:      c.panics.Load(),
		Retries:     c.retries.Load(),
	}
}

// Add returns the sum of two snapshots.
func (s Snapshot) Add(o Snapshot) Snapshot {
	return Snapshot{
		Received:    s.Received + o.Received,
		Redelivered: s.Redelivered + o.Redelivered,
		InFlight:    s.InFlight + o.InFlight,
		Published:   s.Published + o.Published,
		OK:          s.OK + o.OK,
		Errors:      s.Errors + o.Errors,
		Poisoned:    s.Poisoned + o.Poisoned,
		RateLimited: s.RateLimited + o.RateLimited,
		Panics:      s.Panics + o.Panics,
		Retries:     s.Retries + o.Retries,
	}
}

// AddPublished counts n outputs the broker confirmed.
func (c *Counters) AddPublished(n int) { c.published.Add(int64(n)) }

// Count tallies the outcome of every call into c. Place it outermost.
func Count(c *Counters) message.HandlerMiddleware {
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			c.received.Add(1)
			if a := msg.Metadata.Get(schema.DeliveryAttemptKey); a != "" && a != "1" {
				c.redelivered.Add(1)
			}
			c.inFlight.Add(1)
			out, err := h(msg)
			c.inFlight.Add(-1)
			switch {
			case err == nil && msg.Metadata.Get(poisonMarker) != "":
				delete(msg.Metadata, poisonMarker)
				c.poisoned.Add(1)
			case err == nil:
				c.ok.Add(1)
			case IsTooManyRequests(err):
				c.rateLimited.Add(1)
			default:
				c.errs.Add(1)
			}
			var p *PanicError
			if errors.As(err, &p) {
				c.panics.Add(1)
			}
			return out, err
		}
	}
}
