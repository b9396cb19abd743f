package processor

import (
	"context"

	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/middleware"
	"github.com/switchyard-go/switchyard/router"
	"github.com/switchyard-go/switchyard/schema"
)

// serveFlows runs a flow processor until ctx ends: the flow runtime
// follows the configuration service and runs one router per flow.
func (p Processor) serveFlows(ctx context.Context, cfg Config, b router.Backend, log *slog.Logger, start time.Time) error {
	fcfg := flow.Config{
		ID:      cfg.ID,
		Timeout: time.Duration(cfg.ConfigTimeout) * time.Second,
		Router:  cfg.Router,
		OnFlowStarted: func(f flow.FlowInfo) {
			log.Info("flow started", "workspace", f.Workspace, "flow", f.Flow, "handlers", describeHandlers(f.Handlers))
		},
		OnFlowStopped: func(f flow.FlowInfo) {
			log.Info("flow stopped", "workspace", f.Workspace, "flow", f.Flow)
		},
	}
	if cfg.ConfigPush != "" {
		t, err := schema.ParseTopic(cfg.ConfigPush)
		if err != nil {
			return &UsageError{Err: err}
		}
		fcfg.Push = t
	}
	health := backendHealth(b)
	var rt *flow.Runtime
	ready := &readiness{health: health}
	metricsAt := "off"
	var m *metrics
	if cfg.MetricsAddr != "" {
		var err error
		m, err = newMetrics(cfg.ID, Version(), b.Name(), func() []*router.Router {
			if rt == nil {
				return nil
			}
			return rt.Routers()
		}, health, p.Collectors)
		if err != nil {
			return err
		}
		fcfg.Observer = m
	}
	rt, err := flow.New(fcfg, b, WatermillLogger(log), p.Flows...)
	if err != nil {
		return err
	}
	if m != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tg_config_version", Help: "The configuration version the processor's flows follow.",
			ConstLabels: prometheus.Labels{"processor": cfg.ID},
		}, func() float64 { return float64(rt.Version()) }))
		e, err := serveEndpoints(cfg.MetricsAddr, m.reg, ready.check)
		if err != nil {
			return &UsageError{Err: err}
		}
		defer e.close()
		metricsAt = e.Addr()
	}
	runErr := make(chan error, 1)
	go func() { runErr <- rt.Run(ctx) }()
	select {
	case <-rt.Ready():
		ready.running.Store(true)
		log.Info("ready", "processor", cfg.ID, "version", Version(), "backend", b.Name(),
			"broker", Redact(cfg.Backend.Address(), cfg.Backend.Secrets()...), "metrics", metricsAt,
			"config", fcfg.Push.String(), "flows", len(rt.Flows()), "startup", time.Since(start).Round(time.Millisecond).String())
	case err := <-runErr:
		return err
	}
	if cfg.StatsInterval > 0 {
		stop := logStats(ctx, log, cfg.StatsInterval, func() string { return flowSummary(rt) })
		defer stop()
	}
	err = <-runErr
	ready.running.Store(false)
	log.Info("stopped", "processor", cfg.ID, "summary", flowSummary(rt))
	return err
}

// flowSummary is the counters of every flow that ran.
func flowSummary(rt *flow.Runtime) string {
	stats := map[string]middleware.Snapshot{}
	for _, r := range rt.Routers() {
		for _, h := range r.Handlers() {
			in := h.Input.String()
			stats[in] = stats[in].Add(r.Stats()[h.Name])
		}
	}
	return router.SummaryLine(stats)
}
