package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Backup writes a consistent copy of the database to the new file path while the store stays in use,
// with VACUUM INTO: it reads one snapshot, so the copy is what a reader saw at one instant, and it
// runs on a connection of its own, so writers carry on while it reads. The copy is compacted and has
// no WAL; Open opens it like any other database file (named gpfhir.db in a directory of its own).
// Backup refuses a path that exists, so that it never overwrites a database.
func (s *Store) Backup(ctx context.Context, path string) error {
	if strings.ContainsAny(path, "?#") {
		return fmt.Errorf("sqlite: backup path %q may not contain '?' or '#'", path)
	}
	if _, err := os.Lstat(path); err == nil {
		return fmt.Errorf("sqlite: backup %s exists already; choose a new file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	db, err := sql.Open("sqlite", "file:"+s.path+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return translate(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, abs); err != nil {
		os.Remove(abs)
		return fmt.Errorf("sqlite: backup to %s: %w", path, translate(err))
	}
	return nil
}
