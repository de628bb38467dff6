package sqlite

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

func TestOpenCreatesAPrivateDirectoryAndADurableDatabase(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "gpfhir")
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("data directory mode %v, want no group or other access", perm)
	}
	if _, err := os.Stat(filepath.Join(dir, "gpfhir.db")); err != nil {
		t.Errorf("database file: %v", err)
	}
	pragmas := []struct{ name, want string }{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"busy_timeout", "10000"},
	}
	for _, p := range pragmas {
		var got string
		if err := s.w.QueryRowContext(t.Context(), "PRAGMA "+p.name).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != p.want {
			t.Errorf("writer PRAGMA %s = %s, want %s", p.name, got, p.want)
		}
	}
	var qo string
	if err := s.r.QueryRowContext(t.Context(), "PRAGMA query_only").Scan(&qo); err != nil {
		t.Fatal(err)
	}
	if qo != "1" {
		t.Errorf("reader PRAGMA query_only = %s, want 1", qo)
	}
}

func TestReopenKeepsData(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	w := store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.UnixMilli(1).UTC(), Body: []byte(`{"a":1}`)}}
	if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Get(t.Context(), "Patient", "p1")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"a":1}` {
		t.Errorf("body after reopen %q", got.Body)
	}
}

// Two Stores on one file have separate connection pools, as two processes would: compare-and-swap must
// then rest on SQLite's write lock (BEGIN IMMEDIATE), not on the in-process single writer connection.
func TestTwoStoresOnOneFileKeepCompareAndSwap(t *testing.T) {
	dir := t.TempDir()
	var stores [2]*Store
	for i := range stores {
		s, err := Open(t.Context(), dir)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const writers, rounds = 8, 10
	var mu sync.Mutex
	won := map[int64]int{}
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := stores[g%2]
			for range rounds {
				var cur int64
				r, err := s.Get(t.Context(), "Patient", "hot")
				if err == nil {
					cur = r.VersionID
				} else if !errors.Is(err, store.ErrNotFound) {
					t.Error(err)
					return
				}
				err = s.Apply(t.Context(), []store.Write{{
					Resource:      store.Resource{Type: "Patient", ID: "hot", VersionID: cur + 1, LastUpdated: time.UnixMilli(cur).UTC(), Body: fmt.Appendf(nil, `{"w":%d}`, g)},
					ExpectVersion: cur,
				}})
				mu.Lock()
				switch {
				case err == nil:
					won[cur+1]++
				case !errors.Is(err, store.ErrVersionConflict):
					t.Errorf("writer %d: %v", g, err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for v, n := range won {
		if n != 1 {
			t.Errorf("version %d won %d times", v, n)
		}
	}
	got, err := stores[0].Get(t.Context(), "Patient", "hot")
	if err != nil {
		t.Fatal(err)
	}
	if got.VersionID != int64(len(won)) {
		t.Errorf("current version %d after %d wins", got.VersionID, len(won))
	}
}
