package history

import (
	"cmp"
	"fmt"
	"slices"
	"time"
)

// An Overlap is two holds of one key by different clients that were live at
// the same time.
type Overlap struct {
	A, B Hold
}

// Duration is how long both holds were live.
func (o Overlap) Duration() time.Duration {
	return time.Duration(min(o.A.End, o.B.End) - max(o.A.Start, o.B.Start))
}

func (o Overlap) String() string {
	return fmt.Sprintf("key %q: client %d [%d, %d] and client %d [%d, %d] overlap by %v",
		o.A.Key, o.A.Client, o.A.Start, o.A.End, o.B.Client, o.B.Start, o.B.End, o.Duration())
}

// Overlaps returns every pair of holds of one key by different clients whose
// live intervals intersect in more than an instant. Holds that touch, one
// ending when the next starts, do not overlap.
func Overlaps(holds []Hold) []Overlap {
	byKey := make(map[string][]Hold)
	for _, h := range holds {
		byKey[h.Key] = append(byKey[h.Key], h)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Overlap
	for _, k := range keys {
		hs := byKey[k]
		slices.SortFunc(hs, func(a, b Hold) int {
			return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End))
		})
		// Sweep by start, keeping the holds still live at the current start;
		// in a correct history there is at most one.
		var live []Hold
		for _, h := range hs {
			live = slices.DeleteFunc(live, func(o Hold) bool { return o.End <= h.Start })
			for _, o := range live {
				if o.Client != h.Client {
					out = append(out, Overlap{A: o, B: h})
				}
			}
			live = append(live, h)
		}
	}
	return out
}

// TokenInversions returns the pairs of consecutive holds of one key, in the
// order they started, whose fencing tokens do not increase. Holds without a
// token (0) are left out. Run it on histories without overlaps, where the
// order of starts is the order of tenures.
func TokenInversions(holds []Hold) []Overlap {
	byKey := make(map[string][]Hold)
	for _, h := range holds {
		if h.Token != 0 {
			byKey[h.Key] = append(byKey[h.Key], h)
		}
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []Overlap
	for _, k := range keys {
		hs := byKey[k]
		slices.SortFunc(hs, func(a, b Hold) int { return cmp.Compare(a.Start, b.Start) })
		for i := 1; i < len(hs); i++ {
			if hs[i].Token <= hs[i-1].Token {
				out = append(out, Overlap{A: hs[i-1], B: hs[i]})
			}
		}
	}
	return out
}
