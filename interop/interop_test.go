package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/backend"
	"github.com/switchyard-go/switchyard/examples/pipeline"
	"github.com/switchyard-go/switchyard/internal/brokertest"
	"github.com/switchyard-go/switchyard/schema"
)

const (
	startTimeout = 90 * time.Second
	peerTimeout  = 3 * time.Minute
	requestCount = 20
)

// tgPython returns the interpreter of TrustGraph's Python environment. Under
// `make test` it creates the environment when missing and a failure fails
// the test; otherwise a missing environment skips it.
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

// ensureNamespaces creates, when missing, the Pulsar tenant "tg" and its
// namespaces flow, request, response and notify that TrustGraph's class-form
// queue names map to (flow:tg:x is persistent://tg/flow/x). A TrustGraph
// deployment creates them when it is initialised; a fresh broker lacks them.
func ensureNamespaces(t *testing.T) {
	t.Helper()
	admin := strings.TrimRight(brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL"), "/")
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, path string, body any) []byte {
		t.Helper()
		var payload []byte
		if body != nil {
			var err error
			if payload, err = json.Marshal(body); err != nil {
				t.Fatal(err)
			}
		}
		var resp *http.Response
		// The broker may be restarting; give it as long as starting takes.
		for deadline := time.Now().Add(startTimeout); ; {
			var rd io.Reader
			if payload != nil {
				rd = bytes.NewReader(payload)
			}
			req, err := http.NewRequest(method, admin+path, rd)
			if err != nil {
				t.Fatal(err)
			}
			if body != nil {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err = client.Do(req)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			time.Sleep(time.Second)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 && resp.StatusCode != http.StatusConflict {
			t.Fatalf("%s %s: %s %s", method, path, resp.Status, data)
		}
		return data
	}
	var clusters []string
	if err := json.Unmarshal(do(http.MethodGet, "/admin/v2/clusters", nil), &clusters); err != nil {
		t.Fatalf("listing Pulsar clusters: %v", err)
	}
	do(http.MethodPut, "/admin/v2/tenants/tg", map[string]any{"adminRoles": []string{}, "allowedClusters": clusters})
	for _, ns := range []string{"flow", "request", "response", "notify"} {
		do(http.MethodPut, "/admin/v2/namespaces/tg/"+ns, nil)
	}
}

// unique returns a queue name part no other run uses.
func unique(prefix string) string {
	return fmt.Sprintf("%s-%d-%06d", prefix, time.Now().UnixNano(), rand.IntN(1000000))
}

// lineWatcher copies a process's output into a buffer and reports when a
// line containing a given text appears.
type lineWatcher struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	want  string
	found chan struct{}
	once  sync.Once
	done  chan struct{}
}

func watch(r io.Reader, want string) *lineWatcher {
	w := &lineWatcher{want: want, found: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64*1024), 4*1024*1024)
		for sc.Scan() {
			line := sc.Text()
			w.mu.Lock()
			w.buf.WriteString(line + "\n")
			w.mu.Unlock()
			if strings.Contains(line, w.want) {
				w.once.Do(func() { close(w.found) })
			}
		}
	}()
	return w
}

func (w *lineWatcher) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// wait blocks until the wanted line appears, the output ends, or timeout.
func (w *lineWatcher) wait(timeout time.Duration) error {
	select {
	case <-w.found:
		return nil
	case <-w.done:
		select {
		case <-w.found:
			return nil
		default:
		}
		return fmt.Errorf("output ended without a line containing %q", w.want)
	case <-time.After(timeout):
		return fmt.Errorf("no line containing %q within %s", w.want, timeout)
	}
}

// builds holds the example binaries built for this test run, by package
// path; TestMain removes them at the end.
type builds struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

var exampleBuilds = &builds{bins: map[string]string{}}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "switchyard-interop-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	exampleBuilds.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// binary builds the example main package pkg (a path relative to the
// repository root, such as "examples/echo-llm") once per test run.
func binary(t *testing.T, pkg string) string {
	t.Helper()
	exampleBuilds.mu.Lock()
	defer exampleBuilds.mu.Unlock()
	if bin, ok := exampleBuilds.bins[pkg]; ok {
		return bin
	}
	bin := filepath.Join(exampleBuilds.dir, filepath.Base(pkg))
	build := exec.Command("go", "build", "-o", bin, "../"+pkg)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	exampleBuilds.bins[pkg] = bin
	return bin
}

// startProcessor builds the example processor pkg and runs it on the
// Pulsar backend, reading input and writing output, with further flags
// args. It returns once the processor logged that it is ready; the
// processor is stopped with SIGINT when the test ends.
func startProcessor(t *testing.T, pkg, pulsarURL, input, output string, args ...string) *lineWatcher {
	t.Helper()
	name := filepath.Base(pkg)
	cmd := exec.Command(binary(t, pkg), append([]string{
		"--pubsub-backend", "pulsar",
		"--pulsar-host", pulsarURL,
		"--input", input,
		"--output", output,
		"--id", unique("interop-" + name),
		"--metrics-addr", "127.0.0.1:0",
	}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	logs := watch(stderr, "msg=ready")
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, logs)
		}
	})
	if err := logs.wait(startTimeout); err != nil {
		t.Fatalf("%s did not become ready: %v\n%s", name, err, logs)
	}
	return logs
}

