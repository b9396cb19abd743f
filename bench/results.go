package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// Results is everything one benchmark run measured. It is what
// bench/results.json holds.
type Results struct {
	// Started is when the run began (UTC).
	Started time.Time `json:"started"`
	// Elapsed is how long the whole run took, in seconds.
	Elapsed float64 `json:"elapsed_s"`
	// Host describes the machine and its load.
	Host Host `json:"host"`
	// Settings are the parameters of the run.
	Settings Settings `json:"settings"`
	// Throughput has one entry per backend and variant.
	Throughput []Throughput `json:"throughput"`
	// RoundTrip has one entry per backend and variant.
	RoundTrip []RoundTrip `json:"round_trip"`
	// BrokerTools are runs of a broker's own load tool (pulsar-perf):
	// informational figures for the broker alone, not a pipeline.
	BrokerTools []ToolRun `json:"broker_tools,omitempty"`
	// Footprint has one entry per backend for the processor binary, and
	// one for the Python processor when it ran.
	Footprint []Footprint `json:"footprint"`
	// Ratios are the headline numbers.
	Ratios []RatioResult `json:"ratios"`
	// Targets says which targets were met.
	Targets []Target `json:"targets"`
}

// Host describes the machine a run was made on.
type Host struct {
	// CPUs is the number of logical CPUs.
	CPUs int `json:"cpus"`
	// GoVersion is the Go release the benchmark was built with.
	GoVersion string `json:"go"`
	// OS is GOOS.
	OS string `json:"os"`
	// Arch is GOARCH.
	Arch string `json:"arch"`
	// LoadStart is the 1-, 5- and 15-minute load average at the start of
	// the run (Linux only).
	LoadStart []float64 `json:"load_start,omitempty"`
	// LoadEnd is the load average at the end of the run.
	LoadEnd []float64 `json:"load_end,omitempty"`
}

// Settings are the parameters a run used.
type Settings struct {
	// Backends are the backends measured, in order.
	Backends []string `json:"backends"`
	// WindowS is the steady-state window per variant in seconds.
	WindowS float64 `json:"window_s"`
	// WarmupS is the warmup before each window in seconds.
	WarmupS float64 `json:"warmup_s"`
	// Rounds is the number of rounds the window is split into.
	Rounds int `json:"rounds"`
	// Concurrency is the messages the raw-sync and Python processors
	// handle at once, and the router concurrency of the main switchyard
	// row.
	Concurrency int `json:"concurrency"`
	// SwitchyardConcurrency are the router concurrencies of the switchyard
	// rows.
	SwitchyardConcurrency []int `json:"switchyard_concurrency"`
	// LimitWindow is how many inputs the limit loop holds unconfirmed.
	LimitWindow int `json:"limit_window"`
	// Outstanding is the load generator's bound on unanswered requests
	// (the Python row's is smaller; see Throughput.Outstanding).
	Outstanding int `json:"outstanding"`
	// MessageBytes is the size of the JSON request.
	MessageBytes int `json:"message_bytes"`
	// RoundTrips is the most sequential requests per variant.
	RoundTrips int `json:"round_trips"`
	// RoundTripS caps the round-trip measurement per variant in seconds.
	RoundTripS float64 `json:"round_trip_limit_s"`
	// LoadModel describes how the load generator keeps the pipe full.
	LoadModel string `json:"load_model"`
}

