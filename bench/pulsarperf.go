package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/apache/pulsar-client-go/pulsar"
)

// Tool names of the pulsar-perf runs.
const (
	ToolPulsarPerfProduce = "pulsar-perf produce"
	ToolPulsarPerfConsume = "pulsar-perf consume"
)

// pulsarPerfRate is pulsar-perf produce's --rate: far above what one
// producer reaches here, so that the producer is not rate limited (the tool
// refuses 0).
const pulsarPerfRate = 10_000_000

// pulsarPerfSubscription is the subscription the backlog is kept for and
// pulsar-perf consume reads.
const pulsarPerfSubscription = "perf"

// pulsarPerf runs pulsar-perf produce and then pulsar-perf consume, each
// for PulsarPerfTime, on a fresh topic with MessageSize-byte messages: the
// broker's own figures for producing alone and for consuming alone. A
// subscription made before the produce run keeps what it sends as the
// backlog that the consume run reads; it is dropped afterwards.
func (e *engine) pulsarPerf(ctx context.Context) []ToolRun {
	topic := fmt.Sprintf("persistent://public/default/bench-%s-pulsar-perf", e.runID)
	runs := []ToolRun{
		{Backend: BackendPulsar, Tool: ToolPulsarPerfProduce},
		{Backend: BackendPulsar, Tool: ToolPulsarPerfConsume},
	}
	fail := func(err error) []ToolRun {
		for i := range runs {
			if runs[i].Error == "" && runs[i].MsgsPerSec == 0 {
				runs[i].Error = oneLine(err.Error())
			}
		}
		return runs
	}
	h := &pulsarHarness{url: e.cfg.PulsarURL, token: e.cfg.PulsarToken}
	if err := pulsarPerfSubscribe(h, topic); err != nil {
		return fail(fmt.Errorf("creating the subscription: %w", err))
	}
	defer func() {
		if err := pulsarPerfUnsubscribe(h, topic); err != nil {
			e.progressf("pulsar-perf: dropping the subscription of %s: %v", topic, err)
		}
	}()
	dir, err := os.MkdirTemp("", "switchyard-pulsar-perf-")
	if err != nil {
		return fail(err)
	}
	defer os.RemoveAll(dir)
	common := []string{"-u", e.cfg.PulsarURL}
	if e.cfg.PulsarToken != "" {
		// The token goes in a file of its own, never on the command line.
		tf := filepath.Join(dir, "token")
		if err := os.WriteFile(tf, []byte(e.cfg.PulsarToken), 0o600); err != nil {
			return fail(err)
		}
		common = append(common, "--auth-plugin", "org.apache.pulsar.client.impl.auth.AuthenticationToken", "--auth-params", "file://"+tf)
	}
	secs := strconv.Itoa(int(e.cfg.PulsarPerfTime.Round(time.Second).Seconds()))
	runs[0].Args = append(append([]string{"produce"}, common...), "-r", strconv.Itoa(pulsarPerfRate), "-s", strconv.Itoa(e.cfg.MessageSize), "-time", secs, topic)
	runs[1].Args = append(append([]string{"consume"}, common...), "-ss", pulsarPerfSubscription, "-time", secs, topic)
	for i := range runs {
		r := &runs[i]
		e.progressf("pulsar/%s: %s", r.Tool, strings.Join(r.Args, " "))
		out, err := e.runPulsarPerf(ctx, dir, r.Args)
		if err == nil {
			err = parsePulsarPerf(r, out)
		}
		if err != nil {
			r.Error = oneLine(err.Error())
			e.progressf("pulsar/%s: FAILED: %s", r.Tool, r.Error)
			if ctx.Err() != nil {
				return fail(ctx.Err())
			}
			continue
		}
		e.progressf("pulsar/%s: %d messages, %.0f msgs/s", r.Tool, r.Messages, r.MsgsPerSec)
	}
	if runs[0].Error == "" && runs[1].Error == "" && runs[1].Messages >= runs[0].Messages {
		runs[1].Note = fmt.Sprintf("read the whole backlog of %d messages before its time was up: a lower bound", runs[0].Messages)
	}
	return runs
}

