package mqttpubsub

import (
	"fmt"
	"time"
)

// PermanentError is a publish error that publishing again cannot fix: an
// invalid topic name, or a message larger than the broker accepts. It
// satisfies interface{ Permanent() bool }, which the delivery middleware
// checks to move the input to the poison queue instead of retrying. Publish
// returns it inside a *PublishError; errors.As finds it there.
//
// MQTT 3.1.1 gives no reason when a broker refuses a publish (Mosquitto
// acknowledges and drops a message the client may not publish), so "not
// authorised" cannot be told apart from success on this protocol.
type PermanentError struct {
	Err error
}

// Error implements error.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true: retrying does not help.
func (e *PermanentError) Permanent() bool { return true }

// linkState records when a connection went down and why, for Health.
type linkState struct {
	up    bool
	since time.Time
	err   error
}

// describe says what is wrong with a link that is down; "" when it is up.
func (l linkState) describe(broker string) string {
	if l.up {
		return ""
	}
	if l.since.IsZero() {
		return fmt.Sprintf("not connected to %s", broker)
	}
	if l.err == nil {
		return fmt.Sprintf("disconnected from %s since %s", broker, l.since.Format(time.TimeOnly))
	}
	return fmt.Sprintf("disconnected from %s since %s: %s", broker, l.since.Format(time.TimeOnly), oneLine(l.err.Error()))
}
