package pulsarpubsub_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/pulsarpubsub"
)

// Environment of the consumer child process of TestKill9RedeliversOnlyUnacked.
const (
	kill9ChildEnv        = "SWITCHYARD_KILL9_CHILD"        // "1" in the child
	kill9QueueEnv        = "SWITCHYARD_KILL9_QUEUE"        // the queue to consume
	kill9SubscriptionEnv = "SWITCHYARD_KILL9_SUBSCRIPTION" // the subscription
	kill9IndexAckEnv     = "SWITCHYARD_KILL9_INDEX_ACK"    // "1": batch index acknowledgment on
	// SWITCHYARD_KILL9_GROUPED_ACKS=1 makes the child ack without waiting
	// for the broker's confirmation (the adapter's default): the acks sent
	// in the last ack-grouping interval before the kill are lost too, so
	// the test then reports the duplicates without bounding them.
	kill9GroupedAcksEnv = "SWITCHYARD_KILL9_GROUPED_ACKS"
	// SWITCHYARD_PULSAR_KILL9_INDEX_ACK=1 runs the test with batch index
	// acknowledgment too. It is not the default (see
	// SubscriberConfig.EnableBatchIndexAcknowledgment): with it the broker
	// sometimes leaves messages undelivered after the kill, which this test
	// then reports as lost.
	kill9MeasureIndexAckEnv = "SWITCHYARD_PULSAR_KILL9_INDEX_ACK"
)

// A consumer killed with SIGKILL in the middle of a backlog loses nothing,
// and a new consumer of the subscription gets again only what the killed one
// had not acked. The child process (this test binary again, in child mode)
// writes the index of every message it receives to a pipe, then acks it and
// waits for the broker's confirmation (AckWithResponse) before taking the
// next one: so when it is killed every message it reported is acknowledged
// at the broker except at most the last. 10,000 messages are published in
// batches (up to 1000 messages each).
//
// Without batch index acknowledgment (the default) a batch is acknowledged
// only when all its messages were, so the reported messages of the batch
// that was being consumed come again: at most a batch. With it (only when
// SWITCHYARD_PULSAR_KILL9_INDEX_ACK=1) they are at most the one whose ack
// was in flight.
func TestKill9RedeliversOnlyUnacked(t *testing.T) {
	if os.Getenv(kill9ChildEnv) == "1" {
		kill9Child(t)
		return
	}
	url := brokerURL(t)
	t.Parallel()
	grouped := os.Getenv(kill9GroupedAcksEnv) == "1"
	modes := []bool{false}
	if os.Getenv(kill9MeasureIndexAckEnv) == "1" {
		modes = append(modes, true)
	}
	for _, indexAck := range modes {
		t.Run(fmt.Sprintf("batch-index-ack=%v", indexAck), func(t *testing.T) {
			kill9Run(t, url, indexAck, grouped)
		})
	}
}