// runPulsarPerf runs pulsar-perf with args, its logs in dir, and returns
// what it printed. It is given the run's time plus a minute for the JVM to
// start and stop.
func (e *engine) runPulsarPerf(ctx context.Context, dir string, args []string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.PulsarPerfTime+time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.cfg.PulsarPerf, args...)
	cmd.Env = append(os.Environ(), "PULSAR_LOG_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// Stop the JVM and anything it started: the process group is the
	// command's own.
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return out.Bytes(), fmt.Errorf("%s %s did not end within %s", filepath.Base(e.cfg.PulsarPerf), args[0], e.cfg.PulsarPerfTime+time.Minute)
	}
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w: %s", filepath.Base(e.cfg.PulsarPerf), args[0], err, lastLines(out.Bytes(), 3))
	}
	return out.Bytes(), nil
}

var (
	// "Throughput produced:  609122 msg ---  60809.1 msg/s --- ..."
	perfPeriodic = regexp.MustCompile(`Throughput (?:produced|received):\s+(\d+) msg ---\s+([0-9.]+)\s+msg/s`)
	// "Aggregated throughput stats --- 752314 records sent --- 35687.456 msg/s --- ..."
	perfAggregated = regexp.MustCompile(`Aggregated throughput stats --- (\d+) records (?:sent|received) --- ([0-9.]+) msg/s`)
	// A failed publish or receive is logged at ERROR level.
	perfError = regexp.MustCompile(`\bERROR\b.*`)
)

// parsePulsarPerf reads the figures of a pulsar-perf run into r. For
// produce it takes the periodic report lines, which cover the time the
// producer sent (its aggregated rate divides by the whole run, shutdown
// included); for consume it takes the aggregated line, which covers the
// time its consumer received (its periodic lines count the start-up too).
func parsePulsarPerf(r *ToolRun, out []byte) error {
	if m := perfError.Find(out); m != nil {
		return fmt.Errorf("%s logged an error: %s", r.Tool, oneLine(string(m)))
	}
	agg := perfAggregated.FindSubmatch(out)
	if agg == nil {
		return fmt.Errorf("%s printed no aggregated throughput: %s", r.Tool, lastLines(out, 3))
	}
	total, _ := strconv.ParseUint(string(agg[1]), 10, 64)
	rate, _ := strconv.ParseFloat(string(agg[2]), 64)
	r.Messages, r.MsgsPerSec = total, round3(rate)
	if r.Tool != ToolPulsarPerfProduce {
		return nil
	}
	var msgs, secs float64
	for _, m := range perfPeriodic.FindAllSubmatch(out, -1) {
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		v, _ := strconv.ParseFloat(string(m[2]), 64)
		if n > 0 && v > 0 {
			msgs += n
			secs += n / v
		}
	}
	if secs > 0 {
		r.MsgsPerSec = round3(msgs / secs)
	} else {
		r.Note = "no periodic report: the rate is the aggregated one, which counts the shutdown too"
	}
	return nil
}

// lastLines returns the last n non-empty lines of out, joined.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return oneLine(strings.Join(lines, " | "))
}

// pulsarPerfSubscribe creates the durable subscription pulsar-perf
// consume reads (subscribe, then close), so that the produce run's messages
// stay as its backlog.
func pulsarPerfSubscribe(h *pulsarHarness, topic string) error {
	c, err := h.client()
	if err != nil {
		return err
	}
	defer c.Close()
	consumer, err := c.Subscribe(pulsar.ConsumerOptions{
		Topic:                       topic,
		SubscriptionName:            pulsarPerfSubscription,
		Type:                        pulsar.Exclusive,
		SubscriptionInitialPosition: pulsar.SubscriptionPositionEarliest,
		ReceiverQueueSize:           1,
	})
	if err != nil {
		return err
	}
	consumer.Close()
	return nil
}

// pulsarPerfUnsubscribe drops that subscription, so that the broker deletes
// the topic and its backlog.
func pulsarPerfUnsubscribe(h *pulsarHarness, topic string) error {
	c, err := h.client()
	if err != nil {
		return err
	}
	defer c.Close()
	return pulsarUnsubscribe(c, topic, pulsarPerfSubscription)
}
