package pulsarpubsub_test

import (
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// TestReconnect is the universal suite's reconnect scenario without the
// suite's flaw (see TestUniversalSuite): many goroutines publish while the
// broker restarts twice, at a third and at half of the messages, and one
// subscription, opened before, must receive every message whose Publish
// succeeded. The publishing goroutines retry a failed Publish, as the suite's
// do. It must not run in parallel with other tests of this package.
func TestReconnect(t *testing.T) {
	url := brokerURL(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_PULSAR_RESTART"))
	if len(restart) == 0 {
		t.Fatal("SWITCHYARD_PULSAR_RESTART is empty")
	}
	const (
		total      = 6000
		publishers = 50
		// The longest the subscription may go without a new message: two
		// restarts back to back plus reconnecting.
		maxGap = 3 * time.Minute
	)
	queue := uniqueQueue("q1")
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: url}})
	sub := newSubscriber(t, pulsarpubsub.SubscriberConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: url}})
	ch := subscribe(t, sub, queue)

	restarts := make(chan struct{}, 2)
	restartErr := make(chan error, 1)
	go func() {
		var firstErr error
		for range restarts {
			t.Logf("restarting the broker")
			start := time.Now()
			cmd := exec.Command(restart[0], restart[1:]...)
			cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
			if err := cmd.Run(); err != nil && firstErr == nil {
				firstErr = err
			}
			t.Logf("broker restarted in %s", time.Since(start).Round(time.Millisecond))
		}
		restartErr <- firstErr
	}()

	jobs := make(chan int)
	go func() {
		for i := range total {
			jobs <- i
			if i == total/3 || i == total/2 {
				restarts <- struct{}{}
			}
		}
		close(jobs)
		close(restarts)
	}()

	var mu sync.Mutex
	published := make(map[string]bool, total)
	publishFailures := 0
	var wg sync.WaitGroup
	for range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				msg := message.NewMessage(watermill.NewUUID(), []byte("x"))
				for {
					err := pub.Publish(queue, msg)
					if err == nil {
						break
					}
					mu.Lock()
					publishFailures++
					mu.Unlock()
					time.Sleep(500 * time.Millisecond)
				}
				mu.Lock()
				published[msg.UUID] = true
				mu.Unlock()
			}
		}()
	}
	publishing := make(chan struct{})
	go func() {
		wg.Wait()
		close(publishing)
	}()

	received := make(map[string]bool, total)
	duplicates := 0
	done := false
	for !done {
		select {
		case msg, ok := <-ch:
			if !ok {
				t.Fatal("subscription closed")
			}
			if received[msg.UUID] {
				duplicates++
			}
			received[msg.UUID] = true
			msg.Ack()
		case <-publishing:
			publishing = nil
		case <-time.After(maxGap):
			t.Fatalf("no message for %s; received %d of %d", maxGap, len(received), total)
		}
		if publishing == nil && len(received) >= total {
			mu.Lock()
			done = true
			for id := range published {
				if !received[id] {
					done = false
					break
				}
			}
			mu.Unlock()
		}
	}
	if err := <-restartErr; err != nil {
		t.Fatalf("restarting the broker: %v", err)
	}
	t.Logf("received all %d messages (%d duplicates); %d Publish calls failed and were retried", total, duplicates, publishFailures)
}
