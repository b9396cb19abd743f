package kafkapubsub_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/kafkapubsub"
	"github.com/switchyard-go/switchyard/schema"
)

// tgPython returns the interpreter of TrustGraph's Python environment
// (scripts/python-env.sh), checked to import TrustGraph's Kafka backend.
// Under `make test` it creates the environment when missing and a failure
// fails the test; otherwise a missing environment skips it.
func tgPython(t *testing.T) string {
	t.Helper()
	unavailable := func(msg string) {
		msg = "the TrustGraph Python environment is not available (" + msg + "); run scripts/python-env.sh to create it"
		if brokertest.Required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	args := []string{"--check"}
	if brokertest.Required() {
		args = nil
	}
	cmd := exec.Command(filepath.Join("..", "scripts", "python-env.sh"), args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		unavailable(strings.TrimSpace(fmt.Sprintf("scripts/python-env.sh %s: %v %s", strings.Join(args, " "), err, stderr.String())))
	}
	py := strings.TrimSpace(string(out))
	probe := exec.Command(py, "-c", "import aiokafka, trustgraph.base.async_kafka_backend; print(aiokafka.__version__)")
	if b, err := probe.CombinedOutput(); err != nil {
		unavailable(fmt.Sprintf("%s cannot import TrustGraph's Kafka backend: %v %s", py, err, strings.TrimSpace(string(b))))
	}
	return py
}

// Expected content of the Triples message number i sent by testdata/tgpeer.py.
const (
	interopLabel  = "http://www.w3.org/2000/01/rdf-schema#label"
	interopSource = "http://example.org/source"
	interopXSDInt = "http://www.w3.org/2001/XMLSchema#integer"
	interopGraph  = "urn:graph:interop"
)

// checkInteropTriples reports how the Triples message i decoded from a
// Python record differs from what tgpeer.py sent.
func checkInteropTriples(i int, tr *schema.Triples) error {
	if tr.Metadata == nil || *tr.Metadata != (schema.Metadata{ID: fmt.Sprintf("doc-%d", i), Root: "root", Collection: "interop"}) {
		return fmt.Errorf("metadata %+v", tr.Metadata)
	}
	if len(tr.Triples) != 2 {
		return fmt.Errorf("%d triples, want 2", len(tr.Triples))
	}
	label, quoted := tr.Triples[0], tr.Triples[1]
	entity := fmt.Sprintf("http://example.org/e%d", i)
	checkLabel := func(l *schema.Triple) error {
		switch {
		case l == nil || l.S == nil || l.P == nil || l.O == nil:
			return fmt.Errorf("incomplete label triple %+v", l)
		case *l.S != (schema.Term{Type: "i", IRI: entity}):
			return fmt.Errorf("label subject %+v", *l.S)
		case *l.P != (schema.Term{Type: "i", IRI: interopLabel}):
			return fmt.Errorf("label predicate %+v", *l.P)
		case *l.O != (schema.Term{Type: "l", Value: fmt.Sprintf("entité %d ✓", i), Language: "fr"}):
			return fmt.Errorf("label object %+v", *l.O)
		case l.G != nil:
			return fmt.Errorf("label graph %q, want none", *l.G)
		}
		return nil
	}
	if err := checkLabel(&label); err != nil {
		return err
	}
	switch {
	case quoted.S == nil || quoted.S.Type != "t" || quoted.S.Triple == nil:
		return fmt.Errorf("quoted triple subject %+v", quoted.S)
	case quoted.P == nil || *quoted.P != (schema.Term{Type: "i", IRI: interopSource}):
		return fmt.Errorf("quoted triple predicate %+v", quoted.P)
	case quoted.O == nil || *quoted.O != (schema.Term{Type: "l", Value: strconv.Itoa(i), Datatype: interopXSDInt}):
		return fmt.Errorf("quoted triple object %+v", quoted.O)
	case quoted.G == nil || *quoted.G != interopGraph:
		return fmt.Errorf("quoted triple graph %v", quoted.G)
	}
	if err := checkLabel(quoted.S.Triple); err != nil {
		return fmt.Errorf("inside the quoted triple: %w", err)
	}
	return nil
}

// interopLine returns the text after prefix on the first line of out that
// starts with it.
func interopLine(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strings.TrimPrefix(l, prefix)
		}
	}
	return ""
}

