package bench

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsAreContiguous(t *testing.T) {
	prevHi := int64(-1)
	for i := 0; i < numBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo == math.MaxInt64 {
			break
		}
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, want %d", i, lo, prevHi+1)
		}
		if hi < lo {
			t.Fatalf("bucket %d: hi %d < lo %d", i, hi, lo)
		}
		for _, v := range []int64{lo, hi, lo + (hi-lo)/2} {
			if got := bucketOf(v); got != i {
				t.Fatalf("bucketOf(%d) = %d, want %d", v, got, i)
			}
		}
		prevHi = hi
	}
	if got := bucketOf(math.MaxInt64); got >= numBuckets {
		t.Fatalf("bucketOf(MaxInt64) = %d, out of range %d", got, numBuckets)
	}
}

func TestPercentileExactForSmallValues(t *testing.T) {
	h := NewHistogram()
	for v := 1; v <= 100; v++ {
		h.Record(time.Duration(v))
	}
	cases := map[float64]time.Duration{0: 1, 1: 1, 50: 50, 99: 99, 99.5: 100, 100: 100}
	for p, want := range cases {
		if got := h.Percentile(p); got != want {
			t.Errorf("Percentile(%v) = %v, want %v", p, got, want)
		}
	}
	if got := h.Mean(); got != 50 {
		t.Errorf("Mean = %v, want 50ns (50.5 truncated)", got)
	}
}

func TestPercentileWithinRelativeError(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	h := NewHistogram()
	var exact []int64
	for i := 0; i < 200000; i++ {
		// Log-normal-ish latencies between ~10µs and ~1s.
		v := int64(math.Exp(rng.NormFloat64()*1.5 + 13))
		exact = append(exact, v)
		h.Record(time.Duration(v))
	}
	slices.Sort(exact)
	for _, p := range []float64{1, 10, 50, 90, 99, 99.9} {
		want := exact[nearestRank(p, uint64(len(exact)))-1]
		got := int64(h.Percentile(p))
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 1.0/float64(subBuckets) {
			t.Errorf("p%v = %d, exact %d, relative error %.4f", p, got, want, rel)
		}
	}
	if got, want := h.Max(), time.Duration(exact[len(exact)-1]); got != want {
		t.Errorf("Max = %v, want %v", got, want)
	}
	if h.Count() != uint64(len(exact)) {
		t.Errorf("Count = %d, want %d", h.Count(), len(exact))
	}
}

func TestPercentileSingleValueAndEmpty(t *testing.T) {
	h := NewHistogram()
	if h.Percentile(50) != 0 || h.Mean() != 0 || h.Max() != 0 {
		t.Fatal("empty histogram should report zeros")
	}
	h.Record(1234567 * time.Nanosecond)
	for _, p := range []float64{0, 50, 99, 100} {
		if got := h.Percentile(p); got != 1234567 {
			t.Errorf("Percentile(%v) = %v, want the only value 1.234567ms", p, got)
		}
	}
	h.Record(-time.Second)
	if got := h.Percentile(0); got != 0 {
		t.Errorf("negative duration should count as 0, got %v", got)
	}
}

func TestNearestRank(t *testing.T) {
	cases := []struct {
		p    float64
		n    uint64
		want uint64
	}{
		{50, 1, 1}, {50, 2, 1}, {50, 3, 2}, {99, 100, 99}, {99, 1000, 990}, {99.9, 10, 10}, {0, 10, 1}, {100, 10, 10}, {-5, 10, 1}, {150, 10, 10},
	}
	for _, c := range cases {
		if got := nearestRank(c.p, c.n); got != c.want {
			t.Errorf("nearestRank(%v, %d) = %d, want %d", c.p, c.n, got, c.want)
		}
	}
}

func TestSummaryMilliseconds(t *testing.T) {
	h := NewHistogram()
	h.Record(2 * time.Millisecond)
	s := h.Summary()
	if s.Samples != 1 || s.P50 < 1.99 || s.P50 > 2.01 || s.P99 != s.P50 || s.Max != 2 {
		t.Fatalf("Summary = %+v", s)
	}
}

func TestMedianAndRatio(t *testing.T) {
	if Median(nil) != 0 {
		t.Error("Median(nil) != 0")
	}
	in := []float64{5, 1, 3}
	if Median(in) != 3 {
		t.Errorf("Median odd = %v", Median(in))
	}
	if in[0] != 5 {
		t.Error("Median modified its input")
	}
	if Median([]float64{4, 1, 3, 2}) != 2.5 {
		t.Error("Median even")
	}
	if Ratio(1, 0) != 0 || Ratio(3, 2) != 1.5 {
		t.Error("Ratio")
	}
}

func TestMerge(t *testing.T) {
	a, b := NewHistogram(), NewHistogram()
	for v := 1; v <= 50; v++ {
		a.Record(time.Duration(v))
	}
	for v := 51; v <= 100; v++ {
		b.Record(time.Duration(v))
	}
	a.Merge(b)
	a.Merge(NewHistogram())
	a.Merge(a)
	if a.Count() != 100 || a.Percentile(50) != 50 || a.Max() != 100 || a.Percentile(0) != 1 {
		t.Fatalf("merged: count %d p50 %v max %v", a.Count(), a.Percentile(50), a.Max())
	}
}
