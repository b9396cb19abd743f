package middleware

import (
	"errors"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Metadata keys that Poison sets on a message it moves to the poison queue.
const (
	// PoisonReasonKey holds the error that made the message poison.
	PoisonReasonKey = "poison_reason"
	// PoisonSourceKey holds the queue the message was consumed from.
	PoisonSourceKey = "poison_source"
	// PoisonHandlerKey holds the name of the handler that rejected it.
	PoisonHandlerKey = "poison_handler"
)

// InputErrorKey is a metadata key an adapter sets on a message it received
// but could not unwrap (for example a malformed envelope). Such a message is
// poison before any handler sees it.
const InputErrorKey = "switchyard_input_error"

// poisonMarker tells Count that Poison handled the message.
const poisonMarker = "_switchyard_poisoned"

// PoisonConfig says where poison messages go.
type PoisonConfig struct {
	// Publisher writes to the poison queue.
	Publisher message.Publisher
	// Topic is the poison queue.
	Topic string
	// Source is the queue the handler consumes, recorded on each poison message.
	Source string
	// Handler is the handler's name, recorded on each poison message.
	Handler string
	// Logger reports each poisoned message; nil logs nothing.
	Logger watermill.LoggerAdapter
}

// Validate reports a missing publisher or topic.
func (c PoisonConfig) Validate() error {
	if c.Publisher == nil {
		return errors.New("poison: publisher is required")
	}
	if c.Topic == "" {
		return errors.New("poison: topic is required")
	}
	return nil
}

// Poison sends a message whose handling failed permanently (IsPermanent) or
// that arrived flagged with InputErrorKey to the poison queue, with the
// reason, source queue and handler in its metadata, and returns no error so
// the router acks it. If the poison queue cannot be written, it returns that
// error and the input is nacked: nothing is lost.
func Poison(cfg PoisonConfig) (message.HandlerMiddleware, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	logger := cfg.Logger
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) ([]*message.Message, error) {
			var reason error
			if inputErr := msg.Metadata.Get(InputErrorKey); inputErr != "" {
				reason = Permanent(errors.New(inputErr))
			} else {
				out, err := h(msg)
				if err == nil || !IsPermanent(err) {
					return out, err
				}
				reason = err
			}
			poisoned := msg.Copy()
			poisoned.Metadata.Set(PoisonReasonKey, reason.Error())
			poisoned.Metadata.Set(PoisonSourceKey, cfg.Source)
			poisoned.Metadata.Set(PoisonHandlerKey, cfg.Handler)
			if err := cfg.Publisher.Publish(cfg.Topic, poisoned); err != nil {
				return nil, fmt.Errorf("cannot publish to poison queue %s (input kept for redelivery): %w", cfg.Topic, err)
			}
			logger.Error("Message moved to poison queue", reason, watermill.LogFields{
				"message_uuid": msg.UUID, "poison_queue": cfg.Topic, "source": cfg.Source,
			})
			msg.Metadata.Set(poisonMarker, "1")
			return nil, nil
		}
	}, nil
}
