package sqlite

import (
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// TestGenerationMovesWithEveryPatientWrite: the Patient count moves with every way a Patient is written,
// by this store, by a second store on the same file (another process), and by a plain connection that
// knows nothing of the count (an older gpfhir still running on the file); it stands still for a write
// that fails and for other types' writes, which would otherwise empty the API's cache on every write.
func TestGenerationMovesWithEveryPatientWrite(t *testing.T) {
	dir := t.TempDir()
	s, other := openDir(t, dir), openDir(t, dir)

	gen := func() int64 {
		t.Helper()
		n, ok, err := s.Generation(t.Context(), "Patient")
		if err != nil || !ok {
			t.Fatalf("Generation(Patient) = %d, %v, %v", n, ok, err)
		}
		return n
	}
	nhs := []store.IndexEntry{{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Value: "9000000009"}}
	put := func(typ, id string, version int64, index []store.IndexEntry) store.Write {
		return store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: version, LastUpdated: time.UnixMilli(version), Body: []byte(`{}`)},
			ExpectVersion: version - 1, Index: index}
	}
	steps := []struct {
		name  string
		moves bool
		do    func() error
	}{
		{"create", true, func() error { return s.Apply(t.Context(), []store.Write{put("Patient", "p1", 1, nhs)}) }},
		{"another type", false, func() error {
			return s.Apply(t.Context(), []store.Write{put("Immunization", "i1", 1, []store.IndexEntry{{Param: "patient", Value: "Patient/p1"}})})
		}},
		{"update without entries", true, func() error { return s.Apply(t.Context(), []store.Write{put("Patient", "p1", 2, nil)}) }},
		{"reindex", true, func() error { return s.SetIndex(t.Context(), "Patient", "p1", 2, nhs) }},
		{"a conflicting write", false, func() error {
			if err := s.Apply(t.Context(), []store.Write{put("Patient", "p1", 2, nhs)}); err == nil {
				t.Error("a write expecting a replaced version was applied")
			}
			return nil
		}},
		{"another process's update", true, func() error { return other.Apply(t.Context(), []store.Write{put("Patient", "p1", 3, nhs)}) }},
		{"delete", true, func() error {
			return s.Apply(t.Context(), []store.Write{{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 4, LastUpdated: time.UnixMilli(4), Deleted: true}, ExpectVersion: 3}})
		}},
		{"a connection that knows nothing of the count", true, func() error {
			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gpfhir.db")+"?_pragma=busy_timeout(5000)")
			if err != nil {
				return err
			}
			defer db.Close()
			_, err = db.ExecContext(t.Context(), `UPDATE current SET last_updated = 5 WHERE type = 'Patient' AND id = 'p1'`)
			return err
		}},
	}
	for _, st := range steps {
		before := gen()
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if moved := gen() != before; moved != st.moves {
			t.Errorf("%s: the count moved = %v, want %v", st.name, moved, st.moves)
		}
	}
	if _, ok, err := s.Generation(t.Context(), "Organization"); ok || err != nil {
		t.Errorf("Generation(Organization) ok = %v, %v; the store does not count it", ok, err)
	}
}
