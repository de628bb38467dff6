package sqlite_test

import (
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/sqlite"
	"github.com/gpfhir/gpfhir/store/storetest"
)

// BenchmarkStore runs the shared backend benchmark on SQLite on disk, with 3,000 Patients loaded.
func BenchmarkStore(b *testing.B) {
	storetest.Benchmark(b, 3000, func(b *testing.B) audit.Backend {
		s, err := sqlite.Open(b.Context(), b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	})
}
