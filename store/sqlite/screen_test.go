package sqlite

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/memory"
)

// TestSearchScreenedAnswersAsSearchAndTheProbe: SearchScreened gives the page the memory store's
// Search gives, and says something was withheld exactly when the memory store finds the probe's
// match; over patients' compartments with labels on some of their resources, two patients on some,
// deletions and relabelling updates, pages smaller and larger than the compartment, and cursors. The
// one-statement form must answer the cases it is for (a compartment that fits the page).
func TestSearchScreenedAnswersAsSearchAndTheProbe(t *testing.T) {
	s := openDir(t, t.TempDir())
	ref := memory.New()
	apply := func(ws []store.Write) {
		t.Helper()
		if err := s.Apply(t.Context(), ws); err != nil {
			t.Fatal(err)
		}
		if err := ref.Apply(t.Context(), ws); err != nil {
			t.Fatal(err)
		}
	}
	const sec = "urn:sec"
	labels := []string{"R", "V", "N"}
	rnd := rand.New(rand.NewPCG(1, 2))
	entries := func() []store.IndexEntry {
		var ix []store.IndexEntry
		for n := rnd.IntN(3) + 1; n > 0; n-- {
			ix = append(ix, store.IndexEntry{Param: "patient", Value: fmt.Sprintf("Patient/p%d", rnd.IntN(4))})
		}
		for _, l := range labels {
			if rnd.IntN(4) == 0 {
				ix = append(ix, store.IndexEntry{Param: "_security", System: sec, Value: l})
			}
		}
		// A label of another system with a withheld code is not withheld.
		if rnd.IntN(6) == 0 {
			ix = append(ix, store.IndexEntry{Param: "_security", System: "urn:other", Value: "R"})
		}
		return ix
	}
	body := []byte(`{"resourceType":"Immunization"}`)
	var ws []store.Write
	// Written in descending id order, so that the index's order is not id order.
	for i := 59; i >= 0; i-- {
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Immunization", ID: fmt.Sprintf("i%02d", i), VersionID: 1,
			LastUpdated: time.UnixMilli(int64(i)), Body: body}, Index: entries()})
	}
	apply(ws)
	for i := range 60 {
		w := store.Write{Resource: store.Resource{Type: "Immunization", ID: fmt.Sprintf("i%02d", i), VersionID: 2,
			LastUpdated: time.UnixMilli(100)}, ExpectVersion: 1}
		switch i % 7 {
		case 0:
			w.Resource.Deleted = true
		case 1, 2:
			w.Resource.Body, w.Index = body, entries()
		default:
			continue
		}
		apply([]store.Write{w})
	}

	screens := [][]string{{"R"}, {"R", "V"}, {"N", "V", "R"}}
	keyed := 0
	for p := range 5 { // p4 has nothing
		for _, labels := range screens {
			for _, limit := range []int{1, 3, 8, 40} {
				q := store.Query{Type: "Immunization", Limit: limit,
					Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: fmt.Sprintf("Patient/p%d", p)}}}}
				for _, l := range labels {
					q.Clauses = append(q.Clauses, store.Clause{{Param: "_security", Match: store.MatchToken, Not: true, System: sec, Value: l}})
				}
				name := fmt.Sprintf("p%d/%v/limit=%d", p, labels, limit)
				want, wantWithheld := searchAndProbe(t, ref, q, len(labels))
				got, withheld, err := s.SearchScreened(t.Context(), q, len(labels))
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(idsOf(got), idsOf(want)) || withheld != wantWithheld {
					t.Errorf("%s: %v withheld=%v, want %v withheld=%v", name, idsOf(got), withheld, idsOf(want), wantWithheld)
				}
				if hits, withheld, ok, err := s.screenedKeyed(t.Context(), q, len(labels)); err != nil {
					t.Fatal(err)
				} else if ok {
					keyed++
					if !slices.Equal(idsOf(hits), idsOf(want)) || withheld != wantWithheld {
						t.Errorf("%s, one statement: %v withheld=%v, want %v withheld=%v", name, idsOf(hits), withheld, idsOf(want), wantWithheld)
					}
				} else if limit == 40 {
					t.Errorf("%s: the one statement did not answer for a compartment smaller than the page", name)
				}
				// The next page, from a cursor: the probe still asks about every page.
				if len(want) > 1 {
					q.After = want[0].SortValues
					next, nextWithheld := searchAndProbe(t, ref, q, len(labels))
					got, withheld, err := s.SearchScreened(t.Context(), q, len(labels))
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(idsOf(got), idsOf(next)) || withheld != nextWithheld {
						t.Errorf("%s after %s: %v withheld=%v, want %v withheld=%v", name, want[0].Resource.ID, idsOf(got), withheld, idsOf(next), nextWithheld)
					}
				}
			}
		}
	}
	if keyed == 0 {
		t.Error("the one statement answered no case")
	}

	// A screen clause that is not one negated predicate is refused, not answered wrongly.
	bad := store.Query{Type: "Immunization", Limit: 5, Clauses: []store.Clause{
		{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}},
		{{Param: "_security", Match: store.MatchToken, System: sec, Value: "R"}}}}
	if _, _, err := s.SearchScreened(t.Context(), bad, 1); err == nil {
		t.Error("a screen of a positive clause was answered")
	}
}

// searchAndProbe is what SearchScreened must answer, from the reference store.
func searchAndProbe(t *testing.T, s store.Store, q store.Query, screen int) ([]store.Hit, bool) {
	t.Helper()
	hits, found, err := store.SearchThenProbe(t.Context(), s, q, screen)
	if err != nil {
		t.Fatal(err)
	}
	return hits, found
}

// idsOf lists the hits' ids in order.
func idsOf(hits []store.Hit) []string {
	ids := make([]string, 0, len(hits))
	for _, h := range hits {
		ids = append(ids, h.Resource.ID)
	}
	return ids
}
