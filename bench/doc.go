// Package bench measures switchyard against the work done without it: a
// pipeline throughput benchmark (requests in on one queue, a processor that
// decodes each TextCompletionRequest, builds the response and publishes it
// to a second queue, a counter on that queue), a sequential request/response
// round trip, and the footprint of a processor binary (exec-to-ready time
// and resident memory).
//
// Each measurement compares processor variants on the same broker with the
// same messages, load generator and counter: the broker's limit for the
// pipeline (one consumer on the broker's client library, asynchronous sends,
// each input acked when the broker confirmed its response, a bounded window
// of unconfirmed inputs; limit_*.go), a synchronous loop that waits for every
// send (raw-sync: pulsar-client-go or paho; on the memory backend, RabbitMQ
// and Kafka a loop on switchyard's adapter; no router), the same work as a
// typed handler on switchyard's router with its default middleware at router
// concurrency 1 and 8, and on Pulsar a Python processor built on
// trustgraph-base's own consumer and producer code (tg_processor.py), with
// pulsar-perf's produce and consume figures beside them. Run runs a
// benchmark and returns Results, which print as a table and save as JSON;
// `switchyard bench` is its command line and scripts/bench.sh (make bench)
// the full run. README.md in this directory explains how to read and
// reproduce the numbers.
package bench
