package kafkapubsub_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/kafkapubsub"
)

// Environment of the child process of TestKillConsumer.
const (
	childTopicEnv = "SWITCHYARD_KAFKA_CHILD_TOPIC"
	childGroupEnv = "SWITCHYARD_KAFKA_CHILD_GROUP"
	childOutEnv   = "SWITCHYARD_KAFKA_CHILD_OUT"
)

// TestKillConsumer kills (SIGKILL) a consumer process in the middle of a
// backlog of 10,000 messages, consumes the rest with a new consumer of the
// same group, and checks that every message was handled at least once. It
// reports the duplicates: the messages acked by the killed process after
// its last commit.
func TestKillConsumer(t *testing.T) {
	addr := bootstrap(t)
	const total = 10000
	topic := uniqueQueue("q1", "flow")
	group := "kill-" + watermill.NewShortUUID()
	out := t.TempDir() + "/handled"

	pub := newPublisher(t)
	init := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	if err := init.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}
	msgs := newMessages(total, "k")
	publish(t, pub, topic, msgs...)

	cmd := exec.Command(os.Args[0], "-test.run=^TestKillConsumerChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), childTopicEnv+"="+topic, childGroupEnv+"="+group, childOutEnv+"="+out,
		"SWITCHYARD_KAFKA_BOOTSTRAP="+addr)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		n := len(readLines(t, out))
		if n >= total/3 {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			t.Fatalf("the child handled only %d messages in 90s", n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	byChild := readLines(t, out)
	t.Logf("child killed after handling %d messages", len(byChild))

	seen := map[string]int{}
	for _, id := range byChild {
		seen[id]++
	}
	// The killed member stays in the group until its session times out
	// (6s); the new consumer gets the partition then.
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: group})
	ch, _ := subscribe(t, sub, topic)
	redelivered := 0
	for missing(seen, msgs) > 0 {
		select {
		case m := <-ch:
			seen[m.UUID]++
			redelivered++
			m.Ack()
		case <-time.After(30 * time.Second):
			t.Fatalf("lost %d messages: nothing new for 30s after %d redeliveries", missing(seen, msgs), redelivered)
		}
	}
	expectNothing(t, ch, 2*time.Second)
	dups := 0
	for _, n := range seen {
		dups += n - 1
	}
	t.Logf("%d published, %d distinct handled, 0 lost, %d duplicates (handled by the killed process after its last commit)",
		total, len(seen), dups)
}

func missing(seen map[string]int, msgs []*message.Message) int {
	n := 0
	for _, m := range msgs {
		if seen[m.UUID] == 0 {
			n++
		}
	}
	return n
}

func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// TestKillConsumerChild is the consumer process TestKillConsumer kills. It
// runs only as that child: it appends each message's UUID to a file, then
// acks it, until it is killed.
func TestKillConsumerChild(t *testing.T) {
	topic := os.Getenv(childTopicEnv)
	if topic == "" {
		t.Skip("runs only as the child process of TestKillConsumer")
	}
	f, err := os.OpenFile(os.Getenv(childOutEnv), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	sub := newSubscriber(t, kafkapubsub.SubscriberConfig{SubscriptionName: os.Getenv(childGroupEnv)})
	ch, err := sub.Subscribe(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	for m := range ch {
		if _, err := fmt.Fprintln(f, m.UUID); err != nil {
			t.Fatal(err)
		}
		m.Ack()
	}
}