// peerProc is a running peer.py.
type peerProc struct {
	out    *lineWatcher
	exited chan struct{}
	err    error // set before exited is closed
}

// peer starts peer.py with args; its combined output is watched for want.
func peer(t *testing.T, ctx context.Context, want string, args ...string) *peerProc {
	t.Helper()
	py := tgPython(t)
	cmd := exec.CommandContext(ctx, py, append([]string{"peer.py"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &peerProc{out: watch(pr, want), exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.exited
	})
	return p
}

// finish waits for the peer to exit and fails the test unless it succeeded.
func (p *peerProc) finish(t *testing.T) {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(peerTimeout):
		t.Fatalf("peer.py did not finish within %s:\n%s", peerTimeout, p.out)
	}
	<-p.out.done
	if p.err != nil {
		t.Fatalf("peer.py failed (%v):\n%s", p.err, p.out)
	}
	t.Logf("peer.py: %s", strings.TrimSpace(p.out.String()))
}

// TestTrustGraphClientToGoProcessor: TrustGraph's own producer sends
// TextCompletionRequest messages with an id property to a Go echo-llm, and
// TrustGraph's own consumer decodes and checks every reply and its id.
func TestTrustGraphClientToGoProcessor(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	tgPython(t)
	ensureNamespaces(t)
	name := unique("interop-llm")
	request, response := "request:tg:"+name, "response:tg:"+name
	startProcessor(t, "examples/echo-llm", url, request, response)

	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	p := peer(t, ctx, "ok:", "llm",
		"--host", url, "--request", request, "--response", response,
		"--count", fmt.Sprint(requestCount), "--model", pipeline.EchoModel)
	p.finish(t)
}

// expectedTriples are the Triples Go publishes, keyed by id property; peer.py
// builds the same values with TrustGraph's classes (expected_triples).
func expectedTriples() map[string]*schema.Triples {
	const text = "naïve café ✓ 😀"
	iri := func(v string) *schema.Term { return &schema.Term{Type: schema.IRI, IRI: v} }
	alice, knows, bob := iri("http://example.org/alice"), iri("http://xmlns.com/foaf/0.1/knows"), iri("http://example.org/bob")
	graph := "urn:graph:source"
	return map[string]*schema.Triples{
		"triples-full": {
			Metadata: &schema.Metadata{ID: "doc-1", Root: "root-1", Collection: "default"},
			Triples: []schema.Triple{
				{S: alice, P: knows, O: bob},
				{S: alice, P: iri("http://www.w3.org/2000/01/rdf-schema#label"),
					O: &schema.Term{Type: schema.LITERAL, Value: text, Language: "fr"}},
				{S: &schema.Term{Type: schema.BLANK, ID: "b0"}, P: iri("http://example.org/age"),
					O: &schema.Term{Type: schema.LITERAL, Value: "42", Datatype: "http://www.w3.org/2001/XMLSchema#integer"},
					G: &graph},
				{S: &schema.Term{Type: schema.TRIPLE, Triple: &schema.Triple{S: alice, P: knows, O: bob}},
					P: iri("http://example.org/certainty"), O: &schema.Term{Type: schema.LITERAL, Value: "0.9"}},
			},
		},
		"triples-empty": {},
		"triples-text": {
			Metadata: &schema.Metadata{ID: text},
			Triples: []schema.Triple{{S: alice, P: iri("http://example.org/note"),
				O: &schema.Term{Type: schema.LITERAL, Value: "quote \" backslash \\ newline \n tab \t ß 中文 😀"}}},
		},
	}
}

// TestGoPublisherToTrustGraphConsumer: Go publishes Triples through the
// router's Pulsar backend on a flow queue, and TrustGraph's own consumer
// decodes them and checks them against the values it expects.
func TestGoPublisherToTrustGraphConsumer(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	tgPython(t)
	ensureNamespaces(t)
	topic, err := schema.ParseTopic("flow:tg:" + unique("interop-triples"))
	if err != nil {
		t.Fatal(err)
	}
	queue := "flow:tg:" + topic.Queue

	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	p := peer(t, ctx, "ready", "triples", "--host", url, "--queue", queue, "--subscription", unique("peer"))
	if err := p.out.wait(startTimeout); err != nil {
		t.Fatalf("peer.py did not subscribe: %v\n%s", err, p.out)
	}

	cfg := backend.Config{Name: backend.Pulsar, ClientName: unique("interop-publisher")}
	cfg.Pulsar.URL = url
	b, err := backend.New(ctx, cfg, watermill.NopLogger{})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for id, triples := range expectedTriples() {
		payload, err := schema.Marshal(triples)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		m := message.NewMessage(watermill.NewUUID(), payload)
		m.Metadata.Set("id", id)
		if err := b.Publisher().Publish(topic.String(), m); err != nil {
			t.Fatalf("publishing %s: %v", id, err)
		}
		t.Logf("published %s: %s", id, payload)
	}
	p.finish(t)
}
