package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/processor"
)

// runProcesses starts the embedded MQTT broker and each example processor as
// its own process, runs the client here, and stops every process it started,
// whatever happens.
func runProcesses(ctx context.Context, opts options, log io.Writer) (result, error) {
	binDir := opts.binDir
	if binDir == "" {
		dir, err := os.MkdirTemp("", "switchyard-demo-")
		if err != nil {
			return result{}, err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(log, "demo: building switchyard, prompt-template and echo-llm\n")
		build := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator),
			"github.com/switchyard-go/switchyard/cmd/switchyard",
			"github.com/switchyard-go/switchyard/examples/echo-llm",
			"github.com/switchyard-go/switchyard/examples/prompt-template")
		build.Stdout, build.Stderr = log, log
		if err := build.Run(); err != nil {
			return result{}, fmt.Errorf("building the demo binaries: %w", err)
		}
		binDir = dir
	}
	port, err := freePort()
	if err != nil {
		return result{}, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	var procs []*child
	defer func() {
		for i := len(procs) - 1; i >= 0; i-- {
			procs[i].stop(log)
		}
	}()

	dataDir, err := os.MkdirTemp("", "switchyard-demo-broker-")
	if err != nil {
		return result{}, fmt.Errorf("creating the broker's data directory: %w", err)
	}
	defer os.RemoveAll(dataDir)
	broker, err := startChild(ctx, filepath.Join(binDir, "switchyard"), "broker: listening", log, "broker", "--listen", addr, "--data-dir", dataDir)
	if err != nil {
		return result{}, err
	}
	procs = append(procs, broker)
	backendFlags := []string{"--pubsub-backend", "mqtt", "--mqtt-host", "127.0.0.1", "--mqtt-port", strconv.Itoa(port)}
	conc := strconv.Itoa(opts.concurrency)
	for _, p := range []struct{ name, in, out string }{
		{"prompt-template", promptQueue.String(), requestQueue.String()},
		{"echo-llm", requestQueue.String(), responseQueue.String()},
	} {
		args := append([]string{"--input", p.in, "--output", p.out, "--concurrency", conc, "--log-level", "info", "--metrics-addr", ""}, backendFlags...)
		c, err := startChild(ctx, filepath.Join(binDir, p.name), "msg=ready", log, args...)
		if err != nil {
			return result{}, err
		}
		procs = append(procs, c)
	}
	fmt.Fprintf(log, "demo: broker, prompt-template and echo-llm running as separate processes on mqtt://%s\n", addr)

	cfg := backend.Config{Name: backend.MQTT, ClientName: "demo-client"}
	cfg.MQTT.Host, cfg.MQTT.Port = "127.0.0.1", port
	b, err := backend.New(ctx, cfg, processor.WatermillLogger(processor.NewLogger(log, "warn")))
	if err != nil {
		return result{}, fmt.Errorf("connecting the demo client: %w", err)
	}
	defer b.Close()
	return exchange(ctx, b, opts.requests, opts.timeout, log)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// child is a process the demo started.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan error
}

// startChild starts bin with args and waits until a line of its stderr
// contains ready. The child dies with the demo (parent-death signal), so none
// is left behind even if the demo is killed.
func startChild(ctx context.Context, bin, ready string, log io.Writer, args ...string) (*child, error) {
	name := filepath.Base(bin)
	cmd := exec.Command(bin, args...)
	c := &child{name: name, cmd: cmd, done: make(chan error, 1)}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// Watch stdout and stderr together: the broker reports readiness on
	// stdout, the processors log on stderr.
	output, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		err := cmd.Wait()
		pw.Close()
		c.done <- err
	}()
	readyC := make(chan struct{})
	var mu sync.Mutex
	var last []string
	go func() {
		sc := bufio.NewScanner(output)
		seen := false
		for sc.Scan() {
			line := sc.Text()
			if !seen && strings.Contains(line, ready) {
				seen = true
				close(readyC)
				continue
			}
			if !seen {
				mu.Lock()
				last = append(last, line)
				mu.Unlock()
			} else if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
				fmt.Fprintf(log, "%s: %s\n", name, line)
			}
		}
	}()
	select {
	case <-readyC:
		return c, nil
	case err := <-c.done:
		c.done <- err
		mu.Lock()
		defer mu.Unlock()
		return nil, fmt.Errorf("%s exited before it was ready (%v): %s", name, err, strings.Join(last, " | "))
	case <-time.After(30 * time.Second):
		c.stop(log)
		return nil, fmt.Errorf("%s was not ready within 30s", name)
	case <-ctx.Done():
		c.stop(log)
		return nil, ctx.Err()
	}
}

// stop asks the child to finish with SIGTERM and kills it if it has not
// exited within 10 seconds.
func (c *child) stop(log io.Writer) {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.done:
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 0) {
			fmt.Fprintf(log, "demo: %s exited: %v\n", c.name, err)
		}
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		fmt.Fprintf(log, "demo: %s did not stop within 10s and was killed\n", c.name)
	}
}
