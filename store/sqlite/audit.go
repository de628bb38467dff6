package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/gpfhir/gpfhir/store"
)

// AppendAudit appends records to the audit chain in one BEGIN IMMEDIATE transaction: the chain rows
// and, for each record, the AuditEvent's history, current and idx rows. Reading the head inside the
// transaction is the compare-and-swap: SQLite's write lock serialises appenders in this process (one
// writer connection) and in others sharing the file. ErrVersionConflict if records[0].Seq is not
// head+1; ErrInvalidQuery if the batch is malformed or an id is already stored; ErrUnavailable if the
// write lock stayed busy. A nil error means the batch is on disk.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	if err := store.CheckAuditBatch(records); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.appendAudit(ctx, records); err == nil || !isBusy(err) || ctx.Err() != nil {
			break
		}
	}
	return translate(err)
}

func (s *Store) appendAudit(ctx context.Context, records []store.AuditRecord) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	head, hash, err := auditHead(ctx, tx)
	if err != nil {
		return err
	}
	if err := store.CheckAuditLink(head, hash, records[0]); err != nil {
		return err
	}
	var idxStmt *sql.Stmt
	for _, r := range records {
		var one int
		err := tx.QueryRowContext(ctx, `SELECT 1 FROM current WHERE type = ? AND id = ?`, store.AuditEventType, r.ID).Scan(&one)
		if err == nil {
			return fmt.Errorf("%w: AuditEvent/%s exists already", store.ErrInvalidQuery, r.ID)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		lu := r.Recorded.UnixMilli()
		if _, err := tx.ExecContext(ctx, `INSERT INTO history (type, id, version, last_updated, deleted, body) VALUES (?, ?, 1, ?, 0, ?)`,
			store.AuditEventType, r.ID, lu, r.Body); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO current (type, id, version, last_updated, deleted) VALUES (?, ?, 1, ?, 0)`,
			store.AuditEventType, r.ID, lu); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit (seq, id, hash) VALUES (?, ?, ?)`, r.Seq, r.ID, r.Hash); err != nil {
			return err
		}
		if len(r.Index) > 0 && idxStmt == nil {
			if idxStmt, err = tx.PrepareContext(ctx, insertIdx); err != nil {
				return err
			}
		}
		if err := insertEntries(ctx, idxStmt, store.AuditEventType, r.ID, r.Index); err != nil {
			return err
		}
	}
	return tx.Commit()
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func auditHead(ctx context.Context, q queryRower) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return seq, hash, err
}

// AuditHead returns the last record's Seq and Hash (0, nil for an empty chain).
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	seq, hash, err := auditHead(ctx, s.r)
	return seq, hash, translate(err)
}

// AuditRange returns records with Seq > after in Seq order, at most limit (0: no limit). Body and
// Recorded come from the history row that Get and Search serve; a record whose row is gone has a nil
// Body.
func (s *Store) AuditRange(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT a.seq, a.id, a.hash, h.last_updated, h.body
		FROM audit a LEFT JOIN history h ON h.type = ? AND h.id = a.id AND h.version = 1
		WHERE a.seq > ? ORDER BY a.seq LIMIT ?`, store.AuditEventType, after, limit)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var lu sql.NullInt64
		if err := rows.Scan(&r.Seq, &r.ID, &r.Hash, &lu, &r.Body); err != nil {
			return nil, translate(err)
		}
		if lu.Valid {
			r.Recorded = fromMillis(lu.Int64)
		}
		out = append(out, r)
	}
	return out, translate(rows.Err())
}
