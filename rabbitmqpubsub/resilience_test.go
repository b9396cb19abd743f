package rabbitmqpubsub_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
)

// childTopicEnv, when set, makes the test binary a consumer of that topic
// (subscription "kill") that prints each message's UUID on stdout before it
// acks it, until it is killed.
const childTopicEnv = "SWITCHYARD_RABBITMQ_CHILD_TOPIC"

func TestMain(m *testing.M) {
	if topic := os.Getenv(childTopicEnv); topic != "" {
		os.Exit(runChildConsumer(topic))
	}
	os.Exit(m.Run())
}

func runChildConsumer(topic string) int {
	cfg := rabbitmqpubsub.SubscriberConfig{SubscriptionName: "kill"}
	cfg.Host = os.Getenv("SWITCHYARD_RABBITMQ_HOST")
	fmt.Sscan(os.Getenv("SWITCHYARD_RABBITMQ_PORT"), &cfg.Port)
	cfg.Username = os.Getenv("SWITCHYARD_RABBITMQ_USER")
	cfg.Password = os.Getenv("SWITCHYARD_RABBITMQ_PASSWORD")
	s, err := rabbitmqpubsub.NewSubscriber(cfg, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	msgs, err := s.Subscribe(context.Background(), topic)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for m := range msgs {
		if _, err := os.Stdout.WriteString(m.UUID + "\n"); err != nil {
			return 1
		}
		m.Ack()
	}
	return 0
}

// TestKillConsumerLosesNothing kills (SIGKILL) a consumer process in the
// middle of a stream of 10,000 flow messages; a second consumer on the same
// subscription then gets every message the first one did not ack.
func TestKillConsumerLosesNothing(t *testing.T) {
	cfg := connConfig(t)
	topic := "flow:tg:" + uniqueName("kill")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("kill"))
	const total = 10000

	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{ConnectionConfig: cfg, SubscriptionName: "kill"})
	if err := s.SubscribeInitialize(topic); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childTopicEnv+"="+topic)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })

	var mu sync.Mutex
	seen := map[string]int{}
	var childCount atomic.Int64
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			mu.Lock()
			seen[sc.Text()]++
			mu.Unlock()
			childCount.Add(1)
		}
	}()

	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg})
	msgs := newMessages(total, "kill")
	pubErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 100 {
			if err := p.Publish(topic, msgs[i:i+100]...); err != nil {
				pubErr <- err
				return
			}
		}
		pubErr <- nil
	}()

	deadline := time.Now().Add(60 * time.Second)
	for childCount.Load() < 3000 {
		if time.Now().After(deadline) {
			t.Fatalf("the child consumer handled only %d messages in 60s", childCount.Load())
		}
		time.Sleep(time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	<-readDone
	killedAt := childCount.Load()
	if err := <-pubErr; err != nil {
		t.Fatalf("publishing: %v", err)
	}

	ch := subscribe(t, s, topic)
	deadline = time.Now().Add(90 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total {
			break
		}
		select {
		case m := <-ch:
			mu.Lock()
			seen[m.UUID]++
			mu.Unlock()
			m.Ack()
		case <-time.After(time.Until(deadline)):
			t.Fatalf("%d of %d distinct messages received after the kill", n, total)
		}
	}
	for _, m := range msgs {
		if seen[m.UUID] == 0 {
			t.Fatalf("message %s never received", m.UUID)
		}
	}
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("child handled %d messages before SIGKILL; all %d received, %d twice", killedAt, total, dups)
	expectNothing(t, ch, 500*time.Millisecond)
}

// TestBrokerRestart restarts the broker in the middle of a stream of flow
// messages: nothing is lost, Health reports the outage on both sides and
// recovers.
func TestBrokerRestart(t *testing.T) {
	cfg := connConfig(t)
	restart := strings.Fields(brokertest.Env(t, "SWITCHYARD_RABBITMQ_RESTART"))
	topic := "flow:tg:" + uniqueName("restart")
	w, _ := rabbitmqpubsub.WireOf(topic)
	deleteQueueAtEnd(t, w.QueueName("restart"))
	const total = 3000

	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{ConnectionConfig: cfg, SubscriptionName: "restart"})
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg, PublishTimeout: 90 * time.Second})
	ch := subscribe(t, s, topic)
	waitConsuming(t, s)

	var mu sync.Mutex
	seen := map[string]bool{}
	go func() {
		for m := range ch {
			mu.Lock()
			seen[m.UUID] = true
			mu.Unlock()
			m.Ack()
		}
	}()

	msgs := newMessages(total, "restart")
	var published atomic.Int64
	pubErr := make(chan error, 1)
	go func() {
		for i := 0; i < total; i += 10 {
			if err := p.Publish(topic, msgs[i:i+10]...); err != nil {
				pubErr <- err
				return
			}
			published.Add(10)
			time.Sleep(2 * time.Millisecond)
		}
		pubErr <- nil
	}()
	for published.Load() < 500 {
		time.Sleep(5 * time.Millisecond)
	}

	restarted := make(chan error, 1)
	go func() {
		out, err := exec.Command(restart[0], restart[1:]...).CombinedOutput()
		if err != nil {
			err = fmt.Errorf("%v: %s", err, out)
		}
		restarted <- err
	}()
	var subDown, pubDown error
	var restartErr error
poll:
	for {
		select {
		case restartErr = <-restarted:
			break poll
		case <-time.After(20 * time.Millisecond):
			if err := s.Health(); err != nil && subDown == nil {
				subDown = err
			}
			if err := p.Health(); err != nil && pubDown == nil {
				pubDown = err
			}
		}
	}
	if restartErr != nil {
		t.Fatalf("restarting the broker: %v", restartErr)
	}
	if subDown == nil || pubDown == nil {
		t.Errorf("Health during the restart: subscriber %v, publisher %v; want errors from both", subDown, pubDown)
	}
	t.Logf("Health while down: subscriber %q, publisher %q", subDown, pubDown)
	if strings.Contains(fmt.Sprint(subDown, pubDown), cfg.Password) {
		t.Errorf("a Health error shows the password")
	}
	if err := <-pubErr; err != nil {
		t.Fatalf("publishing across the restart: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		n := len(seen)
		mu.Unlock()
		if n == total {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d messages received after the restart", n, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitConsuming(t, s)
	if err := p.Health(); err != nil {
		t.Errorf("publisher Health after the restart: %v", err)
	}
	var _ message.Subscriber = s
}
