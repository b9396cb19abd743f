package schema

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestParseTopicAcceptsEveryForm(t *testing.T) {
	cases := []struct {
		name string
		want Topic
		str  string
	}{
		{"q1/tg/flow/text-completion-request", Topic{QoS: QoS1, Tenant: "tg", Namespace: "flow", Queue: "text-completion-request"}, "q1/tg/flow/text-completion-request"},
		{"q0/tg/flow/x", Topic{QoS: QoS0, Tenant: "tg", Namespace: "flow", Queue: "x"}, "q0/tg/flow/x"},
		{"q2/acme/prod/orders", Topic{QoS: QoS2, Tenant: "acme", Namespace: "prod", Queue: "orders"}, "q2/acme/prod/orders"},
		{"q1/tg/flow/chunk-load:ws1:default", Topic{QoS: QoS1, Tenant: "tg", Namespace: "flow", Queue: "chunk-load:ws1:default"}, "q1/tg/flow/chunk-load:ws1:default"},
		{"flow:tg:x", Topic{QoS: QoS1, Tenant: "tg", Namespace: "flow", Queue: "x"}, "q1/tg/flow/x"},
		{"request:tg:config", Topic{QoS: QoS0, Tenant: "tg", Namespace: "request", Queue: "config"}, "q0/tg/request/config"},
		{"response:tg:config", Topic{QoS: QoS0, Tenant: "tg", Namespace: "response", Queue: "config"}, "q0/tg/response/config"},
		{"notify:tg:config", Topic{QoS: QoS0, Tenant: "tg", Namespace: "notify", Queue: "config"}, "q0/tg/notify/config"},
		{"flow:tg:chunk-load:ws1:default", Topic{QoS: QoS1, Tenant: "tg", Namespace: "flow", Queue: "chunk-load:ws1:default"}, "q1/tg/flow/chunk-load:ws1:default"},
		{"persistent://public/default/my-topic", Topic{QoS: QoS1, Tenant: "public", Namespace: "default", Queue: "my-topic"}, "q1/public/default/my-topic"},
		{"non-persistent://tg/request/config", Topic{QoS: QoS0, Tenant: "tg", Namespace: "request", Queue: "config"}, "q0/tg/request/config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseTopic(c.name)
			if err != nil {
				t.Fatalf("ParseTopic(%q): %v", c.name, err)
			}
			if got != c.want {
				t.Fatalf("ParseTopic(%q) = %#v, want %#v", c.name, got, c.want)
			}
			if got.String() != c.str {
				t.Fatalf("String() = %q, want %q", got.String(), c.str)
			}
			again, err := ParseTopic(got.String())
			if err != nil || again.String() != c.str {
				t.Fatalf("generic form %q does not parse back: %v", got.String(), err)
			}
		})
	}
}

func TestParseTopicRejectsMistakes(t *testing.T) {
	cases := []struct {
		name, wantPart string
	}{
		{"", "empty"},
		{" q1/tg/flow/x", "whitespace"},
		{"q3/tg/flow/x", `qos "q3"`},
		{"Q1/tg/flow/x", `qos "Q1"`},
		{"q1/tg/flow", "3 parts"},
		{"q1//flow/x", "tenant is empty"},
		{"q1/tg//x", "namespace is empty"},
		{"q1/tg/flow/", "queue is empty"},
		{"q1/tg/flow/a/b", "'/'"},
		{"q1/t:g/flow/x", `tenant "t:g"`},
		{"q1/tg/flow/a+b", "wildcard"},
		{"q1/tg/flow/a#", "wildcard"},
		{"q1/tg/flow/a\x00", "NUL"},
		{"q1/tg/flow/a b", "whitespace"},
		{"q1/tg/flow/é", "non-ASCII"},
		{"q1/tg/flow/:x", "start or end with ':'"},
		{"stream:tg:x", `class "stream"`},
		{"flow:tg", "3 parts"},
		{"flow::x", "tenant is empty"},
		{"flow:tg:", "queue is empty"},
		{"http://a/b/c", `scheme "http"`},
		{"persistent://a/b", "tenant/namespace/topic"},
		{"persistent://a/b/c/d", "'/'"},
		{"justaname", "expected"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseTopic(c.name)
			if err == nil {
				t.Fatalf("ParseTopic(%q) succeeded, want an error", c.name)
			}
			if !errors.Is(err, ErrInvalidTopic) {
				t.Fatalf("error %v does not wrap ErrInvalidTopic", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+strings.ReplaceAll(c.name, "\x00", `\x00`)+`"`) {
				t.Errorf("error %q does not quote the name", msg)
			}
			if !strings.Contains(msg, c.wantPart) {
				t.Errorf("error %q does not say %q", msg, c.wantPart)
			}
			if strings.Contains(msg, "\n") {
				t.Errorf("error %q spans lines", msg)
			}
		})
	}
}

