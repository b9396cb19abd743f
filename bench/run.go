package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/schema"
)

// runSpec names the queues and subscriptions of one measured run.
type runSpec struct {
	backend     string
	variant     string
	name        string // unique: used in queue, subscription and client names
	in, out     schema.Topic
	concurrency int // messages the processor handles at once
	window      int // inputs the limit loop holds unconfirmed
}

// harness connects the benchmark to one backend.
type harness interface {
	// newLoad connects a load client that publishes to spec.in and hands
	// every message of spec.out to fn. The subscription exists when it
	// returns.
	newLoad(ctx context.Context, spec runSpec, fn responseFunc) (loadClient, error)
	// newProcessor starts the variant between spec.in and spec.out and
	// returns once it consumes.
	newProcessor(ctx context.Context, spec runSpec) (processor, error)
	// close releases what the harness holds.
	close() error
}

// processor is a running processor variant.
type processor interface {
	// Stop stops it and waits until it ended.
	Stop() error
	// PID is the process id of a processor in its own process, 0 for one
	// that runs inside the benchmark.
	PID() int
}

// accum sums the rounds of one backend and variant.
type accum struct {
	tp      Throughput
	lat     *Histogram
	window  time.Duration
	cpu     time.Duration
	cpuMsgs uint64
	rt      RoundTrip
	rtLat   *Histogram
}

// engine runs one benchmark.
type engine struct {
	cfg     Config
	runID   string
	payload []byte
	results *Results
	python  *pythonStats
}

// Run measures what cfg asks for and returns the results. A variant that
// cannot be measured (a broker that cannot be reached, a missing Python)
// is reported in its result's Error and the run goes on; Run returns an
// error only for an invalid configuration or when ctx ends, and then the
// results measured so far.
func Run(ctx context.Context, cfg Config) (*Results, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	payload, err := RequestPayload(cfg.MessageSize)
	if err != nil {
		return nil, fmt.Errorf("building the request payload: %w", err)
	}
	start := time.Now()
	res := &Results{
		Started: start.UTC().Truncate(time.Second),
		Host: Host{
			CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH,
			LoadStart: loadAverage(),
		},
		Settings: Settings{
			Backends: cfg.Backends, WindowS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(),
			Rounds: cfg.Rounds, Concurrency: cfg.Concurrency, SwitchyardConcurrency: cfg.SwitchyardConcurrency,
			LimitWindow: cfg.LimitWindow, Outstanding: cfg.Window,
			MessageBytes: len(payload), RoundTrips: cfg.RoundTrips, RoundTripS: cfg.RoundTripLimit.Seconds(),
			LoadModel: fmt.Sprintf("closed loop: at most %d requests outstanding (Python: %d)", cfg.Window, min(cfg.Window, pythonWindow)),
		},
	}
	e := &engine{cfg: cfg, runID: newRunID(), payload: payload, results: res}
	e.progressf("run %s: backends %s, variants %s, window %s per variant in %d rounds, warmup %s, concurrency %d, switchyard concurrency %v, limit window %d, %d outstanding, %d B requests",
		e.runID, strings.Join(cfg.Backends, ","), strings.Join(cfg.Variants, ","), cfg.Duration, cfg.Rounds, cfg.Warmup, cfg.Concurrency, cfg.SwitchyardConcurrency, cfg.LimitWindow, cfg.Window, len(payload))

	for _, backend := range cfg.Backends {
		if err := e.benchBackend(ctx, backend); err != nil {
			e.finish(start)
			return res, err
		}
	}
	e.finish(start)
	return res, nil
}

func (e *engine) finish(start time.Time) {
	e.results.Host.LoadEnd = loadAverage()
	e.results.Elapsed = time.Since(start).Round(100 * time.Millisecond).Seconds()
	e.results.computeRatios()
}

// variants returns the rows measured on backend, in the order of a round.
func (e *engine) variants(backend string) []string {
	var v []string
	for _, kind := range variantKinds {
		if !slices.Contains(e.cfg.Variants, kind) {
			continue
		}
		switch kind {
		case VariantSwitchyard:
			for _, c := range e.cfg.SwitchyardConcurrency {
				v = append(v, SwitchyardVariant(c))
			}
		case VariantPython:
			if backend == BackendPulsar && e.cfg.Python != "" {
				v = append(v, VariantPython)
			}
		default:
			v = append(v, kind)
		}
	}
	return v
}

// mainSwitchyard is the switchyard row that the round trip, the Python
// comparison and the targets use: the one at Concurrency, or else the last.
func (e *engine) mainSwitchyard() string {
	if slices.Contains(e.cfg.SwitchyardConcurrency, e.cfg.Concurrency) {
		return SwitchyardVariant(e.cfg.Concurrency)
	}
	return SwitchyardVariant(e.cfg.SwitchyardConcurrency[len(e.cfg.SwitchyardConcurrency)-1])
}

