package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-go/switchyard/schema"
)

func TestRequestPayloadSizeAndEcho(t *testing.T) {
	for _, size := range []int{256, 1024, 4096} {
		p, err := RequestPayload(size)
		if err != nil {
			t.Fatal(err)
		}
		if len(p) < size || len(p) > size+32 {
			t.Errorf("RequestPayload(%d) is %d bytes", size, len(p))
		}
		var req schema.TextCompletionRequest
		if err := schema.Unmarshal(p, &req); err != nil {
			t.Fatal(err)
		}
		out, err := EchoPayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if !validResponse(out) {
			t.Errorf("EchoPayload gave an invalid response: %s", out)
		}
		var resp schema.TextCompletionResponse
		if err := schema.Unmarshal(out, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.Response != req.Prompt || *resp.OutToken != int64(len(req.Prompt)/4) {
			t.Errorf("response does not echo the prompt: %+v", resp)
		}
	}
	if _, err := EchoPayload([]byte(`{"prompt": 3}`)); err == nil {
		t.Error("EchoPayload accepted a number as prompt")
	}
	if validResponse([]byte(`{"response":"x"}`)) {
		t.Error("a response without model and end_of_stream passed as valid")
	}
}

func TestIDRoundTrip(t *testing.T) {
	id := makeID(kindThroughput, 123456, 987654321*time.Nanosecond)
	kind, seq, sent, err := parseID(id)
	if err != nil || kind != kindThroughput || seq != 123456 || sent != 987654321 {
		t.Fatalf("parseID(%q) = %c %d %v %v", id, kind, seq, sent, err)
	}
	for _, bad := range []string{"", "t", "t.1", "t.x.2", "t.1.y", "x1.2.3", "0b8f2c1e-uuid"} {
		if _, _, _, err := parseID(bad); err == nil {
			t.Errorf("parseID(%q) accepted", bad)
		}
	}
}

func TestCounterCountsAndDeduplicates(t *testing.T) {
	c := newCounter(time.Now())
	c.sent.Store(2)
	resp, _ := EchoPayload(mustPayload(t))
	c.windowOpen.Store(true)
	c.onResponse(makeID(kindThroughput, 1, 0), resp)
	c.onResponse(makeID(kindThroughput, 2, 0), resp)
	c.onResponse(makeID(kindThroughput, 2, 0), resp)
	c.onResponse("not-an-id", resp)
	c.onResponse(makeID(kindThroughput, 1<<60, 0), resp)
	c.onResponse(makeID(kindRoundTrip, 1, 0), resp)
	if c.recv.Load() != 2 || c.duplicates() != 1 || c.bad.Load() != 2 || c.latency.Count() != 2 {
		t.Fatalf("recv %d dups %d bad %d latencies %d", c.recv.Load(), c.duplicates(), c.bad.Load(), c.latency.Count())
	}
	select {
	case id := <-c.rt:
		if !strings.HasPrefix(id, "r.1.") {
			t.Errorf("round-trip id %q", id)
		}
	default:
		t.Error("round-trip response was not passed on")
	}
}

func mustPayload(t *testing.T) []byte {
	t.Helper()
	p, err := RequestPayload(512)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnvelope(t *testing.T) {
	payload := mustPayload(t)
	env := encodeEnvelope(nil, "u-1", "id \"quoted\"\n", payload)
	if !json.Valid(env) {
		t.Fatalf("invalid JSON: %s", env)
	}
	u, id, p, err := decodeEnvelope(env)
	if err != nil || u != "u-1" || id != "id \"quoted\"\n" || !bytes.Equal(p, payload) {
		t.Fatalf("decodeEnvelope = %q %q %v", u, id, err)
	}
	for _, bad := range []string{`{}`, `{"switchyard":2,"uuid":"x","payload":{}}`, `{"switchyard":1,"uuid":"x","encoding":"base64","payload":"AA=="}`, `[1]`} {
		if _, _, _, err := decodeEnvelope([]byte(bad)); err == nil {
			t.Errorf("decodeEnvelope(%s) accepted", bad)
		}
	}
}
