package sqlite

import (
	"testing"

	"github.com/gpfhir/gpfhir/store/storetest"
)

// BenchmarkRestrictedSearch runs the shared open-versus-restricted search benchmark on SQLite on disk, for
// practices of 1,000 and 10,000 patients in one store.
func BenchmarkRestrictedSearch(b *testing.B) {
	s, err := Open(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	storetest.RestrictedSearchBenchmark(b, s, []int{1000, 10_000}, 2000)
}