// Throughput is the pipeline throughput of one processor variant.
type Throughput struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Variant is limit, raw-sync, switchyard-c<N> or python.
	Variant string `json:"variant"`
	// Error is set when the variant could not be measured.
	Error string `json:"error,omitempty"`
	// Concurrency is how many messages the processor handles at once: 1
	// for the limit loop, the router concurrency for a switchyard row.
	Concurrency int `json:"concurrency"`
	// Window is how many inputs the limit loop holds unconfirmed (limit
	// rows only).
	Window int `json:"window,omitempty"`
	// Outstanding is the load generator's bound on unanswered requests.
	Outstanding int `json:"outstanding"`
	// MsgsPerSec is the rate of responses counted in the windows.
	MsgsPerSec float64 `json:"msgs_per_s"`
	// Messages is the number of responses counted in the windows.
	Messages uint64 `json:"messages"`
	// WindowS is the total length of the windows in seconds.
	WindowS float64 `json:"window_s"`
	// Latency is the end-to-end latency (request published to response
	// received) of the responses counted in the windows.
	Latency Latency `json:"latency"`
	// Sent counts all requests of the runs, warmup and drain included.
	Sent uint64 `json:"sent"`
	// Received counts all responses, duplicates included.
	Received uint64 `json:"received"`
	// Lost is Sent minus the distinct responses after the drain.
	Lost uint64 `json:"lost"`
	// Duplicates counts responses seen more than once.
	Duplicates uint64 `json:"duplicates"`
	// BadResponses counts sampled responses that did not decode to the
	// expected TextCompletionResponse.
	BadResponses uint64 `json:"bad_responses"`
	// CPUPerMsgUS is the CPU time (user+system) the processor used per
	// response in the windows, in microseconds; for in-process variants it
	// includes the load generator and counter, which are the same for
	// every variant of a backend.
	CPUPerMsgUS float64 `json:"cpu_per_msg_us,omitempty"`
}

// RoundTrip is the sequential request/response latency of one variant.
type RoundTrip struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Variant is raw-sync, switchyard-c<N> or python.
	Variant string `json:"variant"`
	// Error is set when the variant could not be measured.
	Error string `json:"error,omitempty"`
	// Requests is the number of measured requests.
	Requests uint64 `json:"requests"`
	// Timeouts counts requests without a response within 5 seconds.
	Timeouts uint64 `json:"timeouts"`
	// Latency is the time from publishing a request to receiving its response.
	Latency Latency `json:"latency"`
}

// Footprint is the start-up time and memory of a processor process.
type Footprint struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Processor is "echo-llm" or "python".
	Processor string `json:"processor"`
	// Error is set when the processor could not be measured.
	Error string `json:"error,omitempty"`
	// ReadyMS is the median time from exec to the ready log line, in
	// milliseconds, over ReadyRunsMS.
	ReadyMS float64 `json:"ready_ms"`
	// ReadyRunsMS are the exec-to-ready times of the single starts.
	ReadyRunsMS []float64 `json:"ready_runs_ms"`
	// IdleRSSMB is VmRSS after start and an idle pause, in MiB, and
	// IdleAnonMB and IdleFileMB its parts: private memory (RssAnon) and
	// mapped pages of the executable and libraries (RssFile), which are
	// shared and can be reclaimed.
	IdleRSSMB  float64 `json:"idle_rss_mb"`
	IdleAnonMB float64 `json:"idle_anon_mb"`
	IdleFileMB float64 `json:"idle_file_mb"`
	// LoadedRSSMB is VmRSS after a throughput load in MiB; zero when no
	// load could be applied (memory backend).
	LoadedRSSMB float64 `json:"loaded_rss_mb,omitempty"`
	// PeakRSSMB is the process's VmHWM after the load in MiB.
	PeakRSSMB float64 `json:"peak_rss_mb,omitempty"`
	// LoadMsgsPerSec is the throughput of that load.
	LoadMsgsPerSec float64 `json:"load_msgs_per_s,omitempty"`
}

// ToolRun is one run of a broker's own load tool: what the broker does
// alone, without a processor, as an informational figure beside the
// pipeline's rows.
type ToolRun struct {
	// Backend is the broker the tool ran against.
	Backend string `json:"backend"`
	// Tool is the tool and its mode, e.g. "pulsar-perf produce".
	Tool string `json:"tool"`
	// Args are the arguments it ran with.
	Args []string `json:"args"`
	// Error is set when the tool could not be run or its output not read.
	Error string `json:"error,omitempty"`
	// Messages is the number of messages the tool reports sent or
	// received.
	Messages uint64 `json:"messages"`
	// MsgsPerSec is the rate the tool reports.
	MsgsPerSec float64 `json:"msgs_per_s"`
	// Note qualifies the figure.
	Note string `json:"note,omitempty"`
}

// RatioResult is one headline ratio.
type RatioResult struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Name says what is divided by what: "throughput switchyard-c1/limit"
	// (see ThroughputRatio, CPURatio and RoundTripRatio).
	Name string `json:"name"`
	// Value is the ratio.
	Value float64 `json:"value"`
}

