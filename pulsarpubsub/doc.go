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
// ("_watermill_message_uuid") and comes back as the same UUID; a message from
// a producer that did not set it gets a new UUID. PublisherConfig.MessageKeyMetadata
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
// # Subscribing
//
// SubscriberConfig.SubscriptionName is the consumer group. The subscription
// type is shared by default (the consumers of a subscription compete for its
// messages), or exclusive, failover or key_shared. A new subscription starts
// at the latest message unless InitialPosition is earliest. The channel
// returned by Subscribe holds back the next message until the previous one
// was acked or nacked. An ack is passed on to the broker; a nack makes the
// broker deliver the message again after NackRedeliveryDelay (default one
// second; the client library would wait a minute). With a DeadLetterPolicy a
// message delivered MaxDeliveries times goes to a dead-letter topic instead.
// No ack timeout is set, so every message handed out is acked or nacked
// explicitly: when the subscribe context ends or the subscriber closes, the
// message waiting for its ack is nacked, and closing a consumer makes the
// broker deliver its unacknowledged messages to the other consumers.
//
// Messages published together (by one Publish call, or by concurrent ones)
// may travel in one batch. The broker acknowledges a batch as a whole: a nack of
// one of its messages delivers the whole batch again, the messages already
// acked included, unless batch index acknowledgment is on in the broker and in
// SubscriberConfig.EnableBatchIndexAcknowledgment. Delivery is at least once
// in any case; PublisherConfig.DisableBatching avoids such repeats.
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
// The client library's log lines go to the watermill logger given to the
// constructors, one level quieter than the library logs them.
package pulsarpubsub
