package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// pythonSettings say how to run the Python processor.
type pythonSettings struct {
	python string    // interpreter with trustgraph-base
	script string    // tg_processor.py
	log    io.Writer // its stderr
}

// ProcessorPython names the Python processor in footprint results.
const ProcessorPython = "python"

// startPython starts tg_processor.py between spec.in and spec.out and
// returns once it prints its ready line.
func startPython(ctx context.Context, s pythonSettings, spec runSpec, url, token string) (processor, error) {
	if s.python == "" || s.script == "" {
		return nil, errors.New("no Python interpreter or processor script configured")
	}
	cmd := exec.Command(s.python, s.script,
		"--pulsar-host", url,
		"--input", pulsarTopic(spec.in),
		"--output", pulsarTopic(spec.out),
		"--subscription", spec.name,
		"--concurrency", strconv.Itoa(spec.concurrency),
	)
	// The token travels in the environment, never on the command line.
	cmd.Env = append(os.Environ(), "PULSAR_API_KEY="+token, "PYTHONUNBUFFERED=1")
	if s.log != nil {
		cmd.Stderr = s.log
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", s.python, err)
	}
	p := newChildProcess(cmd, "the Python processor", 10*time.Second)
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			if !signalled && strings.TrimSpace(sc.Text()) == "ready" {
				close(ready)
				signalled = true
			}
		}
		// Read to the end so the process never blocks on a full pipe,
		// then reap it.
		p.done <- cmd.Wait()
	}()
	t := time.NewTimer(startTimeout)
	defer t.Stop()
	select {
	case <-ready:
		return p, nil
	case err := <-p.done:
		p.done <- err
		return nil, fmt.Errorf("the Python processor exited before it was ready: %v", err)
	case <-t.C:
		_ = p.Stop()
		return nil, fmt.Errorf("the Python processor was not ready after %s", startTimeout)
	case <-ctx.Done():
		_ = p.Stop()
		return nil, ctx.Err()
	}
}

// exitError ignores an exit caused by the SIGTERM that asked for it.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGTERM {
			return nil
		}
	}
	return err
}

// pythonStats collects the footprint of the Python processor from the
// processes started for its throughput runs.
type pythonStats struct {
	ready       []float64
	idle        procMemory
	loadedRSS   float64
	peakRSS     float64
	observedErr string
}

// observeStart records the start-up time and, the first time, the RSS.
func (s *pythonStats) observeStart(p processor, took time.Duration) {
	s.ready = append(s.ready, float64(took.Microseconds())/1000)
	if s.idle.rss == 0 && p.PID() != 0 {
		if m, err := memory(p.PID()); err == nil {
			s.idle = m
		} else {
			s.observedErr = err.Error()
		}
	}
}

// observeLoaded records the RSS after a throughput run.
func (s *pythonStats) observeLoaded(p processor) {
	if p.PID() == 0 {
		return
	}
	if m, err := memory(p.PID()); err == nil {
		s.loadedRSS = max(s.loadedRSS, m.rss)
		s.peakRSS = max(s.peakRSS, m.hwm)
	}
}

func (s *pythonStats) footprint(backend string) Footprint {
	f := Footprint{Backend: backend, Processor: ProcessorPython, Error: s.observedErr}
	if len(s.ready) == 0 && f.Error == "" {
		f.Error = "the Python processor never started"
	}
	f.ReadyRunsMS = s.ready
	f.ReadyMS = Median(s.ready)
	f.IdleRSSMB, f.IdleAnonMB, f.IdleFileMB = s.idle.rss, s.idle.anon, s.idle.file
	f.LoadedRSSMB = s.loadedRSS
	f.PeakRSSMB = s.peakRSS
	return f
}
