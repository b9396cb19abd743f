package bench

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// pipelineResults is a run on Pulsar with every kind of row.
func pipelineResults() *Results {
	sy1, sy8 := SwitchyardVariant(1), SwitchyardVariant(8)
	return &Results{
		Settings: Settings{Backends: []string{BackendPulsar}, Concurrency: 8, SwitchyardConcurrency: []int{1, 8}, LimitWindow: 256, Outstanding: 2048},
		Throughput: []Throughput{
			{Backend: BackendPulsar, Variant: VariantLimit, Concurrency: 1, Window: 256, MsgsPerSec: 10000, CPUPerMsgUS: 50},
			{Backend: BackendPulsar, Variant: VariantRawSync, Concurrency: 8, MsgsPerSec: 4000, CPUPerMsgUS: 100},
			{Backend: BackendPulsar, Variant: sy1, Concurrency: 1, MsgsPerSec: 9000, CPUPerMsgUS: 80},
			{Backend: BackendPulsar, Variant: sy8, Concurrency: 8, MsgsPerSec: 3600, CPUPerMsgUS: 150},
			{Backend: BackendPulsar, Variant: VariantPython, Concurrency: 8, MsgsPerSec: 100},
		},
		RoundTrip: []RoundTrip{
			{Backend: BackendPulsar, Variant: VariantRawSync, Latency: Latency{Samples: 10, P50: 2}},
			{Backend: BackendPulsar, Variant: sy8, Latency: Latency{Samples: 10, P50: 2.4}},
		},
		BrokerTools: []ToolRun{
			{Backend: BackendPulsar, Tool: ToolPulsarPerfProduce, MsgsPerSec: 61234, Messages: 612340},
			{Backend: BackendPulsar, Tool: ToolPulsarPerfConsume, Error: "exit status 1"},
		},
		Footprint: []Footprint{{Backend: BackendPulsar, Processor: ProcessorEchoLLM, ReadyMS: 120, IdleRSSMB: 30}},
	}
}

func TestRatiosAgainstLimitAndRawSync(t *testing.T) {
	r := pipelineResults()
	r.computeRatios()
	sy1, sy8 := SwitchyardVariant(1), SwitchyardVariant(8)
	want := []RatioResult{
		{BackendPulsar, ThroughputRatio(sy1, VariantLimit), 0.9},
		{BackendPulsar, ThroughputRatio(sy1, VariantRawSync), 2.25},
		{BackendPulsar, CPURatio(sy1, VariantRawSync), 0.8},
		{BackendPulsar, ThroughputRatio(sy8, VariantLimit), 0.36},
		{BackendPulsar, ThroughputRatio(sy8, VariantRawSync), 0.9},
		{BackendPulsar, CPURatio(sy8, VariantRawSync), 1.5},
		{BackendPulsar, ThroughputRatio(sy8, VariantPython), 36},
		{BackendPulsar, RoundTripRatio(sy8, VariantRawSync), 1.2},
	}
	if !slices.Equal(r.Ratios, want) {
		t.Errorf("ratios:\n got %+v\nwant %+v", r.Ratios, want)
	}
	targets := map[string]bool{}
	for _, tg := range r.Targets {
		targets[tg.Name] = tg.Met
	}
	wantTargets := map[string]bool{
		sy8 + " throughput vs raw-sync": false, sy8 + " throughput vs Python": true,
		sy8 + " round-trip p50 vs raw-sync": false, "idle processor RSS (MiB)": false, "exec to ready (ms)": true,
	}
	if len(r.Targets) != len(wantTargets) {
		t.Fatalf("targets: %+v", r.Targets)
	}
	for name, met := range wantTargets {
		if got, ok := targets[name]; !ok || got != met {
			t.Errorf("target %q: met=%v present=%v, want met=%v", name, got, ok, met)
		}
	}
}

