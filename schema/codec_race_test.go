//go:build race

package schema

// ctRace reports whether the race detector is on; it makes sync.Pool drop
// items at random, so allocation counts are not exact.
const ctRace = true
