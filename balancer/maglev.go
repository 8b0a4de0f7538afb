package balancer

import "fmt"

// maglevSize is the lookup table's size for pools of up to maglevSize/100
// targets; larger pools use the next prime above 100 per target. Google's
// Maglev paper and Envoy use 65537: the larger the table against the
// target count, the more even the shares and the fewer keys move when
// targets change.
const maglevSize = 65537

// maglev is consistent_hash: a Maglev lookup table (Eisenbud et al., NSDI
// 2016) filled from each target's permutation of the slots, keyed by the
// target's address. Removing one of N targets moves about 1/N of the keys,
// and weights scale a target's share of slots. A pick is a hash and an
// index. When the key's target is unusable the pick rehashes the key (up to
// probeSlots times, then scans the targets), which spreads that target's
// keys over the others in proportion to their shares, while every other
// key stays put.
type maglev struct {
	targets []*Target
	table   []uint16 // slot -> target position
}

func newMaglev(ts []*Target) (*maglev, error) {
	if len(ts) > 1<<16-1 {
		return nil, fmt.Errorf("consistent_hash: %d targets, at most %d", len(ts), 1<<16-1)
	}
	m := uint64(maglevSize)
	if len(ts) > 0 && uint64(len(ts))*100 > m {
		m = nextPrime(uint64(len(ts)) * 100)
	}
	return &maglev{targets: ts, table: maglevTable(ts, m)}, nil
}

// maglevTable fills a table of m slots (m prime). In each round every
// target earns its weight in credit and, for each max-weight of credit,
// claims the next free slot of its permutation offset + j*skip (mod m).
func maglevTable(ts []*Target, m uint64) []uint16 {
	if len(ts) == 0 {
		return nil
	}
	n := len(ts)
	offset := make([]uint64, n)
	skip := make([]uint64, n)
	next := make([]uint64, n)
	credit := make([]int, n)
	maxW := 0
	for i, t := range ts {
		h := hashString(t.State.Addr)
		offset[i] = h % m
		skip[i] = mix64(h^0x9e3779b97f4a7c15)%(m-1) + 1
		maxW = max(maxW, weight(t))
	}
	table := make([]uint16, m)
	filled := make([]bool, m)
	for left := m; left > 0; {
		for i, t := range ts {
			credit[i] += weight(t)
			for ; credit[i] >= maxW && left > 0; credit[i] -= maxW {
				for {
					c := (offset[i] + next[i]*skip[i]) % m
					next[i]++
					if !filled[c] {
						filled[c] = true
						table[c] = uint16(i)
						left--
						break
					}
				}
			}
		}
	}
	return table
}

// nextPrime returns the smallest prime >= n (n small: trial division).
func nextPrime(n uint64) uint64 {
	for ; ; n++ {
		prime := n >= 2
		for d := uint64(2); d*d <= n && prime; d++ {
			prime = n%d != 0
		}
		if prime {
			return n
		}
	}
}

func (a *maglev) pick(r Request, f filter) *Target {
	m := uint64(len(a.table))
	h := keyHash(&r)
	for k := uint64(1); ; k++ {
		i := int(a.table[h%m])
		if t := a.targets[i]; f.ok(t) {
			return t
		}
		if k > probeSlots {
			return scan(a.targets, i, &f)
		}
		h = mix64(h + k)
	}
}
