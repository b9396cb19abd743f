package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

// The flow the test assigns: TrustGraph's processor id and workspace, and
// the flows' models (the flow parameter "model").
const (
	flowProcessorID = "text-completion"
	flowWorkspace   = "default"
	flowConfigType  = "processor:" + flowProcessorID
	flowModelF1     = "gpt-test"
	flowModelF2     = "gpt-test-f2"
	flowAPIKey      = "test-key"
	// flowWait bounds each wait for a process to log a line.
	flowWait = 60 * time.Second
	// flowCanaryRequests is how many requests the shared subscription gets.
	flowCanaryRequests = 40
)

// flowQueues are the request and response queues of a text-completion flow,
// as TrustGraph's flow service names them.
func flowQueues(flow string) (request, response string) {
	return "request:tg:text-completion:" + flowWorkspace + ":" + flow,
		"response:tg:text-completion:" + flowWorkspace + ":" + flow
}

// flowDefinition is the processor:text-completion value of a flow.
func flowDefinition(t *testing.T, flow, model string) string {
	t.Helper()
	req, resp := flowQueues(flow)
	b, err := json.Marshal(map[string]any{
		"topics":     map[string]string{"request": req, "response": resp},
		"parameters": map[string]string{"model": model},
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitText polls w until a line containing want appears.
func waitText(w *lineWatcher, want string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if strings.Contains(w.String(), want) {
			return nil
		}
		select {
		case <-w.done:
			if strings.Contains(w.String(), want) {
				return nil
			}
			return fmt.Errorf("output ended without %q", want)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no %q within %s", want, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ---------------------------------------------------------------------------
// The OpenAI-compatible upstream of the Go processor.

// upstreamCall is one chat completion the upstream answered.
type upstreamCall struct {
	Model        string
	Stream       bool
	IncludeUsage bool
	Auth         string
	Prompt       string
}

// fakeUpstream answers POST /chat/completions with "go:<last user message>"
// (a JSON completion, or with "stream": true an event stream of one chunk
// per word, a finish chunk and a last chunk with only the usage) and
// GET /models with one model. Token counts are word counts.
type fakeUpstream struct {
	*httptest.Server
	mu    sync.Mutex
	calls []upstreamCall
}

func newFakeUpstream(t *testing.T) *fakeUpstream {
	f := &fakeUpstream{}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /chat/completions", f.chat)
	mux.HandleFunc("GET /models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"model","created":1700000000,"owned_by":"test"}]}`, flowModelF1)
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

func (f *fakeUpstream) callsSoFar() []upstreamCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]upstreamCall(nil), f.calls...)
}

func (f *fakeUpstream) chat(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model    string `json:"model"`
		Stream   bool   `json:"stream"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		StreamOptions *struct {
			IncludeUsage bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, `{"error":{"message":"bad JSON","type":"invalid_request_error"}}`, http.StatusBadRequest)
		return
	}
	var prompt string
	for _, m := range req.Messages {
		if m.Role == "user" {
			prompt = m.Content
		}
	}
	call := upstreamCall{Model: req.Model, Stream: req.Stream, Auth: r.Header.Get("Authorization"), Prompt: prompt,
		IncludeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	f.mu.Lock()
	f.calls = append(f.calls, call)
	f.mu.Unlock()

	answer := "go:" + prompt
	usage := map[string]int{"prompt_tokens": len(strings.Fields(prompt)), "completion_tokens": len(strings.Fields(answer))}
	usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": "chatcmpl-test", "object": "chat.completion", "created": 1700000000, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": answer}}},
			"usage": usage,
		})
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	flusher, _ := w.(http.Flusher)
	event := func(v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if flusher != nil {
			flusher.Flush()
		}
	}
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
			"model": req.Model, "choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	event(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
	for _, word := range strings.SplitAfter(answer, " ") {
		event(chunk(map[string]any{"content": word}, nil))
	}
	event(chunk(map[string]any{}, "stop"))
	if call.IncludeUsage {
		event(map[string]any{"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000,
			"model": req.Model, "choices": []any{}, "usage": usage})
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}

// ---------------------------------------------------------------------------
// Processes.

// flowProc is a running child process whose output is watched.
type flowProc struct {
	name   string
	cmd    *exec.Cmd
	out    *lineWatcher
	stdin  io.WriteCloser
	exited chan struct{}
}

// startFlowProc starts cmd with its combined output watched for ready and
// stops it when the test ends: standard input closed (the configuration
// service's signal to leave) or SIGINT, then SIGKILL after 20s.
func startFlowProc(t *testing.T, name string, cmd *exec.Cmd, ready string, withStdin bool) *flowProc {
	t.Helper()
	p := &flowProc{name: name, cmd: cmd}
	if withStdin {
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		p.stdin = in
	}
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	p.out = watch(pr, ready)
	exited := make(chan struct{})
	p.exited = exited
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(exited)
	}()
	t.Cleanup(func() {
		stopping := time.Now()
		defer func() { t.Logf("%s stopped in %s", name, time.Since(stopping).Round(time.Millisecond)) }()
		if p.stdin != nil {
			_ = p.stdin.Close()
		} else {
			_ = cmd.Process.Signal(os.Interrupt)
		}
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			t.Logf("%s did not stop within 20s; killing it", name)
			_ = cmd.Process.Kill()
			<-exited
		}
		<-p.out.done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out)
		}
	})
	if err := p.out.wait(flowWait); err != nil {
		t.Fatalf("%s did not start: %v\n%s", name, err, p.out)
	}
	return p
}

// running reports whether the process has not exited.
func (p *flowProc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// configService drives flow_config_service.py through its standard input.
type configService struct {
	*flowProc
	t       *testing.T
	applied int
}

func startConfigService(t *testing.T, py, url string) *configService {
	t.Helper()
	cmd := exec.Command(py, "flow_config_service.py", "--host", url)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	return &configService{flowProc: startFlowProc(t, "flow_config_service.py", cmd, "ready", true), t: t}
}

// change sends one control command and waits until the service applied it
// and pushed its poke; it returns the new version.
func (c *configService) change(cmd map[string]string) int {
	c.t.Helper()
	b, _ := json.Marshal(cmd)
	if _, err := fmt.Fprintf(c.stdin, "%s\n", b); err != nil {
		c.t.Fatalf("configuration service: %v", err)
	}
	c.applied++
	want := fmt.Sprintf(`"key": %q, "op": %q, "version": `, cmd["key"], cmd["op"])
	deadline := time.Now().Add(flowWait)
	for {
		lines := appliedLines(c.out.String())
		if len(lines) >= c.applied {
			line := lines[c.applied-1]
			if !strings.Contains(line, want) {
				c.t.Fatalf("configuration service applied %s, want %s", line, want)
			}
			var a struct {
				Version int `json:"version"`
			}
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "applied ")), &a); err != nil {
				c.t.Fatalf("configuration service: %q: %v", line, err)
			}
			return a.Version
		}
		if strings.Contains(c.out.String(), "rejected ") || time.Now().After(deadline) {
			c.t.Fatalf("configuration service did not apply %s:\n%s", b, c.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func appliedLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "applied ") {
			lines = append(lines, l)
		}
	}
	return lines
}

func (c *configService) put(flow, value string) int {
	return c.change(map[string]string{"op": "put", "workspace": flowWorkspace, "type": flowConfigType, "key": flow, "value": value})
}

func (c *configService) delete(flow string) int {
	return c.change(map[string]string{"op": "delete", "workspace": flowWorkspace, "type": flowConfigType, "key": flow})
}

// served returns the requests the service answered, in order.
func (c *configService) served() []string {
	var lines []string
	for _, l := range strings.Split(c.out.String(), "\n") {
		if strings.HasPrefix(l, "served ") {
			lines = append(lines, strings.TrimPrefix(l, "served "))
		}
	}
	return lines
}

// flowGoStarted and flowGoStopped are the Go processor's log lines for a
// flow of the test's workspace.
func flowGoStarted(flow string) string {
	return fmt.Sprintf(`msg="flow started" workspace=%s flow=%s `, flowWorkspace, flow)
}

func flowGoStopped(flow string) string {
	return fmt.Sprintf(`msg="flow stopped" workspace=%s flow=%s`, flowWorkspace, flow)
}

var flowMetricsAt = regexp.MustCompile(`metrics=(\S+)`)

// ---------------------------------------------------------------------------
// TrustGraph's client (flow_peer.py).

type flowPyException struct {
	Class   string `json:"class"`
	Module  string `json:"module"`
	Message string `json:"message"`
}

type flowPyResult struct {
	Text     *string `json:"text"`
	InToken  *int64  `json:"in_token"`
	OutToken *int64  `json:"out_token"`
	Model    *string `json:"model"`
}

type flowPyChunk struct {
	Response    *string `json:"response"`
	InToken     *int64  `json:"in_token"`
	OutToken    *int64  `json:"out_token"`
	Model       *string `json:"model"`
	EndOfStream bool    `json:"end_of_stream"`
	Error       *string `json:"error"`
}

// flowAskResult is what `flow_peer.py ask` reports.
type flowAskResult struct {
	Stream    bool             `json:"stream"`
	Seconds   float64          `json:"seconds"`
	Exception *flowPyException `json:"exception"`
	Result    *flowPyResult    `json:"result"`
	Chunks    []flowPyChunk    `json:"chunks"`
}

// flowBurstResult is what `flow_peer.py burst` reports.
type flowBurstResult struct {
	Seconds float64 `json:"seconds"`
	Answers []struct {
		Prompt    string           `json:"prompt"`
		Result    *flowPyResult    `json:"result"`
		Exception *flowPyException `json:"exception"`
	} `json:"answers"`
	ResponsesSeen int            `json:"responses_seen"`
	IDsSeen       int            `json:"ids_seen"`
	Duplicates    map[string]int `json:"ids_seen_more_than_once"`
}

// runFlowPeer runs flow_peer.py with args and decodes its result line into v.
func runFlowPeer(t *testing.T, py string, v any, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, append([]string{"flow_peer.py"}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flow_peer.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "result: "); ok {
			if err := json.Unmarshal([]byte(rest), v); err != nil {
				t.Fatalf("flow_peer.py result %q: %v", rest, err)
			}
			return
		}
	}
	t.Fatalf("flow_peer.py %s printed no result:\n%s", strings.Join(args, " "), out)
}

func flowAsk(t *testing.T, py, url, flow, system, prompt string, extra ...string) *flowAskResult {
	t.Helper()
	req, resp := flowQueues(flow)
	var r flowAskResult
	runFlowPeer(t, py, &r, append([]string{"ask", "--host", url, "--request", req, "--response", resp,
		"--system", system, "--prompt", prompt}, extra...)...)
	return &r
}

func flowStr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return *p
}

func flowNum(p *int64) string {
	if p == nil {
		return "<nil>"
	}
	return fmt.Sprint(*p)
}

// ---------------------------------------------------------------------------
// Pulsar's view.

// flowTopicStats is the part of a topic's stats the test reads.
type flowTopicStats struct {
	Publishers []struct {
		ProducerName  string `json:"producerName"`
		ClientVersion string `json:"clientVersion"`
	} `json:"publishers"`
	Subscriptions map[string]struct {
		Type      string `json:"type"`
		Consumers []struct {
			ConsumerName     string  `json:"consumerName"`
			ClientVersion    string  `json:"clientVersion"`
			Address          string  `json:"address"`
			MsgOutCounter    float64 `json:"msgOutCounter"`
			AvailablePermits float64 `json:"availablePermits"`
		} `json:"consumers"`
		MsgDropRate float64 `json:"msgDropRate"`
	} `json:"subscriptions"`
}

// flowStats fetches the stats of a non-persistent topic of tenant tg; a
// topic the broker does not know is reported as nil.
func flowStats(t *testing.T, admin, namespace, topic string) (*flowTopicStats, string) {
	t.Helper()
	u := fmt.Sprintf("%s/admin/v2/non-persistent/tg/%s/%s/stats", strings.TrimRight(admin, "/"), namespace, topic)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusNotFound {
		return nil, string(body)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s", u, resp.Status, body)
	}
	var s flowTopicStats
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	return &s, string(body)
}

// describe is one line per subscription: its type and each consumer's
// client and messages delivered.
func (s *flowTopicStats) describe() string {
	if s == nil {
		return "topic not found"
	}
	names := make([]string, 0, len(s.Subscriptions))
	for n := range s.Subscriptions {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	if len(names) == 0 {
		b.WriteString(" no subscriptions")
	}
	for _, n := range names {
		sub := s.Subscriptions[n]
		fmt.Fprintf(&b, "\n    subscription %q (%s), %d consumers:", n, sub.Type, len(sub.Consumers))
		for _, c := range sub.Consumers {
			fmt.Fprintf(&b, "\n      consumer %q client %q delivered %.0f permits %.0f", c.ConsumerName, c.ClientVersion, c.MsgOutCounter, c.AvailablePermits)
		}
	}
	for _, p := range s.Publishers {
		fmt.Fprintf(&b, "\n    publisher %q client %q", p.ProducerName, p.ClientVersion)
	}
	return b.String()
}

// scrapeTG returns the tg_* lines of a Prometheus endpoint.
func scrapeTG(t *testing.T, addr string) []string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scraping %s: %v", addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var lines []string
	for _, l := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(l, "tg_") {
			lines = append(lines, l)
		}
	}
	return lines
}

// canaryAnswer is a line the Python LlmService prints for each request.
type canaryAnswer struct {
	Prompt    string `json:"prompt"`
	Model     string `json:"model"`
	MessageID string `json:"message_id"`
}

func canaryAnswers(out, prefix string) []canaryAnswer {
	var got []canaryAnswer
	for _, l := range strings.Split(out, "\n") {
		rest, ok := strings.CutPrefix(l, "answered ")
		if !ok {
			continue
		}
		var a canaryAnswer
		if json.Unmarshal([]byte(rest), &a) == nil && strings.HasPrefix(a.Prompt, prefix) {
			got = append(got, a)
		}
	}
	return got
}

// batchIndex is the batch index of a Python message id
// "(ledger,entry,partition,batch_index)": on a non-persistent topic the
// ledger and entry are always 0, and the index counts the messages before
// this one in the producer's batch.
func batchIndex(id string) (int, bool) {
	i := strings.LastIndex(id, ",")
	if i < 0 || !strings.HasSuffix(id, ")") {
		return 0, false
	}
	var n int
	_, err := fmt.Sscan(id[i+1:len(id)-1], &n)
	return n, err == nil
}

// flowBurst sends flowCanaryRequests requests on f2 through TrustGraph's
// client, at most concurrency in flight (0: all), and checks that each was
// answered exactly once, by the Go processor (its upstream saw the prompt)
// or the Python one (it printed the prompt), with f2's model. It returns
// how many each answered.
func flowBurst(t *testing.T, py, url string, upstream *fakeUpstream, canary *flowProc, concurrency int, prefix string,
	note func(string, ...any)) (goAnswers, pyAnswers int) {
	t.Helper()
	req, resp := flowQueues("f2")
	var b flowBurstResult
	runFlowPeer(t, py, &b, "burst", "--host", url, "--request", req, "--response", resp,
		"--count", fmt.Sprint(flowCanaryRequests), "--concurrency", fmt.Sprint(concurrency), "--prefix", prefix)
	for _, a := range b.Answers {
		if a.Exception != nil || a.Result == nil {
			t.Errorf("%s: no answer: %+v", a.Prompt, a.Exception)
			continue
		}
		switch flowStr(a.Result.Text) {
		case "go:" + a.Prompt:
			goAnswers++
		case "python:" + a.Prompt:
			pyAnswers++
		default:
			t.Errorf("%s: answer %q is neither processor's", a.Prompt, flowStr(a.Result.Text))
		}
		if flowStr(a.Result.Model) != flowModelF2 {
			t.Errorf("%s: model %s, want %s", a.Prompt, flowStr(a.Result.Model), flowModelF2)
		}
	}
	goCalls := 0
	for _, c := range upstream.callsSoFar() {
		if strings.HasPrefix(c.Prompt, prefix) {
			goCalls++
		}
	}
	pyCalls := canaryAnswers(canary.out.String(), prefix)
	// The Python processor takes its requests in the order they came:
	// each batch index 0 starts a batch.
	batches, largest := 0, 0
	for _, a := range pyCalls {
		i, ok := batchIndex(a.MessageID)
		if !ok {
			t.Errorf("Python processor: message id %q has no batch index", a.MessageID)
			continue
		}
		if i == 0 {
			batches++
		}
		largest = max(largest, i+1)
	}
	if len(b.Answers) != flowCanaryRequests || goAnswers+pyAnswers != flowCanaryRequests {
		t.Errorf("%d requests: %d answers, %d by Go and %d by Python", flowCanaryRequests, len(b.Answers), goAnswers, pyAnswers)
	}
	if b.ResponsesSeen != flowCanaryRequests || b.IDsSeen != flowCanaryRequests || len(b.Duplicates) != 0 {
		t.Errorf("responses on f2's queue: %d for %d ids (duplicates %v), want exactly one for each of %d",
			b.ResponsesSeen, b.IDsSeen, b.Duplicates, flowCanaryRequests)
	}
	if goCalls != goAnswers || len(pyCalls) != pyAnswers {
		t.Errorf("work done: %d upstream calls by Go, %d completions by Python; answers %d and %d", goCalls, len(pyCalls), goAnswers, pyAnswers)
	}
	inFlight := fmt.Sprint(concurrency)
	if concurrency == 0 {
		inFlight = "all"
	}
	note("%d requests on f2, %s in flight, in %.3fs: Go answered %d, Python %d (in %d producer batches, the largest of %d); "+
		"%d responses for %d ids on the response queue, none twice",
		flowCanaryRequests, inFlight, b.Seconds, goAnswers, pyAnswers, batches, largest, b.ResponsesSeen, b.IDsSeen)
	return goAnswers, pyAnswers
}

// metricsExcerpt is the series lines, indented, without histogram buckets.
func metricsExcerpt(lines []string) string {
	var out []string
	for _, l := range lines {
		if !strings.Contains(l, "_bucket{") {
			out = append(out, "    "+l)
		}
	}
	return strings.Join(out, "\n")
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago, for
// a process that takes a port number and not an address.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ---------------------------------------------------------------------------

// TestFlowsFromPythonConfigService runs the Go text-completion processor on
// flows that a configuration service made of TrustGraph's own Python code
// assigns over Pulsar, and talks to it through TrustGraph's own
// TextCompletionClient: a flow at start, a flow added and one removed while
// it runs, and a flow shared with a Python LlmService of the same id.
func TestFlowsFromPythonConfigService(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	admin := brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL")
	py := tgPython(t)
	ensureNamespaces(t)
	upstream := newFakeUpstream(t)
	t0 := time.Now()
	bin := binary(t, "examples/text-completion")
	t.Logf("built examples/text-completion in %s", time.Since(t0).Round(time.Millisecond))
	var report []string
	note := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		report = append(report, line)
		t.Log(line)
	}

	// 1. The configuration service, with flow f1 assigned.
	t0 = time.Now()
	cfg := startConfigService(t, py, url)
	v1 := cfg.put("f1", flowDefinition(t, "f1", flowModelF1))
	note("configuration service ready and f1 put (version %d) in %s", v1, time.Since(t0).Round(time.Millisecond))

	// 2. The Go processor picks f1 up from the configuration at start.
	t0 = time.Now()
	goCmd := exec.Command(bin, "--pubsub-backend", "pulsar", "--pulsar-host", url,
		"--id", flowProcessorID, "--url", upstream.URL, "--api-key", flowAPIKey,
		"--metrics-addr", "127.0.0.1:0")
	goProc := startFlowProc(t, "text-completion", goCmd, "msg=ready", false)
	if err := waitText(goProc.out, flowGoStarted("f1"), flowWait); err != nil {
		t.Fatalf("Go processor: %v\n%s", err, goProc.out)
	}
	note("Go processor ready with flow f1 in %s", time.Since(t0).Round(time.Millisecond))
	m := flowMetricsAt.FindStringSubmatch(goProc.out.String())
	if m == nil {
		t.Fatalf("the Go processor's ready line names no metrics address:\n%s", goProc.out)
	}
	metricsAddr := m[1]

	// 3. TrustGraph's client on f1: a whole answer and a stream.
	const system, prompt = "be brief", "say hello to the flow"
	sent := system + "\n\n" + prompt
	want := "go:" + sent
	wantIn, wantOut := int64(len(strings.Fields(sent))), int64(len(strings.Fields(want)))
	r := flowAsk(t, py, url, "f1", system, prompt)
	if r.Exception != nil || r.Result == nil {
		t.Fatalf("f1 completion: %+v", r.Exception)
	}
	if got := r.Result; flowStr(got.Text) != want || flowNum(got.InToken) != fmt.Sprint(wantIn) ||
		flowNum(got.OutToken) != fmt.Sprint(wantOut) || flowStr(got.Model) != flowModelF1 {
		t.Errorf("f1 completion: text %q in %s out %s model %s; want %q in %d out %d model %s",
			flowStr(got.Text), flowNum(got.InToken), flowNum(got.OutToken), flowStr(got.Model), want, wantIn, wantOut, flowModelF1)
	}
	note("f1 completion through TextCompletionClient in %.3fs: %q in_token=%s out_token=%s model=%s",
		r.Seconds, flowStr(r.Result.Text), flowNum(r.Result.InToken), flowNum(r.Result.OutToken), flowStr(r.Result.Model))

	s := flowAsk(t, py, url, "f1", system, prompt, "--stream")
	if s.Exception != nil || s.Result == nil {
		t.Fatalf("f1 stream: %+v", s.Exception)
	}
	var text strings.Builder
	for i, c := range s.Chunks {
		last := i == len(s.Chunks)-1
		if c.Error != nil || c.EndOfStream != last || flowStr(c.Model) != flowModelF1 {
			t.Errorf("f1 stream chunk %d of %d: %+v", i, len(s.Chunks), c)
		}
		if !last && (c.InToken != nil || c.OutToken != nil) {
			t.Errorf("f1 stream chunk %d carries token counts before the end: in %s out %s", i, flowNum(c.InToken), flowNum(c.OutToken))
		}
		if last && flowStr(c.Response) != "" {
			t.Errorf("f1 stream: the final chunk has text %q, want none (as TrustGraph's OpenAI processor)", flowStr(c.Response))
		}
		if c.Response != nil {
			text.WriteString(*c.Response)
		}
	}
	if len(s.Chunks) < 3 || text.String() != want {
		t.Errorf("f1 stream: %d chunks make %q, want several making %q", len(s.Chunks), text.String(), want)
	}
	if got := s.Result; flowNum(got.InToken) != fmt.Sprint(wantIn) || flowNum(got.OutToken) != fmt.Sprint(wantOut) || flowStr(got.Model) != flowModelF1 {
		t.Errorf("f1 stream result: in %s out %s model %s; want in %d out %d model %s",
			flowNum(got.InToken), flowNum(got.OutToken), flowStr(got.Model), wantIn, wantOut, flowModelF1)
	}
	note("f1 stream through TextCompletionClient in %.3fs: %d chunks (the last empty with end_of_stream), in_token=%s out_token=%s model=%s",
		s.Seconds, len(s.Chunks), flowNum(s.Result.InToken), flowNum(s.Result.OutToken), flowStr(s.Result.Model))
	for i, c := range upstream.callsSoFar() {
		if c.Model != flowModelF1 || c.Auth != "Bearer "+flowAPIKey || c.Prompt != sent || c.Stream != (i == 1) || c.IncludeUsage != c.Stream {
			t.Errorf("upstream call %d: %+v; want model %s, key %s, prompt %q, stream %v with usage", i, c, flowModelF1, flowAPIKey, sent, i == 1)
		}
	}

	// 4. The configuration adds f2 and removes f1 while the processor runs.
	t0 = time.Now()
	v2 := cfg.put("f2", flowDefinition(t, "f2", flowModelF2))
	v3 := cfg.delete("f1")
	if err := waitText(goProc.out, flowGoStarted("f2"), flowWait); err != nil {
		t.Fatalf("Go processor: %v\n%s", err, goProc.out)
	}
	if err := waitText(goProc.out, flowGoStopped("f1"), flowWait); err != nil {
		t.Fatalf("Go processor: %v\n%s", err, goProc.out)
	}
	note("pokes v%d (put f2) and v%d (delete f1): Go processor started f2 and stopped f1 %s after the put",
		v2, v3, time.Since(t0).Round(time.Millisecond))
	if !goProc.running() || strings.Count(goProc.out.String(), "msg=ready") != 1 {
		t.Fatalf("the Go processor restarted or exited:\n%s", goProc.out)
	}
	calls := len(upstream.callsSoFar())
	r2 := flowAsk(t, py, url, "f2", "", "hello f2")
	if r2.Exception != nil || r2.Result == nil || flowStr(r2.Result.Text) != "go:hello f2" || flowStr(r2.Result.Model) != flowModelF2 ||
		flowNum(r2.Result.InToken) != "2" || flowNum(r2.Result.OutToken) != "2" {
		t.Fatalf("f2 completion: %+v %+v", r2.Exception, r2.Result)
	}
	note("f2 completion in %.3fs: %q model=%s", r2.Seconds, flowStr(r2.Result.Text), flowStr(r2.Result.Model))
	const f1Timeout = "3"
	r1 := flowAsk(t, py, url, "f1", "", "anyone on f1?", "--timeout", f1Timeout)
	if r1.Exception == nil || r1.Exception.Class != "TimeoutError" || r1.Result != nil {
		t.Fatalf("f1 after its removal: exception %+v result %+v; want TimeoutError and no result", r1.Exception, r1.Result)
	}
	if got := upstream.callsSoFar(); len(got) != calls+1 {
		t.Errorf("upstream calls after f2 and the dead f1 request: %d, want %d (f2's only)", len(got), calls+1)
	}
	note("f1 request after its removal: %s.%s after %.3fs (client timeout %ss), no upstream call",
		r1.Exception.Module, r1.Exception.Class, r1.Seconds, f1Timeout)
	f1Stats, _ := flowStats(t, admin, "request", "text-completion:default:f1")
	note("Pulsar non-persistent://tg/request/text-completion:default:f1 after the removal:%s", f1Stats.describe())
	if f1Stats != nil {
		for name, sub := range f1Stats.Subscriptions {
			if len(sub.Consumers) > 0 {
				t.Errorf("f1's request topic still has consumers on %q after the removal", name)
			}
		}
	}

	// 5. A Python LlmService of the same id joins f2: one subscription, two
	// processors.
	t0 = time.Now()
	canaryMetrics := freePort(t)
	canaryCmd := exec.Command(py, "flow_llm.py", "--id", flowProcessorID, "--pubsub-backend", "pulsar",
		"--pulsar-host", url, "--pulsar-admin-url", admin, "--no-loki-enabled", "--config-timeout", "10",
		"--metrics", "-P", fmt.Sprint(canaryMetrics))
	canaryCmd.Env = append(os.Environ(), "PYTHONUNBUFFERED=1")
	canary := startFlowProc(t, "flow_llm.py", canaryCmd, "Started flow: default/f2", false)
	note("Python LlmService started flow f2 in %s", time.Since(t0).Round(time.Millisecond))
	const sharedSub = flowProcessorID + "--" + flowWorkspace + "--f2--request"
	deadline := time.Now().Add(flowWait)
	for {
		st, _ := flowStats(t, admin, "request", "text-completion:default:f2")
		if st != nil && len(st.Subscriptions[sharedSub].Consumers) == 2 {
			note("Pulsar non-persistent://tg/request/text-completion:default:f2 before the burst:%s", st.describe())
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the subscription %q never had two consumers:%s", sharedSub, st.describe())
		}
		time.Sleep(100 * time.Millisecond)
	}
	// One request at a time: TrustGraph's producer sends each in an entry
	// of its own, and Pulsar's Shared dispatcher alternates the consumers.
	goSeq, pySeq := flowBurst(t, py, url, upstream, canary, 1, "one-by-one-", note)
	if goSeq == 0 || pySeq == 0 {
		t.Errorf("the shared subscription did not split %d requests sent one by one: Go answered %d, Python %d",
			flowCanaryRequests, goSeq, pySeq)
	}
	// All at once: the producer batches requests that wait for the same
	// send into one entry, and the dispatcher hands a whole entry to one
	// consumer; the split is by batch, not by request. Loss and duplicates
	// are checked; the split is only reported.
	flowBurst(t, py, url, upstream, canary, 0, "all-at-once-", note)

	// 6. What Pulsar and the metrics show.
	for _, q := range []struct{ ns, topic string }{
		{"request", "text-completion:default:f2"},
		{"response", "text-completion:default:f2"},
		{"request", "config"},
		{"response", "config"},
		{"notify", "config"},
	} {
		st, _ := flowStats(t, admin, q.ns, q.topic)
		note("Pulsar non-persistent://tg/%s/%s:%s", q.ns, q.topic, st.describe())
	}
	tg := scrapeTG(t, metricsAddr)
	if len(tg) == 0 {
		t.Errorf("the Go processor's /metrics at %s has no tg_* series", metricsAddr)
	}
	note("Go processor /metrics at %s, tg_* series (buckets left out):\n%s", metricsAddr, metricsExcerpt(tg))
	pyAddr := fmt.Sprintf("127.0.0.1:%d", canaryMetrics)
	note("Python LlmService /metrics at %s, tg_* series (buckets left out), for comparison:\n%s",
		pyAddr, metricsExcerpt(scrapeTG(t, pyAddr)))
	var requests []string
	for _, l := range cfg.served() {
		requests = append(requests, "    "+l)
	}
	note("configuration requests served:\n%s", strings.Join(requests, "\n"))
	t.Log("summary:\n" + strings.Join(report, "\n"))
}
