package embedded

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// TestResumingSessionsLoseNoMessages publishes continuously while a
// persistent session disconnects and resumes again and again, and checks
// that the session got every message.
func TestResumingSessionsLoseNoMessages(t *testing.T) {
	b, err := Start(context.Background(), Config{Listen: "127.0.0.1:0", InMemory: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var mu sync.Mutex
	received := map[string]bool{}
	session := func() (mqtt.Client, error) {
		opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID("resuming").SetCleanSession(false).
			SetProtocolVersion(4).SetAutoReconnect(false).
			SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
				mu.Lock()
				received[string(m.Payload())] = true
				mu.Unlock()
			})
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			return nil, fmt.Errorf("connect: %v", tok.Error())
		}
		return c, nil
	}
	c, err := session()
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Subscribe("guard/test", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c.Disconnect(10)

	var published atomic.Int64
	stop := make(chan struct{})
	var stopOnce sync.Once
	var wg sync.WaitGroup
	stopPublishing := func() {
		stopOnce.Do(func() { close(stop) })
		wg.Wait()
	}
	defer stopPublishing()
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts := mqtt.NewClientOptions().AddBroker(b.URL()).SetClientID(fmt.Sprintf("pub-%d", p)).SetProtocolVersion(4)
			pc := mqtt.NewClient(opts)
			if tok := pc.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Errorf("publisher connect: %v", tok.Error())
				return
			}
			defer pc.Disconnect(10)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				tok := pc.Publish("guard/test", 1, false, fmt.Sprintf("%d-%d", p, i))
				if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Errorf("publish: %v", tok.Error())
					return
				}
				published.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		c, err := session()
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		c.Disconnect(0)
	}
	stopPublishing()

	c, err = session()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(10)
	want := int(published.Load())
	for end := time.Now().Add(20 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		n := len(received)
		mu.Unlock()
		if n >= want {
			return
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Fatalf("the session got %d of %d messages", len(received), want)
}