// measuresRoundTrip reports whether variant gets the sequential round
// trip: raw-sync, the main switchyard row and Python. A lone request takes
// the same path through the router at any concurrency, and the limit loop
// is about throughput only.
func (e *engine) measuresRoundTrip(variant string) bool {
	return e.cfg.RoundTrips > 0 && (variant == VariantRawSync || variant == VariantPython || variant == e.mainSwitchyard())
}

// pythonWindow caps the load generator's window for the Python row: it
// answers about 80 requests a second, so a larger window would only add
// queueing time (256 is 3 s of it) and outlast the drain after each round.
const pythonWindow = 256

// loadWindow is the load generator's window for variant.
func (e *engine) loadWindow(variant string) int {
	if variant == VariantPython {
		return min(e.cfg.Window, pythonWindow)
	}
	return e.cfg.Window
}

func (e *engine) benchBackend(ctx context.Context, backend string) error {
	variants := e.variants(backend)
	accs := map[string]*accum{}
	for _, v := range variants {
		spec := e.spec(backend, v, "")
		tp := Throughput{Backend: backend, Variant: v, Concurrency: spec.concurrency, Outstanding: e.loadWindow(v)}
		if v == VariantLimit && backend != BackendMemory {
			tp.Window = spec.window
		}
		accs[v] = &accum{
			tp:    tp,
			lat:   NewHistogram(),
			rt:    RoundTrip{Backend: backend, Variant: v},
			rtLat: NewHistogram(),
		}
	}
	if backend == BackendPulsar && e.cfg.Python != "" {
		e.python = &pythonStats{}
	}
	window := e.cfg.Duration / time.Duration(e.cfg.Rounds)
	rtPerRound := 0
	if e.cfg.RoundTrips > 0 {
		rtPerRound = (e.cfg.RoundTrips + e.cfg.Rounds - 1) / e.cfg.Rounds
	}
	for round := 0; round < e.cfg.Rounds; round++ {
		order := append([]string(nil), variants...)
		if round%2 == 1 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, v := range order {
			a := accs[v]
			if a.tp.Error != "" {
				continue
			}
			rt := 0
			if e.measuresRoundTrip(v) {
				rt = rtPerRound
			}
			err := e.measure(ctx, backend, v, round, window, rt, a)
			if ctx.Err() != nil {
				for _, a := range accs {
					if a.window == 0 && a.tp.Error == "" {
						a.tp.Error, a.rt.Error = "interrupted", "interrupted"
					}
				}
				e.collect(variants, accs)
				return ctx.Err()
			}
			if err != nil {
				a.tp.Error = oneLine(err.Error())
				a.rt.Error = a.tp.Error
				e.progressf("%s/%s: FAILED: %s", backend, v, a.tp.Error)
			}
		}
	}
	e.collect(variants, accs)
	if backend == BackendPulsar && e.cfg.PulsarPerf != "" {
		e.results.BrokerTools = append(e.results.BrokerTools, e.pulsarPerf(ctx)...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if e.python != nil {
		e.results.Footprint = append(e.results.Footprint, e.python.footprint(backend))
		e.python = nil
	}
	if e.cfg.EchoLLM != "" {
		fp := e.footprint(ctx, backend)
		e.results.Footprint = append(e.results.Footprint, fp)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// collect turns the accumulators into results.
func (e *engine) collect(variants []string, accs map[string]*accum) {
	for _, v := range variants {
		a := accs[v]
		tp := a.tp
		if tp.Error == "" && a.window > 0 {
			tp.WindowS = round3(a.window.Seconds())
			tp.MsgsPerSec = float64(int64(float64(tp.Messages)/a.window.Seconds() + 0.5))
			tp.Latency = a.lat.Summary()
			if a.cpuMsgs > 0 {
				tp.CPUPerMsgUS = round3(float64(a.cpu.Microseconds()) / float64(a.cpuMsgs))
			}
		}
		e.results.Throughput = append(e.results.Throughput, tp)
		rt := a.rt
		if rt.Error == "" {
			rt.Latency = a.rtLat.Summary()
			rt.Requests = rt.Latency.Samples
		}
		if e.measuresRoundTrip(v) {
			e.results.RoundTrip = append(e.results.RoundTrip, rt)
		}
	}
}

// measure runs one round of one variant: throughput, then round trips.
func (e *engine) measure(ctx context.Context, backend, variant string, round int, window time.Duration, roundTrips int, a *accum) (err error) {
	tag := fmt.Sprintf("%s/%s", backend, variant)
	if e.cfg.Rounds > 1 {
		tag += fmt.Sprintf(" round %d/%d", round+1, e.cfg.Rounds)
	}
	spec := e.spec(backend, variant, fmt.Sprintf("r%d", round))
	h, err := e.openHarness(ctx, backend)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := h.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	c := newCounter(time.Now())
	lc, err := h.newLoad(ctx, spec, c.onResponse)
	if err != nil {
		return fmt.Errorf("connecting the load client: %w", err)
	}
	defer func() {
		if cerr := lc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("closing the load client: %w", cerr)
		}
	}()
	t0 := time.Now()
	p, err := h.newProcessor(ctx, spec)
	if err != nil {
		return fmt.Errorf("starting the processor: %w", err)
	}
	e.progressf("%s: processor ready in %.1fms; throughput: warmup %s, window %s", tag, float64(time.Since(t0).Microseconds())/1000, e.cfg.Warmup, window)
	stopped := false
	defer func() {
		if !stopped {
			if serr := p.Stop(); serr != nil && err == nil {
				err = fmt.Errorf("stopping the processor: %w", serr)
			}
		}
	}()
	if variant == VariantPython && e.python != nil {
		e.python.observeStart(p, time.Since(t0))
	}

	genCtx, stopGen := context.WithCancel(ctx)
	genErr := make(chan error, 1)
	go func() { genErr <- c.generate(genCtx, lc, e.payload, e.loadWindow(variant)) }()
	stopGenerator := func() error {
		stopGen()
		return <-genErr
	}
	defer func() {
		if genCtx.Err() == nil {
			_ = stopGenerator()
		}
	}()

	if err := e.watch(ctx, tag+" warmup", c, e.cfg.Warmup, genErr); err != nil {
		return err
	}
	prof, err := e.startProfiles(backend, variant, round)
	if err != nil {
		return err
	}
	self0, child0 := cpuTime(0), cpuTime(p.PID())
	recv0 := c.recv.Load()
	c.windowOpen.Store(true)
	w0 := time.Now()
	werr := e.watch(ctx, tag, c, window, genErr)
	c.windowOpen.Store(false)
	elapsed := time.Since(w0)
	recv1 := c.recv.Load()
	self1, child1 := cpuTime(0), cpuTime(p.PID())
	if perr := prof.stop(); perr != nil && werr == nil {
		werr = perr
	}
	if werr != nil {
		return werr
	}
	if err := stopGenerator(); err != nil {
		return err
	}
	msgs := recv1 - recv0
	a.tp.Messages += msgs
	a.window += elapsed
	if self0 >= 0 && self1 >= 0 && child0 >= 0 && child1 >= 0 {
		// The load generator and the counter run in this process: their CPU
		// time is counted for every variant, so the variants compare.
		cpu := self1 - self0
		if p.PID() != 0 {
			cpu += child1 - child0
		}
		a.cpu += cpu
		a.cpuMsgs += msgs
	}
	a.lat.Merge(c.latency)
	round1 := c.latency.Summary()
	e.progressf("%s: %.0f msgs/s, latency p50 %.2fms p99 %.2fms", tag, float64(msgs)/elapsed.Seconds(), round1.P50, round1.P99)

	// Drain: wait for the responses still on their way.
	e.drain(ctx, c, drainLimit(c.sent.Load()-min(c.sent.Load(), c.recv.Load()), float64(msgs)/elapsed.Seconds()))
	uniq, dups := c.recv.Load(), c.duplicates()
	sent := c.sent.Load()
	a.tp.Sent += sent
	a.tp.Received += uniq + dups
	a.tp.Duplicates += dups
	if sent > uniq {
		a.tp.Lost += sent - uniq
	}
	a.tp.BadResponses += c.bad.Load()
	if sent > uniq {
		e.progressf("%s: %d of %d requests unanswered after the drain", tag, sent-uniq, sent)
	}
	if variant == VariantPython && e.python != nil {
		e.python.observeLoaded(p)
	}

	if roundTrips > 0 {
		rtHist := NewHistogram()
		timeouts, err := c.roundTrips(ctx, lc, e.payload, roundTrips, 10, e.cfg.RoundTripLimit/time.Duration(e.cfg.Rounds), 5*time.Second, rtHist)
		a.rt.Timeouts += timeouts
		if err != nil {
			return err
		}
		a.rtLat.Merge(rtHist)
		s := rtHist.Summary()
		e.progressf("%s: round trip: %d requests, p50 %.3fms p99 %.3fms, %d timeouts", tag, s.Samples, s.P50, s.P99, timeouts)
	}
	stopped = true
	if err := p.Stop(); err != nil {
		return fmt.Errorf("stopping the processor: %w", err)
	}
	return nil
}

// stallTimeout is how long a throughput run may go without any response
// before it is given up.
const stallTimeout = 10 * time.Second

// watch waits for d while the generator runs, printing the counters every
// ProgressEvery. It returns early with the generator's error.
func (e *engine) watch(ctx context.Context, tag string, c *counter, d time.Duration, genErr <-chan error) error {
	if d <= 0 {
		return nil
	}
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(e.cfg.ProgressEvery)
	defer tick.Stop()
	start := time.Now()
	lastRecv, lastT := c.recv.Load(), start
	progress, progressAt := lastRecv, start
	stall := time.NewTicker(time.Second)
	defer stall.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-genErr:
			if err == nil {
				err = errors.New("the load generator stopped")
			}
			return err
		case <-end.C:
			return nil
		case now := <-stall.C:
			if recv := c.recv.Load(); recv != progress {
				progress, progressAt = recv, now
			} else if now.Sub(progressAt) >= stallTimeout {
				return fmt.Errorf("no response for %s (%d requests outstanding); did the broker restart?", stallTimeout, c.sent.Load()-min(c.sent.Load(), recv))
			}
		case now := <-tick.C:
			recv := c.recv.Load()
			sent := c.sent.Load()
			rate := float64(recv-lastRecv) / now.Sub(lastT).Seconds()
			e.progressf("%s: %4.0fs sent %d received %d (%.0f/s), %d outstanding", tag, now.Sub(start).Seconds(), sent, recv, rate, sent-min(sent, recv))
			lastRecv, lastT = recv, now
		}
	}
}

// Bounds of the drain after a throughput window.
const (
	minDrain   = 10 * time.Second
	maxDrain   = 60 * time.Second
	drainStall = 3 * time.Second
)

// drainLimit is how long the drain may take for outstanding requests at the
// window's rate: twice the time the rate needs for them, at least minDrain
// and at most maxDrain. A slow variant with a large window is given the
// time to answer rather than counted as losing requests.
func drainLimit(outstanding uint64, rate float64) time.Duration {
	d := minDrain
	if rate > 0 {
		d = max(d, time.Duration(2*float64(outstanding)/rate*float64(time.Second)))
	}
	return min(d, maxDrain)
}

// drain waits until every request was answered, for at most limit and at
// most drainStall without progress.
func (e *engine) drain(ctx context.Context, c *counter, limit time.Duration) {
	deadline := time.Now().Add(limit)
	last, lastChange := uint64(0), time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		uniq := c.recv.Load()
		if uniq >= c.sent.Load() {
			return
		}
		if uniq != last {
			last, lastChange = uniq, time.Now()
		} else if time.Since(lastChange) > drainStall {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// spec returns the queues and names of one run of variant: its
// concurrency (the router's for a switchyard row, 1 for the limit loop
// except on the memory backend, whose limit is the raw-sync loop,
// Concurrency otherwise) and the limit loop's window.
func (e *engine) spec(backend, variant, suffix string) runSpec {
	name := fmt.Sprintf("bench-%s-%s-%s-%s", e.runID, backend, variant, suffix)
	concurrency := e.cfg.Concurrency
	if c, ok := switchyardConcurrency(variant); ok {
		concurrency = c
	} else if variant == VariantLimit && backend != BackendMemory {
		concurrency = 1
	}
	return runSpec{
		backend:     backend,
		variant:     variant,
		name:        name,
		in:          schema.Topic{QoS: schema.QoS1, Tenant: "public", Namespace: "default", Queue: name + "-request"},
		out:         schema.Topic{QoS: schema.QoS1, Tenant: "public", Namespace: "default", Queue: name + "-response"},
		concurrency: concurrency,
		window:      e.cfg.LimitWindow,
	}
}

func (e *engine) progressf(format string, args ...any) {
	fmt.Fprintf(e.cfg.Progress, "bench %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// profiles is the profiling of one throughput window.
type profiles struct {
	cpu       *os.File
	allocsEnd string
}

func (e *engine) startProfiles(backend, variant string, round int) (*profiles, error) {
	p := &profiles{}
	suffix := fmt.Sprintf("-%s-%s", backend, variant)
	if e.cfg.Rounds > 1 {
		suffix += fmt.Sprintf("-r%d", round+1)
	}
	if e.cfg.CPUProfile != "" {
		f, err := os.Create(e.cfg.CPUProfile + suffix + ".cpu.prof")
		if err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		p.cpu = f
	}
	if e.cfg.MemProfile != "" {
		if err := writeAllocs(e.cfg.MemProfile + suffix + ".allocs-base.prof"); err != nil {
			return nil, err
		}
		p.allocsEnd = e.cfg.MemProfile + suffix + ".allocs.prof"
	}
	return p, nil
}

func (p *profiles) stop() error {
	var err error
	if p.cpu != nil {
		pprof.StopCPUProfile()
		err = p.cpu.Close()
	}
	if p.allocsEnd != "" {
		if werr := writeAllocs(p.allocsEnd); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("allocs profile: %w", err)
	}
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("allocs profile: %w", err)
	}
	return f.Close()
}

func newRunID() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
