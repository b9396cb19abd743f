package bench

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// Backend names a benchmark can run on.
const (
	BackendMemory   = "memory"
	BackendMQTT     = "mqtt"
	BackendPulsar   = "pulsar"
	BackendRabbitMQ = "rabbitmq"
	BackendKafka    = "kafka"
)

// backendNames lists the backends a benchmark can run on, in the default
// order.
var backendNames = []string{BackendMemory, BackendMQTT, BackendPulsar, BackendRabbitMQ, BackendKafka}

// Variant kinds: the processors a benchmark compares. Every kind is one row
// per backend, except VariantSwitchyard, which is one row per router
// concurrency (see SwitchyardVariant).
const (
	// VariantLimit is the broker's own best figure for the pipeline on this
	// machine: a loop on the broker's client library, no watermill and no
	// router, with one consumer, each response sent asynchronously (batched
	// where the client batches) and each input acked when the broker
	// confirmed its response, at most Config.LimitWindow inputs unconfirmed
	// at a time. On the memory backend, which has no client and confirms a
	// publish when it returns, it is the raw-sync loop.
	VariantLimit = "limit"
	// VariantRawSync is a hand-written loop on the broker's own client
	// library (pulsar-client-go, paho), or where switchyard's adapter is the
	// client (memory, RabbitMQ, Kafka) a loop on the adapter's publisher and
	// subscriber, without the router and its middleware: Concurrency
	// workers, each publishing its response, waiting for the broker's
	// confirmation, then acking the input.
	VariantRawSync = "raw-sync"
	// VariantSwitchyard is the same work as a typed handler registered with
	// router.Handle, with the default middleware stack. Its rows are named
	// by SwitchyardVariant.
	VariantSwitchyard = "switchyard"
	// VariantPython is the same work in Python on trustgraph-base's own
	// consumer and producer code (Pulsar only).
	VariantPython = "python"
)

// variantKinds lists the variant kinds in the order a round runs them.
var variantKinds = []string{VariantLimit, VariantRawSync, VariantSwitchyard, VariantPython}

// SwitchyardVariant is the name of the switchyard row whose router runs
// with the given concurrency: "switchyard-c8".
func SwitchyardVariant(concurrency int) string {
	return VariantSwitchyard + "-c" + strconv.Itoa(concurrency)
}

// isSwitchyard reports whether variant is a switchyard row.
func isSwitchyard(variant string) bool {
	_, ok := switchyardConcurrency(variant)
	return ok
}

// switchyardConcurrency reports whether variant is a switchyard row and
// with which router concurrency.
func switchyardConcurrency(variant string) (int, bool) {
	rest, ok := strings.CutPrefix(variant, VariantSwitchyard+"-c")
	if !ok {
		return 0, false
	}
	c, err := strconv.Atoi(rest)
	if err != nil || c < 1 {
		return 0, false
	}
	return c, true
}

