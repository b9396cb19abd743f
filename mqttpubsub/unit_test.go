package mqttpubsub

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/switchyard-go/switchyard/schema"
)

func TestEnvelopeKeepsEveryPayloadByteForByte(t *testing.T) {
	cases := []struct {
		name     string
		payload  []byte
		encoding string
	}{
		{"json object", []byte(`{"a": [1, 2], "b": {"c": "d"}}`), ""},
		{"json scalar", []byte(`42`), ""},
		{"json null", []byte(`null`), ""},
		{"json with inner whitespace", []byte("{\n  \"a\": 1\n}"), ""},
		{"json with outer whitespace", []byte(" {\"a\":1}\n"), `"encoding":"text"`},
		{"python NaN", []byte(`{"x": NaN, "y": -Infinity}`), `"encoding":"text"`},
		{"plain text", []byte("x"), `"encoding":"text"`},
		{"html", []byte(`<a href="x">&</a>`), `"encoding":"text"`},
		{"binary", []byte{0, 1, 2, 0xff, 0xc3}, `"encoding":"base64"`},
		{"empty", nil, `"encoding":"text"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := message.NewMessage("uuid-1", c.payload)
			msg.Metadata.Set("id", "req-7")
			msg.Metadata.Set("odd", "a\"b\\c\u2028")
			b, err := marshalEnvelope(msg)
			if err != nil {
				t.Fatal(err)
			}
			if c.encoding != "" && !bytes.Contains(b, []byte(c.encoding)) {
				t.Errorf("envelope %s lacks %s", b, c.encoding)
			}
			if c.encoding == "" && !bytes.HasSuffix(b, append(append([]byte(`"payload":`), c.payload...), '}')) {
				t.Errorf("JSON payload not embedded as it is: %s", b)
			}
			uuid, md, payload, err := unmarshalEnvelope(b)
			if err != nil {
				t.Fatalf("unmarshal %s: %v", b, err)
			}
			if uuid != "uuid-1" || md.Get("id") != "req-7" || md.Get("odd") != "a\"b\\c\u2028" || len(md) != 2 {
				t.Errorf("uuid %q metadata %v", uuid, md)
			}
			if !bytes.Equal(payload, c.payload) {
				t.Errorf("payload %q, want %q", payload, c.payload)
			}
		})
	}
}

func TestEnvelopeWithoutMetadata(t *testing.T) {
	b, err := marshalEnvelope(message.NewMessage("u", []byte(`{}`)))
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"switchyard":1,"uuid":"u","payload":{}}` {
		t.Fatalf("envelope %s", b)
	}
	_, md, _, err := unmarshalEnvelope(b)
	if err != nil || md == nil || len(md) != 0 {
		t.Fatalf("metadata %v, %v", md, err)
	}
}

func TestEnvelopeRejectsGarbage(t *testing.T) {
	cases := map[string]string{
		"":                          "empty",
		"   ":                       "empty",
		"hello world":               "not a JSON object",
		"[1,2]":                     "not a JSON object",
		"{":                         "unexpected end",
		`{"uuid":"u","payload":{}}`: `no "switchyard" version`,
		`{"switchyard":2,"uuid":"u","payload":{}}`:                       "version 2",
		`{"switchyard":1,"payload":{}}`:                                  `no "uuid"`,
		`{"switchyard":1,"uuid":"u"}`:                                    `no "payload"`,
		`{"switchyard":1,"uuid":"u","encoding":"zip","payload":1}`:       `"zip"`,
		`{"switchyard":1,"uuid":"u","encoding":"base64","payload":"!!"}`: "base64",
		`{"switchyard":1,"uuid":"u","encoding":"text","payload":1}`:      "JSON string",
		`{"switchyard":1,"uuid":"u","metadata":{"a":1},"payload":1}`:     "metadata",
		`{"switchyard":1,"uuid":"u","payload":{} trailing`:               "invalid character",
	}
	for in, want := range cases {
		_, _, _, err := unmarshalEnvelope([]byte(in))
		if !errors.Is(err, ErrNotEnvelope) || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want one that says %q", in, err, want)
		}
	}
}

func TestResolveTopic(t *testing.T) {
	cases := []struct {
		in    string
		topic string
		qos   byte
		class schema.Class
	}{
		{"q0/tg/flow/x", "tg/flow/x", 0, schema.ClassFlow},
		{"q1/tg/flow/text-completion-request", "tg/flow/text-completion-request", 1, schema.ClassFlow},
		{"q2/t/n/chunk-load:ws1:default", "t/n/chunk-load:ws1:default", 2, ""},
		{"flow:tg:x", "tg/flow/x", 1, schema.ClassFlow},
		{"response:tg:x", "tg/response/x", 0, schema.ClassResponse},
		{"persistent://t/n/q", "t/n/q", 1, ""},
		{"non-persistent://t/n/q", "t/n/q", 0, ""},
	}
	for _, c := range cases {
		d, err := resolveTopic(c.in)
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if d.name != c.topic || d.qos != c.qos || d.class != c.class {
			t.Errorf("%q: got %q qos %d class %q", c.in, d.name, d.qos, d.class)
		}
	}
}

func TestCheckTopicName(t *testing.T) {
	ok := []string{"a", "a/b/c", "tg/flow/x:y", "ünïcode/ok"}
	bad := map[string]string{
		"":          "empty",
		"a/+/c":     "wildcard",
		"a/#":       "wildcard",
		"a//b":      "empty level",
		"/a":        "empty level",
		"a/":        "empty level",
		"a\x00b":    "NUL",
		"$SYS/x":    "'$'",
		"bad\xffut": "UTF-8",
	}
	for _, s := range ok {
		if r := checkTopicName(s); r != "" {
			t.Errorf("%q rejected: %s", s, r)
		}
	}
	for s, want := range bad {
		if r := checkTopicName(s); !strings.Contains(r, want) {
			t.Errorf("%q: %q, want %q", s, r, want)
		}
	}
}

func TestConnectionConfigValidation(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		cfg  ConnectionConfig
		want string
	}{
		{ConnectionConfig{}, "broker URL is empty"},
		{ConnectionConfig{Broker: "tcp://user:pw@host:1883"}, "must not contain credentials"},
		{ConnectionConfig{Broker: "http://host:1883"}, `scheme "http"`},
		{ConnectionConfig{Broker: "tcp://h:1", Username: "u", Password: "p", PasswordFile: "f"}, "not both"},
		{ConnectionConfig{Broker: "tcp://h:1", Password: "p"}, "needs a user name"},
		{ConnectionConfig{Broker: "tcp://h:1", CAFile: "ca.pem"}, "needs a TLS broker URL"},
		{ConnectionConfig{Broker: "tcp://h:1", KeepAlive: 10}, "shorter than one second"},
	}
	for _, c := range cases {
		c.cfg.setDefaults()
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("error reveals credentials: %v", err)
		}
	}

	good := ConnectionConfig{Broker: "localhost"}
	good.setDefaults()
	if good.Broker != "tcp://localhost:1883" || good.Validate() != nil {
		t.Errorf("defaults: %q %v", good.Broker, good.Validate())
	}
	tlsDefault := ConnectionConfig{Broker: "ssl://broker.example"}
	tlsDefault.setDefaults()
	if tlsDefault.Broker != "ssl://broker.example:8883" {
		t.Errorf("TLS default port: %q", tlsDefault.Broker)
	}

	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("sekrit\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := ConnectionConfig{Broker: "tcp://h:1", Username: "u", PasswordFile: pwFile}.resolved()
	if err != nil || r.Password != "sekrit" {
		t.Fatalf("password file: %q %v", r.Password, err)
	}
	if _, err := (ConnectionConfig{PasswordFile: filepath.Join(dir, "missing")}).resolved(); err == nil || !strings.Contains(err.Error(), "password file") {
		t.Fatalf("missing password file: %v", err)
	}
	caFile := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(caFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := (ConnectionConfig{CAFile: caFile}).resolved(); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Fatalf("bad CA file: %v", err)
	}
}

