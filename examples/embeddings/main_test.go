package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/flow"
	"github.com/switchyard-go/switchyard/internal/flowtest"
	"github.com/switchyard-go/switchyard/llm"
	"github.com/switchyard-go/switchyard/llm/openai/openaitest"
	"github.com/switchyard-go/switchyard/processor"
	"github.com/switchyard-go/switchyard/rrclient"
	"github.com/switchyard-go/switchyard/schema"
)

const (
	testKey   = "sk-proj-SECRETKEY0123456789"
	flowModel = "text-embedding-3-large"
)

type (
	request  = schema.EmbeddingsRequest
	response = schema.EmbeddingsResponse
)

// env is an embeddings processor running in process on the memory
// backend, with a Go configuration service and a fake OpenAI server.
type env struct {
	srv     *openaitest.Server
	client  *rrclient.Client[request, response]
	metrics *llm.EmbeddingsMetrics
	logs    *flowtest.Logs
}

// newEnv starts the processor with the flags cfg gives (the key and URL
// point at the fake server unless set) on flow default/default, whose
// parameters are params (JSON).
func newEnv(t *testing.T, bk flowtest.Kind, cfg Config, params string) *env {
	t.Helper()
	e := &env{srv: openaitest.New(t.Cleanup), metrics: llm.NewEmbeddingsMetrics(), logs: &flowtest.Logs{}}
	e.srv.Key = testKey
	if cfg.URL == "" {
		cfg.URL = e.srv.BaseURL()
	}
	if cfg.APIKey == "" {
		cfg.APIKey = testKey
	}
	log := processor.WatermillLogger(processor.NewLogger(e.logs, "debug"))
	b := flowtest.Open(t, bk, log)

	cs := flowtest.ConfigService(t, b, log)
	def := `{"topics": {"request": "request:tg:embeddings:default:default", "response": "response:tg:embeddings:default:default"}, "parameters": ` + params + `}`
	if err := cs.Put(context.Background(), "default", schema.ConfigValue{Type: "processor:" + Name, Key: "default", Value: def}); err != nil {
		t.Fatal(err)
	}

	svc := &service{metrics: e.metrics}
	if err := svc.setup(Name, cfg); err != nil {
		t.Fatal(err)
	}
	rt, err := flow.New(flow.Config{ID: Name, RetryInterval: 100 * time.Millisecond}, b, log, svc.specs()...)
	if err != nil {
		t.Fatal(err)
	}
	flowtest.Run(t, rt.Run, rt.Ready())
	if n := len(rt.Flows()); n != 1 {
		t.Fatalf("%d flows running, want 1", n)
	}
	if sub := rt.Flows()[0].Handlers[0].Subscription; sub != "embeddings--default--default--request" {
		t.Fatalf("subscription %q, want TrustGraph's", sub)
	}

	reqQ, _ := schema.ParseTopic("request:tg:embeddings:default:default")
	respQ, _ := schema.ParseTopic("response:tg:embeddings:default:default")
	c, err := rrclient.New[request, response](context.Background(), b, rrclient.Config{Request: reqQ, Response: respQ, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	e.client = c
	return e
}

func TestEmbeddings(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{Model: "flag-model"}, `{"model": "`+flowModel+`"}`)
		texts := []string{"a", "bb cc", "ddd eee fff"}
		resp, err := e.client.Request(context.Background(), &request{Texts: texts})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Error != nil || len(resp.Vectors) != len(texts) {
			t.Fatalf("response %+v", resp)
		}
		for i, v := range resp.Vectors {
			if fmt.Sprint(v) != fmt.Sprint(openaitest.Vector(texts[i])) {
				t.Fatalf("vector %d: %v, want %v", i, v, openaitest.Vector(texts[i]))
			}
		}
		body := e.srv.Requests()[0].Body
		if body["model"] != flowModel || len(body["input"].([]any)) != 3 {
			t.Fatalf("request body %v", body)
		}
	})
}

