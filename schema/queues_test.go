package schema

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// pythonQueues returns the fixed queue names of trustgraph.schema, listed
// live when TrustGraph's Python environment is available, else read from the
// checked-in snapshot.
func pythonQueues(t *testing.T) map[string]string {
	t.Helper()
	var data []byte
	ok := t.Run("python-queues", func(t *testing.T) {
		out, err := runGolden(t, "queues")
		if err != nil {
			t.Fatal(err)
		}
		data = out
	})
	if !ok {
		t.FailNow()
	}
	if data == nil {
		t.Log("TrustGraph's Python environment is not available: using the checked-in queue snapshot")
		var err error
		data, err = os.ReadFile(filepath.Join(goldenDir, "_meta", "queues.json"))
		if err != nil {
			t.Fatal(err)
		}
	}
	var queues map[string]string
	if err := json.Unmarshal(data, &queues); err != nil {
		t.Fatal(err)
	}
	return queues
}

func TestFixedQueuesMatchPython(t *testing.T) {
	py := pythonQueues(t)
	goq := FixedQueues()
	for name, spelled := range py {
		topic, ok := goq[name]
		if !ok {
			t.Errorf("trustgraph.schema defines %s = %q; FixedQueues lacks it", name, spelled)
			continue
		}
		parsed, err := ParseTopic(spelled)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if topic != parsed {
			t.Errorf("%s: Go %+v, Python %q parses as %+v", name, topic, spelled, parsed)
		}
	}
	for name := range goq {
		if _, ok := py[name]; !ok {
			t.Errorf("FixedQueues has %s, which trustgraph.schema does not define", name)
		}
	}
}

func TestFixedQueuesValid(t *testing.T) {
	for name, topic := range FixedQueues() {
		if err := topic.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if topic.Tenant != "tg" || topic.Class() == ClassNone || topic.Namespace != string(topic.Class()) {
			t.Errorf("%s: %+v is not in class form with topicspace tg", name, topic)
		}
	}
	want := Topic{QoS: QoS0, Tenant: "tg", Namespace: "request", Queue: "config"}
	if ConfigRequestQueue != want {
		t.Errorf("ConfigRequestQueue = %+v, want %+v", ConfigRequestQueue, want)
	}
	if got := ConfigPushQueue.String(); got != "q0/tg/notify/config" {
		t.Errorf("ConfigPushQueue = %s", got)
	}
	if !ConfigResponseQueue.Class().Exclusive() || LibrarianRequestQueue.Class().Exclusive() {
		t.Error("response queues must be exclusive and request queues shared")
	}
}

func TestFlowQueue(t *testing.T) {
	base, err := ParseTopic("flow:tg:triples-store")
	if err != nil {
		t.Fatal(err)
	}
	got := FlowQueue(base, "ws1", "default")
	want, err := ParseTopic("flow:tg:triples-store:ws1:default")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("FlowQueue = %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Error(err)
	}
	if got.String() != "q1/tg/flow/triples-store:ws1:default" {
		t.Errorf("generic form %s", got)
	}
	if q := FlowQueue(base, "ws1", "").Queue; q != "triples-store:ws1" {
		t.Errorf("workspace only: %s", q)
	}
	if base.Queue != "triples-store" {
		t.Error("FlowQueue changed its argument")
	}
	if err := FlowQueue(base, "bad/ws", "f").Validate(); err == nil {
		t.Error("a workspace holding '/' gives a valid queue")
	}
}
