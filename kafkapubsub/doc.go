// Package kafkapubsub is a watermill Publisher and Subscriber for Apache
// Kafka, built on github.com/twmb/franz-go, wire-compatible with the Kafka
// backend of TrustGraph 2.11.1 (trustgraph/base/async_kafka_backend.py).
//
// # Topics
//
// A watermill topic is a switchyard queue name in any form schema.ParseTopic
// accepts. It maps to the Kafka topic "{tenant}.{namespace}.{queue}" with
// every ':' replaced by '.' (TopicName). For TrustGraph's classes that is
// its "{topicspace}.{class}.{topic}": request:tg:text-completion:default:default
// is tg.request.text-completion.default.default, flow:tg:x (q1/tg/flow/x) is
// tg.flow.x. A queue in another namespace keeps its namespace in the name
// and is treated like flow when its QoS is persistent (q1, q2), like the
// other classes when it is q0. A name that Kafka cannot carry (longer than
// 249 characters, or with '=') is a *PermanentError.
//
// Topics are created the way TrustGraph creates them, on the first Publish,
// SubscribeInitialize or Subscribe of the process: 1 partition, replication
// factor 1, retention.ms 7 days for flow topics (FlowRetention) and 5
// minutes for the others (ShortRetention). A topic that exists already is
// left as it is.
//
// # Messages
//
// The payload travels as the record value. Every metadata entry is a record
// header with a UTF-8 value, `id` among them, as TrustGraph writes and reads
// its properties. The watermill UUID travels in the header UUIDHeader and
// comes back as the same UUID; a record from a producer that did not set it
// (TrustGraph) gets a new one. Python consumers see UUIDHeader as one more
// property and ignore it.
//
// # Publishing
//
// Publish creates the topic if needed, sends all its messages and returns
// after the broker confirmed every one of them; the error names each message
// (index and UUID) that failed. Producers use acks=all (idempotent) for flow
// topics and leader acks for the others, as TrustGraph's, with records up to
// MaxMessageBytes (10 MiB). Errors that retrying cannot fix (a message too
// large, authorization or authentication failures, an invalid topic)
// satisfy errors.As with *PermanentError, whose Permanent method reports
// true.
//
// PublishAsync hands a record to the producer and returns; its done is
// called from the producer's promise with the same error Publish would give
// for the message. The producers do not linger (ProducerLinger 0), so no
// record waits for a batch to fill and there is no FlushBatches; records
// that pile up while a request is in flight go out together in the next.
// Order per topic is kept (one partition; idempotent producers, or one
// request in flight for the others). The producer buffers at most
// franz-go's default MaxBufferedRecords; PublishAsync blocks beyond that.
// Close flushes, waiting up to RequestTimeout per producer, then closes the
// producers, which fails the records still unconfirmed: done is always
// called.
//
// # Subscribing
//
// Consumer groups follow TrustGraph:
//   - flow, request and other queues: the group is SubscriptionName, shared by
//     every consumer of that name; a new group starts at the latest message
//     unless InitialOffset is OffsetEarliest.
//   - response and notify queues: the group is "{SubscriptionName}-{uuid}",
//     one per Subscriber and topic, starting at the earliest retained
//     message, so every client sees every message, the ones published in the
//     5 minutes before it subscribed included. The adapter delivers them all;
//     a request/response client filters them by `id` (TrustGraph's clients
//     drop the ones with an unknown id), as it must on this topic anyway,
//     since every client of a flow shares it.
//
// SubscribeInitialize (and every Subscribe) creates the topic and, for a
// group starting at the latest message that has no committed offsets yet,
// commits the topic's current end, so that messages published between
// SubscribeInitialize and the group's first join are not skipped.
//
// Several Subscribe calls on one Subscriber for one topic share one group
// member and compete for its messages: each record goes to one of the
// channels. Each channel hands out up to SubscriberConfig.AckWindow messages
// (default 1: the next waits until the previous one was acked or nacked);
// with a larger window acks and nacks may come in any order. When a
// Subscribe context ends, the messages it handed out and that were not acked
// go to the topic's other Subscribe calls, or, after the last one, are not
// committed and come again when the group resumes; so do those of a closing
// Subscriber.
//
// Nothing is committed automatically. An ack marks the record; per partition
// the adapter commits the offset below which every delivered record was
// acked, so a record acked out of order is committed only when all the
// records before it are. After a crash the group resumes at that offset: no
// acked-or-not record is lost; records acked above the first unacked one
// come again (at-least-once, duplicates counted by the caller). Commits run
// in the background, one at a time, batching the acks that arrive meanwhile;
// closing the Subscriber, the end of the last Subscribe on a topic and the
// loss of a partition in a rebalance commit synchronously. Closing leaves the
// group and never deletes it, its offsets or the topic.
//
// # Nack
//
// TrustGraph's Python backend treats a nack as a no-op: the record is skipped
// as soon as a later one is committed. This adapter instead, after
// SubscriberConfig.NackDelay, publishes a copy of the nacked record (same
// value, same headers) to the same topic with the header
// schema.DeliveryAttemptKey ("switchyard-attempt") set to the attempt plus
// one and RedeliverToHeader ("switchyard-redeliver-to") set to the group,
// waits for the broker's confirmation, and only then marks the original
// acked, so the commit may move past it. The queue is not held back
// meanwhile, and a crash before the copy is confirmed leaves the original
// uncommitted. A received message carries schema.DeliveryAttemptKey: the
// header's value, or 1 when it is absent.
//
// Kafka has no per-group delivery, so the copy reaches every group on the
// topic. Subscribers of this package in other groups see RedeliverToHeader,
// commit the copy and skip it. TrustGraph's Python consumers do not know the
// header: a Python processor in another group on the same topic handles the
// copy as a new message, so a message that a Go consumer nacked is processed
// once more by each Python group on that topic. On flow and request queues
// that is the at-least-once duplicate that such groups already tolerate (the
// original was delivered to them once, the copy once more), and it happens
// only for nacked messages. On a response topic a Python request/response
// client resolves a single answer once and drops the copy as an unknown id,
// but a streaming client would see the nacked chunk twice; a Go client
// nacks responses only on a failure of its own, so this is rare. Publishing
// the copy elsewhere (a per-group retry topic) would avoid it, but would add
// topics TrustGraph does not know; the adapter keeps to the shared topic.
//
// # Connections and health
//
// Config carries what TrustGraph's --kafka-* flags carry (bootstrap servers,
// security protocol PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, SASL
// mechanism PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, user and password) plus a
// password file, TLS CA, client certificate and key, and timeouts. The
// password never appears in errors or logs. The client connects lazily and
// reconnects by itself. Health reports, per broker, whether the latest
// connection attempt (or read) succeeded, and for a Subscriber whether each
// subscription's group membership and fetches work.
//
// The client library's log lines go to the watermill logger, one level
// quieter than the library logs them.
package kafkapubsub