func TestRatiosWithoutLimitOrRawSync(t *testing.T) {
	r := pipelineResults()
	r.Throughput[0].Error = "connection refused" // limit failed
	r.Throughput[1].MsgsPerSec = 0               // raw-sync counted nothing
	r.computeRatios()
	for _, x := range r.Ratios {
		if strings.Contains(x.Name, "/"+VariantLimit) || strings.Contains(x.Name, "throughput "+SwitchyardVariant(1)+"/"+VariantRawSync) {
			t.Errorf("ratio %q computed against a failed row", x.Name)
		}
	}
	if len(r.Ratios) != 2 { // Python and the round trip remain
		t.Errorf("ratios: %+v", r.Ratios)
	}
}

func TestMainSwitchyardRow(t *testing.T) {
	r := pipelineResults()
	if got := r.mainSwitchyard(BackendPulsar); got != SwitchyardVariant(8) {
		t.Errorf("main row %q, want switchyard-c8", got)
	}
	r.Settings.Concurrency = 4 // no row at 4: the last switchyard row
	if got := r.mainSwitchyard(BackendPulsar); got != SwitchyardVariant(8) {
		t.Errorf("main row %q, want switchyard-c8", got)
	}
	r.Throughput = r.Throughput[:3]
	if got := r.mainSwitchyard(BackendPulsar); got != SwitchyardVariant(1) {
		t.Errorf("main row %q, want switchyard-c1", got)
	}
	if got := r.mainSwitchyard(BackendMQTT); got != "" {
		t.Errorf("main row on a backend without rows: %q", got)
	}
}

func TestTableShowsLimitRawSyncAndTools(t *testing.T) {
	r := pipelineResults()
	r.computeRatios()
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, s := range []string{
		"vs limit", "vs raw-sync", "2048 requests outstanding (Python 256)", "256 unconfirmed",
		"pulsar-perf produce", "61234", "pulsar/pulsar-perf consume: exit status 1",
		"throughput switchyard-c1/limit", "round-trip p50 switchyard-c8/raw-sync", "Targets",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("table lacks %q:\n%s", s, out)
		}
	}
	// The switchyard-c1 row: 9000 msgs/s, 0.900 of the limit, 2.250 of raw-sync.
	var row string
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 2 && f[1] == SwitchyardVariant(1) {
			row = l
			break
		}
	}
	if f := strings.Fields(row); len(f) != 10 || f[3] != "9000" || f[7] != "0.900" || f[8] != "2.250" {
		t.Errorf("switchyard-c1 row: %q", row)
	}
	// The tool rows come after the backend's variants.
	if strings.Index(out, "pulsar-perf produce") < strings.Index(out, " python ") {
		t.Errorf("tool rows are not after the backend's rows:\n%s", out)
	}
	if r.Failures() != 1 {
		t.Errorf("Failures() = %d, want 1 (the consume run)", r.Failures())
	}
}

func TestVariantRows(t *testing.T) {
	cfg := Config{Python: "python3"}
	cfg.SetDefaults()
	e := &engine{cfg: cfg, runID: "x"}
	sy1, sy8 := SwitchyardVariant(1), SwitchyardVariant(8)
	if got, want := e.variants(BackendPulsar), []string{VariantLimit, VariantRawSync, sy1, sy8, VariantPython}; !slices.Equal(got, want) {
		t.Errorf("pulsar variants %v, want %v", got, want)
	}
	if got, want := e.variants(BackendKafka), []string{VariantLimit, VariantRawSync, sy1, sy8}; !slices.Equal(got, want) {
		t.Errorf("kafka variants %v, want %v", got, want)
	}
	if e.mainSwitchyard() != sy8 {
		t.Errorf("main switchyard row %q", e.mainSwitchyard())
	}
	for v, want := range map[string]bool{VariantLimit: false, VariantRawSync: true, sy1: false, sy8: true, VariantPython: true} {
		if got := e.measuresRoundTrip(v); got != want {
			t.Errorf("measuresRoundTrip(%s) = %v", v, got)
		}
	}
	for v, want := range map[string]int{VariantLimit: 1, VariantRawSync: 8, sy1: 1, sy8: 8, VariantPython: 8} {
		s := e.spec(BackendPulsar, v, "r0")
		if s.concurrency != want || s.window != DefaultLimitWindow {
			t.Errorf("spec(%s): concurrency %d window %d", v, s.concurrency, s.window)
		}
	}
	if s := e.spec(BackendMemory, VariantLimit, "r0"); s.concurrency != 8 {
		t.Errorf("memory limit: concurrency %d, want the raw-sync loop's 8", s.concurrency)
	}
	e.cfg.Window = 4096
	if e.loadWindow(VariantPython) != pythonWindow || e.loadWindow(sy1) != 4096 {
		t.Errorf("load windows: python %d, switchyard %d", e.loadWindow(VariantPython), e.loadWindow(sy1))
	}

	e.cfg.Variants = []string{VariantSwitchyard}
	e.cfg.SwitchyardConcurrency = []int{2, 4}
	if got, want := e.variants(BackendPulsar), []string{SwitchyardVariant(2), SwitchyardVariant(4)}; !slices.Equal(got, want) {
		t.Errorf("switchyard-only variants %v, want %v", got, want)
	}
	if e.mainSwitchyard() != SwitchyardVariant(4) {
		t.Errorf("main switchyard row without one at --concurrency: %q", e.mainSwitchyard())
	}
}