// Target is one of the targets a run is reported against.
type Target struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Name says what is measured.
	Name string `json:"name"`
	// Value is the measured value.
	Value float64 `json:"value"`
	// Want is the target as text, e.g. ">= 0.95".
	Want string `json:"want"`
	// Met reports whether Value meets Want.
	Met bool `json:"met"`
}

// ThroughputRatio names the ratio of variant a's throughput to b's.
func ThroughputRatio(a, b string) string { return "throughput " + a + "/" + b }

// CPURatio names the ratio of variant a's CPU time per message to b's.
func CPURatio(a, b string) string { return "CPU per message " + a + "/" + b }

// RoundTripRatio names the ratio of variant a's round-trip median to b's.
func RoundTripRatio(a, b string) string { return "round-trip p50 " + a + "/" + b }

// WriteJSON writes r as indented JSON to path, creating its directory.
func (r *Results) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// mainSwitchyard returns the switchyard row of backend that the Python
// comparison, the round trip and the targets use: the one at
// Settings.Concurrency, or else the last switchyard row measured.
func (r *Results) mainSwitchyard(backend string) string {
	main := ""
	for _, t := range r.Throughput {
		if t.Backend != backend {
			continue
		}
		if c, ok := switchyardConcurrency(t.Variant); ok {
			if c == r.Settings.Concurrency {
				return t.Variant
			}
			main = t.Variant
		}
	}
	return main
}

// computeRatios fills r.Ratios and r.Targets from the measurements: for
// every switchyard row its throughput over the limit's and over raw-sync's
// and its CPU per message over raw-sync's; for the main switchyard row its
// throughput over Python's and its round trip over raw-sync's.
func (r *Results) computeRatios() {
	r.Ratios, r.Targets = nil, nil
	tp := map[[2]string]Throughput{}
	for _, t := range r.Throughput {
		if t.Error == "" && t.MsgsPerSec > 0 {
			tp[[2]string{t.Backend, t.Variant}] = t
		}
	}
	rt := map[[2]string]RoundTrip{}
	for _, t := range r.RoundTrip {
		if t.Error == "" && t.Latency.Samples > 0 {
			rt[[2]string{t.Backend, t.Variant}] = t
		}
	}
	add := func(b, name string, v float64) {
		r.Ratios = append(r.Ratios, RatioResult{Backend: b, Name: name, Value: round3(v)})
	}
	for _, b := range r.Settings.Backends {
		limit, okLimit := tp[[2]string{b, VariantLimit}]
		raw, okRaw := tp[[2]string{b, VariantRawSync}]
		main := r.mainSwitchyard(b)
		for _, t := range r.Throughput {
			if t.Backend != b {
				continue
			}
			if _, ok := switchyardConcurrency(t.Variant); !ok {
				continue
			}
			sy, ok := tp[[2]string{b, t.Variant}]
			if !ok {
				continue
			}
			if okLimit {
				add(b, ThroughputRatio(sy.Variant, VariantLimit), Ratio(sy.MsgsPerSec, limit.MsgsPerSec))
			}
			if okRaw {
				v := Ratio(sy.MsgsPerSec, raw.MsgsPerSec)
				add(b, ThroughputRatio(sy.Variant, VariantRawSync), v)
				if raw.CPUPerMsgUS > 0 && sy.CPUPerMsgUS > 0 {
					add(b, CPURatio(sy.Variant, VariantRawSync), sy.CPUPerMsgUS/raw.CPUPerMsgUS)
				}
				if sy.Variant == main {
					r.Targets = append(r.Targets, Target{Backend: b, Name: sy.Variant + " throughput vs raw-sync", Value: round3(v), Want: ">= 0.95", Met: v >= 0.95})
				}
			}
		}
		sy, okSy := tp[[2]string{b, main}]
		py, okPy := tp[[2]string{b, VariantPython}]
		if okSy && okPy {
			v := Ratio(sy.MsgsPerSec, py.MsgsPerSec)
			add(b, ThroughputRatio(main, VariantPython), v)
			r.Targets = append(r.Targets, Target{Backend: b, Name: main + " throughput vs Python", Value: round3(v), Want: ">= 10", Met: v >= 10})
		}
		rraw, okRaw := rt[[2]string{b, VariantRawSync}]
		rsy, okSy := rt[[2]string{b, main}]
		if okRaw && okSy {
			v := Ratio(rsy.Latency.P50, rraw.Latency.P50)
			add(b, RoundTripRatio(main, VariantRawSync), v)
			r.Targets = append(r.Targets, Target{Backend: b, Name: main + " round-trip p50 vs raw-sync", Value: round3(v), Want: "<= 1.10", Met: v <= 1.1})
		}
	}
	for _, f := range r.Footprint {
		if f.Error != "" || f.Processor != ProcessorEchoLLM {
			continue
		}
		if f.IdleRSSMB > 0 {
			r.Targets = append(r.Targets, Target{Backend: f.Backend, Name: "idle processor RSS (MiB)", Value: f.IdleRSSMB, Want: "< 25", Met: f.IdleRSSMB < 25})
		}
		if f.ReadyMS > 0 {
			r.Targets = append(r.Targets, Target{Backend: f.Backend, Name: "exec to ready (ms)", Value: f.ReadyMS, Want: "< 300", Met: f.ReadyMS < 300})
		}
	}
}

