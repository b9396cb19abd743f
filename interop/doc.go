// Package interop holds the live interoperability tests between switchyard
// processors and TrustGraph's own Python code on a real Pulsar broker.
//
// The Python side is peer.py, run with the interpreter that
// scripts/python-env.sh prints (trustgraph-base and pulsar-client at pinned
// versions). It talks to the broker only through TrustGraph's own Pulsar
// backend, producer, consumer and wire serialization, so the tests show that
// a Go processor and a Python TrustGraph processor understand each other
// byte for byte:
//
//   - TrustGraph's producer sends TextCompletionRequest messages, each with
//     an `id` property, to the Go example processor echo-llm; TrustGraph's
//     consumer decodes every reply and checks its fields and its `id`.
//   - Go publishes Triples through the router's Pulsar backend on a flow
//     queue; TrustGraph's consumer decodes them and compares them with the
//     values it expects.
//   - TrustGraph's TextCompletionClient, built as a flow processor builds it
//     (TextCompletionClientSpec.register) with its per-message timeout,
//     talks to the Go example processor stream-llm on request:tg:<name> and
//     response:tg:<name> (non-persistent topics): a 5000-chunk stream
//     arrives complete and in order, its first chunk within 50ms of its
//     emission; a failed request is raised as RuntimeError(message) from
//     the Error response, whether the handler chose the error type or the
//     deliveries ran out; and a stream that fails midway gives the client
//     its chunks and then the RuntimeError, well before any timeout.
//
// Response queues are non-persistent: Pulsar drops what a consumer has no
// room for and never slows the producer. TrustGraph's client has room for
// 1000 messages, so the long stream is paced (see streamInterval) to stay
// within what the client takes in on a loaded machine.
//
// TestFlowsFromPythonConfigService runs the Go text-completion processor on
// the flows a configuration service built from trustgraph-base assigns to
// it, answers TrustGraph's own TextCompletionClient, follows flows being
// added and removed without a restart, and shares its subscription with a
// Python LlmService of the same id (a canary).
//
// The tests need SWITCHYARD_PULSAR_URL (set by `make test`, or by
// `eval "$(scripts/pulsar.sh env)"` after `scripts/pulsar.sh start`); without
// it they are skipped, and under `make test` they fail.
package interop
