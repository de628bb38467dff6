package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

func TestBackupIsAnOpenableCopy(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	w := store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: time.UnixMilli(1).UTC(), Body: []byte(`{"a":1}`)}}
	if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := s.Backup(t.Context(), filepath.Join(dir, "gpfhir.db")); err != nil {
		t.Fatal(err)
	}
	if err := s.Backup(t.Context(), filepath.Join(dir, "gpfhir.db")); err == nil {
		t.Errorf("a second backup onto the same file was not refused")
	}
	b, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.Get(t.Context(), "Patient", "p1"); err != nil || string(got.Body) != `{"a":1}` {
		t.Errorf("backup Get = %q, %v", got.Body, err)
	}
}
