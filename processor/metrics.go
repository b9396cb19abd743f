package processor

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// Metric names and labels follow TrustGraph's where TrustGraph has the
// metric (tg_consumer_*, tg_producer_*, tg_processor_info), so its
// dashboards can be pointed at a switchyard processor; the rest are
// switchyard_*. Label "consumer" is a handler's input queue and "producer"
// its output queue, in generic form.

// consumerBuckets are TrustGraph's tg_consumer_request_duration_seconds
// buckets.
var consumerBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// metrics is a processor's Prometheus registry and the instruments the
// router's Observer feeds. Counts are read from the router's counters at
// scrape time, so the message path pays nothing for them.
type metrics struct {
	reg      *prometheus.Registry
	duration *prometheus.HistogramVec
	publish  *prometheus.HistogramVec
	id       string
}

// newMetrics registers the processor's metrics; routers returns the routers
// whose counters are exported (one, or one per flow).
func newMetrics(id, version, backendName string, routers func() []*router.Router, health func() error, own []prometheus.Collector) (*metrics, error) {
	m := &metrics{reg: prometheus.NewRegistry(), id: id}
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "tg_consumer_request_duration_seconds",
		Help:    "Time from taking an input to the end of its handling.",
		Buckets: consumerBuckets,
	}, []string{"processor", "consumer"})
	m.publish = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "switchyard_publish_duration_seconds",
		Help:    "Time the broker took to confirm a handler's outputs.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9),
	}, []string{"processor", "producer"})
	info := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "tg_processor_info",
		Help:        "The processor's identity; no secret is ever a label.",
		ConstLabels: prometheus.Labels{"processor": id, "version": version, "pubsub_backend": backendName},
	})
	info.Set(1)
	m.reg.MustRegister(
		m.duration, m.publish, info,
		&routerCollector{id: id, routers: routers, health: health},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	for _, c := range own {
		if err := m.reg.Register(c); err != nil {
			return nil, fmt.Errorf("registering the processor's metrics: %w", err)
		}
	}
	return m, nil
}

// Handled implements router.Observer.
func (m *metrics) Handled(_, input string, took time.Duration) {
	m.duration.WithLabelValues(m.id, queueLabel(input)).Observe(took.Seconds())
}

// Published implements router.Observer.
func (m *metrics) Published(_, topic string, _ int, took time.Duration, err error) {
	if err == nil {
		m.publish.WithLabelValues(m.id, queueLabel(topic)).Observe(took.Seconds())
	}
}

var (
	descProcessing = prometheus.NewDesc("tg_consumer_processing_total",
		"Inputs handled, by outcome: ok (outputs confirmed, input acked) or error (a failed delivery: nacked, answered with an error or poisoned).",
		[]string{"processor", "consumer", "status"}, nil)
	descRateLimit = prometheus.NewDesc("tg_consumer_rate_limit_total",
		"Inputs nacked after a downstream service said too many requests.", []string{"processor", "consumer"}, nil)
	descState = prometheus.NewDesc("tg_consumer_state",
		"1 for the consumer's current state.", []string{"processor", "consumer", "tg_consumer_state"}, nil)
	descProduced = prometheus.NewDesc("tg_producer_messages_total",
		"Outputs the broker confirmed.", []string{"processor", "producer"}, nil)
	descReceived = prometheus.NewDesc("switchyard_consumer_received_total",
		"Inputs taken from the broker, redeliveries included.", []string{"processor", "consumer"}, nil)
	descRedelivered = prometheus.NewDesc("switchyard_consumer_redelivered_total",
		"Inputs whose delivery attempt was above 1.", []string{"processor", "consumer"}, nil)
	descRetries = prometheus.NewDesc("switchyard_consumer_retries_total",
		"In-process retries of failed handler calls.", []string{"processor", "consumer"}, nil)
	descPanics = prometheus.NewDesc("switchyard_consumer_panics_total",
		"Handler panics (each also counts as an error).", []string{"processor", "consumer"}, nil)
	descPoisoned = prometheus.NewDesc("switchyard_consumer_poisoned_total",
		"Inputs moved to the poison queue.", []string{"processor", "consumer"}, nil)
	descErrorResponses = prometheus.NewDesc("switchyard_consumer_error_responses_total",
		"Inputs answered with an error response.", []string{"processor", "consumer"}, nil)
	descInFlight = prometheus.NewDesc("switchyard_consumer_in_flight",
		"Inputs being handled now.", []string{"processor", "consumer"}, nil)
	descConnected = prometheus.NewDesc("switchyard_backend_connected",
		"1 while the backend is connected and every subscription is active.", []string{"processor"}, nil)
)

