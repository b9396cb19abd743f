package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessorEchoLLM names the example processor binary in footprint results.
const ProcessorEchoLLM = "echo-llm"

// idlePause is how long a started processor idles before its RSS is read.
const idlePause = 2 * time.Second

// footprint measures the echo-llm binary on backend: exec-to-ready over
// ReadyRuns starts, the RSS after an idle pause, and (on a broker backend)
// the RSS after a throughput load through it.
func (e *engine) footprint(ctx context.Context, backend string) Footprint {
	f := Footprint{Backend: backend, Processor: ProcessorEchoLLM}
	spec := e.spec(backend, "echo-llm", "fp")
	tag := backend + "/echo-llm footprint"
	e.progressf("%s: %d starts, idle %s, load %s", tag, e.cfg.ReadyRuns, idlePause, e.cfg.FootprintLoad)
	for run := 0; run < e.cfg.ReadyRuns; run++ {
		last := run == e.cfg.ReadyRuns-1
		var (
			h  harness
			lc loadClient
			c  *counter
		)
		loaded := last && backend != BackendMemory && e.cfg.FootprintLoad > 0
		if loaded {
			var err error
			if h, err = e.openHarness(ctx, backend); err != nil {
				f.Error = oneLine(err.Error())
				return f
			}
			c = newCounter(time.Now())
			if lc, err = h.newLoad(ctx, spec, c.onResponse); err != nil {
				_ = h.close()
				f.Error = oneLine("connecting the load client: " + err.Error())
				return f
			}
		}
		p, took, err := e.startEchoLLM(ctx, backend, spec)
		if err != nil {
			if lc != nil {
				_ = lc.Close()
				_ = h.close()
			}
			f.Error = oneLine(err.Error())
			return f
		}
		f.ReadyRunsMS = append(f.ReadyRunsMS, float64(took.Microseconds())/1000)
		if last {
			err = e.loadFootprint(ctx, &f, p, lc, c, tag)
		}
		if serr := p.Stop(); serr != nil && err == nil {
			err = serr
		}
		if lc != nil {
			_ = lc.Close()
			_ = h.close()
		}
		if err != nil {
			f.Error = oneLine(err.Error())
			return f
		}
	}
	f.ReadyMS = Median(f.ReadyRunsMS)
	e.progressf("%s: ready in %.0fms (median of %v), idle RSS %.1f MiB (anon %.1f, file %.1f), loaded RSS %s MiB at %s msgs/s",
		tag, f.ReadyMS, f.ReadyRunsMS, f.IdleRSSMB, f.IdleAnonMB, f.IdleFileMB, optional(f.LoadedRSSMB, "%.1f"), optional(f.LoadMsgsPerSec, "%.0f"))
	return f
}

