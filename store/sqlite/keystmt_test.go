package sqlite

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// Look-ups by key run on whichever read connection is free, each with the statement prepared on it; more
// readers than connections all get their rows, the versions and tombstones as written, and Close closes
// every statement.
func TestKeyLookupsServeEveryReadConnection(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_123).UTC()
	var ws []store.Write
	for i := range 8 {
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Patient", ID: fmt.Sprint("p", i), VersionID: 1, LastUpdated: at,
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}})
	}
	if err := s.Apply(t.Context(), ws); err != nil {
		t.Fatal(err)
	}
	del := store.Write{Resource: store.Resource{Type: "Patient", ID: "p0", VersionID: 2, LastUpdated: at, Deleted: true}, ExpectVersion: 1}
	if err := s.Apply(t.Context(), []store.Write{del}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for j := range 40 {
				i := (g + j) % 8
				id := fmt.Sprint("p", i)
				r, err := s.Get(t.Context(), "Patient", id)
				switch {
				case err != nil:
					errs <- err
					return
				case i == 0 && (!r.Deleted || r.VersionID != 2 || r.Body != nil):
					errs <- fmt.Errorf("%s: want the tombstone, got %+v", id, r)
					return
				case i != 0 && (r.Deleted || r.VersionID != 1 || string(r.Body) != fmt.Sprintf(`{"n":%d}`, i) || !r.LastUpdated.Equal(at)):
					errs <- fmt.Errorf("%s: got %+v", id, r)
					return
				}
				old, err := s.GetVersion(t.Context(), "Patient", "p0", 1)
				if err != nil || old.Deleted || string(old.Body) != `{"n":0}` {
					errs <- fmt.Errorf("p0 version 1: %+v %v", old, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := s.Get(t.Context(), "Patient", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing resource: %v", err)
	}
	if _, err := s.GetVersion(t.Context(), "Patient", "p1", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing version: %v", err)
	}
	prepared := 0
	s.drv.on.Range(func(_, m any) bool {
		if m.(map[string]driver.Stmt)[s.getStmt.query] != nil {
			prepared++
		}
		return true
	})
	if prepared < 1 || prepared > s.r.Stats().MaxOpenConnections {
		t.Errorf("the look-up is prepared on %d connections of a pool of %d", prepared, s.r.Stats().MaxOpenConnections)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.drv.on.Range(func(dc, _ any) bool {
		t.Errorf("a statement left open on %v", dc)
		return true
	})
}
