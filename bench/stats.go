package bench

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// subBucketBits sets the precision of a Histogram: every power-of-two range
// of values is split into 2^subBucketBits equal buckets, so a reported
// value is within 1/2^subBucketBits (under 0.8 %) of the true one.
const subBucketBits = 7

const (
	subBuckets = 1 << subBucketBits
	// numBuckets covers every non-negative int64 value.
	numBuckets = (64 - subBucketBits + 1) * subBuckets
)

// Histogram counts durations in log-linear buckets: values below 128 ns are
// exact, larger ones are kept with a relative error below 0.8 %. Its memory
// is fixed (about 60 KiB) whatever the number of samples. It is safe for
// concurrent use.
type Histogram struct {
	mu     sync.Mutex
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// NewHistogram returns an empty Histogram.
func NewHistogram() *Histogram {
	return &Histogram{counts: make([]uint64, numBuckets), min: math.MaxInt64}
}

// bucketOf returns the bucket index of v (v >= 0).
func bucketOf(v int64) int {
	if v < subBuckets {
		return int(v)
	}
	// e is the number of low bits dropped so that v fits in subBucketBits+1 bits.
	e := bits.Len64(uint64(v)) - subBucketBits - 1
	return (e+1)*subBuckets + int(uint64(v)>>uint(e)) - subBuckets
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi int64) {
	if i < 2*subBuckets {
		// The first two ranges are exact: [0,128) and [128,256) with width 1.
		return int64(i), int64(i)
	}
	e := i/subBuckets - 1
	m := int64(i%subBuckets + subBuckets)
	lo = m << uint(e)
	if lo < 0 || m<<uint(e)>>uint(e) != m {
		return math.MaxInt64, math.MaxInt64
	}
	hi = lo + (int64(1) << uint(e)) - 1
	if hi < lo {
		hi = math.MaxInt64
	}
	return lo, hi
}

// Record adds one duration. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	b := bucketOf(v)
	h.mu.Lock()
	h.counts[b]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
	h.mu.Unlock()
}

// Count returns the number of recorded durations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// Percentile returns the duration at or below which p percent (0..100) of
// the recorded durations lie, by the nearest-rank method: the smallest
// recorded value v such that at least p % of the values are <= v, reported
// as the middle of its bucket (clamped to the recorded minimum and
// maximum). It returns 0 for an empty histogram.
func (h *Histogram) Percentile(p float64) time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	rank := nearestRank(p, h.n)
	var seen uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		seen += c
		if seen >= rank {
			lo, hi := bucketRange(i)
			v := lo + (hi-lo)/2
			v = max(v, h.min)
			v = min(v, h.max)
			return time.Duration(v)
		}
	}
	return time.Duration(h.max)
}

// nearestRank returns the 1-based rank of the p-th percentile of n values.
func nearestRank(p float64, n uint64) uint64 {
	switch {
	case p <= 0:
		return 1
	case p >= 100:
		return n
	}
	r := uint64(math.Ceil(p / 100 * float64(n)))
	if r < 1 {
		r = 1
	}
	if r > n {
		r = n
	}
	return r
}

// Mean returns the arithmetic mean, or 0 for an empty histogram.
func (h *Histogram) Mean() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / float64(h.n))
}

// Max returns the largest recorded duration, or 0 for an empty histogram.
func (h *Histogram) Max() time.Duration {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.max)
}

// Latency is a summary of a latency distribution in milliseconds.
type Latency struct {
	// Samples is how many latencies the summary is made of.
	Samples uint64 `json:"samples"`
	// P50 is the median in milliseconds.
	P50 float64 `json:"p50_ms"`
	// P99 is the 99th percentile in milliseconds.
	P99 float64 `json:"p99_ms"`
	// Mean is the arithmetic mean in milliseconds.
	Mean float64 `json:"mean_ms"`
	// Max is the largest latency in milliseconds.
	Max float64 `json:"max_ms"`
}

// Summary returns the latency summary of h.
func (h *Histogram) Summary() Latency {
	return Latency{
		Samples: h.Count(),
		P50:     ms(h.Percentile(50)),
		P99:     ms(h.Percentile(99)),
		Mean:    ms(h.Mean()),
		Max:     ms(h.Max()),
	}
}

// ms converts d to milliseconds rounded to microseconds.
func ms(d time.Duration) float64 {
	return math.Round(float64(d)/1e3) / 1e3
}

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	insertionSort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

func insertionSort(s []float64) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// Ratio returns a/b, or 0 when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Merge adds the counts of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if h == o {
		return
	}
	o.mu.Lock()
	counts := append([]uint64(nil), o.counts...)
	n, sum, mn, mx := o.n, o.sum, o.min, o.max
	o.mu.Unlock()
	if n == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, c := range counts {
		h.counts[i] += c
	}
	h.n += n
	h.sum += sum
	h.min = min(h.min, mn)
	h.max = max(h.max, mx)
}
