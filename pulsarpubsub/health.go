package pulsarpubsub

import (
	"fmt"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill"
)

// The client library has no API that tells whether a producer or a consumer
// is connected; it reconnects them on its own and logs what it does. The
// lines below (pulsar-client-go v0.19.0) mark a producer or consumer losing
// its connection, failing to get it back, getting it back and closing. They
// carry the fields producerID and producer_name, or consumerID and name.
const (
	logConsumerLost      = "connection closed and send to connectClosedCh" // debug
	logConsumerRetry     = "Failed to create consumer at reconnect"
	logConsumerBack      = "Reconnected consumer to broker"
	logConsumerClosed    = "Closed consumer"
	logConsumerNotClosed = "Failed to close consumer"
	logConsumerGaveUp    = "Topic Not Found."
	logProducerLost      = "Connection was closed"
	logProducerRetry     = "Failed to reconnect to broker, will retry later."
	logProducerBack      = "Reconnected producer to broker"
	logProducerClosed    = "Closed producer"
	logProducerGaveUp    = "Topic not found, stop reconnecting, close the producer"
)

// linkKind says whether a link is a producer or a consumer.
type linkKind byte

const (
	producerLink linkKind = 'p'
	consumerLink linkKind = 'c'
)

// linkKey names one producer or consumer of a client.
type linkKey struct {
	kind linkKind
	id   string
}

// linkDown is what is known about a producer or consumer without a
// connection.
type linkDown struct {
	name   string // the producer's or consumer's name
	topic  string
	since  time.Time
	reason string
}

// linkTracker follows, from the client library's log lines, which producers
// and consumers of one client are without a connection.
type linkTracker struct {
	mu   sync.Mutex
	down map[linkKey]*linkDown
}

// observe updates the tracker with one log line of the client library.
func (t *linkTracker) observe(msg string, fields watermill.LogFields) {
	var kind linkKind
	var idField, nameField string
	switch msg {
	case logConsumerLost, logConsumerRetry, logConsumerBack, logConsumerClosed, logConsumerNotClosed, logConsumerGaveUp:
		kind, idField, nameField = consumerLink, "consumerID", "name"
	case logProducerLost, logProducerRetry, logProducerBack, logProducerClosed, logProducerGaveUp:
		kind, idField, nameField = producerLink, "producerID", "producer_name"
	default:
		return
	}
	id, ok := fields[idField]
	if !ok {
		return
	}
	key := linkKey{kind: kind, id: fmt.Sprint(id)}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch msg {
	case logConsumerBack, logConsumerClosed, logConsumerNotClosed, logProducerBack, logProducerClosed:
		delete(t.down, key)
		return
	}
	d, ok := t.down[key]
	if !ok {
		if t.down == nil {
			t.down = map[linkKey]*linkDown{}
		}
		d = &linkDown{since: time.Now(), reason: "the connection to the broker was closed"}
		d.name, _ = fields[nameField].(string)
		d.topic, _ = fields["topic"].(string)
		t.down[key] = d
	}
	switch msg {
	case logConsumerRetry, logProducerRetry:
		if err, ok := fields["error"]; ok && err != nil {
			d.reason = "reconnecting failed: " + fmt.Sprint(err)
		}
	case logConsumerGaveUp, logProducerGaveUp:
		d.reason = "the topic no longer exists; the client library stopped reconnecting"
	}
}

// problem returns the longest outage of a link of kind whose name is in
// names, if any.
func (t *linkTracker) problem(kind linkKind, names map[string]bool) (linkDown, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var worst *linkDown
	for key, d := range t.down {
		if key.kind != kind || !names[d.name] {
			continue
		}
		if worst == nil || d.since.Before(worst.since) {
			worst = d
		}
	}
	if worst == nil {
		return linkDown{}, false
	}
	return *worst, true
}

// health returns nil when no producer (or consumer) of kind named in names
// is known to be without a connection, else an error saying which, since
// when and why.
func (c *connInfo) health(kind linkKind, names map[string]bool, what string) error {
	if c == nil || len(names) == 0 {
		return nil
	}
	d, ok := c.diag.links.problem(kind, names)
	if !ok {
		return nil
	}
	return fmt.Errorf("pulsarpubsub: %s of %s disconnected from %s since %s: %s",
		what, d.topic, c.url, d.since.Format("15:04:05"), d.reason)
}

// slowWatch calls hook every interval, with the time since it was started
// and limit, until the returned stop function is called. stop returns after
// the last call of hook ended. A nil hook does nothing.
func slowWatch(hook func(elapsed, limit time.Duration), interval, limit time.Duration) (stop func()) {
	if hook == nil {
		return func() {}
	}
	if interval <= 0 {
		interval = DefaultSlowConnectInterval
	}
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for {
			select {
			case <-done:
				return
			case <-ticker.C:
				hook(time.Since(start), limit)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
