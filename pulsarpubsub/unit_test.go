package pulsarpubsub

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/apache/pulsar-client-go/pulsar"

	"github.com/switchyard-go/switchyard/schema"
)

func TestTopicNameMapping(t *testing.T) {
	cases := map[string]string{
		"q0/tg/flow/x":                            "non-persistent://tg/flow/x",
		"q1/tg/flow/text-completion-request":      "persistent://tg/flow/text-completion-request",
		"q2/tg/flow/x":                            "persistent://tg/flow/x",
		"q1/tg/flow/chunk-load:ws1:default":       "persistent://tg/flow/chunk-load:ws1:default",
		"flow:tg:x":                               "persistent://tg/flow/x",
		"request:tg:x":                            "non-persistent://tg/request/x",
		"response:tg:x":                           "non-persistent://tg/response/x",
		"notify:tg:config":                        "non-persistent://tg/notify/config",
		"persistent://public/default/raw":         "persistent://public/default/raw",
		"non-persistent://public/default/raw:a:b": "non-persistent://public/default/raw:a:b",
	}
	for in, want := range cases {
		got, err := TopicName(in)
		if err != nil || got != want {
			t.Errorf("TopicName(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "q3/tg/flow/x", "tg/flow/x", "q1/tg/flow/a/b", "queue:tg:x", "http://a/b/c", "q1/tg/fl ow/x"} {
		_, err := TopicName(bad)
		if !errors.Is(err, schema.ErrInvalidTopic) || !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("TopicName(%q) = %v, want an invalid-name error quoting it", bad, err)
		}
	}
}

func TestClientConfigValidate(t *testing.T) {
	valid := func(c ClientConfig) ClientConfig { c.setDefaults(); return c }
	cases := []struct {
		cfg  ClientConfig
		want string
	}{
		{valid(ClientConfig{URL: "http://h:6650"}), "pulsar:// or pulsar+ssl://"},
		{valid(ClientConfig{URL: "pulsar://"}), "no host"},
		{valid(ClientConfig{URL: "pulsar://h:6650/path"}), "path"},
		{valid(ClientConfig{URL: "pulsar://user:s3cr3t-pw@h:6650"}), "credentials"},
		{valid(ClientConfig{Token: "t", TokenFile: "/f"}), "not both"},
		{valid(ClientConfig{TLSTrustCertsFile: "/ca.pem"}), "pulsar+ssl://"},
		{valid(ClientConfig{OperationTimeout: -1}), "OperationTimeout"},
		{valid(ClientConfig{ConnectionTimeout: -1}), "ConnectionTimeout"},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want an error about %s", c.cfg, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	for _, ok := range []string{"", "pulsar://h:6650", "pulsar+ssl://h:6651", "pulsar://h1:6650,h2:6650", "pulsar://h:6650/"} {
		if err := valid(ClientConfig{URL: ok}).Validate(); err != nil {
			t.Errorf("URL %q: %v", ok, err)
		}
	}
	c := valid(ClientConfig{})
	if c.URL != DefaultURL || c.OperationTimeout != DefaultOperationTimeout || c.ConnectionTimeout != DefaultConnectionTimeout {
		t.Errorf("defaults: %+v", c)
	}
}

func TestRedactURL(t *testing.T) {
	cases := map[string]string{
		"pulsar://h:6650":               "pulsar://h:6650",
		"pulsar://u:pw@h:6650":          "pulsar://***@h:6650",
		"pulsar+ssl://tok@h:6651/x?y#z": "pulsar+ssl://***@h:6651/x?y#z",
		"u:pw@h":                        "***@h",
	}
	for in, want := range cases {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubscriberConfigValidate(t *testing.T) {
	base := func(f func(*SubscriberConfig)) SubscriberConfig {
		c := SubscriberConfig{SubscriptionName: "s"}
		f(&c)
		c.setDefaults()
		return c
	}
	cases := []struct {
		cfg  SubscriberConfig
		want string
	}{
		{base(func(c *SubscriberConfig) { c.SubscriptionName = " " }), "SubscriptionName"},
		{base(func(c *SubscriberConfig) { c.SubscriptionType = "round_robin" }), `"round_robin"`},
		{base(func(c *SubscriberConfig) { c.InitialPosition = "middle" }), `"middle"`},
		{base(func(c *SubscriberConfig) { c.NackRedeliveryDelay = -time.Second }), "NackRedeliveryDelay"},
		{base(func(c *SubscriberConfig) { c.ReceiverQueueSize = -1 }), "ReceiverQueueSize"},
		{base(func(c *SubscriberConfig) { c.AckWindow = -3 }), "AckWindow must not be negative, got -3"},
		{base(func(c *SubscriberConfig) { c.DeadLetter = &DeadLetterPolicy{} }), "MaxDeliveries"},
		{base(func(c *SubscriberConfig) { c.DeadLetter = &DeadLetterPolicy{MaxDeliveries: 1, Topic: "q7/a/b/c"} }), `"q7/a/b/c"`},
	}
	for _, c := range cases {
		err := c.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want an error about %s", err, c.want)
		}
	}
	c := base(func(*SubscriberConfig) {})
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SubscriptionType != Shared || c.InitialPosition != Latest || c.NackRedeliveryDelay != time.Second || c.ReceiverQueueSize != DefaultReceiverQueueSize || c.AckWindow != 1 {
		t.Errorf("defaults: %+v", c)
	}
	for typ, want := range map[SubscriptionType]pulsar.SubscriptionType{Shared: pulsar.Shared, Exclusive: pulsar.Exclusive, Failover: pulsar.Failover, KeyShared: pulsar.KeyShared} {
		if got, err := typ.pulsar(); err != nil || got != want {
			t.Errorf("%s: %v %v", typ, got, err)
		}
	}
}

func TestChunkingTurnsBatchingOff(t *testing.T) {
	c := PublisherConfig{EnableChunking: true}
	c.setDefaults()
	if !c.DisableBatching || c.Validate() != nil {
		t.Fatalf("%+v: %v", c, c.Validate())
	}
	c = PublisherConfig{EnableChunking: true}
	if err := c.Validate(); err == nil {
		t.Fatal("chunking with batching validated")
	}
	o := (&Publisher{cfg: PublisherConfig{MessageKeyMetadata: "k"}}).producerOptions("persistent://a/b/c")
	if o.BatcherBuilderType != pulsar.KeyBasedBatchBuilder {
		t.Error("a message key does not batch per key")
	}
}

// fakeMessage is the part of a received pulsar.Message the adapter reads.
type fakeMessage struct {
	pulsar.Message
	props   map[string]string
	payload []byte
	key     string
	id      pulsar.MessageID
}

func (m fakeMessage) ID() pulsar.MessageID          { return m.id }
func (m fakeMessage) Properties() map[string]string { return m.props }
func (m fakeMessage) Payload() []byte               { return m.payload }
func (m fakeMessage) Key() string                   { return m.key }

func TestMessageConversion(t *testing.T) {
	msg := message.NewMessage("uuid-1", []byte("payload"))
	msg.Metadata.Set("id", "7")
	msg.Metadata.Set("k", "key-1")
	pm := producerMessage(msg, "k", false)
	if string(pm.Payload) != "payload" || pm.Key != "key-1" || pm.Properties[UUIDProperty] != "uuid-1" || pm.Properties["id"] != "7" {
		t.Fatalf("producer message %+v", pm)
	}
	if producerMessage(message.NewMessage("u", nil), "", false).Payload == nil {
		t.Fatal("nil payload not turned into an empty one")
	}
	received := fakeMessage{props: pm.Properties, payload: pm.Payload, key: pm.Key}
	// A persistent topic's message takes its properties map as metadata.
	for _, persistent := range []bool{false, true} {
		back := watermillMessage(received, "k", 1, persistent)
		if back.UUID != "uuid-1" || string(back.Payload) != "payload" || len(back.Metadata) != 3 || back.Metadata.Get("id") != "7" ||
			back.Metadata.Get(schema.DeliveryAttemptKey) != "1" || back.Metadata.Get(UUIDProperty) != "" {
			t.Fatalf("round trip (persistent: %v): %s %q %v", persistent, back.UUID, back.Payload, back.Metadata)
		}
		if !persistent && (len(pm.Properties) != 3 || pm.Properties[UUIDProperty] != "uuid-1") {
			t.Fatalf("the received message's properties were changed: %v", pm.Properties)
		}
	}
	if p := producerMessage(msg, "", true).Properties; len(p) != 2 || p["id"] != "7" || p["k"] != "key-1" {
		t.Fatalf("properties without the UUID: %v", p)
	}
	foreign := watermillMessage(fakeMessage{props: map[string]string{"id": "9"}, payload: []byte("x"), key: "kk"}, "k", 1, false)
	if foreign.UUID == "" || foreign.Metadata.Get("k") != "kk" || foreign.Metadata.Get("id") != "9" {
		t.Fatalf("foreign: %s %v", foreign.UUID, foreign.Metadata)
	}
	// On a persistent topic a message without a UUID is named after its
	// message ID, the same on every delivery.
	for attempt := 1; attempt <= 2; attempt++ {
		stored := fakeMessage{props: map[string]string{"id": "9"}, payload: []byte("x"), id: pulsar.NewMessageID(1234, 56, 7, -1)}
		named := watermillMessage(stored, "", attempt, true)
		if named.UUID != "1234:56:-1:7" || named.Metadata.Get("id") != "9" {
			t.Fatalf("persistent foreign message, attempt %d: %s %v", attempt, named.UUID, named.Metadata)
		}
	}
	none := watermillMessage(fakeMessage{payload: []byte("x"), id: pulsar.NewMessageID(1, 2, 0, 3)}, "", 2, true)
	if none.UUID != "1:2:3:0" || none.Metadata.Get(schema.DeliveryAttemptKey) != "2" {
		t.Fatalf("no properties: %s %v", none.UUID, none.Metadata)
	}
	again := watermillMessage(fakeMessage{props: map[string]string{schema.DeliveryAttemptKey: "1"}, payload: []byte("x")}, "", 4, false)
	if again.Metadata.Get(schema.DeliveryAttemptKey) != "4" {
		t.Fatalf("attempt %q, want the one given, 4", again.Metadata.Get(schema.DeliveryAttemptKey))
	}
	if again.UUID == foreign.UUID {
		t.Fatal("two foreign messages share a UUID")
	}
}

func TestPublishErrorNamesMessages(t *testing.T) {
	msgs := make([]*message.Message, 14)
	var failures []sendFailure
	for i := range msgs {
		msgs[i] = message.NewMessage(fmt.Sprintf("uuid-%d", i), nil)
		if i > 0 {
			failures = append(failures, sendFailure{index: len(msgs) - i, err: pulsar.ErrSendTimeout})
		}
	}
	err := publishError("persistent://a/b/c", msgs, failures)
	if !errors.Is(err, pulsar.ErrSendTimeout) {
		t.Errorf("%v does not wrap the cause", err)
	}
	for _, want := range []string{"13 of 14 messages", "message 1 (uuid uuid-1)", "message 10 (uuid uuid-10)", "and 3 more", "persistent://a/b/c"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	one := publishError("t", msgs, []sendFailure{{index: 3, err: errors.New("boom")}})
	if !strings.Contains(one.Error(), "message 3 (uuid uuid-3) of 14") {
		t.Errorf("%v", one)
	}
}

func TestReconnectBackoff(t *testing.T) {
	b := newBackoffFunc(2 * time.Second)()
	prev := time.Duration(0)
	for range 10 {
		d := b.Next()
		if d < minReconnectBackoff || d > 2*time.Second*6/5 {
			t.Fatalf("pause %s out of range", d)
		}
		if d < prev*9/10 && !b.IsMaxBackoffReached() {
			t.Fatalf("pause shrank from %s to %s", prev, d)
		}
		prev = d
	}
	if !b.IsMaxBackoffReached() {
		t.Fatal("cap not reached")
	}
	b.Reset()
	if d := b.Next(); d > minReconnectBackoff*6/5 {
		t.Fatalf("after Reset: %s", d)
	}
}

// recordingLogger keeps what it is given.
type recordingLogger struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordingLogger) add(level, msg string, err error, f watermill.LogFields) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, fmt.Sprintf("%s %s err=%v %v", level, msg, err, f))
}
func (r *recordingLogger) Error(msg string, err error, f watermill.LogFields) {
	r.add("ERROR", msg, err, f)
}
func (r *recordingLogger) Info(msg string, f watermill.LogFields)           { r.add("INFO", msg, nil, f) }
func (r *recordingLogger) Debug(msg string, f watermill.LogFields)          { r.add("DEBUG", msg, nil, f) }
func (r *recordingLogger) Trace(msg string, f watermill.LogFields)          { r.add("TRACE", msg, nil, f) }
func (r *recordingLogger) With(watermill.LogFields) watermill.LoggerAdapter { return r }