// loadFootprint reads the idle RSS of p, then loads it through lc (when
// not nil) and reads the RSS again.
func (e *engine) loadFootprint(ctx context.Context, f *Footprint, p *childProcess, lc loadClient, c *counter, tag string) error {
	if err := sleep(ctx, idlePause); err != nil {
		return err
	}
	m, err := memory(p.PID())
	if err != nil {
		return err
	}
	f.IdleRSSMB, f.IdleAnonMB, f.IdleFileMB = m.rss, m.anon, m.file
	if lc == nil {
		return nil
	}
	genCtx, stop := context.WithCancel(ctx)
	genErr := make(chan error, 1)
	go func() { genErr <- c.generate(genCtx, lc, e.payload, e.cfg.Window) }()
	recv0, t0 := c.recv.Load(), time.Now()
	werr := e.watch(ctx, tag+" load", c, e.cfg.FootprintLoad, genErr)
	recv1, elapsed := c.recv.Load(), time.Since(t0)
	stop()
	gerr := <-genErr
	if werr != nil {
		return werr
	}
	if gerr != nil {
		return gerr
	}
	f.LoadMsgsPerSec = float64(int64(float64(recv1-recv0)/elapsed.Seconds() + 0.5))
	e.drain(ctx, c, drainLimit(c.sent.Load()-min(c.sent.Load(), c.recv.Load()), f.LoadMsgsPerSec))
	m, err = memory(p.PID())
	if err != nil {
		return err
	}
	f.LoadedRSSMB, f.PeakRSSMB = m.rss, m.hwm
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// childProcess is a processor process started by the benchmark: the
// echo-llm binary or the Python processor.
type childProcess struct {
	cmd   *exec.Cmd
	name  string        // for errors
	grace time.Duration // between SIGTERM and SIGKILL
	done  chan error
	once  sync.Once
	err   error
}

func newChildProcess(cmd *exec.Cmd, name string, grace time.Duration) *childProcess {
	return &childProcess{cmd: cmd, name: name, grace: grace, done: make(chan error, 1)}
}

// startEchoLLM execs the echo-llm binary between spec.in and spec.out and
// returns once it logged msg=ready, with the time that took.
func (e *engine) startEchoLLM(ctx context.Context, backend string, spec runSpec) (*childProcess, time.Duration, error) {
	args := []string{
		"--pubsub-backend", backend,
		"--input", spec.in.String(), "--output", spec.out.String(),
		"--id", spec.name, "--concurrency", strconv.Itoa(spec.concurrency),
		"--log-level", "info",
	}
	env := os.Environ()
	switch backend {
	case BackendMQTT:
		host, port, err := splitHostPort(e.cfg.MQTTAddr)
		if err != nil {
			return nil, 0, err
		}
		args = append(args, "--mqtt-host", host, "--mqtt-port", strconv.Itoa(port))
	case BackendPulsar:
		args = append(args, "--pulsar-host", e.cfg.PulsarURL)
		// The token travels in the environment, never on the command line.
		env = append(env, "PULSAR_API_KEY="+e.cfg.PulsarToken)
	case BackendRabbitMQ:
		r := e.cfg.RabbitMQ
		args = append(args, "--rabbitmq-host", r.Host, "--rabbitmq-port", strconv.Itoa(r.Port),
			"--rabbitmq-username", r.Username, "--rabbitmq-vhost", r.VHost)
		// The password too travels in the environment.
		env = append(env, "RABBITMQ_PASSWORD="+r.Password)
	case BackendKafka:
		args = append(args, "--kafka-bootstrap-servers", e.cfg.Kafka.BootstrapServers)
	}
	cmd := exec.Command(e.cfg.EchoLLM, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting %s: %w", e.cfg.EchoLLM, err)
	}
	p := newChildProcess(cmd, "echo-llm", 15*time.Second)
	ready := make(chan time.Duration, 1)
	var lastLine string
	var mu sync.Mutex
	go func() {
		sc := bufio.NewScanner(stderr)
		signalled := false
		for sc.Scan() {
			line := sc.Text()
			if !signalled && strings.Contains(line, "msg=ready") {
				ready <- time.Since(start)
				signalled = true
				continue
			}
			mu.Lock()
			lastLine = line
			mu.Unlock()
			// Pass on what an operator would act on, not the info lines.
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || !strings.Contains(line, "level=") {
				_, _ = io.WriteString(e.cfg.Log, "echo-llm: "+line+"\n")
			}
		}
		p.done <- cmd.Wait()
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case took := <-ready:
		return p, took, nil
	case err := <-p.done:
		p.done <- err
		mu.Lock()
		defer mu.Unlock()
		return nil, 0, fmt.Errorf("echo-llm exited before it was ready (%v): %s", err, lastLine)
	case <-t.C:
		_ = p.Stop()
		return nil, 0, fmt.Errorf("echo-llm was not ready after %s", startTimeout)
	case <-ctx.Done():
		_ = p.Stop()
		return nil, 0, ctx.Err()
	}
}

// PID returns the process id.
func (p *childProcess) PID() int { return p.cmd.Process.Pid }

// Stop sends SIGTERM and waits for the exit, killing the process after its
// grace period.
func (p *childProcess) Stop() error {
	p.once.Do(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		t := time.NewTimer(p.grace)
		defer t.Stop()
		select {
		case err := <-p.done:
			p.err = exitError(err)
		case <-t.C:
			_ = p.cmd.Process.Kill()
			<-p.done
			p.err = fmt.Errorf("%s did not stop within %s and was killed", p.name, p.grace)
		}
	})
	return p.err
}
