//go:build race

package pulsarpubsub

// raceDetector reports whether the tests run with the race detector, under
// which sync.Pool drops items at random.
const raceDetector = true
