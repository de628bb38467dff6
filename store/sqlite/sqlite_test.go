package sqlite_test

import (
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/sqlite"
	"github.com/gpfhir/gpfhir/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.Backend {
		s, err := sqlite.Open(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
