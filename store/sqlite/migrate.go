package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"

	"github.com/gpfhir/gpfhir/store"
)

// upgradeAudit moves the audit trail of a version 2 or 3 file, whose chain table has been renamed
// audit_old, into the version 4 tables, inside migrate's transaction. Those versions served AuditEvents
// from copies in history, current and idx: the bodies and times now come from the chain where it held
// them (version 3) and from history where it did not (version 2, where a record whose copy is gone gets
// an empty body, so that VerifyAudit still reports it); the index entries come from idx, and for version
// 3 records not materialised yet (past the audit_indexed watermark) from the chain row's encoded index.
// The copies are then deleted.
func upgradeAudit(ctx context.Context, tx *sql.Tx, from int) error {
	copyRows := `INSERT INTO audit (seq, id, last_updated, hash, body)
		SELECT a.seq, a.id, COALESCE(h.last_updated, 0), a.hash, COALESCE(h.body, X'')
		FROM audit_old a LEFT JOIN history h ON h.type = 'AuditEvent' AND h.id = a.id AND h.version = 1`
	if from == 3 {
		copyRows = `INSERT INTO audit (seq, id, last_updated, hash, body) SELECT seq, id, recorded, hash, body FROM audit_old`
	}
	stmts := []string{
		copyRows,
		`INSERT OR IGNORE INTO audit_idx (id, param, value, system, text, lo, hi)
			SELECT id, param, value, system, text, lo, hi FROM idx WHERE type = 'AuditEvent' AND param <> '` + auditDate + `'`,
	}
	for _, q := range stmts {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if from == 3 {
		if err := indexPending(ctx, tx); err != nil {
			return err
		}
	}
	for _, q := range []string{
		`DELETE FROM idx WHERE type = 'AuditEvent'`,
		`DELETE FROM current WHERE type = 'AuditEvent'`,
		`DELETE FROM history WHERE type = 'AuditEvent'`,
		`DROP TABLE audit_old`,
		`DROP TABLE IF EXISTS audit_indexed`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// indexPending writes the entries of version 3 records that were appended but not yet materialised.
func indexPending(ctx context.Context, tx *sql.Tx) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, idx FROM audit_old WHERE seq > (SELECT seq FROM audit_indexed)`)
	if err != nil {
		return err
	}
	var args [][]any
	for rows.Next() {
		var id string
		var blob []byte
		if err := rows.Scan(&id, &blob); err != nil {
			rows.Close()
			return err
		}
		// Derived data outside the hash: a blob that does not decode leaves its record unindexed, as
		// version 3 served it.
		entries, _ := decodeIndexV3(blob)
		for _, e := range entries {
			if e.Param != auditDate {
				args = append(args, []any{id, e.Param, e.Value, e.System, e.Text, e.Low, e.High})
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, a := range args {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO audit_idx (id, param, value, system, text, lo, hi) VALUES (?, ?, ?, ?, ?, ?, ?)`, a...); err != nil {
			return err
		}
	}
	return nil
}

var errBadIndex = errors.New("sqlite: malformed audit index blob")

// decodeIndexV3 reads the index blob of a version 3 chain row: a version byte 1, then per entry four
// length-prefixed strings (param, system, value, text) and two varints (low, high).
func decodeIndexV3(b []byte) ([]store.IndexEntry, error) {
	if len(b) == 0 || b[0] != 1 {
		return nil, errBadIndex
	}
	b = b[1:]
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	num := func() (int64, bool) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	var out []store.IndexEntry
	for len(b) > 0 {
		var e store.IndexEntry
		var ok [6]bool
		e.Param, ok[0] = str()
		e.System, ok[1] = str()
		e.Value, ok[2] = str()
		e.Text, ok[3] = str()
		e.Low, ok[4] = num()
		e.High, ok[5] = num()
		if ok != [6]bool{true, true, true, true, true, true} || e.Param == "" {
			return nil, errBadIndex
		}
		out = append(out, e)
	}
	return out, nil
}
