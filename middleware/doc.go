// Package middleware turns plain typed functions into watermill handlers and
// supplies the delivery policy around them.
//
// A processor's business logic is a function of the form
//
//	func(ctx context.Context, req *Req) (*Resp, error)
//
// Handle wraps it into a message.HandlerFunc that decodes the input with the
// schema codec, calls the function, encodes the output and copies the input's
// `id` property onto it. Consume does the same for sinks, which return only an
// error.
//
// The policy middleware composes in this order, outermost first (Chain builds
// it from a Policy):
//
//		Count -> Poison -> Recover -> Backoff -> Retry -> Throttle -> handler
//
//	  - Count tallies every outcome (ok, error, poison, rate limited, panic).
//	  - Poison publishes a message whose input could not be decoded, or whose
//	    handler returned an error marked with Permanent, to a poison queue with
//	    the reason and the source queue in its metadata, then lets it be acked.
//	    It never loops. If the poison queue cannot be written, the input is
//	    nacked instead, so nothing is lost.
//	  - Recover turns a panic into an error, which the router nacks.
//	  - Backoff answers a TooManyRequests error by waiting before the nack, so
//	    the message is redelivered after the downstream service had time.
//	  - Retry retries a transient error in process with exponential backoff, up
//	    to a bound, before it lets the error through to be nacked.
//	  - Throttle takes a token from a per-handler token bucket before each call.
//
// The watermill router acks the input only after every output was published,
// and nacks it when the handler chain returns an error.
package middleware
