//go:build !race

package embedded

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = false
