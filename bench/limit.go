package bench

// The limit loops: what a broker gives the pipeline on this machine when
// nothing but its own client library stands between the queues. Each is one
// consumer that decodes a request, does the work, hands the response to the
// client without waiting for the broker, and acks the request only when the
// broker confirmed the response, with at most runSpec.window requests
// unconfirmed. The per-broker loops are in limit_<broker>.go.

// slots bounds the inputs a limit loop holds unconfirmed: acquire before
// taking an input on, release once it is acked or nacked.
type slots chan struct{}

func newSlots(n int) slots { return make(slots, n) }

// acquire takes a slot, waiting while all are taken; it returns false when
// done closes first.
func (s slots) acquire(done <-chan struct{}) bool {
	select {
	case s <- struct{}{}:
		return true
	case <-done:
		return false
	}
}

// release gives a slot back.
func (s slots) release() { <-s }