func kill9Run(t *testing.T, url string, indexAck, grouped bool) {
	const (
		total     = 10000
		killAfter = 4000 // messages reported by the child
		batchCap  = 1000 // the client library's BatchingMaxMessages default
		maxGap    = 30 * time.Second
	)
	queue := uniqueQueue("q1")
	subscription := "kill9-" + watermill.NewShortUUID()
	subCfg := pulsarpubsub.SubscriberConfig{
		ClientConfig:                   pulsarpubsub.ClientConfig{URL: url},
		SubscriptionName:               subscription,
		EnableBatchIndexAcknowledgment: indexAck,
	}
	init := newSubscriber(t, subCfg)
	if err := init.SubscribeInitialize(queue); err != nil {
		t.Fatal(err)
	}
	pub := newPublisher(t, pulsarpubsub.PublisherConfig{ClientConfig: pulsarpubsub.ClientConfig{URL: url}})
	msgs := make([]*message.Message, total)
	for i := range msgs {
		msgs[i] = message.NewMessage(watermill.NewUUID(), []byte(strconv.Itoa(i)))
	}
	publish(t, pub, queue, msgs...)

	// The child consumes; the parent reads its reports and kills it.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var output bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestKill9RedeliversOnlyUnacked$")
	cmd.Env = append(os.Environ(),
		kill9ChildEnv+"=1", kill9QueueEnv+"="+queue, kill9SubscriptionEnv+"="+subscription,
		kill9IndexAckEnv+"="+boolEnv(indexAck), kill9GroupedAcksEnv+"="+boolEnv(grouped))
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = &output, &output
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	waited := false
	defer func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	reported := make(map[int]bool, total)
	lines := bufio.NewScanner(r)
	killed := false
	for lines.Scan() {
		i, err := strconv.Atoi(lines.Text())
		if err != nil || i < 0 || i >= total {
			t.Fatalf("child reported %q", lines.Text())
		}
		reported[i] = true
		if !killed && len(reported) >= killAfter {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatalf("killing the child: %v", err)
			}
			killed = true
		}
	}
	_ = cmd.Wait()
	waited = true
	if !killed {
		t.Fatalf("the child stopped after %d messages without being killed; its output:\n%s", len(reported), output.String())
	}
	if len(reported) >= total {
		t.Fatalf("the child consumed all %d messages before the kill took effect", total)
	}

	// A fresh consumer on the same subscription gets the rest.
	sub := newSubscriber(t, subCfg)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := sub.Subscribe(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(map[int]int, total)
	missing := total - len(reported)
	duplicates := 0
	for missing > 0 {
		select {
		case msg := <-ch:
			i, err := strconv.Atoi(string(msg.Payload))
			msg.Ack()
			if err != nil {
				t.Fatalf("unexpected payload %q", msg.Payload)
			}
			seen[i]++
			switch {
			case seen[i] > 1:
				t.Errorf("message %d delivered %d times to the fresh consumer", i, seen[i])
			case reported[i]:
				duplicates++
			default:
				missing--
			}
		case <-time.After(maxGap):
			t.Fatalf("lost: %d of %d messages never arrived (no message for %s); the broker's view of the subscription: %s",
				missing, total, maxGap, subscriptionStats(t, queue, subscription))
		}
	}
	// Anything still on its way is a duplicate too.
	for done := false; !done; {
		select {
		case msg := <-ch:
			msg.Ack()
			duplicates++
		case <-time.After(2 * time.Second):
			done = true
		}
	}
	t.Logf("batch index ack %v, grouped acks %v: child handled %d of %d messages before SIGKILL; "+
		"0 lost; %d of them delivered again", indexAck, grouped, len(reported), total, duplicates)

	bound := batchCap
	if indexAck {
		bound = 1 // the message the child was acking when it died
	}
	if !grouped && duplicates > bound {
		t.Errorf("%d messages the child had acked came again, want at most %d", duplicates, bound)
	}
}

// kill9Child consumes the queue named in the environment and reports each
// message on file descriptor 3 before acking it, until it is killed.
func kill9Child(t *testing.T) {
	report := os.NewFile(3, "report")
	if report == nil {
		t.Fatal("no report pipe on file descriptor 3")
	}
	sub, err := pulsarpubsub.NewSubscriber(pulsarpubsub.SubscriberConfig{
		ClientConfig:                   pulsarpubsub.ClientConfig{URL: brokerURL(t)},
		SubscriptionName:               os.Getenv(kill9SubscriptionEnv),
		EnableBatchIndexAcknowledgment: os.Getenv(kill9IndexAckEnv) == "1",
		AckWithResponse:                os.Getenv(kill9GroupedAcksEnv) != "1",
	}, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch, err := sub.Subscribe(context.Background(), os.Getenv(kill9QueueEnv))
	if err != nil {
		t.Fatal(err)
	}
	timeout := time.After(2 * time.Minute) // the parent kills it long before
	for {
		select {
		case msg := <-ch:
			if _, err := report.WriteString(strings.TrimSpace(string(msg.Payload)) + "\n"); err != nil {
				t.Fatalf("reporting: %v", err)
			}
			msg.Ack()
		case <-timeout:
			t.Fatal("not killed within 2 minutes")
		}
	}
}

// subscriptionStats returns the backlog figures the broker's admin API
// gives for subscription on queue (a q1 queue on public/default).
func subscriptionStats(t *testing.T, queue, subscription string) string {
	name, err := pulsarpubsub.TopicName(queue)
	if err != nil {
		return err.Error()
	}
	url := strings.TrimRight(adminURL(t), "/") + "/admin/v2/" + strings.Replace(name, "://", "/", 1) + "/stats"
	resp, err := http.Get(url)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	var stats struct {
		Subscriptions map[string]json.RawMessage `json:"subscriptions"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		return err.Error()
	}
	raw := string(stats.Subscriptions[subscription])
	var keep []string
	for _, f := range strings.Split(raw, ",") {
		for _, k := range []string{"msgBacklog", "unackedMessages", "msgDelayed", "consumers\"", "lastMarkDeletePosition", "backlogSize"} {
			if strings.Contains(f, k) {
				keep = append(keep, strings.TrimSpace(f))
			}
		}
	}
	return strings.Join(keep, ", ")
}

func boolEnv(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
