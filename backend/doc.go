// Package backend connects a switchyard processor to its broker. New builds a
// router.Backend from a Config that names the backend (pulsar, mqtt or
// memory) and carries each backend's settings; Flags binds those settings to
// command-line flags and environment variables (--pubsub-backend,
// PUBSUB_BACKEND, --pulsar-host, ...). The settings reuse the adapters' own
// configuration types and defaults (pulsarpubsub.ClientConfig,
// mqttpubsub.ConnectionConfig), so a default is defined once, in its adapter.
//
// Backends map queue classes the same way: response and notify queues are
// consumed through a subscription of each client's own, every other queue
// through the shared subscription of the processor id. See the README's
// queue table.
package backend
