//go:build !race

package compress

// raceEnabled is true under -race, whose sync.Pool drops items at random:
// allocation counts mean nothing then.
const raceEnabled = false
