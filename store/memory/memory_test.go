package memory_test

import (
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/memory"
	"github.com/gpfhir/gpfhir/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) audit.Backend {
		s := memory.New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
