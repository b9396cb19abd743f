package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/switchyard-go/switchyard/bench"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// benchCommand is `switchyard bench`: the throughput, round-trip and
// footprint benchmarks of package bench, with a table on stdout, progress on
// stderr and the results as JSON in --out.
func benchCommand() *cli.Command {
	var (
		cfg       bench.Config
		backends  string
		variants  string
		syConc    string
		mqttHost  string
		mqttPort  int
		out       string
		pyScript  string
		noPython  bool
		noFootprt bool
	)
	return &cli.Command{
		Name:      "bench",
		Usage:     "measure throughput, round trip and footprint of switchyard against the broker's limit, raw clients and Python",
		UsageText: "switchyard bench [--backends memory,mqtt,pulsar,rabbitmq,kafka] [--variants limit,raw-sync,switchyard,python] [--duration 16s] [--out bench/results.json]",
		Description: "For each backend, runs the same 1 KiB TextCompletionRequest pipeline through\n" +
			"  limit:         the broker's client library alone, one consumer, asynchronous sends, each input acked\n" +
			"                 when its response is confirmed, --limit-window inputs unconfirmed;\n" +
			"  raw-sync:      --concurrency workers on the client library (RabbitMQ, Kafka, memory: on switchyard's\n" +
			"                 adapter without the router), each waiting for its send before it acks;\n" +
			"  switchyard-cN: a switchyard router handler at each --switchyard-concurrency;\n" +
			"  python:        (Pulsar) a Python trustgraph-base processor;\n" +
			"then a sequential request/response round trip; on Pulsar pulsar-perf produce and consume (--pulsar-perf);\n" +
			"then starts the echo-llm binary to time exec-to-ready and read its RSS. The table goes to stdout.\n" +
			"The brokers must be running (scripts/bench.sh starts them). See bench/README.md.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "backends", Value: "memory,mqtt,pulsar,rabbitmq,kafka", Usage: "comma-separated backends to measure", Destination: &backends},
			&cli.DurationFlag{Name: "duration", Value: bench.DefaultDuration, Usage: "steady-state throughput window per variant (split over --rounds)", Destination: &cfg.Duration},
			&cli.DurationFlag{Name: "warmup", Value: bench.DefaultWarmup, Usage: "load before each window starts", Destination: &cfg.Warmup},
			&cli.IntFlag{Name: "rounds", Value: bench.DefaultRounds, Usage: "rounds per variant, in alternating variant order", Destination: &cfg.Rounds},
			&cli.StringFlag{Name: "variants", Value: "limit,raw-sync,switchyard,python", Usage: "comma-separated variant kinds to measure", Destination: &variants},
			&cli.IntFlag{Name: "concurrency", Value: bench.DefaultConcurrency, Usage: "messages the raw-sync and Python processors handle at once; the switchyard row the round trip and targets use", Destination: &cfg.Concurrency},
			&cli.StringFlag{Name: "switchyard-concurrency", Usage: "comma-separated router concurrencies, one switchyard row each (default: 1 and --concurrency)", Destination: &syConc},
			&cli.IntFlag{Name: "limit-window", Value: bench.DefaultLimitWindow, Usage: "inputs the limit loop holds unconfirmed", Destination: &cfg.LimitWindow},
			&cli.IntFlag{Name: "outstanding", Value: bench.DefaultWindow, Usage: "requests the load generator keeps in flight (the Python row at most 256)", Destination: &cfg.Window},
			&cli.IntFlag{Name: "message-size", Value: bench.DefaultMessageSize, Usage: "approximate request size in bytes", Destination: &cfg.MessageSize},
			&cli.IntFlag{Name: "round-trips", Value: bench.DefaultRoundTrips, Usage: "sequential requests per variant; 0 skips the round trip", Destination: &cfg.RoundTrips},
			&cli.DurationFlag{Name: "round-trip-time", Value: bench.DefaultRoundTripTime, Usage: "time cap of the round trip per variant; it stops early with fewer requests", Destination: &cfg.RoundTripLimit},
			&cli.StringFlag{Name: "pulsar-host", EnvVars: []string{"SWITCHYARD_PULSAR_URL", "PULSAR_HOST"}, Value: bench.DefaultPulsarURL, Usage: "Pulsar broker URL", Destination: &cfg.PulsarURL, Category: "Brokers"},
			&cli.StringFlag{Name: "pulsar-api-key", EnvVars: []string{"PULSAR_API_KEY"}, Usage: "Pulsar token for authentication", Destination: &cfg.PulsarToken, Category: "Brokers"},
			&cli.StringFlag{Name: "mqtt-host", EnvVars: []string{"MQTT_HOST"}, Value: "localhost", Usage: "MQTT broker host", Destination: &mqttHost, Category: "Brokers"},
			&cli.IntFlag{Name: "mqtt-port", EnvVars: []string{"MQTT_PORT"}, Value: 1883, Usage: "MQTT broker port", Destination: &mqttPort, Category: "Brokers"},
			&cli.StringFlag{Name: "rabbitmq-host", EnvVars: []string{"SWITCHYARD_RABBITMQ_HOST", "RABBITMQ_HOST"}, Value: rabbitmqpubsub.DefaultHost, Usage: "RabbitMQ broker host", Destination: &cfg.RabbitMQ.Host, Category: "Brokers"},
			&cli.IntFlag{Name: "rabbitmq-port", EnvVars: []string{"SWITCHYARD_RABBITMQ_PORT", "RABBITMQ_PORT"}, Value: rabbitmqpubsub.DefaultPort, Usage: "RabbitMQ AMQP port", Destination: &cfg.RabbitMQ.Port, Category: "Brokers"},
			&cli.StringFlag{Name: "rabbitmq-username", EnvVars: []string{"SWITCHYARD_RABBITMQ_USER", "RABBITMQ_USERNAME"}, Value: rabbitmqpubsub.DefaultUsername, Usage: "RabbitMQ user", Destination: &cfg.RabbitMQ.Username, Category: "Brokers"},
			// No Value: --help must never show a password.
			&cli.StringFlag{Name: "rabbitmq-password", EnvVars: []string{"SWITCHYARD_RABBITMQ_PASSWORD", "RABBITMQ_PASSWORD"}, Usage: "RabbitMQ password (default guest)", Destination: &cfg.RabbitMQ.Password, Category: "Brokers"},
			&cli.StringFlag{Name: "kafka-bootstrap-servers", EnvVars: []string{"SWITCHYARD_KAFKA_BOOTSTRAP", "KAFKA_BOOTSTRAP_SERVERS"}, Value: bench.DefaultKafkaServers, Usage: "Kafka seed brokers (PLAINTEXT), host:port[,host:port...]", Destination: &cfg.Kafka.BootstrapServers, Category: "Brokers"},
			&cli.StringFlag{Name: "python", EnvVars: []string{"SWITCHYARD_BENCH_PYTHON"}, Usage: "Python interpreter with trustgraph-base (scripts/python-env.sh prints it); empty skips the Python variant", Destination: &cfg.Python, Category: "Processors"},
			&cli.StringFlag{Name: "python-script", Value: filepath.Join("bench", "tg_processor.py"), Usage: "the Python processor script", Destination: &pyScript, Category: "Processors"},
			&cli.BoolFlag{Name: "no-python", Usage: "skip the Python variant", Destination: &noPython, Category: "Processors"},
			&cli.StringFlag{Name: "pulsar-perf", Usage: "bin/pulsar-perf of a Pulsar distribution, run for produce and consume figures on Pulsar; empty skips it", Destination: &cfg.PulsarPerf, Category: "Processors"},
			&cli.DurationFlag{Name: "pulsar-perf-time", Value: bench.DefaultPulsarPerf, Usage: "how long each of pulsar-perf produce and consume runs", Destination: &cfg.PulsarPerfTime, Category: "Processors"},
			&cli.StringFlag{Name: "echo-llm", Usage: "echo-llm binary for the footprint measurement (default: next to this binary)", Destination: &cfg.EchoLLM, Category: "Processors"},
			&cli.BoolFlag{Name: "no-footprint", Usage: "skip the footprint measurement", Destination: &noFootprt, Category: "Processors"},
			&cli.IntFlag{Name: "ready-runs", Value: bench.DefaultReadyRuns, Usage: "processor starts timed per backend", Destination: &cfg.ReadyRuns, Category: "Processors"},
			&cli.DurationFlag{Name: "footprint-load", Value: bench.DefaultFootprintLoad, Usage: "load through the processor binary before its loaded RSS is read; 0 skips it", Destination: &cfg.FootprintLoad, Category: "Processors"},
			&cli.StringFlag{Name: "out", Value: filepath.Join("bench", "results.json"), Usage: "file the results are written to as JSON; empty writes none", Destination: &out},
			&cli.StringFlag{Name: "cpuprofile", Usage: "CPU-profile every throughput window into `PREFIX`-<backend>-<variant>[-rN].cpu.prof", Destination: &cfg.CPUProfile, Category: "Profiling"},
			&cli.StringFlag{Name: "memprofile", Usage: "write the allocations of every throughput window to `PREFIX`-<backend>-<variant>[-rN].allocs.prof (base: .allocs-base.prof)", Destination: &cfg.MemProfile, Category: "Profiling"},
			&cli.DurationFlag{Name: "progress-every", Value: bench.DefaultProgressEvery, Usage: "period of the progress counter lines", Destination: &cfg.ProgressEvery},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return processor.Usagef("unexpected argument %q", c.Args().First())
			}
			for _, b := range strings.Split(backends, ",") {
				if b = strings.TrimSpace(b); b != "" {
					cfg.Backends = append(cfg.Backends, b)
				}
			}
			if len(cfg.Backends) == 0 {
				return processor.Usagef("--backends lists no backend")
			}
			for _, v := range strings.Split(variants, ",") {
				if v = strings.TrimSpace(v); v != "" {
					cfg.Variants = append(cfg.Variants, v)
				}
			}
			if len(cfg.Variants) == 0 {
				return processor.Usagef("--variants lists no variant")
			}
			for _, f := range strings.Split(syConc, ",") {
				if f = strings.TrimSpace(f); f == "" {
					continue
				}
				n, err := strconv.Atoi(f)
				if err != nil {
					return processor.Usagef("--switchyard-concurrency: %q is not a number", f)
				}
				cfg.SwitchyardConcurrency = append(cfg.SwitchyardConcurrency, n)
			}
			if cfg.PulsarPerf != "" {
				if _, err := os.Stat(cfg.PulsarPerf); err != nil {
					return processor.Usagef("--pulsar-perf: %v", err)
				}
			}
			if mqttPort < 1 || mqttPort > 65535 {
				return processor.Usagef("--mqtt-port must be between 1 and 65535, got %d", mqttPort)
			}
			cfg.MQTTAddr = fmt.Sprintf("%s:%d", mqttHost, mqttPort)
			if cfg.MQTTAddr[0] != '[' && strings.Contains(mqttHost, ":") {
				cfg.MQTTAddr = fmt.Sprintf("[%s]:%d", mqttHost, mqttPort)
			}
			if noPython {
				cfg.Python = ""
			}
			if cfg.RabbitMQ.Password == "" {
				cfg.RabbitMQ.Password = rabbitmqpubsub.DefaultPassword
			}
			if cfg.Python != "" {
				if _, err := os.Stat(pyScript); err != nil {
					return processor.Usagef("--python-script: %v", err)
				}
				cfg.PythonScript = pyScript
			}
			switch {
			case noFootprt:
				cfg.EchoLLM = ""
			case cfg.EchoLLM == "":
				cfg.EchoLLM = siblingBinary("echo-llm")
			}
			if cfg.EchoLLM != "" {
				if _, err := os.Stat(cfg.EchoLLM); err != nil {
					return processor.Usagef("--echo-llm: %v", err)
				}
			}
			cfg.Progress = c.App.ErrWriter
			cfg.Log = c.App.ErrWriter
			// Zero means "skip" on the command line and "default" in Config.
			if cfg.RoundTrips == 0 {
				cfg.RoundTrips = -1
			}
			if cfg.FootprintLoad == 0 {
				cfg.FootprintLoad = -1
			}
			if err := cfg.Validate(); err != nil {
				return &processor.UsageError{Err: err}
			}
			if cfg.EchoLLM == "" && !noFootprt {
				fmt.Fprintln(c.App.ErrWriter, "bench: no echo-llm binary next to this one and no --echo-llm: footprint skipped")
			}
			res, runErr := bench.Run(c.Context, cfg)
			if res == nil {
				return &processor.UsageError{Err: runErr}
			}
			if err := res.WriteTable(c.App.Writer); err != nil {
				return err
			}
			if out != "" {
				if err := res.WriteJSON(out); err != nil {
					return fmt.Errorf("writing %s: %w", out, err)
				}
				fmt.Fprintf(c.App.ErrWriter, "bench: results written to %s\n", out)
			}
			if runErr != nil {
				if errors.Is(runErr, context.Canceled) {
					return errors.New("interrupted; the results above are partial")
				}
				return runErr
			}
			if n := res.Failures(); n > 0 {
				return fmt.Errorf("%d measurement(s) failed; see the errors above", n)
			}
			return nil
		},
	}
}

// siblingBinary returns the path of the named binary in the directory of
// the running executable, or "" when there is none.
func siblingBinary(name string) string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	p := filepath.Join(filepath.Dir(exe), name)
	if st, err := os.Stat(p); err != nil || st.IsDir() {
		return ""
	}
	return p
}
