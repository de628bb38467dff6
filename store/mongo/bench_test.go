package mongo

import (
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/storetest"
)

// BenchmarkStore runs the shared backend benchmark on the embedded FerretDB (or on the real MongoDB named
// by GPFHIR_TEST_MONGODB_URI). FerretDB scans whole collections, so only 300 Patients are loaded, and its
// figures show functional cost, not what MongoDB would do.
func BenchmarkStore(b *testing.B) {
	uri := mongotest.Start(b)
	storetest.Benchmark(b, 300, func(b *testing.B) audit.Backend {
		return open(b, uri, Options{})
	})
}
