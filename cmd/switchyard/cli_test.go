package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
)

type recorder struct {
	mu   sync.Mutex
	msgs []*message.Message
}

func (r *recorder) Publish(_ string, msgs ...*message.Message) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, msgs...)
	return nil
}

func (r *recorder) Close() error { return nil }

func TestPublishReportsInvalidLinesAndCarriesOn(t *testing.T) {
	rec := &recorder{}
	var errw bytes.Buffer
	p := publisher{pub: rec, topic: "q1/tg/flow/x", props: map[string]string{"source": "test"}, autoID: true, batch: 2, errw: &errw}
	input := "{\"a\":1}\n\n{broken\n[1,2]\n\"str\"\n{\"f\":NaN}\n{\"a\":\n"
	err := p.run(strings.NewReader(input))
	if err == nil || !strings.Contains(err.Error(), "2 invalid lines") {
		t.Fatalf("got %v, want an error counting 2 invalid lines", err)
	}
	log := errw.String()
	for _, want := range []string{"line 3: invalid JSON", "line 7: invalid JSON", "4 published"} {
		if !strings.Contains(log, want) {
			t.Errorf("stderr lacks %q:\n%s", want, log)
		}
	}
	if len(rec.msgs) != 4 {
		t.Fatalf("published %d messages, want 4", len(rec.msgs))
	}
	ids := map[string]bool{}
	for _, m := range rec.msgs {
		if m.Metadata.Get("source") != "test" || m.Metadata.Get("id") == "" {
			t.Fatalf("properties %v", m.Metadata)
		}
		ids[m.Metadata.Get("id")] = true
	}
	if len(ids) != 4 {
		t.Fatal("auto ids are not unique")
	}
	if string(rec.msgs[0].Payload) != `{"a":1}` || string(rec.msgs[3].Payload) != `{"f":NaN}` {
		t.Fatalf("payloads changed: %s %s", rec.msgs[0].Payload, rec.msgs[3].Payload)
	}
}

func TestPublishEnvelopeCarriesProperties(t *testing.T) {
	rec := &recorder{}
	var errw bytes.Buffer
	p := publisher{pub: rec, topic: "t", autoID: true, batch: 10, errw: &errw, envelope: true}
	in := `{"uuid":"u","properties":{"id":"abc","k":"v"},"payload":{"prompt":"hi"}}` + "\n" + `{"properties":{}}` + "\n"
	if err := p.run(strings.NewReader(in)); err == nil {
		t.Fatal("an envelope without payload was accepted")
	}
	if len(rec.msgs) != 1 || rec.msgs[0].Metadata.Get("id") != "abc" || rec.msgs[0].Metadata.Get("k") != "v" || string(rec.msgs[0].Payload) != `{"prompt":"hi"}` {
		t.Fatalf("got %+v", rec.msgs)
	}
	if !strings.Contains(errw.String(), "line 2: invalid envelope: no payload") {
		t.Fatalf("stderr: %s", errw.String())
	}
}

func TestTailLineFormat(t *testing.T) {
	cases := []struct {
		payload []byte
		want    string
	}{
		{[]byte("{\n  \"a\": 1\n}"), `{"uuid":"u1","properties":{"id":"x"},"payload":{"a":1}}`},
		{[]byte(`{"f":NaN}`), `{"uuid":"u1","properties":{"id":"x"},"payload":{"f":NaN}}`},
		{[]byte(`plain text`), `{"uuid":"u1","properties":{"id":"x"},"payload":"plain text"}`},
		{[]byte{0xff, 0x00}, `{"uuid":"u1","properties":{"id":"x"},"payload":"/wA=","payload_encoding":"base64"}`},
	}
	for _, c := range cases {
		m := message.NewMessage("u1", c.payload)
		m.Metadata.Set("id", "x")
		var out bytes.Buffer
		if err := writeLine(&out, m); err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSuffix(out.String(), "\n"); got != c.want {
			t.Errorf("payload %q: got %s, want %s", c.payload, got, c.want)
		}
		if strings.Count(out.String(), "\n") != 1 {
			t.Errorf("not one line: %q", out.String())
		}
	}
	var plain bytes.Buffer
	_ = writeLine(&plain, message.NewMessage("u2", []byte(`{}`)))
	var decoded map[string]any
	if err := json.Unmarshal(plain.Bytes(), &decoded); err != nil || decoded["properties"] == nil {
		t.Fatalf("line %s: %v", plain.String(), err)
	}
}

func TestCLIUsageMistakesExitTwo(t *testing.T) {
	for _, k := range []string{"PUBSUB_BACKEND", "PULSAR_HOST", "MQTT_HOST", "MQTT_PORT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"publish"}, "--topic is required"},
		{[]string{"tail", "--pubsub-backend", "memory"}, "--topic is required"},
		{[]string{"publish", "--topic", "q1/tg/flow/a#b", "--pubsub-backend", "memory"}, `invalid queue name "q1/tg/flow/a#b"`},
		{[]string{"publish", "--topic", "q1/tg/flow/x", "--pubsub-backend", "zeromq"}, `--pubsub-backend "zeromq"`},
		{[]string{"publish", "--topic", "q1/tg/flow/x", "--property", "novalue", "--pubsub-backend", "memory"}, `--property "novalue" must be key=value`},
		{[]string{"tail", "--topic", "q1/tg/flow/x", "--initial-position", "middle", "--pubsub-backend", "memory"}, `--initial-position "middle"`},
		{[]string{"tail", "--topic", "q1/tg/flow/x", "--pubsub-backend", "mqtt", "--mqtt-port", "99999"}, "--mqtt-port must be between 1 and 65535"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"switchyard"}, c.args...), strings.NewReader(""), &stdout, &stderr)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr %q", c.args, code, stderr.String())
			continue
		}
		if !strings.Contains(stderr.String(), c.want) || strings.Count(strings.TrimSpace(stderr.String()), "\n") != 0 {
			t.Errorf("%v: stderr %q, want one line with %q", c.args, stderr.String(), c.want)
		}
	}
}

func TestPublishOnMemoryBackendEndToEnd(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"switchyard", "publish", "--pubsub-backend", "memory", "--topic", "q1/tg/flow/x"},
		strings.NewReader("{\"a\":1}\n{\"b\":2}\n"), &stdout, &stderr)
	if code != 0 || !strings.Contains(stderr.String(), "2 published to q1/tg/flow/x, 0 invalid lines") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}