// routerCollector reads the router's counters at scrape time.
type routerCollector struct {
	id      string
	routers func() []*router.Router
	health  func() error
}

// Describe implements prometheus.Collector.
func (c *routerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProcessing, descRateLimit, descState, descProduced, descReceived,
		descRedelivered, descRetries, descPanics, descPoisoned, descErrorResponses, descInFlight, descConnected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *routerCollector) Collect(ch chan<- prometheus.Metric) {
	type series struct {
		s       middleware.Snapshot
		out     string
		running bool
	}
	// A queue appears once even when a stopped flow and its restart both
	// consumed it: their counts add up.
	byInput := map[string]*series{}
	for _, r := range c.routers() {
		stats := r.Stats()
		running := false
		select {
		case <-r.Running():
			running = !r.Stopped()
		default:
		}
		for _, h := range r.Handlers() {
			in := queueID(h.Input)
			cur := byInput[in]
			if cur == nil {
				cur = &series{}
				byInput[in] = cur
			}
			cur.s = cur.s.Add(stats[h.Name])
			cur.running = cur.running || running
			if h.Output != nil {
				cur.out = queueID(*h.Output)
			}
		}
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for in, cur := range byInput {
		s, running := cur.s, cur.running
		counter(descProcessing, s.OK, c.id, in, "ok")
		counter(descProcessing, s.Errors, c.id, in, "error")
		counter(descRateLimit, s.RateLimited, c.id, in)
		counter(descReceived, s.Received, c.id, in)
		counter(descRedelivered, s.Redelivered, c.id, in)
		counter(descRetries, s.Retries, c.id, in)
		counter(descPanics, s.Panics, c.id, in)
		counter(descPoisoned, s.Poisoned, c.id, in)
		counter(descErrorResponses, s.ErrorResponses, c.id, in)
		ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(s.InFlight), c.id, in)
		if cur.out != "" {
			counter(descProduced, s.Published, c.id, cur.out)
		}
		for _, state := range []string{"running", "stopped"} {
			v := 0.0
			if (state == "running") == running {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descState, prometheus.GaugeValue, v, c.id, in, state)
		}
	}
	connected := 0.0
	if c.health() == nil {
		connected = 1
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, connected, c.id)
}

// queueID names a queue in metric labels as TrustGraph does: in class form
// (request:tg:text-completion:default:default) when the queue has a class
// and the class's usual persistence, so a Go and a Python replica of one
// processor report the same series; otherwise in generic form.
func queueID(t schema.Topic) string {
	switch c := t.Class(); {
	case c == schema.ClassNone:
	case c == schema.ClassFlow && t.QoS == schema.QoS1,
		c != schema.ClassFlow && t.QoS == schema.QoS0:
		return string(c) + ":" + t.Tenant + ":" + t.Queue
	}
	return t.String()
}

// queueLabel is queueID of a queue name in generic form.
func queueLabel(name string) string {
	t, err := schema.ParseTopic(name)
	if err != nil {
		return name
	}
	return queueID(t)
}

// endpoints serves /metrics, /healthz and /readyz on one listener.
type endpoints struct {
	srv  *http.Server
	ln   net.Listener
	done chan struct{}
}

// serveEndpoints listens on addr and serves the operator endpoints until
// close. ready reports nil when the processor is ready.
func serveEndpoints(addr string, reg *prometheus.Registry, ready func() error) (*endpoints, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics-addr %q: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := ready(); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	e := &endpoints{srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, ln: ln, done: make(chan struct{})}
	go func() {
		defer close(e.done)
		_ = e.srv.Serve(ln)
	}()
	return e, nil
}

// Addr returns the address the endpoints listen on.
func (e *endpoints) Addr() string { return e.ln.Addr().String() }

func (e *endpoints) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = e.srv.Shutdown(ctx)
	<-e.done
}

// readiness tracks what /readyz reports.
type readiness struct {
	running atomic.Bool
	health  func() error
}

func (r *readiness) check() error {
	if !r.running.Load() {
		return errors.New("handlers are not subscribed yet")
	}
	if r.health != nil {
		return r.health()
	}
	return nil
}