func TestSubscriberConfigValidation(t *testing.T) {
	cases := []struct {
		cfg  SubscriberConfig
		want string
	}{
		{SubscriberConfig{Group: "a/b"}, "must not contain"},
		{SubscriberConfig{Group: "a+"}, "must not contain"},
		{SubscriberConfig{Durable: true}, "needs a client id"},
		{SubscriberConfig{PayloadMode: "zip"}, `payload mode "zip"`},
		{SubscriberConfig{NackDelay: -1}, "nack delay"},
	}
	for _, c := range cases {
		c.cfg.Broker = "tcp://h:1"
		c.cfg.setDefaults()
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.cfg, err, c.want)
		}
	}
}

func TestEnvelopeEscapesMetadataLikeEncodingJSON(t *testing.T) {
	values := []string{"", "plain", `quo"te`, `back\slash`, "tab\tnew\nline\r", "\x00\x01\x1f", "naïve ✓ 😀", "bad\xffutf8", "</script>&"}
	for _, v := range values {
		msg := message.NewMessage("uuid-"+v, []byte(`{"a":1}`))
		msg.Metadata.Set("k"+v, v)
		out, err := marshalEnvelope(msg)
		if err != nil {
			t.Fatal(err)
		}
		var generic map[string]any
		if err := json.Unmarshal(out, &generic); err != nil {
			t.Fatalf("%q: envelope is not JSON: %s: %v", v, out, err)
		}
		uuid, md, payload, err := unmarshalEnvelope(out)
		if err != nil {
			t.Fatalf("%q: %v", v, err)
		}
		want := strings.ToValidUTF8(v, "\uFFFD")
		if uuid != strings.ToValidUTF8("uuid-"+v, "\uFFFD") || md.Get(strings.ToValidUTF8("k"+v, "\uFFFD")) != want || string(payload) != `{"a":1}` {
			t.Fatalf("%q: round trip gave uuid %q metadata %v payload %s", v, uuid, md, payload)
		}
	}
}