func TestSwitchyardVariantNames(t *testing.T) {
	for _, c := range []int{1, 8, 64} {
		got, ok := switchyardConcurrency(SwitchyardVariant(c))
		if !ok || got != c {
			t.Errorf("switchyardConcurrency(%q) = %d %v", SwitchyardVariant(c), got, ok)
		}
	}
	for _, v := range []string{VariantLimit, VariantRawSync, VariantPython, "switchyard", "switchyard-c", "switchyard-c0", "switchyard-cx"} {
		if _, ok := switchyardConcurrency(v); ok {
			t.Errorf("%q taken for a switchyard row", v)
		}
	}
}

func TestConfigDefaultsAndValidation(t *testing.T) {
	var c Config
	c.Concurrency = 1
	c.SetDefaults()
	if !slices.Equal(c.SwitchyardConcurrency, []int{1}) || !slices.Equal(c.Variants, variantKinds) || c.LimitWindow != DefaultLimitWindow {
		t.Errorf("defaults at concurrency 1: %v %v %d", c.SwitchyardConcurrency, c.Variants, c.LimitWindow)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"unknown variant":  func(c *Config) { c.Variants = []string{"raw"} },
		"variant twice":    func(c *Config) { c.Variants = []string{VariantLimit, VariantLimit} },
		"concurrency zero": func(c *Config) { c.SwitchyardConcurrency = []int{0} },
		"concurrency dup":  func(c *Config) { c.SwitchyardConcurrency = []int{8, 8} },
		"limit window":     func(c *Config) { c.LimitWindow = -1 },
		"perf time":        func(c *Config) { c.PulsarPerfTime = time.Millisecond },
	} {
		bad := c
		mod(&bad)
		if err := bad.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSlotsBoundTheWindow(t *testing.T) {
	s := newSlots(2)
	done := make(chan struct{})
	if !s.acquire(done) || !s.acquire(done) {
		t.Fatal("free slots were not given")
	}
	got := make(chan bool, 1)
	go func() { got <- s.acquire(done) }()
	select {
	case <-got:
		t.Fatal("a third slot was given while two were taken")
	case <-time.After(50 * time.Millisecond):
	}
	s.release()
	if !<-got {
		t.Fatal("the released slot was not given")
	}
	go func() { got <- s.acquire(done) }()
	close(done)
	if <-got {
		t.Fatal("acquire succeeded with every slot taken and done closed")
	}
}

func TestDrainLimit(t *testing.T) {
	cases := []struct {
		outstanding uint64
		rate        float64
		want        time.Duration
	}{
		{0, 0, minDrain},
		{4096, 0, minDrain},     // no rate measured: the minimum
		{4096, 40000, minDrain}, // 0.2 s of work
		{4096, 400, 2 * 4096 * time.Second / 400},
		{4096, 10, maxDrain}, // a stalled variant is not waited for
	}
	for _, c := range cases {
		if got := drainLimit(c.outstanding, c.rate); got != c.want {
			t.Errorf("drainLimit(%d, %v) = %s, want %s", c.outstanding, c.rate, got, c.want)
		}
	}
}
