package router

import (
	"github.com/ThreeDotsLabs/watermill/message"
)

// InitialPosition says where a new subscription starts reading.
type InitialPosition string

const (
	// PositionLatest starts a new subscription at the next message published.
	PositionLatest InitialPosition = "latest"
	// PositionEarliest starts a new subscription at the oldest retained message.
	PositionEarliest InitialPosition = "earliest"
)

// SubscribeOptions say how a subscriber built by a Backend consumes.
type SubscribeOptions struct {
	// Subscription is the subscription (consumer group) name. Subscribers with
	// the same name share the messages of a topic; each message goes to one of them.
	Subscription string
	// InitialPosition applies when the subscription does not exist yet.
	InitialPosition InitialPosition
	// Exclusive asks for a subscription of this client alone, so that it sees
	// every message of the topic (used by tail, and by response and notify queues).
	Exclusive bool
	// AckWindow is how many messages one Subscribe call may hand out before
	// the oldest of them is acked or nacked; 0 or 1 means one at a time, as
	// watermill's Pub/Sub contract has it. The router asks for more when it
	// pipelines a handler (Config.MaxInFlight).
	AckWindow int
}

// Backend is a connected broker: one publisher for every output and
// subscribers made on demand. Package backend builds one from configuration;
// tests may supply their own.
type Backend interface {
	// Name returns the backend name, e.g. "pulsar".
	Name() string
	// Publisher returns the shared publisher. It is closed by Close.
	Publisher() message.Publisher
	// NewSubscriber returns a subscriber that consumes as opts say. Subscribe
	// may be called on it several times for the same topic: with a shared
	// subscription those calls compete for messages, which is how a processor
	// handles several messages at once. The caller closes it.
	NewSubscriber(opts SubscribeOptions) (message.Subscriber, error)
	// Close flushes and closes the publisher and releases the connection.
	Close() error
}

// HealthChecker is implemented by backends that can tell whether they are
// connected. Health returns nil while the backend is connected and every
// subscription it made is active, else an error saying what is wrong.
type HealthChecker interface {
	Health() error
}

// InFlightDefaulter is implemented by backends whose consumers fetch
// messages ahead by themselves. DefaultMaxInFlight is the Config.MaxInFlight
// a router on such a backend uses when none is set: a window as deep as
// what each consumer already holds, so that the window, not the consumer,
// is never what makes a pipelined handler wait.
type InFlightDefaulter interface {
	DefaultMaxInFlight() int
}

// ReadyReporter is implemented by subscribers that fetch messages ahead of
// their Subscribe channel. Ready reports whether the subscription whose
// channel is messages holds messages it can hand out at once, beyond those
// already in the channel; false when it does not know the channel.
//
// A pipelined handler whose channel ran empty sends the outputs its
// publisher holds back for batching (middleware.BatchFlusher). When the
// subscription says more messages are on their way, it waits for them
// instead, so that their outputs join the same batch rather than a flush
// sending part of it: on Pulsar that flush, taken for idleness while the
// subscription's goroutine had not yet been scheduled, cut the batches of a
// busy handler by a fifth.
type ReadyReporter interface {
	Ready(messages <-chan *message.Message) bool
}
