package eval

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"slices"
)

// Selection says which cases to generate.
type Selection struct {
	// Classes, Placements and Encodings select the attack cases. Nil:
	// DefaultClasses, every placement, every encoding.
	Classes, Placements, Encodings []string
	// Sample is the most payloads of a class tried in each placement and
	// encoding; 0 tries every payload. Each cell of a class takes the next
	// Sample payloads of one permutation of the class (seeded by Seed and
	// the class's name), so that the cells together cover the class.
	Sample int
	// Seed picks the sample.
	Seed uint64
	// NoBenign leaves out the benign cases, NoAttacks the attacks.
	NoBenign, NoAttacks bool
	// Source says where the attacks come from: SourcePATT (the default,
	// the corpus's payloads placed and encoded), SourceCRS (the CRS
	// regression tests of the attack rules, see CRSCases) or SourceAll.
	Source string
	// CRSParanoia is the highest paranoia level of the CRS rules whose
	// tests are taken (0: 1).
	CRSParanoia int
}

// Attack sources.
const (
	SourcePATT = "patt"
	SourceCRS  = "crs"
	SourceAll  = "all"
)

// DefaultSample and DefaultSeed are the sample `rampart waf eval` takes
// unless told otherwise: 30 payloads of each class in each placement and
// encoding.
const (
	DefaultSample = 30
	DefaultSeed   = 1
)

// Cases returns the cases sel selects: attacks by class, placement and
// encoding (pairs Skip refuses left out), then the benign requests, then
// the benign values in each of ValuePlacements. The order and content
// depend only on the corpus and sel.
func (c *Corpus) Cases(sel Selection) ([]*Case, error) {
	classes, places, encs := sel.Classes, sel.Placements, sel.Encodings
	if classes == nil {
		classes = DefaultClasses
	}
	if places == nil {
		places = Placements
	}
	if encs == nil {
		encs = Encodings
	}
	for _, l := range []struct {
		what      string
		got, from []string
	}{{"class", classes, AllClasses}, {"placement", places, Placements}, {"encoding", encs, AllEncodings}} {
		for _, x := range l.got {
			if !slices.Contains(l.from, x) {
				return nil, fmt.Errorf("eval: unknown %s %q (known: %v)", l.what, x, l.from)
			}
		}
	}
	switch sel.Source {
	case "", SourcePATT, SourceCRS, SourceAll:
	default:
		return nil, fmt.Errorf("eval: unknown source %q (known: patt, crs, all)", sel.Source)
	}
	var cases []*Case
	if sel.NoAttacks || sel.Source == SourceCRS {
		classes = nil
	}
	for _, class := range classes {
		payloads := c.Attacks[class]
		n := len(payloads)
		if n == 0 {
			continue
		}
		h := fnv.New64a()
		h.Write([]byte(class))
		perm := rand.New(rand.NewPCG(sel.Seed, h.Sum64())).Perm(n)
		per := n
		if sel.Sample > 0 && sel.Sample < n {
			per = sel.Sample
		}
		cell := 0
		for _, p := range places {
			for _, e := range encs {
				if Skip(class, p, e) != "" {
					continue
				}
				for j := range per {
					i := j
					if per < n {
						i = perm[(cell*per+j)%n]
					}
					cases = append(cases, &Case{
						Name:   fmt.Sprintf("%s/%s/%s#%d", class, p, e, i+1),
						Attack: true, Class: class, Placement: p, Encoding: e,
						Payload: payloads[i],
						Req:     Build(class, p, e, payloads[i], i),
					})
				}
				cell++
			}
		}
	}
	if !sel.NoAttacks && (sel.Source == SourceCRS || sel.Source == SourceAll) {
		crs, err := CRSCases(max(sel.CRSParanoia, 1))
		if err != nil {
			return nil, err
		}
		cases = append(cases, crs...)
	}
	if sel.NoBenign {
		return cases, nil
	}
	for _, b := range c.Benign {
		cp := *b
		cp.Class = ClassBenign
		cases = append(cases, &cp)
	}
	for i, v := range c.Values {
		for _, p := range ValuePlacements {
			cases = append(cases, &Case{
				Name:  fmt.Sprintf("value/%s#%d", p, i+1),
				Class: ClassBenign, Placement: p, Encoding: EncPlain, Payload: v,
				Req: Build(ClassBenign, p, EncPlain, v, i),
			})
		}
	}
	return cases, nil
}

// ClassBenign is the class of benign cases.
const ClassBenign = "benign"
