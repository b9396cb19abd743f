package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestLimitRefusesPublish fills a session's queue to its limit and checks
// that a further publish is refused to its publisher (no PUBACK for MQTT
// 3.1.1, reason "quota exceeded" for MQTT 5), that the refused messages
// never arrive, and that every accepted one does.
func TestLimitRefusesPublish(t *testing.T) {
	const limit = 10
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true, MaxSessionMessages: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	rcv := newReceiver()
	consumer := mustConnect(t, consumerOptions(b.URL(), "limit-consumer", rcv))
	mustSubscribe(t, consumer, "test/limit")
	consumer.Disconnect(100)

	pub := mustConnect(t, mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("limit-publisher").
		SetProtocolVersion(4).SetAutoReconnect(false))
	defer pub.Disconnect(100)
	for i := 0; i < limit; i++ {
		if tok := pub.Publish("test/limit", 1, false, fmt.Sprint("ok-", i)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d below the limit: %v", i, tok.Error())
		}
	}
	// MQTT 3.1.1: the broker withholds the PUBACK, the send does not succeed.
	tok := pub.Publish("test/limit", 1, false, "refused-v3")
	if tok.WaitTimeout(time.Second) {
		t.Fatalf("publish over the limit was acknowledged (error %v)", tok.Error())
	}
	// MQTT 5: the PUBACK says "quota exceeded".
	v5 := dialV5(t, b.Addr(), "limit-publisher-v5")
	if code := v5.publish(t, 1, "test/limit", "refused-v5"); code != packets.ErrQuotaExceeded.Code {
		t.Fatalf("MQTT 5 publish over the limit: PUBACK reason %#x, want %#x", code, packets.ErrQuotaExceeded.Code)
	}

	consumer = mustConnect(t, consumerOptions(b.URL(), "limit-consumer", rcv))
	defer consumer.Disconnect(100)
	rcv.waitFor(t, limit, 10*time.Second)
	// Once the backlog is delivered, there is room again.
	if code := v5.publish(t, 2, "test/limit", "after"); code != packets.CodeSuccess.Code {
		t.Fatalf("publish after the backlog drained: PUBACK reason %#x", code)
	}
	rcv.waitFor(t, limit+1, 10*time.Second)
	time.Sleep(200 * time.Millisecond)
	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	for p := range rcv.seen {
		if strings.HasPrefix(p, "refused") {
			t.Errorf("refused message %q was delivered", p)
		}
	}
	if len(rcv.seen) != limit+1 {
		t.Errorf("got %d distinct messages, want %d: %v", len(rcv.seen), limit+1, rcv.seen)
	}
}

// TestByteLimitRefusesPublish refuses a message that would take the queue
// past its byte limit.
func TestByteLimitRefusesPublish(t *testing.T) {
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true, MaxSessionBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rcv := newReceiver()
	consumer := mustConnect(t, consumerOptions(b.URL(), "bytes-consumer", rcv))
	mustSubscribe(t, consumer, "test/bytes")
	consumer.Disconnect(100)
	v5 := dialV5(t, b.Addr(), "bytes-publisher")
	if code := v5.publish(t, 1, "test/bytes", strings.Repeat("a", 500)); code != packets.CodeSuccess.Code {
		t.Fatalf("first message: reason %#x", code)
	}
	if code := v5.publish(t, 2, "test/bytes", strings.Repeat("b", 500)); code != packets.ErrQuotaExceeded.Code {
		t.Fatalf("message over the byte limit: reason %#x, want %#x", code, packets.ErrQuotaExceeded.Code)
	}
}

// TestWarningsRateLimited refuses many publishes in a burst and checks that
// the log has at most one warning line per interval for the client, whose
// "events" add up to the number of refusals.
func TestWarningsRateLimited(t *testing.T) {
	const refusals = 50
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	every := 300 * time.Millisecond
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true, MaxSessionMessages: 1, WarnEvery: every, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver()
	consumer := mustConnect(t, consumerOptions(b.URL(), "warn-consumer", rcv))
	mustSubscribe(t, consumer, "test/warn")
	consumer.Disconnect(100)

	v5 := dialV5(t, b.Addr(), "warn-publisher")
	if code := v5.publish(t, 1, "test/warn", "fits"); code != 0 {
		t.Fatalf("first publish: reason %#x", code)
	}
	started := time.Now()
	for i := 0; i < refusals; i++ {
		if code := v5.publish(t, uint16(i+2), "test/warn", "over"); code != packets.ErrQuotaExceeded.Code {
			t.Fatalf("publish %d: reason %#x", i, code)
		}
	}
	elapsed := time.Since(started)
	time.Sleep(2 * every) // let the summary line out
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	events := regexp.MustCompile(`events=(\d+)`)
	lines, sum := 0, 0
	for _, line := range strings.Split(buf.String(), "\n") {
		if !strings.Contains(line, "publish refused") {
			continue
		}
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "client=warn-publisher") {
			t.Errorf("unexpected line: %s", line)
		}
		m := events.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("no event count in %q", line)
		}
		n, _ := strconv.Atoi(m[1])
		lines++
		sum += n
	}
	if strings.Contains(buf.String(), "publish packet error") {
		t.Errorf("mochi's per-message error line got through:\n%s", buf.String())
	}
	maxLines := 2 + int(elapsed/every)
	t.Logf("%d refusals in %s: %d warning lines (at most %d allowed), events adding up to %d", refusals, elapsed.Round(time.Millisecond), lines, maxLines, sum)
	if sum != refusals || lines > maxLines || lines < 1 {
		t.Fatalf("%d lines with events adding up to %d, want at most %d lines adding up to %d:\n%s", lines, sum, maxLines, refusals, buf.String())
	}
}

// TestWarnLimiter checks the limiter's counting with a controlled clock.
func TestWarnLimiter(t *testing.T) {
	var buf syncBuffer
	w := newWarnLimiter(slog.NewTextHandler(&buf, nil), time.Hour)
	now := time.Unix(1000, 0)
	w.state.mu.Lock()
	w.state.now = func() time.Time { return now }
	w.state.mu.Unlock()
	log := slog.New(w)
	for i := 0; i < 5; i++ {
		log.Warn("quota", "client", "a")
	}
	log.Warn("quota", "client", "b")
	log.Info("info lines pass", "client", "a")
	log.Info("info lines pass", "client", "a")
	now = now.Add(time.Hour)
	log.Warn("quota", "client", "a")
	log.Warn("quota", "client", "a")
	w.close()
	out := buf.String()
	want := []string{
		`msg=quota client=a events=1`,
		`msg=quota client=b events=1`,
		`msg="info lines pass" client=a`,
		`msg="info lines pass" client=a`,
		`msg=quota client=a events=5`,
		`msg=quota client=a events=1`,
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), out)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d: %s, want %s", i, lines[i], w)
		}
	}
}
