// Package router is the broker-free core of a switchyard processor: it
// registers typed handlers between queues (Handle, HandleStream, Consume),
// runs them on any Backend with a per-handler delivery policy (max
// deliveries, error responses, poison queue, retry, rate limit), and stops
// them gracefully: no new messages, in-flight ones finish within the drain
// timeout, then are cancelled without losing or repeating anything.
//
// Handlers are pipelined where the backend allows (Config.MaxInFlight): a
// handler's outputs go to the broker without waiting, the handler takes its
// next input meanwhile, and each input is acked only once its outputs are
// confirmed, so a processor at concurrency 1 runs at the broker's pace
// rather than one round trip per message, without weakening at-least-once.
// A pipelined handler runs on workers of the router's own (as many as its
// concurrency) that read the backend subscription and call the watermill
// middleware chain directly; the others run on a watermill message.Router.
//
// It imports no broker client and no command-line library. Package backend
// builds a Backend from configuration (Pulsar, MQTT, RabbitMQ, Kafka or in
// memory), package processor turns handlers into a complete binary, and
// package flow runs one Router per TrustGraph flow.
//
// A router in a test, on the memory backend:
//
//	mem := backend.NewMemory(nil)
//	r, _ := router.New(router.Config{ID: "shout-llm"}, mem, nil)
//	_ = router.Handle(r, "shout", in, out, shout)
//	go r.Run(ctx)
package router
