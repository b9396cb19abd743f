package rabbitmqpubsub

import (
	"errors"
	"strings"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/schema"
)

// PermanentError marks a publish error that trying again cannot fix: the
// message is larger than the broker's max_message_size, the user may not
// declare or write to the exchange, or the topic name is invalid.
// errors.As(err, &p) with p an interface{ Permanent() bool } finds it and
// p.Permanent() reports true, so the caller can give up on the message
// instead of retrying it forever.
type PermanentError struct {
	Err error
}

// Error implements error.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent reports true: retrying does not help.
func (e *PermanentError) Permanent() bool { return true }

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// permanentAMQP reports whether an error the broker raised cannot be fixed
// by trying again:
//   - 403 ACCESS_REFUSED: the user lacks the permission;
//   - 406 PRECONDITION_FAILED: a declaration that conflicts with an
//     existing one (another type or other flags), or a message larger than
//     max_message_size;
//   - 404 NOT_FOUND, 530 NOT_ALLOWED: the entity or vhost cannot be used;
//   - 402 INVALID_PATH, 502 SYNTAX_ERROR, 503 COMMAND_INVALID: a malformed request.
func permanentAMQP(err error) bool {
	var ae *amqp.Error
	if !errors.As(err, &ae) {
		return errors.Is(err, schema.ErrInvalidTopic)
	}
	switch ae.Code {
	case amqp.AccessRefused, amqp.PreconditionFailed, amqp.NotFound, amqp.NotAllowed,
		amqp.InvalidPath, amqp.SyntaxError, amqp.CommandInvalid:
		return true
	}
	return false
}

// tooLarge reports whether the broker refused a message for its size.
func tooLarge(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed &&
		strings.Contains(ae.Reason, "larger than configured max size")
}
