package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
)

// Write generations (store.Generations). The count of a type is advanced by triggers on the tables a
// write of it changes, current and idx, not by Apply: triggers live in the file, so a write by any
// process fires them, an older gpfhir still running on the file included (SQLite reloads a schema that
// another connection changed before its next statement), and so does every way of writing: Apply,
// SetIndex, a statement of any other connection. They fire inside the write's own transaction, so a
// reader sees a write and its count move together. The file needs no new schema version: an older
// gpfhir that opens it leaves the table alone and fires the triggers all the same.
//
// Only the types in countedTypes are counted, each trigger naming its type so that the writes of
// every other type pay one comparison per row. A Patient write fires once for its current row and
// once for each index entry it removes or adds; Patients are written rarely next to how often they
// are looked up.
var countedTypes = []string{"Patient"}

// generationSchema creates the table and its triggers; Open runs it with the rest of the schema.
func generationSchema() []string {
	out := []string{`CREATE TABLE IF NOT EXISTS generation (
		type TEXT PRIMARY KEY,
		n INTEGER NOT NULL
	) WITHOUT ROWID`}
	for _, typ := range countedTypes {
		out = append(out, fmt.Sprintf(`INSERT OR IGNORE INTO generation (type, n) VALUES ('%s', 0)`, typ))
		for _, t := range []struct{ table, event, row string }{
			{"current", "INSERT", "NEW"}, {"current", "UPDATE", "NEW"}, {"current", "DELETE", "OLD"},
			{"idx", "INSERT", "NEW"}, {"idx", "DELETE", "OLD"},
		} {
			out = append(out, fmt.Sprintf(`CREATE TRIGGER IF NOT EXISTS generation_%s_%s_%s AFTER %s ON %s
				WHEN %s.type = '%s' BEGIN UPDATE generation SET n = n + 1 WHERE type = '%s'; END`,
				typ, t.table, t.event, t.event, t.table, t.row, typ, typ))
		}
	}
	return out
}

// Generation returns typ's write count; ok is false for a type the store does not count.
func (s *Store) Generation(ctx context.Context, typ string) (int64, bool, error) {
	if !slices.Contains(countedTypes, typ) {
		return 0, false, nil
	}
	var cols [1]driver.Value
	found, err := s.generationStmt.row(uncancelled(ctx), cols[:], typ)
	if err != nil {
		return 0, false, translate(err)
	}
	if !found {
		return 0, false, fmt.Errorf("sqlite: no generation row for %s", typ)
	}
	n, err := intValue(cols[0])
	return n, err == nil, err
}
