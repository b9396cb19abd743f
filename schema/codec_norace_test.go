//go:build !race

package schema

// ctRace reports whether the race detector is on.
const ctRace = false
