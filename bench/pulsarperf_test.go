package bench

import (
	"strings"
	"testing"
)

// Lines as pulsar-perf 4.0.8 prints them (trimmed).
const (
	perfProduceOut = `2026-12-03T14:47:22,544+0000 [pulsar-perf-producer-exec-1-1] INFO  org.apache.pulsar.testclient.PerformanceProducer - Created 1 producers
2026-12-03T14:47:32,548+0000 [pulsar-perf-producer-exec-1-1] INFO  org.apache.pulsar.testclient.PerformanceProducer - ------------- DONE (reached the maximum duration: [10 seconds] of production) --------------
2026-12-03T14:47:32,699+0000 [main] INFO  org.apache.pulsar.testclient.PerformanceProducer - Throughput produced:  609122 msg ---  60809.1 msg/s ---    475.1 Mbit/s  --- failure      0.0 msg/s --- Latency: mean: 748.294 ms - med: 476.373 - 95pct: 2138.047 - 99pct: 2506.639 - 99.9pct: 2845.727 - 99.99pct: 2846.223 - Max: 2846.431
2026-12-03T14:47:42,791+0000 [perf-client-shutdown] INFO  org.apache.pulsar.testclient.PerformanceProducer - Aggregated throughput stats --- 752314 records sent --- 35687.456 msg/s --- 278.808 Mbit/s 
2026-12-03T14:47:42,816+0000 [perf-client-shutdown] INFO  org.apache.pulsar.testclient.PerformanceProducer - Aggregated latency stats --- Latency: mean: 1029.291 ms - med: 696.007 - 95pct: 2585.503 - 99pct: 2957.535 - 99.9pct: 3077.903 - 99.99pct: 3077.967 - 99.999pct: 3286.495 - Max: 3291.663
`
	perfConsumeOut = `2026-12-03T14:48:01,290+0000 [main] INFO  org.apache.pulsar.testclient.PerformanceConsumer - Start receiving from 1 consumers per subscription on 1 topics
2026-12-03T14:48:09,461+0000 [pulsar-external-listener-4-1] INFO  org.apache.pulsar.testclient.PerformanceConsumer - ------------------- DONE -----------------------
2026-12-03T14:48:09,470+0000 [main] INFO  org.apache.pulsar.testclient.PerformanceConsumer - Throughput received:   30000 msg --- 3000.000  msg/s --- 23.4 Mbit/s  --- Latency: mean: 0.000 ms - med: 0 - 95pct: 0 - 99pct: 0
2026-12-03T14:48:09,475+0000 [perf-client-shutdown] INFO  org.apache.pulsar.testclient.PerformanceConsumer - Aggregated throughput stats --- 369683 records received --- 45225.844 msg/s --- 353.327 Mbit/s --- AckRate: 45225.843665219465  msg/s --- ack failed 0 msg
`
)

func TestParsePulsarPerfProduceTakesPeriodicLines(t *testing.T) {
	r := ToolRun{Tool: ToolPulsarPerfProduce}
	if err := parsePulsarPerf(&r, []byte(perfProduceOut)); err != nil {
		t.Fatal(err)
	}
	if r.Messages != 752314 || r.MsgsPerSec < 60809 || r.MsgsPerSec > 60810 || r.Note != "" {
		t.Errorf("produce: %+v", r)
	}
	// Two periodic lines: the rate is their messages over their time.
	two := perfProduceOut + "x - Throughput produced:  300000 msg ---  30000.0 msg/s --- 1 Mbit/s\n"
	r = ToolRun{Tool: ToolPulsarPerfProduce}
	if err := parsePulsarPerf(&r, []byte(two)); err != nil {
		t.Fatal(err)
	}
	want := (609122.0 + 300000) / (609122/60809.1 + 10)
	if r.MsgsPerSec < want-0.01 || r.MsgsPerSec > want+0.01 {
		t.Errorf("two periodic lines: %v msgs/s, want %v", r.MsgsPerSec, want)
	}
	// None: the aggregated rate, with a note.
	var agg []string
	for _, l := range strings.Split(perfProduceOut, "\n") {
		if !strings.Contains(l, "Throughput produced") {
			agg = append(agg, l)
		}
	}
	r = ToolRun{Tool: ToolPulsarPerfProduce}
	if err := parsePulsarPerf(&r, []byte(strings.Join(agg, "\n"))); err != nil {
		t.Fatal(err)
	}
	if r.MsgsPerSec != 35687.456 || r.Note == "" {
		t.Errorf("produce without periodic lines: %+v", r)
	}
}

func TestParsePulsarPerfConsumeTakesAggregatedLine(t *testing.T) {
	r := ToolRun{Tool: ToolPulsarPerfConsume}
	if err := parsePulsarPerf(&r, []byte(perfConsumeOut)); err != nil {
		t.Fatal(err)
	}
	if r.Messages != 369683 || r.MsgsPerSec != 45225.844 {
		t.Errorf("consume: %+v", r)
	}
}

func TestParsePulsarPerfFailures(t *testing.T) {
	for name, out := range map[string]string{
		"no figures": "Exception in thread main\nsomething went wrong\n",
		"error line": perfProduceOut + "2026-12-03T14:47:07,083+0000 [x] ERROR org.apache.pulsar.testclient.PerformanceProducer - Got error\n",
	} {
		r := ToolRun{Tool: ToolPulsarPerfProduce}
		if err := parsePulsarPerf(&r, []byte(out)); err == nil {
			t.Errorf("%s: accepted, %+v", name, r)
		}
	}
}
