package rabbitmqpubsub

import (
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/switchyard-go/switchyard/schema"
)

func TestWireOf(t *testing.T) {
	for _, tc := range []struct {
		topic, exchange, queue string
		exclusive, durable     bool
		persistent             bool
	}{
		{"flow:tg:chunk-load:ws1", "tg.flow.chunk-load:ws1", "tg.flow.chunk-load:ws1.sub", false, true, true},
		{"request:tg:text-completion:default:default", "tg.request.text-completion:default:default", "tg.request.text-completion:default:default.sub", false, false, false},
		{"response:tg:config", "tg.response.config", "", true, false, false},
		{"notify:tg:config", "tg.notify.config", "", true, false, false},
		{"q1/tg/flow/x", "tg.flow.x", "tg.flow.x.sub", false, true, true},
		{"q0/tg/flow/x", "tg.flow.x", "tg.flow.x.sub", false, true, false},
		{"q1/public/default/x", "public.flow.x", "public.flow.x.sub", false, true, true},
		{"non-persistent://tg/response/x", "tg.response.x", "", true, false, false},
	} {
		w, err := WireOf(tc.topic)
		if err != nil {
			t.Fatalf("WireOf(%s): %v", tc.topic, err)
		}
		if w.Exchange != tc.exchange || w.QueueName("sub") != tc.queue || w.Exclusive != tc.exclusive ||
			w.DurableQueue != tc.durable || w.Persistent != tc.persistent {
			t.Errorf("WireOf(%s) = %+v, queue %q", tc.topic, w, w.QueueName("sub"))
		}
	}
	if _, err := WireOf("q1/tg/flow/" + strings.Repeat("x", 250)); !errors.Is(err, schema.ErrInvalidTopic) {
		t.Errorf("an exchange name over 255 bytes: %v", err)
	}
}

func TestConfigDefaultsAndValidate(t *testing.T) {
	var c SubscriberConfig
	c.setDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Host != "localhost" || c.Port != 5672 || c.Username != "guest" || c.Password != "guest" || c.VHost != "/" || c.Prefetch != 64 {
		t.Errorf("defaults: %+v", c.ConnectionConfig)
	}
	tlsCfg := ConnectionConfig{TLS: TLSConfig{Enabled: true}}
	tlsCfg.setDefaults()
	if tlsCfg.Port != 5671 || tlsCfg.URL() != "amqps://localhost:5671/" {
		t.Errorf("TLS defaults: port %d URL %s", tlsCfg.Port, tlsCfg.URL())
	}
	vh := ConnectionConfig{Host: "h", VHost: "a/b"}
	vh.setDefaults()
	if vh.URL() != "amqp://h:5672/a%2Fb" {
		t.Errorf("URL with vhost: %s", vh.URL())
	}
	for _, bad := range []ConnectionConfig{
		{Host: "amqp://h", Port: 1},
		{Host: "h", Port: 70000},
		{Host: "h", Port: 1, Password: "x", PasswordFile: "/f"},
		{Host: "h", Port: 1, TLS: TLSConfig{CertFile: "c"}},
		{Host: "h", Port: 1, TLS: TLSConfig{CAFile: "c"}},
	} {
		if err := bad.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", bad)
		}
	}
	if err := (SubscriberConfig{ConnectionConfig: c.ConnectionConfig, Prefetch: 70000}).Validate(); err == nil {
		t.Error("Prefetch 70000 accepted")
	}
}

func TestAttempt(t *testing.T) {
	for _, tc := range []struct {
		d    amqp.Delivery
		want int
	}{
		{amqp.Delivery{}, 1},
		{amqp.Delivery{Redelivered: true}, 2},
		{amqp.Delivery{Headers: amqp.Table{schema.DeliveryAttemptKey: "3"}}, 3},
		{amqp.Delivery{Headers: amqp.Table{schema.DeliveryAttemptKey: "3"}, Redelivered: true}, 4},
		{amqp.Delivery{Headers: amqp.Table{DeliveryCountHeader: int64(2)}, Redelivered: true}, 3},
		{amqp.Delivery{Headers: amqp.Table{schema.DeliveryAttemptKey: []byte("2"), DeliveryCountHeader: int64(1)}}, 3},
		{amqp.Delivery{Headers: amqp.Table{schema.DeliveryAttemptKey: "junk"}}, 1},
	} {
		if got := attempt(tc.d); got != tc.want {
			t.Errorf("attempt(%v, redelivered=%v) = %d, want %d", tc.d.Headers, tc.d.Redelivered, got, tc.want)
		}
	}
	cp := requeued(amqp.Delivery{Headers: amqp.Table{"id": "x", DeliveryCountHeader: int64(1)}, Body: []byte("b"), DeliveryMode: 2, MessageId: "m"})
	if cp.Headers["id"] != "x" || cp.Headers[schema.DeliveryAttemptKey] != "3" || cp.Headers[DeliveryCountHeader] != nil || cp.DeliveryMode != 2 || cp.MessageId != "m" {
		t.Errorf("requeued copy: %+v", cp)
	}
}

func TestPermanentClassification(t *testing.T) {
	if !permanentAMQP(&amqp.Error{Code: amqp.AccessRefused}) || permanentAMQP(&amqp.Error{Code: amqp.ConnectionForced}) || permanentAMQP(amqp.ErrClosed) {
		t.Error("classification of AMQP errors")
	}
	if n, ok := parseMaxSize("PRECONDITION_FAILED - message size 17825792 is larger than configured max size 16777216"); !ok || n != 16777216 {
		t.Errorf("parseMaxSize = %d, %v", n, ok)
	}
}
