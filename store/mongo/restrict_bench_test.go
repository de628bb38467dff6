package mongo

import (
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/storetest"
)

// BenchmarkRestrictedSearch runs the shared open-versus-restricted search benchmark on FerretDB, cut down
// to practices of 200 and 1,000 patients because FerretDB scans whole collections: absolute figures are
// pessimistic; the ratio is what counts.
func BenchmarkRestrictedSearch(b *testing.B) {
	// Journal-mode groups of a few hundred writes take seconds on FerretDB.
	s := open(b, mongotest.Start(b), Options{Timeout: 5 * time.Minute})
	storetest.RestrictedSearchBenchmark(b, s, []int{200, 1000}, 100)
}
