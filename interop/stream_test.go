package interop

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/internal/brokertest"
)

const (
	// streamChunks is the length of the long stream.
	streamChunks = 5000
	// streamInterval is stream-llm's pause before each chunk of the long
	// stream. A response queue is non-persistent: Pulsar drops a message
	// for a consumer that has no free slot in its receiver queue (1000 for
	// TrustGraph's client, given back 500 at a time) and does not slow the
	// producer down, so a stream must never run more than about 500 chunks
	// ahead of the client. Unpaced, stream-llm emits about 3000 chunks/s
	// on a loaded machine while TrustGraph's client takes in about 600/s:
	// the tail of the stream is dropped, end_of_stream with it, and the
	// client waits for its timeout. Paced by 1ms (250-400 chunks/s on a
	// loaded machine) the client fell up to a second (250 chunks) behind;
	// 2ms keeps a stall of two seconds harmless. That is still at most 500
	// chunks/s, five times what TrustGraph's own producer can stream (it
	// batches, so each awaited send takes at least its 10ms batching delay).
	streamInterval = "2ms"
	// firstChunkBound is how soon after its emission the first chunk of a
	// stream must reach TrustGraph's client.
	firstChunkBound = 50 * time.Millisecond
	// perMessageTimeout is the timeout TrustGraph's client applies to each
	// response. It is far above any pause in these streams: a client that
	// hits it raises TimeoutError, which the tests reject.
	perMessageTimeout = 30 * time.Second
	// streamModel is the model stream-llm reports.
	streamModel = "stream"
)

// pyException is an exception TrustGraph's client raised.
type pyException struct {
	Class     string `json:"class"`
	Module    string `json:"module"`
	Message   string `json:"message"`
	Traceback string `json:"traceback"`
}

func (e *pyException) String() string {
	if e == nil {
		return "no exception"
	}
	return fmt.Sprintf("%s.%s(%q)", e.Module, e.Class, e.Message)
}

// pyResponse is a TextCompletionResponse as TrustGraph's client decoded it.
type pyResponse struct {
	Response *string `json:"response"`
	Error    *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	EndOfStream bool    `json:"end_of_stream"`
	InToken     *int64  `json:"in_token"`
	OutToken    *int64  `json:"out_token"`
	Model       *string `json:"model"`
}

// clientResult is what `peer.py client` reports.
type clientResult struct {
	Stream              bool         `json:"stream"`
	WarmupNS            *int64       `json:"warmup_ns"`
	TotalNS             int64        `json:"total_ns"`
	FirstAfterRequestNS *int64       `json:"first_after_request_ns"`
	Exception           *pyException `json:"exception"`
	Result              *struct {
		Text     *string `json:"text"`
		InToken  *int64  `json:"in_token"`
		OutToken *int64  `json:"out_token"`
		Model    *string `json:"model"`
	} `json:"result"`
	// Set for streams: the chunks the handler of text_completion_stream
	// was called with, whether their indices ran 0, 1, 2... without a gap,
	// and how long each took from its emission in Go to the handler.
	Chunks       int      `json:"chunks"`
	InOrder      bool     `json:"in_order"`
	FirstIndex   *int     `json:"first_index"`
	Unparsed     []string `json:"unparsed"`
	FirstDelayNS *int64   `json:"first_delay_ns"`
	P50DelayNS   *int64   `json:"p50_delay_ns"`
	P99DelayNS   *int64   `json:"p99_delay_ns"`
	MaxDelayNS   *int64   `json:"max_delay_ns"`
	// Raw is the same request made through the client's request(), with
	// every response kept (peer.py --raw).
	Raw *struct {
		Exception        *pyException `json:"exception"`
		Responses        int          `json:"responses"`
		ErrorsBeforeLast int          `json:"errors_before_last"`
		FinalsBeforeLast int          `json:"finals_before_last"`
		Last             *pyResponse  `json:"last"`
	} `json:"raw"`
}

// runClient runs `peer.py client` against request and response with
// further args and returns its report.
func runClient(t *testing.T, url, request, response string, args ...string) *clientResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	p := peer(t, ctx, "result: ", append([]string{"client",
		"--host", url, "--request", request, "--response", response,
		"--timeout", fmt.Sprint(perMessageTimeout.Seconds())}, args...)...)
	p.finish(t)
	var line string
	for _, l := range strings.Split(p.out.String(), "\n") {
		if strings.HasPrefix(l, "result: ") {
			line = strings.TrimPrefix(l, "result: ")
		}
	}
	if line == "" {
		t.Fatalf("peer.py reported no result:\n%s", p.out)
	}
	var r clientResult
	if err := json.Unmarshal([]byte(line), &r); err != nil {
		t.Fatalf("peer.py result %s: %v", line, err)
	}
	return &r
}

