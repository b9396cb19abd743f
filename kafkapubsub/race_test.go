//go:build race

package kafkapubsub_test

// raceEnabled reports whether the tests run with the race detector.
const raceEnabled = true
