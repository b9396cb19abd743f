package llm_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchyard-go/switchyard/llm"
)

// series gathers reg and returns "name{labels} value" lines, counting a
// histogram as its sample count, and each histogram's bucket bounds.
func series(t *testing.T, reg *prometheus.Registry) (lines []string, buckets map[string][]float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	buckets = map[string][]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case m.GetHistogram() != nil:
				v = float64(m.GetHistogram().GetSampleCount())
				var bs []float64
				for _, b := range m.GetHistogram().GetBucket() {
					bs = append(bs, b.GetUpperBound())
				}
				buckets[mf.GetName()] = bs
			case m.GetCounter() != nil:
				v = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				v = m.GetGauge().GetValue()
			}
			lines = append(lines, fmt.Sprintf("%s{%s} %g", mf.GetName(), strings.Join(ls, ","), v))
		}
	}
	sort.Strings(lines)
	return lines, buckets
}

func TestCompletionMetrics(t *testing.T) {
	m := llm.NewCompletionMetrics()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m.Collectors()[0]); err != nil {
		t.Fatal(err)
	}
	m.ObserveDuration("text-completion", 1500*time.Millisecond)
	m.ObserveDuration("text-completion", 3*time.Second)
	m.SetModel("text-completion", "gpt-4o", "0")
	m.SetModel("text-completion", "gpt-4o-mini", "0.5")
	m.SetModel("text-completion-rag", "gpt-4o", "0")
	lines, buckets := series(t, reg)
	want := []string{
		"tg_text_completion_duration_seconds{processor=text-completion} 2",
		"tg_text_completion_model_info{model=gpt-4o,processor=text-completion-rag,temperature=0} 1",
		"tg_text_completion_model_info{model=gpt-4o-mini,processor=text-completion,temperature=0.5} 1",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("series\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	b := buckets["tg_text_completion_duration_seconds"]
	if len(b) != 36 || b[0] != 0.25 || b[1] != 0.5 || b[2] != 1 || b[26] != 25 || b[27] != 30 || b[len(b)-1] != 120 {
		t.Fatalf("buckets %v", b)
	}
}

func TestEmbeddingsMetrics(t *testing.T) {
	m := llm.NewEmbeddingsMetrics()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m.Collectors()[0]); err != nil {
		t.Fatal(err)
	}
	m.Observe("embeddings", "e5", 3, time.Second)
	m.Observe("embeddings", "e5", 30, time.Second)
	lines, buckets := series(t, reg)
	want := []string{
		"tg_embeddings_batch_size{model=e5,processor=embeddings} 2",
		"tg_embeddings_duration_seconds{model=e5,processor=embeddings} 2",
		"tg_embeddings_request_total{model=e5,processor=embeddings} 2",
	}
	if !slices.Equal(lines, want) {
		t.Fatalf("series\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
	if got := fmt.Sprint(buckets["tg_embeddings_batch_size"]); got != "[1 5 10 25 50 100 250 500 1000]" {
		t.Fatalf("batch buckets %s", got)
	}
	if got := buckets["tg_embeddings_duration_seconds"]; len(got) != 14 || got[4] != 0.075 {
		t.Fatalf("duration buckets %v", got)
	}
}