// nonPersistentStats returns the broker's statistics of the non-persistent
// topic tg/<namespace>/<name>.
func nonPersistentStats(t *testing.T, namespace, name string) map[string]any {
	t.Helper()
	admin := strings.TrimRight(brokertest.Env(t, "SWITCHYARD_PULSAR_ADMIN_URL"), "/")
	client := &http.Client{Timeout: 30 * time.Second}
	resp, err := client.Get(fmt.Sprintf("%s/admin/v2/non-persistent/tg/%s/%s/stats", admin, namespace, name))
	if err != nil {
		t.Fatalf("topic stats: %v", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("stats of non-persistent://tg/%s/%s: %s %s", namespace, name, resp.Status, data)
	}
	var stats map[string]any
	if err := json.Unmarshal(data, &stats); err != nil {
		t.Fatalf("stats of non-persistent://tg/%s/%s: %v: %s", namespace, name, err, data)
	}
	return stats
}

func ms(ns int64) string { return time.Duration(ns).Round(10 * time.Microsecond).String() }

func msp(ns *int64) string {
	if ns == nil {
		return "none"
	}
	return ms(*ns)
}

// wantException fails the test unless got is the exception TrustGraph's
// text-completion client raises for an error response: a RuntimeError
// carrying the error's message.
func wantException(t *testing.T, what string, got *pyException, message string) {
	t.Helper()
	if got == nil || got.Module != "builtins" || got.Class != "RuntimeError" || got.Message != message {
		tb := ""
		if got != nil {
			tb = "\n" + got.Traceback
		}
		t.Errorf("%s raised %s, want builtins.RuntimeError(%q)%s", what, got, message, tb)
	}
}

// TestStreamToTrustGraphClient: a 5000-chunk stream from a Go processor on a
// non-persistent response queue reaches TrustGraph's TextCompletionClient
// (text_completion_stream, with its per-message timeout) complete and in
// order, and the first chunk arrives within firstChunkBound of its emission.
//
// The client makes one request without streaming first (--warmup): the
// processor creates its producer for a queue when it first publishes
// there, so the first reply after start carries that one-off cost (a
// TrustGraph processor pays it when its flow starts). It is logged, not
// bounded: the bound is on how soon an emitted chunk reaches the client.
func TestStreamToTrustGraphClient(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	tgPython(t)
	ensureNamespaces(t)
	name := unique("interop-stream")
	request, response := "request:tg:"+name, "response:tg:"+name
	startProcessor(t, "examples/stream-llm", url, request, response,
		"--chunks", fmt.Sprint(streamChunks), "--interval", streamInterval)

	r := runClient(t, url, request, response, "--stream", "--warmup")
	if r.Exception != nil {
		t.Fatalf("text_completion_stream raised %s after %d chunks\n%s", r.Exception, r.Chunks, r.Exception.Traceback)
	}
	if r.Chunks != streamChunks || !r.InOrder {
		t.Errorf("received %d chunks, in order %v (first index %v, unparsed %q), want %d in order",
			r.Chunks, r.InOrder, r.FirstIndex, r.Unparsed, streamChunks)
	}
	if r.Result == nil || r.Result.InToken == nil || *r.Result.InToken != streamChunks ||
		r.Result.OutToken == nil || *r.Result.OutToken != streamChunks ||
		r.Result.Model == nil || *r.Result.Model != streamModel || r.Result.Text != nil {
		t.Errorf("text_completion_stream returned %+v, want token counts %d and model %q from the final chunk",
			r.Result, streamChunks, streamModel)
	}
	if r.FirstDelayNS == nil || time.Duration(*r.FirstDelayNS) > firstChunkBound {
		t.Errorf("first chunk reached the client %s after its emission, want at most %s", msp(r.FirstDelayNS), firstChunkBound)
	}

	// The stream went through the non-persistent topic TrustGraph maps
	// response:tg:<name> to, and the broker took in each chunk once (and
	// the warm-up reply).
	stats := nonPersistentStats(t, "response", name)
	if in, _ := stats["msgInCounter"].(float64); int(in) != streamChunks+1 {
		t.Errorf("non-persistent://tg/response/%s took in %v messages, want %d", name, stats["msgInCounter"], streamChunks+1)
	}
	t.Logf("%d chunks on non-persistent://tg/response/%s, in order: %v; first chunk %s after its emission "+
		"(%s after the request; the first reply after start took %s); chunk delay p50 %s, p99 %s, max %s; whole stream %s (%.0f chunks/s)",
		r.Chunks, name, r.InOrder, msp(r.FirstDelayNS), msp(r.FirstAfterRequestNS), msp(r.WarmupNS),
		msp(r.P50DelayNS), msp(r.P99DelayNS), msp(r.MaxDelayNS), ms(r.TotalNS),
		float64(r.Chunks)/time.Duration(r.TotalNS).Seconds())
}

// TestErrorResponseToTrustGraphClient: a request the Go handler fails is
// answered with an Error response that TrustGraph's TextCompletionClient
// raises as RuntimeError(message), whether the handler named the error type
// itself or the request failed on every delivery.
func TestErrorResponseToTrustGraphClient(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	tgPython(t)
	ensureNamespaces(t)
	for _, tc := range []struct {
		name     string
		failWith string
		message  string // what the client must see
	}{
		// middleware.ErrorType: answered at once with the handler's type.
		{"handler error type", "llm-error:model overloaded: retry later", "model overloaded: retry later"},
		// A plain error: delivered again until the deliveries are used up
		// (middleware.DefaultMaxDeliveries), then answered with the
		// handler's error type (router.WithErrorType).
		{"max deliveries", ":backend unavailable", "gave up after 5 deliveries: backend unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unique("interop-error")
			request, response := "request:tg:"+name, "response:tg:"+name
			startProcessor(t, "examples/stream-llm", url, request, response, "--fail-with", tc.failWith)

			r := runClient(t, url, request, response, "--raw")
			wantException(t, "text_completion", r.Exception, tc.message)
			if r.Raw == nil || r.Raw.Exception != nil || r.Raw.Responses != 1 || r.Raw.Last == nil ||
				r.Raw.Last.Error == nil || r.Raw.Last.Error.Type != "llm-error" ||
				r.Raw.Last.Error.Message != tc.message || !r.Raw.Last.EndOfStream {
				t.Fatalf("the raw reply is %s, want one response with error {llm-error, %q} and end_of_stream", jsonOf(r.Raw), tc.message)
			}
			t.Logf("text_completion raised %s after %s; the response carried error %s", r.Exception, ms(r.TotalNS), jsonOf(r.Raw.Last.Error))
		})
	}
}

