//go:build race

package ratelimit

// raceEnabled is true under -race, where sync.Pool drops items on purpose:
// allocation counts are meaningless then.
const raceEnabled = true
