// Package middleware turns plain typed functions into watermill handlers and
// supplies the delivery policy around them.
//
// A processor's business logic is a function of the form
//
//	func(ctx context.Context, req *Req) (*Resp, error)
//
// Handle wraps it into a handler that decodes the input with the schema
// codec, calls the function, encodes the output, copies the input's `id`
// property onto it and publishes it; HandleStream does the same for
// functions that emit several outputs, and Consume for sinks, which return
// only an error.
//
// The policy composes in this order, outermost first (Chain builds it from a
// Policy): Deliver, Recover, Backoff, Retry, Throttle, then the handler.
//
//   - Deliver counts every outcome and decides how a failure ends: nacked for
//     redelivery, or given up (on a permanent error or the last of
//     MaxDeliveries) with an error response to the client and a copy in the
//     poison queue. If neither can be published the input is nacked, so
//     nothing is lost.
//   - Recover turns a panic into an error.
//   - Backoff answers a TooManyRequests error by waiting before the nack, so
//     the message is redelivered after the downstream service had time.
//   - Retry retries a transient error in process, when configured.
//   - Throttle takes a token from a per-handler token bucket before each call.
//
// Outputs are published synchronously unless the message's deliverer put a
// Settlement in its context and the publisher is an AsyncPublisher: then a
// response (or a stream's final output) is handed to the broker client
// without waiting, the chain returns at once, and the deliverer acks the
// input when Settlement.Settle says the outputs were confirmed. The router
// does this to pipeline a handler (router.Config.MaxInFlight).
package middleware