// Config says what a benchmark run measures and where the brokers are.
type Config struct {
	// Backends to measure, in order: memory, mqtt, pulsar, rabbitmq, kafka.
	Backends []string
	// Duration is the steady-state measurement window of one throughput
	// variant, split evenly over Rounds.
	Duration time.Duration
	// Warmup runs the load before each measurement window starts.
	Warmup time.Duration
	// Rounds splits each window into this many rounds, the variants in
	// alternating order (raw, switchyard, ... then the reverse), so that a
	// change of machine load during the run affects every variant alike.
	Rounds int
	// Concurrency is how many messages a processor handles at once in the
	// raw-sync and Python rows (raw worker count, Python ReceiverPool
	// concurrency), and the router concurrency of the switchyard row that
	// the round trip, the Python comparison and the targets use.
	Concurrency int
	// SwitchyardConcurrency lists the router concurrencies of the
	// switchyard rows, one row each; empty: 1 and Concurrency.
	SwitchyardConcurrency []int
	// Variants lists the variant kinds to measure (limit, raw-sync,
	// switchyard, python); empty: all. Python runs on Pulsar only and only
	// when Python is set.
	Variants []string
	// LimitWindow is how many inputs the limit loop holds unconfirmed:
	// taken from the broker, response sent, its confirmation not yet back.
	LimitWindow int
	// Window is how many requests the load generator keeps outstanding
	// (published, response not yet counted); the Python row gets at most
	// pythonWindow of them.
	Window int
	// MessageSize is the approximate size in bytes of the JSON request.
	MessageSize int
	// RoundTrips is the number of sequential requests of the round-trip
	// measurement per variant (split over Rounds); negative skips it.
	RoundTrips int
	// RoundTripLimit caps the time the round-trip measurement of one
	// variant takes (split over Rounds); it ends early with fewer requests
	// on a slow path.
	RoundTripLimit time.Duration

	// PulsarURL is the Pulsar broker, pulsar://host:port.
	PulsarURL string
	// PulsarToken is an optional authentication token. Never printed.
	PulsarToken string
	// MQTTAddr is the MQTT broker as host:port.
	MQTTAddr string
	// RabbitMQ says how to reach the RabbitMQ broker: host, port, user and
	// password (never printed), virtual host.
	RabbitMQ rabbitmqpubsub.ConnectionConfig
	// Kafka says how to reach the Kafka cluster: the bootstrap servers of
	// a PLAINTEXT listener.
	Kafka kafkapubsub.Config

	// Python is the interpreter with trustgraph-base installed; empty
	// skips the Python variant.
	Python string
	// PythonScript is the path of tg_processor.py.
	PythonScript string
	// PulsarPerf is the pulsar-perf script of the Pulsar distribution
	// (bin/pulsar-perf); empty skips its produce and consume runs.
	PulsarPerf string
	// PulsarPerfTime is how long each of pulsar-perf produce and consume
	// runs.
	PulsarPerfTime time.Duration

	// EchoLLM is the path of the examples/echo-llm binary; empty skips the
	// footprint measurement.
	EchoLLM string
	// ReadyRuns is how many times the footprint measurement starts the
	// processor to time exec-to-ready.
	ReadyRuns int
	// FootprintLoad is how long the footprint measurement loads the
	// processor binary before it reads the RSS again; negative skips the
	// load.
	FootprintLoad time.Duration

	// CPUProfile, when set, is a file name prefix: every throughput
	// window is CPU-profiled into PREFIX-<backend>-<variant>.cpu.prof.
	CPUProfile string
	// MemProfile, when set, is a file name prefix: the allocations of
	// every throughput window are written to
	// PREFIX-<backend>-<variant>.allocs.prof, with the profile at the
	// window's start as PREFIX-<backend>-<variant>.allocs-base.prof
	// (compare with go tool pprof -base).
	MemProfile string

	// Progress receives one line per phase and periodic counters; nil
	// discards them.
	Progress io.Writer
	// ProgressEvery is the period of the counter lines.
	ProgressEvery time.Duration
	// Log receives warnings and errors of the processors under test; nil
	// discards them.
	Log io.Writer
}

// Defaults of Config, used for zero fields.
const (
	DefaultDuration      = 16 * time.Second
	DefaultWarmup        = 2 * time.Second
	DefaultRounds        = 4
	DefaultConcurrency   = 8
	DefaultLimitWindow   = 1024
	DefaultWindow        = 4096
	DefaultPulsarPerf    = 10 * time.Second
	DefaultMessageSize   = 1024
	DefaultRoundTrips    = 1000
	DefaultRoundTripTime = 15 * time.Second
	DefaultReadyRuns     = 3
	DefaultFootprintLoad = 5 * time.Second
	DefaultProgressEvery = 5 * time.Second
	DefaultPulsarURL     = "pulsar://127.0.0.1:6650"
	DefaultMQTTAddr      = "127.0.0.1:1883"
	DefaultKafkaServers  = "127.0.0.1:9092"
)

