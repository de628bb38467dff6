package memory_test

import (
	"testing"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/memory"
	"github.com/gpfhir/gpfhir/store/storetest"
)

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s := memory.New()
		t.Cleanup(func() { s.Close() })
		return s
	})
}
