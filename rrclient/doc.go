// Package rrclient is a typed request/response client for services that
// answer on a response queue, on any backend: the Go counterpart of
// TrustGraph's RequestResponseClient.
//
// A Client sends requests of type Req to Config.Request and reads responses
// of type Resp from Config.Response:
//
//	req, _ := schema.ParseTopic("request:tg:text-completion")
//	resp, _ := schema.ParseTopic("response:tg:text-completion")
//	c, err := rrclient.New[schema.TextCompletionRequest, schema.TextCompletionResponse](ctx, b,
//		rrclient.Config{Request: req, Response: resp})
//	if err != nil { ... }
//	defer c.Close()
//	answer, err := c.Request(ctx, &schema.TextCompletionRequest{Prompt: "hello"})
//
// # Correlation
//
// Each request carries a new UUID (version 4) in the message property `id`
// (schema.IDProperty); a service echoes it on every response. The response
// queue is shared by every client of the service (TrustGraph's gateway,
// prompt and metering processors read the same one), so each client reads
// it through an exclusive subscription of its own, named
// "{SubscriptionPrefix}-{12 hex digits}" like TrustGraph's "rr-…" (a
// backend may append a suffix of its own to an exclusive subscription's
// name: Pulsar does), and keeps the responses whose id it is waiting for.
// The subscription is made inside New, before any request is sent, so no
// response to a request of this client can arrive before it exists: the
// memory, Pulsar and MQTT subscribers are in place when Subscribe returns,
// and for a subscriber that reports its health (a Health() error method)
// New also waits, up to Config.Timeout, until it reports none. It
// starts at the latest message and is non-durable where the backend makes
// exclusive subscriptions non-durable (Pulsar): nothing is left on the
// broker when the client is gone, and Close never unsubscribes.
//
// One goroutine receives the responses. It acks every one of them, also the
// ones nobody waits for (an unknown id, no id, a duplicate, or the rest of a
// stream whose caller stopped or timed out): those are dropped and counted
// in Stats().Orphans. It never waits for a caller, so a slow caller cannot
// hold up the responses of another.
//
// # Single responses and streams
//
// Request is for single-shot services: it returns the first response with
// its id, whatever that response's final flag says; any later response with
// the same id is an orphan. Stream is for streaming services: it yields
// every response in order and ends after the response whose final flag
// (schema.IsFinal: end_of_stream, end_of_dialog, end_of_session, is_final
// or eos, whichever the type has) is true. A response type without a final
// flag never ends a stream by itself: the caller stops the loop.
//
// A response whose `error` field (JSON name "error", type *schema.Error;
// see ErrorOf) is set is a failure, as TrustGraph's clients raise on it:
// Request returns, and Stream yields and then ends with, an error that
// errors.As finds as a *ResponseError with the service's type and message.
// A response that cannot be decoded is a failure too.
//
// # Timeouts
//
// Config.Timeout (default 60 s, TrustGraph's client default) bounds the wait
// for each response, not the whole exchange: a stream may run for as long as
// its responses keep coming, each within Timeout of the previous one (or of
// the request). When it passes the call fails with an error matching both
// ErrTimeout and context.DeadlineExceeded. The caller's context bounds the
// wait too.
//
// # Stream buffering
//
// Each stream has a buffer of Config.StreamBuffer responses (default 1024)
// between the receiving goroutine and the caller's loop. A caller that
// falls so far behind that its buffer is full does not slow down anything
// else: its stream fails instead. The caller still gets every response that
// was buffered, in order, then ErrOverflow; the responses that did not fit
// and the rest of that stream are dropped and counted as orphans.
package rrclient
