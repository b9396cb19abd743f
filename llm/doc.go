// Package llm holds what the LLM-backed processors share beside their
// model-server clients: the Prometheus metrics TrustGraph's text completion
// and embeddings services export, under the same names, labels and buckets,
// so TrustGraph's dashboards read a switchyard processor unchanged, and
// Failure, which maps a model server's errors onto the delivery policy.
//
// The clients themselves live in subpackages; llm/openai speaks the
// OpenAI-compatible HTTP API served by OpenAI, Ollama, vLLM and llama.cpp.
//
// A processor registers the metrics it exports through
// processor.Processor.Collectors:
//
//	m := llm.NewCompletionMetrics()
//	processor.Processor{..., Collectors: m.Collectors()}.Main()
package llm
