package processor

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/internal/flowtest"
	"github.com/switchyard-go/switchyard/mqttpubsub/embedded"
	"github.com/switchyard-go/switchyard/router"
)

var metricsAt = regexp.MustCompile(`metrics=(\S+)`)

// runProcessor runs an upper-casing processor with args until the test ends
// and returns its endpoints' address and its log.
func runProcessor(t *testing.T, args ...string) (string, *flowtest.Logs) {
	t.Helper()
	p := Processor{
		Name: "upper",
		Handlers: []Handler{Handle("upper", "q1/tg/flow/in", "q1/tg/flow/out",
			func(_ context.Context, a *ask) (*answer, error) { return &answer{A: strings.ToUpper(a.Q)}, nil })},
	}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &flowtest.Logs{}
	done := make(chan int, 1)
	go func() {
		done <- p.Run(ctx, append([]string{"upper", "--metrics-addr", "127.0.0.1:0"}, args...), io.Discard, logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("processor exited %d:\n%s", code, logs)
			}
		case <-time.After(20 * time.Second):
			t.Error("processor did not stop")
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if m := metricsAt.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case code := <-done:
			t.Fatalf("processor exited %d before it was ready:\n%s", code, logs)
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Fatalf("no ready line within 20s:\n%s", logs)
	return "", nil
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metricValue returns the value of the sample whose line starts with prefix.
func metricValue(t *testing.T, body, prefix string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			v, err := strconv.ParseFloat(line[strings.LastIndex(line, " ")+1:], 64)
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
	}
	t.Fatalf("no sample %s in:\n%s", prefix, body)
	return 0
}

// A processor on the embedded broker counts what it did in /metrics.
func TestMetricsCountMessagesOnEmbeddedBroker(t *testing.T) {
	clearEnv(t)
	cfg := embedded.Config{Listen: "127.0.0.1:0"}
	cfg.InMemory = true
	broker, err := embedded.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	host, port, _ := net.SplitHostPort(broker.Addr())
	addr, logs := runProcessor(t, "--pubsub-backend", "mqtt", "--mqtt-host", host, "--mqtt-port", port, "--id", "metrics-test")
	if !strings.Contains(logs.String(), "upper: q1/tg/flow/in -> q1/tg/flow/out [subscription metrics-test") || !strings.Contains(logs.String(), "broker=tcp://"+broker.Addr()) {
		t.Fatalf("ready line lacks the handler or the broker:\n%s", logs)
	}

	bcfg := backend.Config{Name: backend.MQTT, ClientName: "metrics-client"}
	bcfg.MQTT.Host, bcfg.MQTT.Port = host, mustAtoi(t, port)
	client, err := backend.New(context.Background(), bcfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	out := subscribe(t, client, "q1/tg/flow/out")
	const n = 50
	for i := range n {
		m := message.NewMessage(watermill.NewUUID(), []byte(fmt.Sprintf(`{"q":"m%d"}`, i)))
		if err := client.Publisher().Publish("q1/tg/flow/in", m); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		select {
		case m := <-out:
			m.Ack()
		case <-time.After(20 * time.Second):
			t.Fatal("missing outputs")
		}
	}
	labels := `{consumer="flow:tg:in",processor="metrics-test"`
	// A handler publishes its output before its input is counted: the last
	// count may follow the last output by a moment.
	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var code int
		code, body = get(t, "http://"+addr+"/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d", code)
		}
		if strings.Contains(body, fmt.Sprintf(`tg_consumer_processing_total%s,status="ok"} %d`, labels, n)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, c := range []struct {
		prefix string
		want   float64
	}{
		{`tg_consumer_processing_total` + labels + `,status="ok"}`, n},
		{`tg_consumer_processing_total` + labels + `,status="error"}`, 0},
		{`switchyard_consumer_received_total` + labels + `}`, n},
		{`switchyard_consumer_in_flight` + labels + `}`, 0},
		{`tg_consumer_request_duration_seconds_count` + labels + `}`, n},
		{`tg_producer_messages_total{processor="metrics-test",producer="flow:tg:out"}`, n},
		{`switchyard_backend_connected{processor="metrics-test"}`, 1},
		{`tg_consumer_state` + labels + `,tg_consumer_state="running"}`, 1},
	} {
		if got := metricValue(t, body, c.prefix); got != c.want {
			t.Errorf("%s = %g, want %g", c.prefix, got, c.want)
		}
	}
	if !strings.Contains(body, `tg_processor_info{processor="metrics-test",pubsub_backend="mqtt"`) {
		t.Errorf("no tg_processor_info:\n%s", body)
	}
	if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	if code, _ := get(t, "http://"+addr+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz: %d", code)
	}
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func subscribe(t *testing.T, b router.Backend, topic string) <-chan *message.Message {
	t.Helper()
	sub, err := b.NewSubscriber(router.SubscribeOptions{Subscription: "reader"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Close() })
	if init, ok := sub.(message.SubscribeInitializer); ok {
		if err := init.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

// mosquitto is a private Mosquitto process on a free port that a test may
// stop and start.
type mosquitto struct {
	t    *testing.T
	port int
	conf string
	cmd  *exec.Cmd
}

func startMosquitto(t *testing.T) *mosquitto {
	t.Helper()
	bin, err := exec.LookPath("mosquitto")
	if err != nil {
		for _, p := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
			if _, serr := os.Stat(p); serr == nil {
				bin, err = p, nil
			}
		}
	}
	if err != nil {
		if brokertest.Required() {
			t.Fatal("mosquitto is not installed: run scripts/mosquitto.sh install")
		}
		t.Skip("mosquitto is not installed; scripts/mosquitto.sh install provides it")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	dir := t.TempDir()
	conf := filepath.Join(dir, "mosquitto.conf")
	body := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nmax_inflight_messages 1000\n", port)
	if os.Geteuid() == 0 {
		body += "user root\n"
	}
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m := &mosquitto{t: t, port: port, conf: conf}
	m.start(bin)
	t.Cleanup(m.stop)
	return m
}

func (m *mosquitto) start(bin string) {
	m.t.Helper()
	m.cmd = exec.Command(bin, "-c", m.conf)
	if err := m.cmd.Start(); err != nil {
		m.t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(m.port))); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	m.t.Fatal("mosquitto did not start")
}

func (m *mosquitto) stop() {
	if m.cmd != nil && m.cmd.Process != nil {
		_ = m.cmd.Process.Kill()
		_ = m.cmd.Wait()
		m.cmd = nil
	}
}

// /readyz follows the broker: 503 while Mosquitto is down, 200 once the
// processor is connected and subscribed again.
func TestReadyzFollowsMosquitto(t *testing.T) {
	clearEnv(t)
	m := startMosquitto(t)
	bin := m.cmd.Path
	addr, logs := runProcessor(t, "--pubsub-backend", "mqtt", "--mqtt-host", "127.0.0.1", "--mqtt-port", strconv.Itoa(m.port),
		"--mqtt-client-id", "readyz-"+watermill.NewShortUUID())
	waitStatus := func(want int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		var code int
		var body string
		for time.Now().Before(deadline) {
			if code, body = get(t, "http://"+addr+"/readyz"); code == want {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("/readyz stayed %d (%s), want %d\n%s", code, body, want, logs)
	}
	waitStatus(http.StatusOK)
	m.stop()
	waitStatus(http.StatusServiceUnavailable)
	if code, _ := get(t, "http://"+addr+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d while the broker is down: the process is alive", code)
	}
	m.start(bin)
	waitStatus(http.StatusOK)
}

func TestQueueLabelsAreTrustGraphsQueueIDs(t *testing.T) {
	for name, want := range map[string]string{
		"request:tg:text-completion:default:f2": "request:tg:text-completion:default:f2",
		"q0/tg/response/x":                      "response:tg:x",
		"q1/tg/flow/chunk-load:ws:f":            "flow:tg:chunk-load:ws:f",
		"q1/tg/response/x":                      "q1/tg/response/x", // not TrustGraph's persistence
		"q1/acme/orders/new":                    "q1/acme/orders/new",
	} {
		if got := queueLabel(name); got != want {
			t.Errorf("queueLabel(%q) = %q, want %q", name, got, want)
		}
	}
}
