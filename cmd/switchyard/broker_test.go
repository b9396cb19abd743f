package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// syncBuffer is a bytes.Buffer safe for one writer and one reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startBrokerCommand runs `switchyard broker args...` until the returned
// stop function is called, and returns the address it listens on.
func startBrokerCommand(t *testing.T, args ...string) (addr string, stop func() (int, string)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"switchyard", "broker", "--listen", "127.0.0.1:0"}, args...), strings.NewReader(""), &stdout, &stderr)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out := stdout.String()
		if line, _, ok := strings.Cut(out, "\n"); ok {
			const prefix = "broker: listening on "
			if !strings.HasPrefix(line, prefix) {
				t.Fatalf("first line %q", line)
			}
			addr, _, _ = strings.Cut(strings.TrimPrefix(line, prefix), " ")
			break
		}
		select {
		case code := <-done:
			t.Fatalf("broker exited with %d: %s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not say it was ready; stderr: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop = func() (int, string) {
		cancel()
		select {
		case code := <-done:
			return code, stderr.String()
		case <-time.After(10 * time.Second):
			t.Fatal("broker did not stop after cancel")
			return -1, ""
		}
	}
	t.Cleanup(func() { cancel() })
	return addr, stop
}

func connectTo(addr, user, password string) error {
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("probe").SetUsername(user).SetPassword(password).
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second).SetAutoReconnect(false)
	c := mqtt.NewClient(opts)
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	if err := tok.Error(); err != nil {
		return err
	}
	c.Disconnect(100)
	return nil
}

func TestBrokerCommandServesUntilCancelled(t *testing.T) {
	addr, stop := startBrokerCommand(t)
	if err := connectTo(addr, "", ""); err != nil {
		t.Fatalf("anonymous connect: %v", err)
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestBrokerCommandUsersFile(t *testing.T) {
	users := filepath.Join(t.TempDir(), "users")
	if err := os.WriteFile(users, []byte("# dev users\nalice:wonder-land\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, stop := startBrokerCommand(t, "--users", users)
	if err := connectTo(addr, "alice", "wonder-land"); err != nil {
		t.Fatalf("right password: %v", err)
	}
	if err := connectTo(addr, "alice", "wrong"); err == nil {
		t.Fatal("wrong password accepted")
	}
	if err := connectTo(addr, "", ""); err == nil {
		t.Fatal("anonymous client accepted")
	}
	if code, stderr := stop(); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

func TestBrokerCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--listen", "nonsense"}, 2, `--listen "nonsense" is not host:port`},
		{[]string{"--listen", "127.0.0.1:99999"}, 2, "port must be between 0 and 65535"},
		{[]string{"--max-inflight", "0"}, 2, "max in-flight messages 0 is out of range"},
		{[]string{"--users", "/no/such/users-file"}, 1, "users file"},
		{[]string{"--log-level", "loud"}, 2, "--log-level"},
		{[]string{"extra"}, 2, "unexpected argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"switchyard", "broker"}, c.args...), strings.NewReader(""), &stdout, &stderr)
		out := strings.TrimSpace(stderr.String())
		if code != c.code || !strings.Contains(out, c.want) || strings.Contains(out, "\n") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d and one line with %q", c.args, code, out, c.code, c.want)
		}
	}
}