// SetDefaults fills zero fields with their defaults.
func (c *Config) SetDefaults() {
	if len(c.Backends) == 0 {
		c.Backends = append([]string(nil), backendNames...)
	}
	if c.Duration == 0 {
		c.Duration = DefaultDuration
	}
	if c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.Rounds == 0 {
		c.Rounds = DefaultRounds
	}
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if len(c.SwitchyardConcurrency) == 0 {
		c.SwitchyardConcurrency = []int{1}
		if c.Concurrency != 1 {
			c.SwitchyardConcurrency = append(c.SwitchyardConcurrency, c.Concurrency)
		}
	}
	if len(c.Variants) == 0 {
		c.Variants = append([]string(nil), variantKinds...)
	}
	if c.LimitWindow == 0 {
		c.LimitWindow = DefaultLimitWindow
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.PulsarPerfTime == 0 {
		c.PulsarPerfTime = DefaultPulsarPerf
	}
	if c.MessageSize == 0 {
		c.MessageSize = DefaultMessageSize
	}
	if c.RoundTrips == 0 {
		c.RoundTrips = DefaultRoundTrips
	}
	if c.RoundTripLimit == 0 {
		c.RoundTripLimit = DefaultRoundTripTime
	}
	if c.ReadyRuns == 0 {
		c.ReadyRuns = DefaultReadyRuns
	}
	if c.FootprintLoad == 0 {
		c.FootprintLoad = DefaultFootprintLoad
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = DefaultProgressEvery
	}
	if c.PulsarURL == "" {
		c.PulsarURL = DefaultPulsarURL
	}
	if c.MQTTAddr == "" {
		c.MQTTAddr = DefaultMQTTAddr
	}
	if c.RabbitMQ.Host == "" {
		c.RabbitMQ.Host = rabbitmqpubsub.DefaultHost
	}
	if c.RabbitMQ.Port == 0 {
		c.RabbitMQ.Port = rabbitmqpubsub.DefaultPort
	}
	if c.RabbitMQ.Username == "" {
		c.RabbitMQ.Username = rabbitmqpubsub.DefaultUsername
	}
	if c.RabbitMQ.Password == "" {
		c.RabbitMQ.Password = rabbitmqpubsub.DefaultPassword
	}
	if c.RabbitMQ.VHost == "" {
		c.RabbitMQ.VHost = rabbitmqpubsub.DefaultVHost
	}
	if c.Kafka.BootstrapServers == "" {
		c.Kafka.BootstrapServers = DefaultKafkaServers
	}
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	seen := map[string]bool{}
	for _, b := range c.Backends {
		if !slices.Contains(backendNames, b) {
			return fmt.Errorf("backend %q is not one of %s", b, strings.Join(backendNames, ", "))
		}
		if seen[b] {
			return fmt.Errorf("backend %q is listed twice", b)
		}
		seen[b] = true
	}
	seen = map[string]bool{}
	for _, v := range c.Variants {
		if !slices.Contains(variantKinds, v) {
			return fmt.Errorf("variant %q is not one of %s", v, strings.Join(variantKinds, ", "))
		}
		if seen[v] {
			return fmt.Errorf("variant %q is listed twice", v)
		}
		seen[v] = true
	}
	conc := map[int]bool{}
	for _, n := range c.SwitchyardConcurrency {
		if n < 1 {
			return fmt.Errorf("switchyard concurrency must be at least 1, got %d", n)
		}
		if conc[n] {
			return fmt.Errorf("switchyard concurrency %d is listed twice", n)
		}
		conc[n] = true
	}
	switch {
	case c.Duration < 100*time.Millisecond:
		return fmt.Errorf("duration must be at least 100ms, got %s", c.Duration)
	case c.Warmup < 0:
		return errors.New("warmup must not be negative")
	case c.Rounds < 1:
		return fmt.Errorf("rounds must be at least 1, got %d", c.Rounds)
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency must be at least 1, got %d", c.Concurrency)
	case c.Window < 1:
		return fmt.Errorf("window must be at least 1, got %d", c.Window)
	case c.LimitWindow < 1:
		return fmt.Errorf("limit window must be at least 1, got %d", c.LimitWindow)
	case c.PulsarPerfTime < time.Second:
		return fmt.Errorf("pulsar-perf time must be at least 1s, got %s", c.PulsarPerfTime)
	case c.MessageSize < 64 || c.MessageSize > 4<<20:
		return fmt.Errorf("message size must be between 64 B and 4 MiB, got %d", c.MessageSize)
	case c.RoundTripLimit < 0:
		return errors.New("round-trip limit must not be negative")
	case c.ReadyRuns < 1:
		return fmt.Errorf("ready runs must be at least 1, got %d", c.ReadyRuns)
	}
	if !strings.HasPrefix(c.PulsarURL, "pulsar://") && !strings.HasPrefix(c.PulsarURL, "pulsar+ssl://") {
		return fmt.Errorf("pulsar URL %q must start with pulsar:// or pulsar+ssl://", c.PulsarURL)
	}
	if _, _, err := splitHostPort(c.MQTTAddr); err != nil {
		return err
	}
	if slices.Contains(c.Backends, BackendRabbitMQ) {
		if err := c.RabbitMQ.Validate(); err != nil {
			return err
		}
	}
	if slices.Contains(c.Backends, BackendKafka) {
		if err := c.Kafka.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// splitHostPort splits an MQTT address into host and port.
func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("MQTT address %q must be host:port", addr)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("MQTT address %q: port must be between 1 and 65535", addr)
	}
	return host, port, nil
}
