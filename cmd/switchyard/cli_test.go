package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	err := p.run(context.Background(), strings.NewReader(input))
	if err == nil || !strings.Contains(err.Error(), "2 invalid lines") {
		t.Fatalf("got %v, want an error counting 2 invalid lines", err)
	}
	log := errw.String()
	for _, want := range []string{"line 3: invalid JSON", "line 7: invalid JSON", "publish: 4 confirmed to q1/tg/flow/x, 2 invalid lines"} {
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
	if err := p.run(context.Background(), strings.NewReader(in)); err == nil {
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
