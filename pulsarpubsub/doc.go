// Package pulsarpubsub is a watermill Publisher and Subscriber for Apache
// Pulsar, built on github.com/apache/pulsar-client-go.
//
// # Topics
//
// A watermill topic is a switchyard queue name in any form schema.ParseTopic
// accepts, mapped by TopicName: q0/tenant/namespace/queue travels on
// non-persistent://tenant/namespace/queue (best effort), q1 and q2 on
// persistent://tenant/namespace/queue. The class form maps through its
// generic name (flow:tg:x is persistent://tg/flow/x, request:tg:x is
// non-persistent://tg/request/x), and persistent:// and non-persistent:// URIs
// pass through unchanged. A malformed name is an error that wraps
// schema.ErrInvalidTopic and quotes the name.
//
// # Messages
//
// The payload travels as it is, with no registered schema (Pulsar's BYTES
// schema), as Python TrustGraph processors expect. Every metadata entry is a
// message property and every property of a received message is a metadata
// entry. The message UUID travels in the property UUIDProperty
// ("_watermill_message_uuid") and comes back as the same UUID, unless
// PublisherConfig.OmitUUID leaves it out as TrustGraph's clients do. A
// message without it is named after its Pulsar message ID on a persistent
// topic ("ledger:entry:partition:batch index", the same on every delivery)
// and gets a new UUID on a non-persistent one. PublisherConfig.MessageKeyMetadata
// names a metadata key whose value becomes the Pulsar message key, which a
// key_shared subscription uses to keep the messages of one key in order.
//
// # Publishing
//
// Publish hands all its messages to the topic's producer at once and returns
// after the broker acknowledged every one of them; the error names each
// message (index and UUID) that failed. Producers are created on the first
// Publish to a topic and kept; Close flushes and closes them. Batching is on
// by default. Chunking (PublisherConfig.EnableChunking, which turns batching
// off) carries messages larger than the broker's maximum message size.
//
// PublishAsync hands one message to the topic's producer and returns
// without waiting for the broker: its done function is called once, with nil
// when the broker confirmed the message or with the error Publish would have
// returned for it. It blocks only while the producer's queue of unconfirmed
// messages is full (MaxPendingMessages), which is the backpressure. Messages
// given to PublishAsync for one topic are stored in the order of the calls.
// With batching on, the client library holds messages back for up to
// BatchingMaxPublishDelay to fill a batch; FlushBatches sends what the
// producers hold at once, without waiting, and costs nothing when there is
// nothing to send: a caller that pipelines calls it whenever it runs out of
// messages to publish. Close flushes, waits up to CloseTimeout for the
// confirmations, and calls the done function of every message still
// unconfirmed then with an error wrapping ErrPublisherClosed.
//
// An error that no retry fixes wraps *PermanentError, whose Permanent method
// reports true, so a caller can tell it with errors.As and an
// interface{ Permanent() bool }: an invalid queue name, a message over the
// broker's maximum message size (5 MiB by default) without chunking, a topic
// that does not exist and cannot be created (its tenant or namespace is
// missing), a terminated topic, or a client not authorized for the topic.
// Other errors (an unreachable broker, a send timeout) are worth retrying.
//
// # Subscribing
//
// SubscriberConfig.SubscriptionName is the consumer group. The subscription
// type is shared by default (the consumers of a subscription compete for its
// messages), or exclusive, failover or key_shared. A new subscription starts
// at the latest message unless InitialPosition is earliest. The channel
// returned by Subscribe holds back the next message until the previous one
// was acked or nacked. An ack is passed on to the broker. No ack timeout is
// set, so every message handed out is acked or nacked explicitly: when the
// subscribe context ends or the subscriber closes, the message waiting for
// its ack is nacked, and closing a consumer makes the broker deliver its
// unacknowledged messages to the other consumers.
//
// SubscriberConfig.AckWindow lets one Subscribe call hand out up to that
// many messages, in broker order, before the oldest of them is acked or
// nacked, so that a consumer can take the next message while earlier ones
// are still being confirmed (for example while their outputs are being
// published). Acks and nacks may then come in any order; each is passed on
// as it comes, and each message's context lives until its ack or nack. When
// the subscribe context ends or the subscriber closes, every message of the
// window not acked is nacked, as with the default window of 1.
//
// Every message handed out carries its delivery attempt in the metadata key
// schema.DeliveryAttemptKey ("switchyard-attempt"): "1" on the first
// delivery, one more on each redelivery. On a persistent topic it is the
// broker's redelivery count plus one (a value published in that key is
// overwritten); on a non-persistent topic it travels in that property (see
// below).
//
// # Nacks on persistent topics
//
// A nack makes the broker deliver the message again after
// NackRedeliveryDelay (default one second; the client library would wait a
// minute). With a DeadLetterPolicy a message delivered MaxDeliveries times
// goes to a dead-letter topic instead.
//
// # Nacks on non-persistent topics
//
// A non-persistent topic (q0, and TrustGraph's request, response and notify
// queues) keeps nothing: the broker forgets a message once dispatched and
// ignores nacks. The subscriber acks the original at once and, after
// NackRedeliveryDelay:
//   - with a shared or key_shared subscription (a request queue), publishes
//     a copy to the same topic: same payload, properties, key and UUID, the
//     attempt plus one in the property switchyard-attempt. The consumers of
//     the subscription compete for it, behind the messages that arrived
//     meanwhile. The copy reaches every subscription of the topic; a request
//     queue has one (the service's), so only it sees the message again.
//   - with an exclusive or failover subscription (a response or notify
//     queue, one subscription per client), hands the message out again in
//     process, with the attempt plus one, to a Subscribe call of the same
//     consumer. A copy published to the topic would be broadcast again to
//     every client, so none is.
//
// Delivery there stays best effort: a copy waiting for its delay is
// published at once when the subscriber closes, but one waiting in process
// is dropped when the last Subscribe call of its consumer ends, and both are
// lost if the process dies.
//
// # Batches and crashes
//
// Messages published together (by one Publish call, or by concurrent ones)
// may travel in one batch. The broker acknowledges a batch as a whole: a nack
// of one of its messages, or a consumer that dies, makes the broker deliver
// the whole batch again, the messages already acked included.
// SubscriberConfig.EnableBatchIndexAcknowledgment (with
// acknowledgmentAtBatchIndexLevelEnabled=true on the broker) acks messages of
// a batch one by one instead; it is off by default because, against Pulsar
// 4.0.8, it sometimes left messages undelivered after a consumer was killed
// (see its documentation). Acks are grouped for up to 100ms before they are
// sent (unless AckWithResponse), so a consumer killed with SIGKILL also gets
// again what it acked in its last 100ms.
// Delivery is at least once in any case; PublisherConfig.DisableBatching
// avoids the repeats of a batch.
//
// Closing never unsubscribes, which would delete the subscription and its
// backlog. SubscribeInitialize creates the subscription ahead of the first
// Subscribe, so that messages published in between are kept.
//
// # Connections
//
// ClientConfig holds the broker URL (pulsar:// or pulsar+ssl://), token
// authentication (a token or a token file), the advertised listener name, TLS
// trust settings with host name verification on by default, and timeouts.
// The client connects lazily; creating the first producer or consumer fails
// after about OperationTimeout when the broker cannot be reached or refuses
// the token. The token never appears in errors or logs. A publisher and
// subscribers can share one client (NewClient, PublisherConfig.Client,
// SubscriberConfig.Client). After a lost connection the client library
// reconnects producers and consumers on its own, with pauses up to
// ReconnectMaxBackoff; subscriptions survive a broker restart.
//
// ClientConfig.OnSlowConnect, when set, is called every
// SlowConnectInterval (5s) while creating a producer or consumer is pending,
// with the time waited and the operation timeout, so that a caller can log
// progress while the broker cannot be reached.
//
// Publisher.Health and Subscriber.Health return nil while every producer
// (consumer) is connected, and otherwise an error naming the broker, the
// topic, since when and why. The client library offers no connection state,
// so the package follows the producers' and consumers' connection losses and
// reconnections in the library's log lines (pulsar-client-go v0.19.0); on a
// client not made by this package (NewClient) Health cannot tell and
// returns nil.
//
// The client library's log lines go to the watermill logger given to the
// constructors, one level quieter than the library logs them.
package pulsarpubsub
