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
	// Concurrency is the messages each processor handles at once.
	Concurrency int `json:"concurrency"`
	// Outstanding is the load generator's bound on unanswered requests.
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
	// Variant is raw, switchyard or python.
	Variant string `json:"variant"`
	// Error is set when the variant could not be measured.
	Error string `json:"error,omitempty"`
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
	// Variant is raw, switchyard or python.
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

// RatioResult is one headline ratio.
type RatioResult struct {
	// Backend is memory, mqtt, pulsar, rabbitmq or kafka.
	Backend string `json:"backend"`
	// Name says what is divided by what (see the Ratio constants).
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

// Names of the headline ratios.
const (
	// RatioThroughputVsRaw is the router's throughput over the raw loop's.
	RatioThroughputVsRaw = "throughput switchyard/raw"
	// RatioThroughputVsPython is the router's throughput over Python's.
	RatioThroughputVsPython = "throughput switchyard/python"
	// RatioRoundTripP50VsRaw is the router's round-trip median over the raw loop's.
	RatioRoundTripP50VsRaw = "round-trip p50 switchyard/raw"
	// RatioCPUVsRaw is the CPU time per message with the router over the raw loop's.
	RatioCPUVsRaw = "CPU per message switchyard/raw"
)

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

// computeRatios fills r.Ratios and r.Targets from the measurements.
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
	for _, b := range r.Settings.Backends {
		raw, okRaw := tp[[2]string{b, VariantRaw}]
		sy, okSy := tp[[2]string{b, VariantSwitchyard}]
		if okRaw && okSy {
			v := Ratio(sy.MsgsPerSec, raw.MsgsPerSec)
			r.Ratios = append(r.Ratios, RatioResult{Backend: b, Name: RatioThroughputVsRaw, Value: round3(v)})
			r.Targets = append(r.Targets, Target{Backend: b, Name: "router throughput vs raw", Value: round3(v), Want: ">= 0.95", Met: v >= 0.95})
			if raw.CPUPerMsgUS > 0 && sy.CPUPerMsgUS > 0 {
				r.Ratios = append(r.Ratios, RatioResult{Backend: b, Name: RatioCPUVsRaw, Value: round3(sy.CPUPerMsgUS / raw.CPUPerMsgUS)})
			}
		}
		py, okPy := tp[[2]string{b, VariantPython}]
		if okSy && okPy {
			v := Ratio(sy.MsgsPerSec, py.MsgsPerSec)
			r.Ratios = append(r.Ratios, RatioResult{Backend: b, Name: RatioThroughputVsPython, Value: round3(v)})
			r.Targets = append(r.Targets, Target{Backend: b, Name: "throughput vs Python", Value: round3(v), Want: ">= 10", Met: v >= 10})
		}
		rraw, okRaw := rt[[2]string{b, VariantRaw}]
		rsy, okSy := rt[[2]string{b, VariantSwitchyard}]
		if okRaw && okSy {
			v := Ratio(rsy.Latency.P50, rraw.Latency.P50)
			r.Ratios = append(r.Ratios, RatioResult{Backend: b, Name: RatioRoundTripP50VsRaw, Value: round3(v)})
			r.Targets = append(r.Targets, Target{Backend: b, Name: "round-trip p50 vs raw", Value: round3(v), Want: "<= 1.10", Met: v <= 1.1})
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
	fmt.Fprintf(&b, "\nPipeline throughput: %d B TextCompletionRequest -> response, window %gs in %d rounds (warmup %gs each), concurrency %d, %d requests outstanding\n",
		s.MessageBytes, s.WindowS, s.Rounds, s.WarmupS, s.Concurrency, s.Outstanding)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "backend\tvariant\tmsgs/s\tp50 ms\tp99 ms\tCPU µs/msg\tvs raw\tlost\t")
	raw := map[string]float64{}
	for _, t := range r.Throughput {
		if t.Variant == VariantRaw && t.Error == "" {
			raw[t.Backend] = t.MsgsPerSec
		}
	}
	for _, t := range r.Throughput {
		if t.Error != "" {
			fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t-\t-\t\n", t.Backend, t.Variant)
			continue
		}
		vs := "-"
		if rv := raw[t.Backend]; rv > 0 && t.Variant != VariantRaw {
			vs = fmt.Sprintf("%.3f", t.MsgsPerSec/rv)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.2f\t%.2f\t%s\t%s\t%d\t\n", t.Backend, t.Variant, t.MsgsPerSec, t.Latency.P50, t.Latency.P99, cpuString(t.CPUPerMsgUS), vs, t.Lost)
	}
	tw.Flush()
	writeErrors(&b, r.Throughput)

	if len(r.RoundTrip) > 0 {
		fmt.Fprintf(&b, "\nRequest/response round trip: one client, sequential requests (up to %d, at most %gs per variant)\n", s.RoundTrips, s.RoundTripS)
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "backend\tvariant\trequests\tp50 ms\tp99 ms\tvs raw p50\t")
		rawP50 := map[string]float64{}
		for _, t := range r.RoundTrip {
			if t.Variant == VariantRaw && t.Error == "" {
				rawP50[t.Backend] = t.Latency.P50
			}
		}
		for _, t := range r.RoundTrip {
			if t.Error != "" {
				fmt.Fprintf(tw, "%s\t%s\t-\t-\t-\t-\t\n", t.Backend, t.Variant)
				continue
			}
			vs := "-"
			if rv := rawP50[t.Backend]; rv > 0 && t.Variant != VariantRaw {
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
	return n
}
