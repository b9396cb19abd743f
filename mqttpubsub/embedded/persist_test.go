package embedded

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestRestartsLoseNoMessages restarts the broker twice, on the same data
// directory, while a publisher streams QoS 1 messages to a persistent
// shared-subscription consumer, and checks that every message arrives.
func TestRestartsLoseNoMessages(t *testing.T) {
	const n = 10_000
	dir := t.TempDir()
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	defer func() { _ = b.Close() }()

	rcv := newReceiver()
	consumer := mustConnect(t, consumerOptions(b.URL(), "restart-consumer", rcv))
	defer consumer.Disconnect(100)
	mustSubscribe(t, consumer, "$share/group/test/restart")

	pub := mustConnect(t, mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("restart-publisher").
		SetCleanSession(false).SetProtocolVersion(4).SetAutoReconnect(true).
		SetMaxReconnectInterval(100*time.Millisecond))
	defer pub.Disconnect(100)

	retries := 0
	started := time.Now()
	for i := 0; i < n; i++ {
		if i == n/3 || i == 2*n/3 {
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if b, err = Start(context.Background(), Config{Listen: addr, DataDir: dir}); err != nil {
				t.Fatalf("restart: %v", err)
			}
		}
		for {
			tok := pub.Publish("test/restart", 1, false, fmt.Sprint(i))
			if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
				break
			}
			// Not acknowledged: send it again (at least once).
			retries++
			if retries > 100 {
				t.Fatalf("message %d: no PUBACK after %d tries: %v", i, retries, tok.Error())
			}
		}
	}
	rcv.waitFor(t, n, 60*time.Second)
	distinct, total := rcv.counts()
	t.Logf("%d messages, 2 broker restarts: %d distinct received, 0 lost, %d duplicates, %d publish retries, %s",
		n, distinct, total-distinct, retries, time.Since(started).Round(time.Millisecond))
	if distinct != n {
		t.Fatalf("got %d distinct messages, want %d", distinct, n)
	}
}

// TestOfflineBacklog publishes a large backlog to a persistent session
// whose client is away, and checks that all of it arrives once the client
// is back. Under the race detector the backlog is 20,000 instead of
// 200,000, to keep the run short.
func TestOfflineBacklog(t *testing.T) {
	n := 200_000
	if raceEnabled {
		n = 20_000
	}
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()

	rcv := newReceiver()
	consumer := mustConnect(t, consumerOptions(b.URL(), "backlog-consumer", rcv))
	mustSubscribe(t, consumer, "test/backlog")
	consumer.Disconnect(100)

	pub := mustConnect(t, mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("backlog-publisher").
		SetProtocolVersion(4).SetAutoReconnect(false))
	defer pub.Disconnect(100)
	started := time.Now()
	const window = 2000
	tokens := make([]mqtt.Token, 0, window)
	wait := func() {
		for _, tok := range tokens {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("publish not acknowledged: %v", tok.Error())
			}
		}
		tokens = tokens[:0]
	}
	for i := 0; i < n; i++ {
		tokens = append(tokens, pub.Publish("test/backlog", 1, false, fmt.Sprint(i)))
		if len(tokens) == window {
			wait()
		}
	}
	wait()
	published := time.Since(started)

	started = time.Now()
	consumer = mustConnect(t, consumerOptions(b.URL(), "backlog-consumer", rcv))
	defer consumer.Disconnect(100)
	rcv.waitFor(t, n, 5*time.Minute)
	drained := time.Since(started)
	distinct, total := rcv.counts()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("backlog of %d: published in %s (%.0f/s), delivered in %s (%.0f/s), %d distinct, 0 lost, %d duplicates; test process (broker and clients) peak RSS %s, heap in use now %d MiB",
		n, published.Round(time.Millisecond), float64(n)/published.Seconds(), drained.Round(time.Millisecond),
		float64(n)/drained.Seconds(), distinct, total-distinct, peakRSS(), ms.HeapInuse>>20)
	if distinct != n {
		t.Fatalf("got %d distinct messages, want %d", distinct, n)
	}
}

// TestDataDirLocked starts a second broker on a data directory in use.
func TestDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if b.DataDir() != dir {
		t.Fatalf("DataDir() = %q, want %q", b.DataDir(), dir)
	}
	_, err = Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if !errors.Is(err, ErrDataDirLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "in use by another broker") {
		t.Fatalf("second broker on %s: %v", dir, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b, err = Start(context.Background(), Config{Listen: "127.0.0.1:0", DataDir: dir})
	if err != nil {
		t.Fatalf("after the first broker closed: %v", err)
	}
	_ = b.Close()
}

// TestDefaultDataDir checks where the broker keeps its data by default.
func TestDefaultDataDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	t.Setenv("HOME", t.TempDir())
	want, err := DefaultDataDir()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(want, "switchyard/broker") {
		t.Fatalf("DefaultDataDir() = %q", want)
	}
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.DataDir() != want {
		t.Fatalf("DataDir() = %q, want %q", b.DataDir(), want)
	}
	m, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatalf("in memory next to a broker on the default directory: %v", err)
	}
	defer m.Close()
	if m.DataDir() != "" {
		t.Fatalf("in-memory DataDir() = %q", m.DataDir())
	}
}
