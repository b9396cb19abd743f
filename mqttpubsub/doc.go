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
// their messages until they come back. Processes that share a group on one broker must therefore each set a
// ClientID of their own (two connections with the same client id take over
// each other's session) and keep it across restarts; a process that never
// comes back leaves its messages in its session until the broker expires it.
// Mosquitto (2.0.11 at least) does not restore shared subscriptions from its
// persistence file: after a Mosquitto restart, messages published before a
// group's sessions reconnect are not kept for that group. Durable
// subscriptions do not have this gap.
//
// A Durable subscriber without a Group uses a persistent session of its own,
// {ClientID}:{tenant}:{namespace}:{queue}, subscribed to the topic itself: it
// sees every message of the topic, also the ones published while it is away.
// Only one process may use a ClientID at a time.
//
// Otherwise, and always for topics of the response and notify classes, a
// subscription is exclusive: it sees every message of the topic from the
// moment it subscribes, through a clean session with a unique client id that
// ends with it.
//
// # Acknowledgement
//
// Messages are acknowledged manually: the broker gets the PUBACK (QoS 1) or
// PUBREC (QoS 2) only when the handler acks the message. Each Subscribe
// channel emits the next message only after the previous one was acked or
// nacked; the messages of a session are handed out in the order the broker
// delivered them. A nacked message is not acked to the broker; the same
// channel delivers it again after NackDelay, before anything else, so a
// process that crashes in between gets it back from the broker. When a
// Subscribe context ends while its channel holds a message, the message goes
// back to the session's other subscriptions. Connections are re-established
// automatically and the subscription is renewed on every reconnect. A message
// the broker sends again after a reconnect replaces the copy still waiting in
// the session, and is acknowledged through the new connection, so it is
// handled once.
//
// The order holds as far as the broker keeps it: Mosquitto sends the messages
// it kept for an offline session in publish order, mochi-mqtt (the embedded
// broker) in an order of its own.
//
// Incoming messages wait in an ordered in-memory queue per session; paho's
// message callback never blocks. For QoS 1 and 2 the broker's in-flight window
// (Mosquitto: max_inflight_messages) bounds how many wait there; QoS 0
// messages beyond SubscriberConfig.MaxBufferedQoS0 are dropped, as QoS 0
// allows.
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
// publisher reconnects, Publish waits for the connection, at most
// PublishTimeout.
//
// # Logging
//
// paho logs nothing by default. RoutePahoLogs sends its log lines to a
// watermill logger with the secrets given to it (the password) replaced by
// "***".
package mqttpubsub
