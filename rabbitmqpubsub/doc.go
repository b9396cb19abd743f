// Package rabbitmqpubsub is a watermill Publisher and Subscriber for
// RabbitMQ (AMQP 0-9-1), built on github.com/rabbitmq/amqp091-go, and
// wire-compatible with the RabbitMQ backend of TrustGraph 2.11.1
// (trustgraph/base/async_rabbitmq_backend.py): a Go processor and a Python
// one can share exchanges and queues on one broker.
//
// # Topics
//
// A watermill topic is a switchyard queue name in any form schema.ParseTopic
// accepts, mapped by WireOf to topicspace = Tenant, class = Class() (flow
// when the namespace is none of TrustGraph's classes, so q1/x/y/z and
// q1/x/flow/z are one exchange) and topic = Queue:
//
//   - exchange "{topicspace}.{class}.{topic}", type fanout, durable, not
//     auto-deleted, no arguments, declared by publishers and subscribers
//     alike; e.g. request:tg:text-completion:default:default is exchange
//     tg.request.text-completion:default:default;
//   - flow and request (and classless) topics: the queue
//     "{exchange}.{SubscriptionName}", durable for flow and not for request,
//     not exclusive, not auto-deleted, no arguments, bound to the exchange;
//     everyone who uses the subscription name competes for its messages;
//   - response and notify topics: a server-named queue per Subscriber,
//     durable=false, exclusive=true, auto_delete=true, bound to the
//     exchange, so every client sees every message.
//
// The flags are exactly those TrustGraph declares, since RabbitMQ refuses a
// declaration whose flags differ from an existing one (406
// PRECONDITION_FAILED).
//
// # Messages
//
// Messages are published to the exchange with routing key "", content_type
// application/json and delivery_mode 2 (persistent) for flow topics of a
// persistent QoS (every flow:… name) and 1 otherwise. The payload is the
// body; every metadata entry is a header with a string value (TrustGraph
// reads `id` from them), and the message UUID travels as message_id
// (TrustGraph sets none: such a message gets a new UUID). Received headers
// become metadata, and schema.DeliveryAttemptKey ("switchyard-attempt") is set
// on every received message.
//
// # Publishing
//
// Channels are in confirm mode: Publish returns after the broker confirmed
// every message. A connection lost during Publish is waited for (up to
// PublishTimeout) and the unconfirmed messages are published again. Errors
// that retrying cannot fix (a message above the broker's max_message_size,
// access refused, a conflicting declaration, an invalid name) are
// *PermanentError.
//
// PublishAsync returns without waiting for the broker: a goroutine of the
// Publisher sends its messages, in the order of the calls, on a channel of
// their own, and calls each message's done when the broker's confirm
// (publish with deferred confirmation) arrives. A basic.nack fails the
// message; a lost channel or connection is waited for and what it left
// unconfirmed is sent again, in order and before anything later, until
// PublishTimeout after the call. When the broker closes the channel because
// of one message (too large, access refused) that message fails with a
// *PermanentError and the others are sent again. The pipeline holds at most
// a few thousand messages (sent and unconfirmed, or waiting to be sent);
// PublishAsync blocks while it is full. Close waits up to CloseTimeout for
// every confirm and fails the messages still unconfirmed then, so done is
// always called. Publishers do not set the mandatory flag, with Publish as
// with PublishAsync: a message no queue is bound to is confirmed and
// dropped by the broker, as TrustGraph's are.
//
// # Subscribing
//
// Each Subscribe call is a consumer on a channel of its own with prefetch
// SubscriberConfig.Prefetch (default 64; TrustGraph's Python consumer uses
// 1), raised to AckWindow when that is larger. Several calls on one
// Subscriber compete for the topic's queue, a response or notify queue
// included. The channel returned hands out the queue's messages in order,
// up to SubscriberConfig.AckWindow of them (default 1, one at a time) before
// the oldest is acked or nacked. Acks and nacks may come in any order; an ack
// is passed to the broker at once, by the message's delivery tag. When the
// Subscribe context ends or the Subscriber closes, the consumer's channel
// closes and the broker queues every message it handed out and did not get
// an ack for again.
//
// A nack differs from TrustGraph's, which nacks with requeue and so gets
// the message back at once, in a hot loop for a message that keeps failing.
// Here, after NackDelay (default 1s) a copy with schema.DeliveryAttemptKey
// raised by one is published to the same queue only (the default exchange
// with the queue's name as routing key, so the topic's other subscriptions
// do not receive it again), the broker's confirm is awaited, and then the
// original is acked. The copy queues behind the messages that arrived
// meanwhile, and the messages behind the nacked one keep flowing during the
// delay. Should the copy fail, the original is nacked with requeue. Nothing
// changes on the wire for a Python peer: the copy is an ordinary message
// with one more header.
//
// The delivery attempt of a message is the attempt header (1 when absent),
// plus the broker's count of earlier deliveries of that copy: the
// x-delivery-count header of quorum queues where present, else one when the
// redelivered flag is set (a consumer went away without acking it).
//
// # Connections
//
// A Publisher and a Subscriber each hold one connection. amqp091-go does
// not reconnect by itself; this package does, with backoff from 100ms to
// ReconnectMaxBackoff, and opens its channels and consumers again. Health
// reports the outage meanwhile. Response and notify queues are declared
// afresh after a reconnect (the old ones went away with the connection), so
// their messages published during the outage are lost, as with TrustGraph.
// Close never deletes a durable queue or its backlog.
package rabbitmqpubsub
