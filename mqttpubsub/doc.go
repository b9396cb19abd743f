// Package mqttpubsub is a watermill Publisher and Subscriber for MQTT 3.1.1
// brokers (Mosquitto, the embedded broker in mqttpubsub/embedded, and others),
// built on github.com/eclipse/paho.mqtt.golang.
//
// # Topics
//
// A watermill topic is a switchyard queue name in any form schema.ParseTopic
// accepts. The generic name q1/tg/flow/text-completion-request travels on the
// MQTT topic tg/flow/text-completion-request with MQTT QoS 1; q0 and q2 give
// QoS 0 and 2. The class form (flow:tg:x is q1/tg/flow/x, request:tg:x is
// q0/tg/request/x) and Pulsar URIs are accepted too. A name that is not a
// valid queue name, or that maps to an MQTT topic that is not a valid MQTT
// topic name (wildcards, NUL, empty levels, a leading '$'), is rejected with
// an error that wraps schema.ErrInvalidTopic.
//
// # Payload
//
// MQTT 3.1.1 has no message headers, so by default (PayloadEnvelope) every
// message travels as a small JSON object that carries its UUID and metadata:
//
//	{"switchyard":1,"uuid":"…","metadata":{"id":"…"},"payload":{…}}
//
// "switchyard" is the format version and marks the object as an envelope.
// "metadata" is omitted when empty. The payload is written as it is when it is
// valid JSON that neither starts nor ends with white space, so a JSON payload
// stays readable and comes back byte for byte. Any other payload is written
// as a JSON string with "encoding" saying how to read it back: "text" for
// UTF-8 text (for example JSON with NaN or Infinity tokens), "base64" for
// other bytes (standard encoding with padding):
//
//	{"switchyard":1,"uuid":"…","encoding":"base64","payload":"AAEC"}
//
// A received payload that is not such an envelope is not dropped: it is
// delivered as a message with a new UUID, the received bytes as payload and
// the decoding error in the metadata key EnvelopeErrorKey
// ("switchyard_input_error"), so the router's poison handling moves it to the
// poison queue.
//
// PayloadRaw publishes the payload alone, for plain MQTT devices and tools.
// The UUID and the metadata (the "id" property included) are lost on the
// way; a received raw message gets a new UUID each time the broker delivers
// it, and no metadata.
//
// # Subscriptions and sessions
//
// A Subscriber with a Group consumes through MQTT shared subscriptions,
// $share/{Group}/{topic}: the subscribers of one group share the messages of
// a topic, each message going to one of them, and different groups each get
// every message. In one process, all subscriptions of a group to a topic
// (every Subscribe call, of every Subscriber) share one connection and one
// persistent session (CleanSession false) with a stable client id,
// [{ClientID}:]{Group}:{tenant}:{namespace}:{queue}, and take the messages
// it receives in turn, so that several Subscribe calls handle several
// messages at once. Because the session is persistent, messages published
// while no subscription is connected are kept by the broker and arrive when
// one comes back, and a message that was not acknowledged before a crash or
// a lost connection is delivered again. SubscribeInitialize creates the
// session (connect, subscribe, disconnect) so that messages published before
// the first Subscribe are kept. Closing and a cancelled Subscribe context
// disconnect but never unsubscribe, which would discard the session's
// messages.
//
// The broker hands each shared message to one session of the group (Mosquitto
// in turn, mochi-mqtt at random), also to sessions that are offline: they keep
// their messages until they come back. Processes that share a group on one
// broker must therefore each set a ClientID of their own (two connections
// with the same client id take over each other's session) and keep it
// across restarts; a process that never comes back leaves its messages in
// its session until the broker expires it.
//
// A Durable subscriber without a Group uses a persistent session of its own,
// {ClientID}:{tenant}:{namespace}:{queue}, subscribed to the topic itself: it
// sees every message of the topic, also the ones published while it is away.
// Only one process may use a ClientID at a time.
//
// Otherwise, and always for topics of the response and notify classes, a
// subscription is exclusive: it sees every message of the topic from the
// moment it subscribes, through a clean session with a unique client id that
// ends with it. The Subscribe calls of one Subscriber for one exclusive topic
// share that session and compete for its messages, so each message is
// handled once by the Subscriber whatever the number of calls (the router's
// --concurrency); different Subscribers each see every message.
//
// # Broker restarts
//
// Connections are re-established automatically; a subscription retries at
// least every 250 ms and renews its subscription on every reconnect, retrying
// with growing pauses (up to MaxReconnectInterval) until the broker accepts
// it. Meanwhile Subscriber.Health reports the subscription as not renewed,
// with the broker's answer; one line is logged when renewing first fails
// and one when it succeeds.
//
// Mosquitto (2.0.11 at least) keeps persistent sessions and their messages
// across a restart but not their shared subscriptions, and acknowledges and
// drops what is published to a topic before a group has subscribed again.
// To close that gap a Publisher waits PublisherConfig.ReconnectGrace (1 s)
// after reconnecting before it publishes again, while subscriptions are back
// within about a quarter second of the broker. Measured on one machine,
// 10,000 messages streamed by 20 goroutines to a group while Mosquitto
// restarted twice: 0 lost in each of 10 runs; without the grace, 22 lost in
// 1 of 4 runs. The window remains for a subscription that needs longer than
// the grace to renew after the broker is back (a process that is starved,
// or still waiting out a longer reconnection pause). Durable subscriptions
// do not have this gap.
//
// # Acknowledgement and redelivery
//
// Messages are acknowledged manually: the broker gets the PUBACK (QoS 1) or
// PUBREC (QoS 2) only when the handler acks the message. By default each
// Subscribe channel emits the next message only after the previous one was
// acked or nacked; with SubscriberConfig.AckWindow above 1 it emits the next
// one while fewer than AckWindow of the messages it emitted wait for their
// ack or nack, and passes each ack and nack to the broker as it comes, in
// whatever order they come. The messages of a session are handed out in the
// order the broker delivered them. When a Subscribe context ends, or the
// subscriber closes, while messages its channel emitted are neither acked
// nor nacked, they go back to the session's other subscriptions, or, when
// the session closes, stay unacknowledged on the broker, which delivers
// them again. A
// message the broker sends again after a reconnect replaces the copy still
// waiting in the session, and is acknowledged through the new connection, so
// it is handled once.
//
// Every message carries its delivery attempt in the metadata key
// schema.DeliveryAttemptKey ("switchyard-attempt"): "1" on first delivery,
// "2" when the broker marks it as sent before (DUP: the message was
// delivered before a lost connection or a crash, and may have been handled),
// and one more on every redelivery after a nack. A value of that key in a
// published message's metadata is ignored.
//
// A nack does not hold up the queue: the Subscribe channel moves on to the
// next message at once, and the nacked message comes back after NackDelay
// behind the messages that arrived meanwhile. For QoS 1 and 2 envelopes
// the subscriber publishes a copy to the topic (same UUID, payload and
// metadata, the attempt increased) through a connection of its own, and
// acknowledges the original once the broker confirmed the copy; if the
// process stops before that, the broker delivers the original again. A copy
// names the subscription it is for in the envelope key "for" (the shared
// filter $share/{group}/{topic}, or the client id of a durable or exclusive
// session); every other subscription of the topic that reads envelopes
// acknowledges and drops it, so other groups and exclusive subscribers see
// the message once. Plain MQTT clients and raw-mode subscribers on the
// topic do see the copies. QoS 0 messages, raw payloads (PayloadRaw) and
// payloads that are not envelopes are redelivered in the process instead,
// at the end of the session's queue: their attempt count is lost when the
// process stops, and, because such a QoS 1 message stays unacknowledged
// while it waits, messages that keep failing fill the window (below) and
// then hold up the subscription.
//
// The order holds as far as the broker keeps it and no message is nacked:
// Mosquitto sends the messages it kept for an offline session in publish
// order, mochi-mqtt (the embedded broker) in an order of its own.
//
// # Flow control
//
// At most SubscriberConfig.MaxUnacked (256) QoS 1 and 2 messages of one
// subscription wait in the process, handled or not yet handled, nacked ones
// waiting for redelivery included. When that many are waiting, the
// subscription stops reading from its connection until one is
// acknowledged: the broker's writes back up in TCP. Mosquitto's
// max_inflight_messages does not bound this by itself: once a client
// acknowledges, Mosquitto 2.0.11 sends well past it (over 40,000
// unacknowledged messages with the limit at 1,000). Measured: a backlog of
// 150,000 messages of about 450 bytes consumed by one subscriber peaked at
// 5 MB of heap and 18 MB RSS, against 108 MB of heap without the window.
//
// The messages that Subscribe calls hold under their AckWindow are part of
// MaxUnacked: all the Subscribe calls of a subscription share it. A window
// above MaxUnacked (or windows that add up to more) just waits: once
// MaxUnacked QoS 1 and 2 messages are out, the next one comes when one of
// them is acknowledged.
//
// While the subscription does not read, paho reads nothing else from the
// connection either, its keep-alive answers included; acknowledgements of
// handled messages still go out. If no message at all is acknowledged for
// KeepAlive (30 s) plus the ping timeout (ConnectTimeout), paho takes the
// connection for dead and reconnects, and the broker sends the
// unacknowledged messages again (handled once, see above): handlers that
// take longer than that need a longer KeepAlive. QoS 0 messages beyond
// SubscriberConfig.MaxBufferedQoS0 are dropped, as QoS 0 allows.
//
// # Publishing
//
// Publish sends all its messages before it waits for the broker's
// acknowledgements (at most PublisherConfig.MaxInFlight of them outstanding)
// and reports the first one that failed as a *PublishError with its index and
// UUID. A message counts as published when the broker acknowledged it (QoS 1
// and 2) or it was written to the connection (QoS 0). When the connection is
// lost before the broker acknowledged a message, that message is reported as
// failed even if the broker got it, so a retry may duplicate it. While the
// publisher reconnects, and for ReconnectGrace after, Publish waits for the
// connection, at most PublishTimeout. Publisher.Health reports a lost
// connection with the time and the reason.
//
// PublishAsync sends one message without waiting for the broker, and
// reports its outcome through a callback, with the same errors and the same
// meaning of "published" as Publish. At most MaxInFlight of its messages
// wait for their acknowledgement; it blocks while that many do. One
// goroutine of the publisher waits for their acknowledgements in the order
// they were sent, each at most PublishTimeout from its sending, and calls
// the callbacks. Close waits until every callback was called.
//
// An invalid topic, and a message whose packet is larger than
// PublisherConfig.MaxPacketSize (set it to the broker's limit), fail with a
// *PermanentError (Permanent() reports true), which retrying cannot fix.
// MQTT 3.1.1 has no way to refuse a single publish: Mosquitto acknowledges
// and drops a message the client may not publish, and drops the connection
// of a client that sends a packet over its limit.
//
// # Logging
//
// paho logs nothing by default. RoutePahoLogs sends its log lines to a
// watermill logger with the secrets given to it (the password) replaced by
// "***".
package mqttpubsub