func TestNewTopicDefaultsAndOptions(t *testing.T) {
	got, err := NewTopic("text-completion-request")
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "q1/tg/flow/text-completion-request" {
		t.Fatalf("defaults: got %s", got)
	}
	got, err = NewTopic("x", WithQoS(QoS0), WithTenant("acme"), WithNamespace("ns"))
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "q0/acme/ns/x" {
		t.Fatalf("options: got %s", got)
	}
	if _, err := NewTopic("bad/name"); err == nil {
		t.Fatal("NewTopic accepted a queue with '/'")
	}
	if _, err := NewTopic("x", WithQoS(QoS(7))); err == nil || !strings.Contains(err.Error(), "qos") {
		t.Fatalf("NewTopic accepted qos 7: %v", err)
	}
}

func TestTopicHelpers(t *testing.T) {
	base := Topic{QoS: QoS1, Tenant: "tg", Namespace: "flow", Queue: "chunk-load"}
	if got := base.WithQueueSuffix("ws1").String(); got != "q1/tg/flow/chunk-load:ws1" {
		t.Fatalf("WithQueueSuffix: %s", got)
	}
	if QoS0.Persistent() || !QoS1.Persistent() || !QoS2.Persistent() {
		t.Fatal("Persistent: q0 must be the only non-persistent class")
	}
	if !ClassResponse.Exclusive() || !ClassNotify.Exclusive() || ClassFlow.Exclusive() || ClassRequest.Exclusive() {
		t.Fatal("Exclusive: only response and notify consumers are exclusive")
	}
	if err := (Topic{}).Validate(); err == nil {
		t.Fatal("the zero Topic validated")
	}
}

func ExampleParseTopic() {
	t, _ := ParseTopic("request:tg:config")
	fmt.Println(t, t.QoS.Persistent(), t.Class().Exclusive())
	_, err := ParseTopic("q1/tg/flow/orders#")
	fmt.Println(err)
	// Output:
	// q0/tg/request/config false false
	// invalid queue name "q1/tg/flow/orders#": queue "orders#" contains the wildcard '#', which is not allowed
}

func TestClassIsTheSameWhateverTheSpelling(t *testing.T) {
	for _, name := range []string{"response:tg:x", "q0/tg/response/x", "non-persistent://tg/response/x", "q1/tg/response/x"} {
		topic, err := ParseTopic(name)
		if err != nil {
			t.Fatal(err)
		}
		if topic.Class() != ClassResponse || !topic.Class().Exclusive() {
			t.Errorf("%s: class %q, want response (exclusive)", name, topic.Class())
		}
	}
	for _, name := range []string{"flow:tg:x", "q1/tg/flow/x", "persistent://tg/flow/x"} {
		topic, _ := ParseTopic(name)
		if topic.Class() != ClassFlow || topic.Class().Exclusive() {
			t.Errorf("%s: class %q, want flow (shared)", name, topic.Class())
		}
	}
	if c := (Topic{QoS: QoS1, Tenant: "a", Namespace: "b", Queue: "c"}).Class(); c != ClassNone || c.Exclusive() {
		t.Errorf("custom namespace: class %q, want none (shared)", c)
	}
}
