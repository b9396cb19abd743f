package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// cliBackends are the brokers the CLI tests run against, each as a function
// that returns the flags reaching it: the embedded broker always, Mosquitto
// and Pulsar when the environment names them.
var cliBackends = []struct {
	name  string
	flags func(t *testing.T) []string
}{
	{"embedded", func(t *testing.T) []string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		// The broker keeps its data under the user's cache directory: give
		// it one of its own, so that no other broker holds its lock.
		t.Setenv("XDG_CACHE_HOME", t.TempDir())
		broker := start(t, nil, "switchyard", "broker", "--listen", addr)
		waitListening(t, addr, broker)
		t.Cleanup(broker.stop)
		host, port := hostPort(t, addr)
		// The backend name in capitals: matching ignores case.
		return []string{"--pubsub-backend", "MQTT", "--mqtt-host", host, "--mqtt-port", port}
	}},
	{"mosquitto", func(t *testing.T) []string {
		host, port := hostPort(t, brokertest.Env(t, "SWITCHYARD_MQTT_ADDR"))
		return []string{"--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port}
	}},
	{"pulsar", func(t *testing.T) []string {
		return []string{"--pubsub-backend", "pulsar", "--pulsar-host", brokertest.Env(t, "SWITCHYARD_PULSAR_URL")}
	}},
}

// TestPublishStopsOnSignalWithEverythingConfirmed runs `switchyard publish`
// with an input that stays open: its lines must reach a `switchyard tail`
// before the input ends, and a signal must stop it with every line it read
// confirmed, the count in its summary and the signal in its exit status.
func TestPublishStopsOnSignalWithEverythingConfirmed(t *testing.T) {
	for _, b := range cliBackends {
		t.Run(b.name, func(t *testing.T) {
			flags := b.flags(t)
			for _, c := range []struct {
				sig  syscall.Signal
				name string
				code int
			}{{syscall.SIGTERM, "SIGTERM", 143}, {syscall.SIGINT, "SIGINT", 130}} {
				t.Run(c.name, func(t *testing.T) {
					publishUntilSignal(t, flags, c.sig, c.name, c.code)
				})
			}
		})
	}
}

func publishUntilSignal(t *testing.T, flags []string, sig syscall.Signal, sigName string, wantCode int) {
	ns := "cli" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
	topic := "q1/tg/" + ns + "/lines"
	prepareQueues(t, flags, topic)

	tail := start(t, nil, "switchyard", append([]string{"tail", "--topic", topic, "--count", "3", "--timeout", "60s"}, flags...)...)
	tail.waitFor("tail: subscribed", 60*time.Second)

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	pub := start(t, r, "switchyard", append([]string{"publish", "--topic", topic}, flags...)...)
	r.Close() // the child has its own copy
	ids := make([]string, 3)
	for i := range ids {
		ids[i] = uuid.NewString()
		if _, err := fmt.Fprintf(w, "{\"n\":%d,\"id\":%q}\n", i+1, ids[i]); err != nil {
			t.Fatal(err)
		}
	}

	// The input is still open: tail gets the three lines all the same.
	if code := tail.wait(60 * time.Second); code != 0 {
		t.Fatalf("tail exited %d:\n%s", code, tail.log())
	}
	got := map[string]int{}
	sc := bufio.NewScanner(&tail.stdout)
	for sc.Scan() {
		var l struct {
			Payload struct {
				N  int    `json:"n"`
				ID string `json:"id"`
			} `json:"payload"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("tail wrote %q: %v", sc.Text(), err)
		}
		got[l.Payload.ID]++
	}
	for _, id := range ids {
		if got[id] != 1 {
			t.Fatalf("message %s arrived %d times; tail got %v", id, got[id], got)
		}
	}
	select {
	case <-pub.done:
		t.Fatalf("publish ended before the signal:\n%s", pub.log())
	default:
	}

	if err := pub.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	if code := pub.wait(30 * time.Second); code != wantCode {
		t.Fatalf("publish exited %d after %s, want %d:\n%s", code, sigName, wantCode, pub.log())
	}
	out := pub.log()
	want := "publish: 3 confirmed to " + topic + ", 0 invalid lines, in "
	if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, want) || !strings.Contains(out, "stopped by "+sigName) {
		t.Fatalf("publish wrote %q, want one summary line %q... stopped by %s", out, want, sigName)
	}
}

// TestCLIConventionsOfTheBinary checks, on the built binary, what an
// operator meets first: --version, help for a command, and a mistyped
// command.
func TestCLIConventionsOfTheBinary(t *testing.T) {
	v := start(t, nil, "switchyard", "--version")
	if code := v.wait(30 * time.Second); code != 0 || !strings.HasPrefix(v.stdout.String(), "switchyard version ") {
		t.Fatalf("--version: exit %d, stdout %q, stderr %q", code, v.stdout.String(), v.log())
	}
	h := start(t, nil, "switchyard", "help", "publish")
	if code := h.wait(30 * time.Second); code != 0 || !strings.Contains(h.stdout.String(), "switchyard publish - ") {
		t.Fatalf("help publish: exit %d, stdout %q, stderr %q", code, h.stdout.String(), h.log())
	}
	u := start(t, nil, "switchyard", "publsh")
	if code := u.wait(30 * time.Second); code != 2 || u.log() != "switchyard: unknown command \"publsh\" (did you mean \"publish\"?)\n" {
		t.Fatalf("publsh: exit %d, stderr %q", code, u.log())
	}
	m := start(t, nil, "switchyard", "tail", "--topic", "q1/tg/flow/x", "--pubsub-backend", "memory")
	if code := m.wait(30 * time.Second); code != 2 || strings.Count(m.log(), "\n") != 1 || !strings.Contains(m.log(), "memory backend lives inside one process") {
		t.Fatalf("tail on memory: exit %d, stderr %q", code, m.log())
	}
}
