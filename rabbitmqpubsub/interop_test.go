package rabbitmqpubsub_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/rabbitmqpubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// tgPython returns the interpreter of TrustGraph's Python environment
// (scripts/python-env.sh). Under `make test` it creates the environment
// when missing and a failure fails the test; otherwise a missing
// environment skips it.
func tgPython(t *testing.T) string {
	t.Helper()
	args := []string{"--check"}
	if brokertest.Required() {
		args = nil
	}
	cmd := exec.Command(filepath.Join("..", "scripts", "python-env.sh"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(fmt.Sprintf("scripts/python-env.sh %s: %v %s", strings.Join(args, " "), err, stderr.String()))
		msg = "the TrustGraph Python environment is not available (" + msg + "); run scripts/python-env.sh to create it"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return strings.TrimSpace(string(out))
}

// TestTrustGraphPythonInterop runs TrustGraph 2.11.1's own RabbitMQ backend
// (testdata/tgpeer.py) against the adapter on one broker: Python sends flow
// messages and requests that Go receives, and Go answers each request on the
// response topic, where Python's anonymous exclusive queue receives it.
func TestTrustGraphPythonInterop(t *testing.T) {
	cfg := connConfig(t)
	py := tgPython(t)
	id := uniqueName("tginterop")
	flow := "flow:tg:" + id + "-chunk-load:default"
	request := "request:tg:" + id + "-text-completion:default:default"
	response := "response:tg:" + id + "-text-completion:default:default"
	const count = 20
	wf, _ := rabbitmqpubsub.WireOf(flow)
	wr, _ := rabbitmqpubsub.WireOf(request)
	sub := "text-completion--default--default--request"
	deleteQueueAtEnd(t, wf.QueueName(sub), wr.QueueName(sub))

	// Go subscribes first: Python's producers declare only the exchange, and
	// a fanout exchange drops what no bound queue takes.
	s := newSubscriber(t, rabbitmqpubsub.SubscriberConfig{ConnectionConfig: cfg, SubscriptionName: sub})
	flowMsgs := subscribe(t, s, flow)
	reqMsgs := subscribe(t, s, request)
	waitConsuming(t, s)
	p := newPublisher(t, rabbitmqpubsub.PublisherConfig{ConnectionConfig: cfg})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "tgpeer.py"),
		"--host", cfg.Host, "--port", strconv.Itoa(cfg.Port), "--username", cfg.Username,
		"--password-env", "TGPEER_PASSWORD", "--flow", flow, "--request", request, "--response", response,
		"--count", strconv.Itoa(count))
	cmd.Env = append(os.Environ(), "TGPEER_PASSWORD="+cfg.Password)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	var out strings.Builder
	outDone := make(chan struct{})
	go func() {
		defer close(outDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			outMu.Lock()
			out.WriteString(sc.Text() + "\n")
			outMu.Unlock()
		}
	}()

	gotFlow := map[string]bool{}
	answered := 0
	deadline := time.After(90 * time.Second)
	for len(gotFlow) < count || answered < count {
		select {
		case m := <-flowMsgs:
			var req schema.TextCompletionRequest
			if err := schema.Unmarshal(m.Payload, &req); err != nil || req.System != "flow" {
				t.Errorf("flow message %q: %v", m.Payload, err)
			}
			if want := "flow-" + strings.Fields(req.Prompt)[1]; m.Metadata.Get(schema.IDProperty) != want {
				t.Errorf("flow message id %q, want %q", m.Metadata.Get(schema.IDProperty), want)
			}
			if m.Metadata.Get(schema.DeliveryAttemptKey) != "1" {
				t.Errorf("flow message attempt %q", m.Metadata.Get(schema.DeliveryAttemptKey))
			}
			gotFlow[m.Metadata.Get(schema.IDProperty)] = true
			m.Ack()
		case m := <-reqMsgs:
			var req schema.TextCompletionRequest
			if err := schema.Unmarshal(m.Payload, &req); err != nil {
				t.Fatalf("request %q: %v", m.Payload, err)
			}
			model := "go-echo"
			resp, err := schema.Marshal(&schema.TextCompletionResponse{Response: req.Prompt, Model: &model, EndOfStream: true})
			if err != nil {
				t.Fatal(err)
			}
			out := message.NewMessage(watermill.NewUUID(), resp)
			out.Metadata.Set(schema.IDProperty, m.Metadata.Get(schema.IDProperty))
			publish(t, p, response, out)
			m.Ack()
			answered++
		case <-deadline:
			outMu.Lock()
			t.Fatalf("after 90s: %d of %d flow messages, %d of %d requests\npeer stdout:\n%s\npeer stderr:\n%s", len(gotFlow), count, answered, count, out.String(), stderr.String())
		}
	}
	<-outDone
	err = cmd.Wait()
	outMu.Lock()
	defer outMu.Unlock()
	if err != nil || !strings.Contains(out.String(), "ok ") {
		t.Fatalf("tgpeer.py failed (%v):\n%s\n%s", err, out.String(), stderr.String())
	}
	t.Logf("tgpeer.py: %s", strings.TrimSpace(out.String()))
}