func TestClientLoggerAndDiagnosis(t *testing.T) {
	rec := &recordingLogger{}
	diag := &connDiag{}
	l := newClientLogger(rec, diag)
	start := time.Now()
	l.Info("Created producer")
	l.Debugf("lookup %s", "x")
	conn := l.SubLogger(map[string]interface{}{"remote_addr": "pulsar://h:1"})
	conn.WithError(errors.New("dial tcp h:1: connect: connection refused")).Warn("Failed to connect to broker.")
	l.WithField("topic", "t").Error("Failed to create producer")
	l.Error("Failed to redeliver closing or closed consumer")
	l.WithError(errors.New("consumer closing or closed")).Error("unable to send initial permits to broker")
	want := []string{"DEBUG Created producer", "INFO Failed to connect to broker.", "ERROR Failed to create producer",
		"DEBUG Failed to redeliver closing or closed consumer", "DEBUG unable to send initial permits to broker"}
	if len(rec.lines) != len(want) {
		t.Fatalf("logged %d lines, want %d (debug lines dropped): %q", len(rec.lines), len(want), rec.lines)
	}
	for i, w := range want {
		if !strings.HasPrefix(rec.lines[i], w) {
			t.Errorf("line %d = %q, want %q…", i, rec.lines[i], w)
		}
	}
	reason := diag.since(start)
	if reason != "Failed to connect to broker: dial tcp h:1: connect: connection refused" {
		t.Fatalf("diagnosis %q", reason)
	}
	if diag.since(time.Now().Add(time.Second)) != "" {
		t.Fatal("an old failure was reported")
	}
	info := &connInfo{url: "pulsar://h:1", operationTimeout: 3 * time.Second, diag: diag}
	err := info.describe(errors.Join(context.DeadlineExceeded, errors.New("connection error")), start)
	if !errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "\n") ||
		!strings.Contains(err.Error(), "the broker cannot be reached") || !strings.Contains(err.Error(), "3s") {
		t.Fatalf("describe: %q", err)
	}
	authDiag := &connDiag{}
	authDiag.record("Failed to establish connection with broker: 'Failed to authenticate'", watermill.LogFields{"remote_addr": "x"})
	err = (&connInfo{url: "pulsar://h:1", diag: authDiag}).describe(errors.New("connection error"), start)
	if !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("describe: %q", err)
	}
}