// TestTrustGraphPythonInterop runs TrustGraph 2.11.1's own Kafka backend
// (testdata/tgpeer.py, get_async_pubsub with pubsub_backend "kafka") against
// the adapter on one broker. Python sends Triples on a flow queue and
// TextCompletionRequests on a request queue, which Go receives in the
// consumer groups TrustGraph's processors would use; Go answers each request
// on the response queue, where Python's per-client group, reading from the
// earliest offset as TrustGraph's request/response client does, matches each
// answer by id. Counts are exact on both sides and on the broker (end
// offsets and committed offsets).
func TestTrustGraphPythonInterop(t *testing.T) {
	bs := bootstrap(t)
	py := tgPython(t)
	adm := admin(t)
	const count = 20

	flowID := "interop-" + strings.ToLower(watermill.NewShortUUID())
	flowQ := "flow:tg:triples-store:default:" + flowID
	requestQ := "request:tg:text-completion:default:" + flowID
	responseQ := "response:tg:text-completion:default:" + flowID
	// Subscription names as a FlowProcessor forms them: {id}--{workspace}--{flow}--{spec}.
	flowSub := "triples-write--default--" + flowID + "--input"
	requestSub := "text-completion--default--" + flowID + "--request"
	var topics []string
	for _, q := range []string{flowQ, requestQ, responseQ} {
		name, err := kafkapubsub.TopicName(q)
		if err != nil {
			t.Fatal(err)
		}
		topics = append(topics, name)
	}
	flowTopic, requestTopic, responseTopic := topics[0], topics[1], topics[2]

	// Registered before the subscribers, so it runs after they closed and
	// left their groups: the test leaves no topic or group behind.
	var peerOutput func() string // what tgpeer.py printed, once started
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		groups := []string{flowSub, requestSub}
		var pyPrefix string
		if peerOutput != nil {
			pyPrefix = strings.TrimSpace(interopLine(peerOutput(), "subscription "))
		}
		if listed, err := adm.ListGroups(ctx); err == nil && pyPrefix != "" {
			for _, g := range listed.Groups() {
				if strings.HasPrefix(g, pyPrefix+"-") {
					groups = append(groups, g)
				}
			}
		}
		if resp, err := adm.DeleteGroups(ctx, groups...); err != nil || resp.Error() != nil {
			t.Logf("deleting groups %v: %v %v", groups, err, resp.Error())
		}
		if resp, err := adm.DeleteTopics(ctx, topics...); err != nil || resp.Error() != nil {
			t.Logf("deleting topics %v: %v %v", topics, err, resp.Error())
		}
	})

	// Go subscribes first: SubscribeInitialize creates the topics and commits
	// their current end for the new groups, so the Python producers'
	// messages are delivered even before the groups have joined.
	started := time.Now()
	fs := newSubscriber(t, kafkapubsub.SubscriberConfig{Config: kafkapubsub.Config{BootstrapServers: bs}, SubscriptionName: flowSub})
	rs := newSubscriber(t, kafkapubsub.SubscriberConfig{Config: kafkapubsub.Config{BootstrapServers: bs}, SubscriptionName: requestSub})
	flowMsgs, _ := subscribe(t, fs, flowQ)
	reqMsgs, _ := subscribe(t, rs, requestQ)
	p := newPublisher(t)
	subscribed := time.Since(started)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, filepath.Join("testdata", "tgpeer.py"),
		"--bootstrap", bs, "--flow", flowQ, "--request", requestQ, "--response", responseQ,
		"--count", strconv.Itoa(count))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	pyStart := time.Now()
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
	peerOutput = func() string {
		outMu.Lock()
		defer outMu.Unlock()
		return fmt.Sprintf("peer stdout:\n%s\npeer stderr:\n%s", out.String(), stderr.String())
	}

	gotFlow := map[string]bool{}
	answered := map[string]bool{}
	uuids := map[string]bool{}
	var flowDone, requestsDone time.Duration
	deadline := time.After(90 * time.Second)
	for len(gotFlow) < count || len(answered) < count {
		select {
		case m := <-flowMsgs:
			id := m.Metadata.Get(schema.IDProperty)
			i, err := strconv.Atoi(strings.TrimPrefix(id, "flow-"))
			if err != nil || !strings.HasPrefix(id, "flow-") || i < 0 || i >= count {
				t.Fatalf("flow message with id %q (metadata %v)", id, m.Metadata)
			}
			if gotFlow[id] {
				t.Fatalf("flow message %s delivered twice", id)
			}
			var tr schema.Triples
			if err := schema.Unmarshal(m.Payload, &tr); err != nil {
				t.Fatalf("flow message %s: %v\n%s", id, err, m.Payload)
			}
			if err := checkInteropTriples(i, &tr); err != nil {
				t.Fatalf("flow message %s: %v\n%s", id, err, m.Payload)
			}
			if a := m.Metadata.Get(schema.DeliveryAttemptKey); a != "1" {
				t.Errorf("flow message %s: attempt %q, want 1", id, a)
			}
			if m.UUID == "" || uuids[m.UUID] {
				t.Errorf("flow message %s: UUID %q empty or repeated", id, m.UUID)
			}
			uuids[m.UUID] = true
			gotFlow[id] = true
			m.Ack()
			if len(gotFlow) == count {
				flowDone = time.Since(pyStart)
			}
		case m := <-reqMsgs:
			id := m.Metadata.Get(schema.IDProperty)
			if id == "" || answered[id] {
				t.Fatalf("request with id %q empty or repeated (metadata %v)", id, m.Metadata)
			}
			var req schema.TextCompletionRequest
			if err := schema.Unmarshal(m.Payload, &req); err != nil {
				t.Fatalf("request %s: %v\n%s", id, err, m.Payload)
			}
			if req.Operation != schema.OperationCompletion || req.System != "rr" || !strings.HasPrefix(req.Prompt, "request ") || req.Streaming {
				t.Fatalf("request %s decoded as %+v", id, req)
			}
			if a := m.Metadata.Get(schema.DeliveryAttemptKey); a != "1" {
				t.Errorf("request %s: attempt %q, want 1", id, a)
			}
			model := "go-echo"
			resp, err := schema.Marshal(&schema.TextCompletionResponse{Response: req.Prompt, Model: &model, EndOfStream: true})
			if err != nil {
				t.Fatal(err)
			}
			reply := message.NewMessage(watermill.NewUUID(), resp)
			reply.Metadata.Set(schema.IDProperty, id)
			publish(t, p, responseQ, reply)
			m.Ack()
			answered[id] = true
			if len(answered) == count {
				requestsDone = time.Since(pyStart)
			}
		case <-deadline:
			t.Fatalf("after 90s: %d of %d flow messages, %d of %d requests\n%s", len(gotFlow), count, len(answered), count, peerOutput())
		}
	}
	<-outDone
	err = cmd.Wait()
	pyDone := time.Since(pyStart)
	if err != nil || interopLine(peerOutput(), "ok ") == "" {
		t.Fatalf("tgpeer.py failed (%v)\n%s", err, peerOutput())
	}
	// Python has sent everything and stopped: nothing more may arrive.
	select {
	case m := <-flowMsgs:
		t.Fatalf("extra flow message, id %q", m.Metadata.Get(schema.IDProperty))
	case m := <-reqMsgs:
		t.Fatalf("extra request, id %q", m.Metadata.Get(schema.IDProperty))
	case <-time.After(2 * time.Second):
	}
	// Closing commits the acked offsets synchronously and leaves the groups.
	if err := fs.Close(); err != nil {
		t.Fatal(err)
	}
	if err := rs.Close(); err != nil {
		t.Fatal(err)
	}

	// The broker's view: exactly count records per topic, each group
	// committed all of them.
	actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer acancel()
	listed, err := adm.ListGroups(actx)
	if err != nil {
		t.Fatal(err)
	}
	pyPrefix := strings.TrimSpace(interopLine(peerOutput(), "subscription "))
	var pyGroups []string
	for _, g := range listed.Groups() {
		if pyPrefix != "" && strings.HasPrefix(g, pyPrefix+"-") {
			pyGroups = append(pyGroups, g)
		}
	}
	if len(pyGroups) != 1 {
		t.Fatalf("groups of the Python subscription %q: %v, want exactly one", pyPrefix, pyGroups)
	}
	pyGroup := pyGroups[0]
	ends, err := adm.ListEndOffsets(actx, topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	configs, err := adm.DescribeTopicConfigs(actx, topics...)
	if err != nil {
		t.Fatal(err)
	}
	var report []string
	for _, topic := range topics {
		end, ok := ends.Lookup(topic, 0)
		if !ok || len(ends[topic]) != 1 || end.Offset != count {
			t.Errorf("topic %s: end offsets %v, want one partition at %d", topic, ends[topic], count)
		}
		retention := "?"
		if rc, err := configs.On(topic, nil); err == nil {
			for _, c := range rc.Configs {
				if c.Key == "retention.ms" && c.Value != nil {
					retention = *c.Value
				}
			}
		}
		report = append(report, fmt.Sprintf("topic %s: partitions %d, end offset %d, retention.ms %s", topic, len(ends[topic]), end.Offset, retention))
	}
	for _, g := range []struct{ group, topic, side string }{
		{flowSub, flowTopic, "Go"},
		{requestSub, requestTopic, "Go"},
		{pyGroup, responseTopic, "Python"},
	} {
		offs, err := adm.FetchOffsets(actx, g.group)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			t.Fatalf("offsets of group %s: %v", g.group, err)
		}
		var committed []string
		offs.Each(func(o kadm.OffsetResponse) {
			committed = append(committed, fmt.Sprintf("%s[%d]=%d", o.Topic, o.Partition, o.At))
		})
		sort.Strings(committed)
		o, ok := offs.Lookup(g.topic, 0)
		if !ok || len(committed) != 1 || o.At != count {
			t.Errorf("group %s: committed %v, want %s[0]=%d only", g.group, committed, g.topic, count)
		}
		state := listed[g.group].State
		report = append(report, fmt.Sprintf("group %s (%s, state %s): committed %s", g.group, g.side, state, strings.Join(committed, ", ")))
	}
	t.Logf("tgpeer.py: %s", strings.TrimSpace(peerOutput()))
	t.Logf("broker:\n  %s", strings.Join(report, "\n  "))
	t.Logf("durations: Go subscribe (topics, initial offsets) %s; from Python start: all %d flow messages in Go %s, all %d requests answered by Go %s, Python done %s",
		subscribed.Round(time.Millisecond), count, flowDone.Round(time.Millisecond), count, requestsDone.Round(time.Millisecond), pyDone.Round(time.Millisecond))
}
