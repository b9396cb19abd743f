package pulsarpubsub

import (
	"errors"
	"strings"

	"github.com/apache/pulsar-client-go/pulsar"
)

// PermanentError marks a publish error that trying again cannot fix: the
// message is larger than the broker accepts, the client is not authorized to
// write the topic, or the topic does not exist and cannot be created (its
// tenant or namespace is missing, the name is invalid, the topic was
// terminated). Publish returns errors that wrap it, so that
// errors.As(err, &p) with p an interface{ Permanent() bool } finds it and a
// caller poisons the message instead of retrying forever.
type PermanentError struct {
	// Err is the error of the client library or the broker.
	Err error
}

// Error returns the message of the wrapped error.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true: retrying does not help.
func (e *PermanentError) Permanent() bool { return true }

// permanentServerErrors are the names of broker errors (the ServerError enum
// of the Pulsar protocol, which the client library passes on as text) that
// no retry fixes.
var permanentServerErrors = []string{
	"AuthorizationError",
	"TopicNotFound",
	"InvalidTopicName",
	"TopicTerminatedError",
	"NotAllowedError",
	"IncompatibleSchema",
}

// markPermanent wraps err in a PermanentError when retrying cannot fix it,
// and returns it unchanged otherwise.
func markPermanent(err error) error {
	if err == nil || isPermanent(err) {
		return err
	}
	var perr *pulsar.Error
	if errors.As(err, &perr) {
		switch perr.Result() {
		case pulsar.MessageTooBig, pulsar.InvalidMessage, pulsar.TopicNotFound,
			pulsar.TopicTerminated, pulsar.InvalidTopicName, pulsar.AuthorizationError:
			return &PermanentError{Err: err}
		}
	}
	text := err.Error()
	for _, name := range permanentServerErrors {
		if strings.Contains(text, name) {
			return &PermanentError{Err: err}
		}
	}
	return err
}

// isPermanent reports whether err carries a Permanent() == true mark.
func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}