// The TLS configuration verifies the broker's certificate chain and, unless
// told otherwise, that it names the host dialled.
func TestTLSConfigVerification(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	dial := func(c ClientConfig, host string) error {
		cfg, err := c.tlsConfig()
		if err != nil {
			return err
		}
		d := &net.Dialer{Timeout: 5 * time.Second}
		conn, err := tls.DialWithDialer(d, "tcp", net.JoinHostPort(host, port), cfg)
		if err == nil {
			conn.Close()
		}
		return err
	}
	// The test certificate names 127.0.0.1 and example.com, not localhost.
	trusted := ClientConfig{TLSTrustCertsFile: ca}
	if err := dial(trusted, "127.0.0.1"); err != nil {
		t.Errorf("trusted CA, matching name: %v", err)
	}
	if err := dial(trusted, "localhost"); err == nil {
		t.Error("a certificate for another host name was accepted")
	}
	skip := ClientConfig{TLSTrustCertsFile: ca, TLSSkipHostnameVerification: true}
	if err := dial(skip, "localhost"); err != nil {
		t.Errorf("hostname check off: %v", err)
	}
	if err := dial(ClientConfig{TLSSkipHostnameVerification: true}, "localhost"); err == nil {
		t.Error("an untrusted certificate was accepted with the hostname check off")
	}
	if err := dial(ClientConfig{}, "127.0.0.1"); err == nil {
		t.Error("an untrusted certificate was accepted")
	}
	if err := dial(ClientConfig{TLSAllowInsecureConnection: true}, "localhost"); err != nil {
		t.Errorf("insecure: %v", err)
	}
	if _, err := (ClientConfig{TLSTrustCertsFile: filepath.Join(t.TempDir(), "none.pem")}).tlsConfig(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: %v", err)
	}
}
