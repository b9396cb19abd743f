package middleware

import (
	"runtime/debug"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
)

// Recover turns a panic in the handler into a *PanicError, so the router nacks
// the message and the process carries on. The stack goes to logger.
func Recover(logger watermill.LoggerAdapter) message.HandlerMiddleware {
	if logger == nil {
		logger = watermill.NopLogger{}
	}
	return func(h message.HandlerFunc) message.HandlerFunc {
		return func(msg *message.Message) (out []*message.Message, err error) {
			defer func() {
				if v := recover(); v != nil {
					p := &PanicError{Value: v, Stack: debug.Stack()}
					logger.Error("Handler panicked", p, watermill.LogFields{
						"message_uuid": msg.UUID, "stack": string(p.Stack),
					})
					out, err = nil, p
				}
			}()
			return h(msg)
		}
	}
}
