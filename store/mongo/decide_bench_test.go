package mongo

import (
	"fmt"
	"testing"

	"github.com/gpfhir/gpfhir/store"
)

// BenchmarkPostponedDecision measures the Go side of a postponed clause on one full batch (maxBatch
// documents): building each document's candidate from what the find returned and deciding a chain on it
// with store.MatchesPredicate, from answers already fetched. It is what test adds to the round trips,
// which FerretDB's figures drown.
func BenchmarkPostponedDecision(b *testing.B) {
	docs := make([]curDoc, maxBatch)
	refIn := map[string]bool{}
	for i := range docs {
		docs[i] = curDoc{ID: fmt.Sprintf("i%06d", i), LU: int64(i), Val: []string{
			fmt.Sprintf("patient|Patient/p%06d", i/3), "vaccine-code|1001", fmt.Sprintf("performer|Practitioner/dr%d", i%7)},
			Range: []rangeEntry{{Param: "date", Low: int64(i), High: int64(i) + 86_399_999}}}
		if i%2 == 0 {
			refIn[fmt.Sprintf("p%06d", i/3)] = true
		}
	}
	chain := store.Predicate{Param: "patient", Match: store.MatchRefIn, Sub: &store.Query{Type: "Patient"}}
	var answers store.Resolver = batchAnswers{typ: "Immunization", refIn: refIn}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		cands := candidates("Immunization", docs, []store.Clause{{chain}})
		for i := range cands {
			ok, err := store.MatchesPredicate(cands[i], chain, answers)
			if err != nil {
				b.Fatal(err)
			}
			if ok {
				n++
			}
		}
		if n == 0 {
			b.Fatal("no document passed")
		}
	}
}