// Without a model parameter (or with the flow service's unresolved
// placeholder) --model is used.
func TestModelFlag(t *testing.T) {
	e := newEnv(t, flowtest.Memory, Config{Model: "flag-model"}, `{"model": "{embeddings-model}"}`)
	if _, err := e.client.Request(context.Background(), &request{Texts: []string{"x"}}); err != nil {
		t.Fatal(err)
	}
	if m := e.srv.Requests()[0].Body["model"]; m != "flag-model" {
		t.Fatalf("model %v", m)
	}
}

func responseError(t *testing.T, err error, wantType string) *rrclient.ResponseError {
	t.Helper()
	var re *rrclient.ResponseError
	if !errors.As(err, &re) || re.Type != wantType {
		t.Fatalf("error %v, want a %s response", err, wantType)
	}
	return re
}

func TestUpstreamErrors(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, `{"model": "`+flowModel+`"}`)
		e.srv.Script("/v1/embeddings", openaitest.ServerError(), openaitest.QuotaExhausted())
		_, err := e.client.Request(context.Background(), &request{Texts: []string{"x"}})
		if re := responseError(t, err, ErrorType); !strings.Contains(re.Message, "HTTP 500") {
			t.Fatalf("message %q", re.Message)
		}
		_, err = e.client.Request(context.Background(), &request{Texts: []string{"x"}})
		if re := responseError(t, err, ErrorType); !strings.Contains(re.Message, "insufficient_quota") {
			t.Fatalf("message %q", re.Message)
		}
		if n := e.srv.Calls("/v1/embeddings"); n != 2 {
			t.Fatalf("%d calls for two failed requests, want 2", n)
		}
	})
}

func TestRateLimitRetried(t *testing.T) {
	flowtest.ForEach(t, flowtest.Kinds, func(t *testing.T, bk flowtest.Kind) {
		e := newEnv(t, bk, Config{}, `{"model": "`+flowModel+`"}`)
		e.srv.Script("/v1/embeddings", openaitest.RateLimited("1"))
		start := time.Now()
		resp, err := e.client.Request(context.Background(), &request{Texts: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < time.Second {
			t.Fatalf("answered after %s, before the 1s the server asked for", waited)
		}
		if len(resp.Vectors) != 1 {
			t.Fatalf("response %+v", resp)
		}
		if n := e.srv.Calls("/v1/embeddings"); n != 2 {
			t.Fatalf("%d calls, want the rate-limited one and the retry", n)
		}
	})
}

func TestKeyNeverShown(t *testing.T) {
	wrong := "sk-proj-WRONGKEY9876543210"
	e := newEnv(t, flowtest.Memory, Config{APIKey: wrong}, `{"model": "`+flowModel+`"}`)
	_, err := e.client.Request(context.Background(), &request{Texts: []string{"x"}})
	re := responseError(t, err, ErrorType)
	logs := e.logs.WaitFor(t, "Answered with an error response")
	if !strings.Contains(re.Message, "invalid_api_key") {
		t.Fatalf("message %q; logs\n%s", re.Message, logs)
	}
	for _, s := range []string{re.Message, err.Error(), logs} {
		for _, key := range []string{wrong, testKey, "WRONGKEY", "SECRETKEY"} {
			if strings.Contains(s, key) {
				t.Fatalf("%q shows in %q", key, s)
			}
		}
	}
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, flowtest.Memory, Config{}, `{"model": "`+flowModel+`"}`)
	reg := prometheus.NewRegistry()
	if err := reg.Register(e.metrics); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.Request(context.Background(), &request{Texts: []string{"a", "b", "c"}}); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetCounter().GetValue()
			if h := m.GetHistogram(); h != nil {
				v = h.GetSampleSum()
				if mf.GetName() == "tg_embeddings_duration_seconds" {
					v = float64(h.GetSampleCount())
				}
			}
			got[mf.GetName()] = fmt.Sprintf("%s %g", strings.Join(ls, ","), v)
		}
	}
	want := map[string]string{
		"tg_embeddings_request_total":    "model=" + flowModel + ",processor=embeddings 1",
		"tg_embeddings_duration_seconds": "model=" + flowModel + ",processor=embeddings 1",
		"tg_embeddings_batch_size":       "model=" + flowModel + ",processor=embeddings 3",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("metrics %v, want %v", got, want)
	}
}
