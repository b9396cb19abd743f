// Package flowtest holds what the tests of flow processors share: the
// in-process backends they run on, a Go configuration service, running a
// component until the test ends, and a log sink to wait on.
package flowtest

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/configsvc"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/router"
)

// Kind names an in-process backend.
type Kind string

// The in-process backends flow tests run on.
const (
	Memory       Kind = "memory"
	EmbeddedMQTT Kind = "embedded-mqtt"
)

// Kinds lists every in-process backend.
var Kinds = []Kind{Memory, EmbeddedMQTT}

// ForEach runs test once per kind, as a subtest named after it.
func ForEach(t *testing.T, kinds []Kind, test func(t *testing.T, k Kind)) {
	for _, k := range kinds {
		t.Run(string(k), func(t *testing.T) { test(t, k) })
	}
}

// Open returns a backend of kind that is closed when the test ends; an
// embedded MQTT broker is started for it, in memory only.
func Open(t testing.TB, k Kind, log watermill.LoggerAdapter) router.Backend {
	t.Helper()
	if k == Memory {
		b := backend.NewMemory(log)
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	br, err := embedded.Start(context.Background(), embedded.Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = br.Close() })
	host, port, _ := net.SplitHostPort(br.Addr())
	p, _ := strconv.Atoi(port)
	cfg := backend.Config{Name: backend.MQTT, ClientName: "flowtest", MQTT: backend.MQTTSettings{Host: host, Port: p, ClientID: "flowtest"}}
	b, err := backend.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// ConfigService runs a Go configuration service on b until the test ends.
func ConfigService(t testing.TB, b router.Backend, log watermill.LoggerAdapter) *configsvc.Service {
	t.Helper()
	svc, err := configsvc.New(configsvc.Config{}, b.Publisher())
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(router.Config{ID: "config-svc"}, b, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Register(r); err != nil {
		t.Fatal(err)
	}
	Run(t, r.Run, r.Running())
	return svc
}

// Run runs run until the test ends and waits until ready is closed. The
// test fails if run stops early or returns an error when it is stopped.
func Run(t testing.TB, run func(context.Context) error, ready <-chan struct{}) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("stopped before it was ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready within 20s")
	}
}

// Logs collects log lines written from several goroutines.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write implements io.Writer.
func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything written so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// WaitFor waits up to 10 s until the logs hold line and returns them.
func (l *Logs) WaitFor(t testing.TB, line string) string {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := l.String()
		if strings.Contains(s, line) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the logs within 10s:\n%s", line, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
