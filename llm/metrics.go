package llm

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// CompletionBuckets returns TrustGraph's histogram buckets for LLM calls,
// in seconds: 0.25, 0.5, each second from 1 to 25, then 30 to 50 by 5, 60,
// 80, 100 and 120.
func CompletionBuckets() []float64 {
	b := []float64{0.25, 0.5}
	for s := 1; s <= 25; s++ {
		b = append(b, float64(s))
	}
	return append(b, 30, 35, 40, 45, 50, 60, 80, 100, 120)
}

// EmbeddingsBatchBuckets returns TrustGraph's buckets for the texts per
// embeddings request.
func EmbeddingsBatchBuckets() []float64 { return []float64{1, 5, 10, 25, 50, 100, 250, 500, 1000} }

// PythonDefaultBuckets returns prometheus_client's default buckets
// (TrustGraph's "standard buckets"), which differ from prometheus.DefBuckets.
func PythonDefaultBuckets() []float64 {
	return []float64{0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10}
}

// CompletionMetrics are a text completion service's metrics, as TrustGraph
// names them:
//
//   - tg_text_completion_duration_seconds{processor}: histogram of the
//     model calls, CompletionBuckets;
//   - tg_text_completion_model_info{processor, model, temperature}: 1 for
//     the model and temperature the processor last used.
//
// It is a prometheus.Collector; register it once.
type CompletionMetrics struct {
	duration *prometheus.HistogramVec
	model    *prometheus.GaugeVec

	mu   sync.Mutex
	last map[string][2]string // processor: model, temperature
}

// NewCompletionMetrics returns the metrics, not yet registered.
func NewCompletionMetrics() *CompletionMetrics {
	return &CompletionMetrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tg_text_completion_duration_seconds",
			Help:    "Text completion duration (seconds)",
			Buckets: CompletionBuckets(),
		}, []string{"processor"}),
		model: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tg_text_completion_model_info",
			Help: "Text completion model",
		}, []string{"processor", "model", "temperature"}),
		last: map[string][2]string{},
	}
}

// Collectors returns the metrics for processor.Processor.Collectors.
func (m *CompletionMetrics) Collectors() []prometheus.Collector { return []prometheus.Collector{m} }

// Describe implements prometheus.Collector.
func (m *CompletionMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.duration.Describe(ch)
	m.model.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *CompletionMetrics) Collect(ch chan<- prometheus.Metric) {
	m.duration.Collect(ch)
	m.model.Collect(ch)
}

// ObserveDuration records one model call of processor.
func (m *CompletionMetrics) ObserveDuration(processor string, d time.Duration) {
	m.duration.WithLabelValues(processor).Observe(d.Seconds())
}

// SetModel records the model and temperature processor used; the previous
// pair's series is removed, as TrustGraph's Info metric replaces its values.
func (m *CompletionMetrics) SetModel(processor, model, temperature string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	next := [2]string{model, temperature}
	if prev, ok := m.last[processor]; ok {
		if prev == next {
			return
		}
		m.model.DeleteLabelValues(processor, prev[0], prev[1])
	}
	m.last[processor] = next
	m.model.WithLabelValues(processor, model, temperature).Set(1)
}

// EmbeddingsMetrics are an embeddings service's metrics, as TrustGraph
// names them, each labelled processor and model:
//
//   - tg_embeddings_request_total: requests handled;
//   - tg_embeddings_duration_seconds: histogram of the model calls,
//     PythonDefaultBuckets;
//   - tg_embeddings_batch_size: histogram of texts per request,
//     EmbeddingsBatchBuckets.
//
// It is a prometheus.Collector; register it once.
type EmbeddingsMetrics struct {
	requests  *prometheus.CounterVec
	duration  *prometheus.HistogramVec
	batchSize *prometheus.HistogramVec
}

// NewEmbeddingsMetrics returns the metrics, not yet registered.
func NewEmbeddingsMetrics() *EmbeddingsMetrics {
	labels := []string{"processor", "model"}
	return &EmbeddingsMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tg_embeddings_request_total",
			Help: "Embeddings requests",
		}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tg_embeddings_duration_seconds",
			Help:    "Embeddings duration (seconds)",
			Buckets: PythonDefaultBuckets(),
		}, labels),
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tg_embeddings_batch_size",
			Help:    "Texts per embeddings request",
			Buckets: EmbeddingsBatchBuckets(),
		}, labels),
	}
}

// Collectors returns the metrics for processor.Processor.Collectors.
func (m *EmbeddingsMetrics) Collectors() []prometheus.Collector { return []prometheus.Collector{m} }

// Describe implements prometheus.Collector.
func (m *EmbeddingsMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.duration.Describe(ch)
	m.batchSize.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *EmbeddingsMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.duration.Collect(ch)
	m.batchSize.Collect(ch)
}

// Observe records one request of processor for model: its texts and how
// long the model call took.
func (m *EmbeddingsMetrics) Observe(processor, model string, texts int, d time.Duration) {
	m.requests.WithLabelValues(processor, model).Inc()
	m.batchSize.WithLabelValues(processor, model).Observe(float64(texts))
	m.duration.WithLabelValues(processor, model).Observe(d.Seconds())
}
