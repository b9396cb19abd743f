package kafkapubsub

import (
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kerr"
)

// PermanentError is an error that retrying cannot fix: a message larger than
// the broker accepts, missing authorization, an invalid queue or topic name.
// Permanent reports true, so the middleware sends the message to the poison
// queue instead of retrying it.
type PermanentError struct {
	// Op says what failed, e.g. "publishing message 3 (uuid ...) to tg.flow.x".
	Op string
	// Err is the cause.
	Err error
}

// Error implements error.
func (e *PermanentError) Error() string { return "kafkapubsub: " + e.Op + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true: retrying does not help.
func (e *PermanentError) Permanent() bool { return true }

// permanentCauses are broker errors no retry fixes.
var permanentCauses = []error{
	kerr.MessageTooLarge,
	kerr.RecordListTooLarge,
	kerr.InvalidRecord,
	kerr.TopicAuthorizationFailed,
	kerr.ClusterAuthorizationFailed,
	kerr.GroupAuthorizationFailed,
	kerr.TransactionalIDAuthorizationFailed,
	kerr.SaslAuthenticationFailed,
	kerr.InvalidTopicException,
	kerr.UnsupportedSaslMechanism,
}

// isPermanent reports whether err cannot be fixed by retrying.
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	if errors.As(err, &p) && p.Permanent() {
		return true
	}
	for _, c := range permanentCauses {
		if errors.Is(err, c) {
			return true
		}
	}
	return false
}

// classify wraps err as a *PermanentError when retrying cannot fix it, else
// adds op as context.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", op, err)
	}
	if isPermanent(err) {
		return &PermanentError{Op: op, Err: err}
	}
	return fmt.Errorf("kafkapubsub: %s: %w", op, err)
}
