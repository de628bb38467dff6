package sqlite

import (
	"context"
	"database/sql"

	"github.com/gpfhir/gpfhir/store"
)

// upgradeAudit moves the audit trail of a version 2 or 3 file, whose chain table has been renamed
// audit_old, into the version 4 tables, inside migrate's transaction. Those versions served AuditEvents
// from copies in history, current and idx. Bodies and times come from the chain where it held them
// (version 3) and from history where it did not (version 2, where a record whose copy is gone gets an
// empty body, so that audit.Verify still reports it); they are kept uncompressed, which codec.go reads as
// they are. Index entries come from the chain row's encoded index where it has entries (version 3
// records not yet materialised), else from idx. The copies are then deleted.
func upgradeAudit(ctx context.Context, tx *sql.Tx, from int) error {
	copyRows := `INSERT INTO audit (seq, id, last_updated, hash, body, idx)
		SELECT a.seq, a.id, COALESCE(h.last_updated, 0), a.hash, COALESCE(h.body, X''), X'01'
		FROM audit_old a LEFT JOIN history h ON h.type = 'AuditEvent' AND h.id = a.id AND h.version = 1`
	if from == 3 {
		copyRows = `INSERT INTO audit (seq, id, last_updated, hash, body, idx) SELECT seq, id, recorded, hash, body, idx FROM audit_old`
	}
	if _, err := tx.ExecContext(ctx, copyRows); err != nil {
		return err
	}
	if err := upgradeIndex(ctx, tx); err != nil {
		return err
	}
	for _, q := range []string{
		`DELETE FROM idx WHERE type = 'AuditEvent'`,
		`DELETE FROM current WHERE type = 'AuditEvent'`,
		`DELETE FROM history WHERE type = 'AuditEvent'`,
		`DROP TABLE audit_old`,
		`DROP TABLE IF EXISTS audit_indexed`,
		`UPDATE audit_ref_mark SET seq = (SELECT COALESCE(MAX(seq), 0) FROM audit)`,
	} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// upgradeIndex gives every record its entries in the row and its references in audit_ref, a chunk of
// records at a time, so that a long trail is not held in memory.
func upgradeIndex(ctx context.Context, tx *sql.Tx) error {
	fromIdx, err := tx.PrepareContext(ctx, `SELECT param, system, value, text, lo, hi FROM idx WHERE type = 'AuditEvent' AND id = ? AND param <> '`+auditDate+`'`)
	if err != nil {
		return err
	}
	defer fromIdx.Close()
	type upgrade struct {
		id      string
		at      int64
		entries []store.IndexEntry
	}
	for after := int64(0); ; {
		rows, err := tx.QueryContext(ctx, `SELECT seq, id, last_updated, idx FROM audit WHERE seq > ? ORDER BY seq LIMIT 10000`, after)
		if err != nil {
			return err
		}
		var chunk []upgrade
		for rows.Next() {
			var u upgrade
			var blob []byte
			if err := rows.Scan(&after, &u.id, &u.at, &blob); err != nil {
				rows.Close()
				return err
			}
			// Derived data outside the hash: a blob that does not decode leaves the entries idx has.
			u.entries, _ = decodeIndex(blob)
			chunk = append(chunk, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(chunk) == 0 {
			return nil
		}
		for _, u := range chunk {
			if len(u.entries) == 0 {
				if u.entries, err = entriesOf(ctx, fromIdx, u.id); err != nil {
					return err
				}
			}
			var kept []store.IndexEntry
			for _, e := range u.entries {
				if e.Param != auditDate {
					kept = append(kept, e)
				}
			}
			for refs := refArgs(nil, u.id, u.at, kept, false); len(refs) > 0; refs = refs[refCols:] {
				if _, err := tx.ExecContext(ctx, appendAuditRefSQL(1), refs[:refCols]...); err != nil {
					return err
				}
			}
			blob, err := packIndex(kept)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE audit SET idx = ? WHERE id = ?`, blob, u.id); err != nil {
				return err
			}
		}
	}
}

func entriesOf(ctx context.Context, st *sql.Stmt, id string) ([]store.IndexEntry, error) {
	rows, err := st.QueryContext(ctx, id)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []store.IndexEntry
	for rows.Next() {
		var e store.IndexEntry
		if err := rows.Scan(&e.Param, &e.System, &e.Value, &e.Text, &e.Low, &e.High); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}
