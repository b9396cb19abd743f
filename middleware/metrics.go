package middleware

import (
	"sync/atomic"
)

// Counters tally the outcomes of one handler. They are safe for concurrent use.
type Counters struct {
	received       atomic.Int64
	redelivered    atomic.Int64
	inFlight       atomic.Int64
	published      atomic.Int64
	ok             atomic.Int64
	errs           atomic.Int64
	poisoned       atomic.Int64
	errorResponses atomic.Int64
	rateLimited    atomic.Int64
	panics         atomic.Int64
	retries        atomic.Int64
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
	// Errors counts failed deliveries: nacked for redelivery, answered with
	// an error response or moved to the poison queue (panics included).
	Errors int64 `json:"error"`
	// Poisoned counts inputs sent to the poison queue and acked.
	Poisoned int64 `json:"poison"`
	// ErrorResponses counts inputs answered with an error response.
	ErrorResponses int64 `json:"error_responses"`
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
		Received:       c.received.Load(),
		Redelivered:    c.redelivered.Load(),
		InFlight:       c.inFlight.Load(),
		Published:      c.published.Load(),
		OK:             c.ok.Load(),
		Errors:         c.errs.Load(),
		Poisoned:       c.poisoned.Load(),
		ErrorResponses: c.errorResponses.Load(),
		RateLimited:    c.rateLimited.Load(),
		Panics:         c.panics.Load(),
		Retries:        c.retries.Load(),
	}
}

// Add returns the sum of two snapshots.
func (s Snapshot) Add(o Snapshot) Snapshot {
	return Snapshot{
		Received:       s.Received + o.Received,
		Redelivered:    s.Redelivered + o.Redelivered,
		InFlight:       s.InFlight + o.InFlight,
		Published:      s.Published + o.Published,
		OK:             s.OK + o.OK,
		Errors:         s.Errors + o.Errors,
		Poisoned:       s.Poisoned + o.Poisoned,
		ErrorResponses: s.ErrorResponses + o.ErrorResponses,
		RateLimited:    s.RateLimited + o.RateLimited,
		Panics:         s.Panics + o.Panics,
		Retries:        s.Retries + o.Retries,
	}
}

// AddPublished counts n outputs the broker confirmed.
func (c *Counters) AddPublished(n int) { c.published.Add(int64(n)) }
