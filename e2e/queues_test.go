package e2e

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/schema"
)

// prepareQueues makes the backend ready for the queues where it needs that:
// Pulsar creates topics on first use but not their tenant or namespace.
func prepareQueues(t *testing.T, flags []string, queues ...string) {
	t.Helper()
	if flagValue(flags, "--pubsub-backend") != "pulsar" {
		return
	}
	admin := brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
	done := map[string]bool{}
	for _, q := range queues {
		topic, err := schema.ParseTopic(q)
		if err != nil {
			t.Fatal(err)
		}
		ns := topic.Tenant + "/" + topic.Namespace
		if !done[ns] {
			brokertest.EnsurePulsarNamespace(t, admin, ns)
			done[ns] = true
		}
	}
}

func flagValue(flags []string, name string) string {
	for i, f := range flags {
		if f == name && i+1 < len(flags) {
			return flags[i+1]
		}
		if v, ok := strings.CutPrefix(f, name+"="); ok {
			return v
		}
	}
	return ""
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("broker address %q: %v", addr, err)
	}
	return h, p
}

func TestRequestReplyOnPulsar(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	requestReply(t, 200, "--pubsub-backend", "pulsar", "--pulsar-host", url)
}

func TestRequestReplyOnMosquitto(t *testing.T) {
	host, port := hostPort(t, brokertest.Env(t, "SWITCHYARD_MQTT_ADDR"))
	requestReply(t, 200, "--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port)
}

func TestRequestReplyOnMosquittoWithPassword(t *testing.T) {
	host, port := hostPort(t, brokertest.Env(t, "SWITCHYARD_MQTT_AUTH_ADDR"))
	user := brokertest.Env(t, "SWITCHYARD_MQTT_USER")
	password := brokertest.Env(t, "SWITCHYARD_MQTT_PASSWORD")
	requestReply(t, 50, "--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port, "--mqtt-username", user, "--mqtt-password", password)
}

func TestWrongMQTTPasswordFailsWithOneLine(t *testing.T) {
	host, port := hostPort(t, brokertest.Env(t, "SWITCHYARD_MQTT_AUTH_ADDR"))
	user := brokertest.Env(t, "SWITCHYARD_MQTT_USER")
	p := start(t, nil, "echo-llm", "--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port,
		"--mqtt-username", user, "--mqtt-password", "wrong-password-xyz")
	code := p.wait(60 * time.Second)
	out := strings.TrimSpace(p.log())
	if code != 1 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "echo-llm:") {
		t.Fatalf("exit %d, want 1 with one line; output:\n%s", code, out)
	}
	if strings.Contains(out, "wrong-password-xyz") {
		t.Fatalf("the password appears in the error: %s", out)
	}
}

func TestRequestReplyOnEmbeddedBroker(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	broker := start(t, nil, "switchyard", "broker", "--listen", addr, "--data-dir", t.TempDir())
	waitListening(t, addr, broker)
	host, port := hostPort(t, addr)
	requestReply(t, 200, "--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port)
	broker.stop()
}

func waitListening(t *testing.T, addr string, p *proc) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-p.done:
			t.Fatalf("%s exited: %v\n%s", p.name, p.err, p.log())
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("nothing listens on %s after 30s:\n%s", addr, p.log())
}

func TestUnreachablePulsarFailsWithOneLineInBoundedTime(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p := start(t, nil, "echo-llm", "--pubsub-backend", "pulsar", "--pulsar-host", "pulsar://"+addr, "--pulsar-operation-timeout", "2s")
	code := p.wait(30 * time.Second)
	out := strings.TrimSpace(p.log())
	if code != 1 || strings.Count(out, "\n") != 0 || !strings.Contains(out, "cannot be reached") {
		t.Fatalf("exit %d, want 1 with one line saying the broker cannot be reached; output:\n%s", code, out)
	}
}