func round3(v float64) float64 {
	return float64(int64(v*1000+0.5)) / 1000
}

// WriteTable writes the results as aligned text tables.
func (r *Results) WriteTable(w io.Writer) error {
	var b strings.Builder
	s := r.Settings
	fmt.Fprintf(&b, "switchyard bench: %d CPUs, %s, load average %s at start, %s at end\n",
		r.Host.CPUs, r.Host.GoVersion, loadString(r.Host.LoadStart), loadString(r.Host.LoadEnd))
	fmt.Fprintf(&b, "\nPipeline throughput: %d B TextCompletionRequest -> response, window %gs in %d rounds (warmup %gs each), %d requests outstanding (Python %d)\n",
		s.MessageBytes, s.WindowS, s.Rounds, s.WarmupS, s.Outstanding, min(s.Outstanding, pythonWindow))
	fmt.Fprintf(&b, "limit: one consumer, asynchronous sends, input acked on the broker's confirmation, %d unconfirmed (memory: the raw-sync loop); raw-sync: %d workers, each waits for its send\n",
		s.LimitWindow, s.Concurrency)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tvariant\tconc\tmsgs/s\tp50 ms\tp99 ms\tCPU µs/msg\tvs limit\tvs raw-sync\tlost\t")
	limit, raw := map[string]float64{}, map[string]float64{}
	for _, t := range r.Throughput {
		if t.Error != "" {
			continue
		}
		switch t.Variant {
		case VariantLimit:
			limit[t.Backend] = t.MsgsPerSec
		case VariantRawSync:
			raw[t.Backend] = t.MsgsPerSec
		}
	}
	vs := func(v float64, base map[string]float64, backend string) string {
		if bv := base[backend]; bv > 0 {
			return fmt.Sprintf("%.3f", v/bv)
		}
		return "-"
	}
	for i, t := range r.Throughput {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t-\t-\t-\t-\t-\t-\t\n", t.Backend, t.Variant, t.Concurrency)
		} else {
			vsLimit, vsRaw := "-", "-"
			if t.Variant != VariantLimit {
				vsLimit = vs(t.MsgsPerSec, limit, t.Backend)
			}
			if t.Variant != VariantLimit && t.Variant != VariantRawSync {
				vsRaw = vs(t.MsgsPerSec, raw, t.Backend)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%.2f\t%.2f\t%s\t%s\t%s\t%d\t\n", t.Backend, t.Variant, t.Concurrency, t.MsgsPerSec, t.Latency.P50, t.Latency.P99,
				cpuString(t.CPUPerMsgUS), vsLimit, vsRaw, t.Lost)
		}
		if i == len(r.Throughput)-1 || r.Throughput[i+1].Backend != t.Backend {
			for _, x := range r.BrokerTools {
				if x.Backend != t.Backend {
					continue
				}
				if x.Error != "" {
					fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t-\t-\t\n", x.Backend, x.Tool)
					continue
				}
				// The tool's latencies are not comparable: its producer has no
				// bound on outstanding messages, and its consumer reads a
				// backlog.
				fmt.Fprintf(tw, "%s\t%s\t-\t%.0f\t-\t-\t-\t-\t-\t-\t\n", x.Backend, x.Tool, x.MsgsPerSec)
			}
		}
	}
	tw.Flush()
	writeErrors(&b, r.Throughput)
	for _, x := range r.BrokerTools {
		switch {
		case x.Error != "":
			fmt.Fprintf(&b, "  %s/%s: %s\n", x.Backend, x.Tool, x.Error)
		case x.Note != "":
			fmt.Fprintf(&b, "  %s/%s: %s\n", x.Backend, x.Tool, x.Note)
		}
	}

	if len(r.RoundTrip) > 0 {
		fmt.Fprintf(&b, "\nRequest/response round trip: one client, sequential requests (up to %d, at most %gs per variant)\n", s.RoundTrips, s.RoundTripS)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backend\tvariant\trequests\tp50 ms\tp99 ms\tvs raw-sync p50\t")
		rawP50 := map[string]float64{}
		for _, t := range r.RoundTrip {
			if t.Variant == VariantRawSync && t.Error == "" {
				rawP50[t.Backend] = t.Latency.P50
			}
		}
		for _, t := range r.RoundTrip {
			if t.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t\n", t.Backend, t.Variant)
				continue
			}
			vs := "-"
			if rv := rawP50[t.Backend]; rv > 0 && t.Variant != VariantRawSync {
				vs = fmt.Sprintf("%.3f", t.Latency.P50/rv)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.3f\t%.3f\t%s\t\n", t.Backend, t.Variant, t.Latency.Samples, t.Latency.P50, t.Latency.P99, vs)
		}
		tw.Flush()
		for _, t := range r.RoundTrip {
			if t.Error != "" {
				fmt.Fprintf(&b, "  %s/%s: %s\n", t.Backend, t.Variant, t.Error)
			}
		}
	}

	if len(r.Footprint) > 0 {
		fmt.Fprintf(&b, "\nFootprint: processor process, exec to ready (median of runs), RSS idle and after load\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backend\tprocessor\tready ms\tidle RSS MiB\t(anon + file)\tloaded RSS MiB\tpeak RSS MiB\tload msgs/s\t")
		for _, f := range r.Footprint {
			if f.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t\n", f.Backend, f.Processor)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.1f\t%.1f + %.1f\t%s\t%s\t%s\t\n", f.Backend, f.Processor, f.ReadyMS, f.IdleRSSMB, f.IdleAnonMB, f.IdleFileMB,
				optional(f.LoadedRSSMB, "%.1f"), optional(f.PeakRSSMB, "%.1f"), optional(f.LoadMsgsPerSec, "%.0f"))
		}
		tw.Flush()
		for _, f := range r.Footprint {
			if f.Error != "" {
				fmt.Fprintf(&b, "  %s/%s: %s\n", f.Backend, f.Processor, f.Error)
			}
		}
	}

	if len(r.Ratios) > 0 {
		fmt.Fprintf(&b, "\nHeadline ratios\n")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, x := range r.Ratios {
			fmt.Fprintf(tw, "  %s\t%s\t%.3f\t\n", x.Backend, x.Name, x.Value)
		}
		tw.Flush()
	}

	fmt.Fprintf(&b, "\nTargets\n")
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "backend\ttarget\tmeasured\twant\tmet\t")
	for _, t := range r.Targets {
		met := "yes"
		if !t.Met {
			met = "NO"
		}
		fmt.Fprintf(tw, "%s\t%s\t%.3g\t%s\t%s\t\n", t.Backend, t.Name, t.Value, t.Want, met)
	}
	tw.Flush()
	_, err := io.WriteString(w, b.String())
	return err
}

func writeErrors(b *strings.Builder, ts []Throughput) {
	for _, t := range ts {
		if t.Error != "" {
			fmt.Fprintf(b, "  %s/%s: %s\n", t.Backend, t.Variant, t.Error)
		}
	}
}

func optional(v float64, format string) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf(format, v)
}

func cpuString(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f", v)
}

func loadString(l []float64) string {
	if len(l) == 0 {
		return "n/a"
	}
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = fmt.Sprintf("%.2f", v)
	}
	return strings.Join(parts, "/")
}

// Failures counts the measurements that could not be made.
func (r *Results) Failures() int {
	n := 0
	for _, t := range r.Throughput {
		if t.Error != "" {
			n++
		}
	}
	for _, f := range r.Footprint {
		if f.Error != "" {
			n++
		}
	}
	for _, x := range r.BrokerTools {
		if x.Error != "" {
			n++
		}
	}
	return n
}
