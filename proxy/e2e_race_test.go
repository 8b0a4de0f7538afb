//go:build race

package proxy

// raceEnabled is true when the tests run with -race, which makes large
// transfers several times slower: they are scaled down.
const raceEnabled = true