// TestStreamFailureToTrustGraphClient: a stream that fails after 40 of its
// chunks reaches TrustGraph's text_completion_stream as the 40 chunks, in
// order, then a RuntimeError for the Error response that ends the stream;
// the client never waits for its timeout.
func TestStreamFailureToTrustGraphClient(t *testing.T) {
	url := brokertest.Env(t, "SWITCHYARD_PULSAR_URL")
	tgPython(t)
	ensureNamespaces(t)
	const failAfter = 40
	for _, tc := range []struct {
		name     string
		failWith string
	}{
		{"handler error type", "llm-error:context window exceeded"},
		// A stream that published outputs is never delivered again (it
		// would repeat them): a plain error is answered at once too.
		{"plain error", ":connection reset by model server"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := unique("interop-stream-fail")
			request, response := "request:tg:"+name, "response:tg:"+name
			startProcessor(t, "examples/stream-llm", url, request, response,
				"--chunks", "100", "--interval", "1ms", "--fail-after", fmt.Sprint(failAfter), "--fail-with", tc.failWith)

			r := runClient(t, url, request, response, "--stream", "--raw")
			// The client is told what failed, as if nothing had been sent
			// before; the processor's log and poison reason count the outputs.
			_, message, _ := strings.Cut(tc.failWith, ":")
			wantException(t, "text_completion_stream", r.Exception, message)
			if r.Chunks != failAfter || !r.InOrder {
				t.Errorf("the handler got %d chunks, in order %v (unparsed %q), want %d in order before the error",
					r.Chunks, r.InOrder, r.Unparsed, failAfter)
			}
			if time.Duration(r.TotalNS) >= perMessageTimeout {
				t.Errorf("text_completion_stream took %s, as long as its per-message timeout %s", ms(r.TotalNS), perMessageTimeout)
			}
			if r.Raw == nil || r.Raw.Exception != nil || r.Raw.Responses != failAfter+1 ||
				r.Raw.ErrorsBeforeLast != 0 || r.Raw.FinalsBeforeLast != 0 || r.Raw.Last == nil ||
				r.Raw.Last.Error == nil || r.Raw.Last.Error.Type != "llm-error" ||
				r.Raw.Last.Error.Message != message || !r.Raw.Last.EndOfStream {
				t.Errorf("the raw stream is %s, want %d chunks then one response with error {llm-error, %q} and end_of_stream",
					jsonOf(r.Raw), failAfter, message)
			}
			t.Logf("%d chunks in order: %v, then text_completion_stream raised %s; %s in all",
				r.Chunks, r.InOrder, r.Exception, ms(r.TotalNS))
		})
	}
}

func jsonOf(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(data)
}
