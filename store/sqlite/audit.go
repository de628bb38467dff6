package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// The audit trail is kept apart from the resource tables (see doc.go), in two tables written together by
// one AppendAudit transaction:
//
//   - audit: one row per record, which is at once its link in the chain (seq, hash) and the AuditEvent
//     served (id, last_updated, body). Virtual columns type, version and deleted give it the shape of
//     the current and history tables, so that the search compiler reads it with the same SQL.
//   - audit_idx: the records' index entries, keyed by (id, param, value, system) and indexed by
//     (param, value, id, system): the two keys the compiler needs, a candidate's own entries and the
//     candidates of a value, and nothing else. An entry of an ordinary resource costs six b-tree
//     inserts (idx and its five indexes); one of an AuditEvent costs two, which is what lets every
//     request wait for its record to be durable and searchable without halving throughput.
//
// The date parameter is not an entry: it is the record's time, so date searches and sorts read
// audit.last_updated and its index (auditDate).

// auditDate is the AuditEvent search parameter whose value is the record's time (AuditEvent.recorded,
// which the API writes equal to meta.lastUpdated). AppendAudit checks that each record's entry for it
// says so, and stores it as last_updated instead of as an entry.
const auditDate = "date"

// appendRows is how many records one INSERT writes, and idxRows how many index entries. Bigger batches
// are several statements; smaller ones are written as a sum of powers of two, so each table has a
// handful of statement shapes, all prepared once on the writer connection. Both stay far below SQLite's
// limit of 32766 bound parameters.
const (
	appendRows = 64
	idxRows    = 256
)

// AppendAudit appends records to the chain in one BEGIN IMMEDIATE transaction, their index entries
// included, so that a nil error means each record is durable, readable and searchable. Reading the head
// inside the transaction is the compare-and-swap: SQLite's write lock serialises appenders in this
// process (one writer connection) and in others sharing the file. ErrVersionConflict if records[0].Seq is
// not head+1; ErrInvalidQuery if the batch is malformed or an id is already stored (the UNIQUE constraint
// on audit.id says so, see translate); ErrUnavailable if the write lock stayed busy.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	if err := store.CheckAuditBatch(records); err != nil {
		return err
	}
	// Built once, outside the transaction and its retries, so that the write lock is held only for the
	// inserts.
	rows := make([]any, 0, 4*len(records))
	var entries []any
	for _, r := range records {
		ms := r.Recorded.UnixMilli()
		rows = append(rows, r.Seq, r.ID, ms, r.Hash, r.Body)
		for _, e := range r.Index {
			switch {
			case e.Param == "":
				return fmt.Errorf("%w: AuditEvent/%s: an index entry without a parameter", store.ErrInvalidQuery, r.ID)
			case e.Param == auditDate:
				if e.Low != ms || e.High != ms {
					return fmt.Errorf("%w: AuditEvent/%s: its %s entry is not its recorded time", store.ErrInvalidQuery, r.ID, auditDate)
				}
				continue
			}
			entries = append(entries, r.ID, e.Param, e.Value, e.System, e.Text, e.Low, e.High)
		}
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.appendAudit(ctx, records, rows, entries); err == nil || !isBusy(err) || ctx.Err() != nil {
			break
		}
	}
	return translate(err)
}

const (
	auditCols = 5
	idxCols   = 7
)

func (s *Store) appendAudit(ctx context.Context, records []store.AuditRecord, rows, entries []any) error {
	// Prepared before the transaction, which holds the writer pool's only connection.
	recStmts, err := s.shapes(ctx, "audit", len(records), appendRows, appendAuditSQL)
	if err != nil {
		return err
	}
	idxStmts, err := s.shapes(ctx, "audit_idx", len(entries)/idxCols, idxRows, appendAuditIdxSQL)
	if err != nil {
		return err
	}
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
	if err := execShapes(ctx, tx, recStmts, rows, auditCols); err != nil {
		return err
	}
	if err := execShapes(ctx, tx, idxStmts, entries, idxCols); err != nil {
		return err
	}
	return tx.Commit()
}

// shapedStmt is a multi-row statement and the number of rows it writes.
type shapedStmt struct {
	rows int
	st   *sql.Stmt
}

// shapes returns the statements that write n rows: as many of max rows as fit, then the rest as a sum
// of powers of two.
func (s *Store) shapes(ctx context.Context, name string, n, max int, text func(int) string) ([]shapedStmt, error) {
	var out []shapedStmt
	for n > 0 {
		k := max
		for k > n {
			k /= 2
		}
		st, err := s.stmts.get(ctx, s.w, name, k, text)
		if err != nil {
			return nil, err
		}
		out = append(out, shapedStmt{k, st})
		n -= k
	}
	return out, nil
}

func execShapes(ctx context.Context, tx *sql.Tx, stmts []shapedStmt, args []any, cols int) error {
	for _, s := range stmts {
		n := s.rows * cols
		if _, err := tx.StmtContext(ctx, s.st).ExecContext(ctx, args[:n]...); err != nil {
			return err
		}
		args = args[n:]
	}
	return nil
}

// appendAuditSQL is the append of n chain rows. OR ROLLBACK: a duplicate id must undo the whole batch
// anyway, and a statement that cannot abort halfway needs no statement journal, which SQLite would
// otherwise write (and spill to a file past 64 KiB) for every multi-row statement in a transaction.
func appendAuditSQL(n int) string {
	return `INSERT OR ROLLBACK INTO audit (seq, id, last_updated, hash, body) VALUES ` + rowsOf(n, `(?, ?, ?, ?, ?)`)
}

// appendAuditIdxSQL is the insert of n index entries. OR IGNORE, for the same reason as OR ROLLBACK
// above, and because two entries of one record may share a key (the same entity type twice): one is
// all a search needs.
func appendAuditIdxSQL(n int) string {
	return `INSERT OR IGNORE INTO audit_idx (id, param, value, system, text, lo, hi) VALUES ` + rowsOf(n, `(?, ?, ?, ?, ?, ?, ?)`)
}

// rowsOf repeats one row of a multi-row VALUES list n times.
func rowsOf(n int, row string) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// stmtCache keeps the multi-row statements, one per shape (name and row count), prepared on the single
// writer connection, so that a batch does not pay for parsing a statement of hundreds of parameters.
// get prepares on the pool, so it must not be called while this goroutine holds the connection in a
// transaction (it would wait for itself).
type stmtCache struct {
	mu sync.Mutex
	m  map[stmtKey]*sql.Stmt
}

type stmtKey struct {
	name string
	rows int
}

func (c *stmtCache) get(ctx context.Context, db *sql.DB, name string, rows int, text func(int) string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := stmtKey{name, rows}
	if st := c.m[k]; st != nil {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, text(rows))
	if err != nil {
		return nil, err
	}
	if c.m == nil {
		c.m = map[stmtKey]*sql.Stmt{}
	}
	c.m[k] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// auditHead is the last record's seq and hash or, when every record has been pruned, the anchor's: the
// next record chains on it either way.
func auditHead(ctx context.Context, q queryRower) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := q.QueryRowContext(ctx, `SELECT seq, hash FROM (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1)
		UNION ALL SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil, nil
	}
	return seq, hash, err
}

// AuditHead returns the last record's Seq and Hash (0, nil for an empty chain; the anchor's for a chain
// pruned to nothing).
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	seq, hash, err := auditHead(ctx, s.r)
	return seq, hash, translate(err)
}

// AuditRange returns records with Seq > after in Seq order, at most limit (0: no limit). The chain row
// is also the served AuditEvent, so there is one copy to verify.
func (s *Store) AuditRange(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, last_updated, hash, body FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []store.AuditRecord
	for rows.Next() {
		var r store.AuditRecord
		var recorded int64
		if err := rows.Scan(&r.Seq, &r.ID, &recorded, &r.Hash, &r.Body); err != nil {
			return nil, translate(err)
		}
		r.Recorded = fromMillis(recorded)
		out = append(out, r)
	}
	return out, translate(rows.Err())
}

// AuditAnchor returns the last pruned record's Seq, Hash and time, or the zero anchor.
func (s *Store) AuditAnchor(ctx context.Context) (store.AuditAnchor, error) {
	return auditAnchor(ctx, s.r)
}

func auditAnchor(ctx context.Context, q queryRower) (store.AuditAnchor, error) {
	var a store.AuditAnchor
	var recorded int64
	err := q.QueryRowContext(ctx, `SELECT seq, hash, recorded FROM audit_anchor`).Scan(&a.Seq, &a.Hash, &recorded)
	if errors.Is(err, sql.ErrNoRows) {
		return store.AuditAnchor{}, nil
	}
	if err != nil {
		return store.AuditAnchor{}, translate(err)
	}
	a.Recorded = fromMillis(recorded)
	return a, nil
}

// pruneChunk is how many records one pruning transaction removes at most: it bounds how long appends
// wait behind a prune for the write lock.
const pruneChunk = 1000

// PruneAudit removes the oldest records, those recorded before before, up to the first that is not, in
// transactions of at most pruneChunk records. Each removes the records and their entries and moves the
// anchor to the last of them together, so an interrupted prune leaves a shorter chain that verifies.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (store.AuditAnchor, int64, error) {
	var removed int64
	for {
		a, n, more, err := s.pruneAuditChunk(ctx, before.UnixMilli())
		removed += n
		if err != nil {
			return store.AuditAnchor{}, removed, translate(err)
		}
		if !more {
			return a, removed, nil
		}
	}
}

func (s *Store) pruneAuditChunk(ctx context.Context, before int64) (store.AuditAnchor, int64, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return store.AuditAnchor{}, 0, false, err
	}
	defer tx.Rollback()
	rows, err := tx.QueryContext(ctx, `SELECT seq, hash, last_updated FROM audit ORDER BY seq LIMIT ?`, pruneChunk)
	if err != nil {
		return store.AuditAnchor{}, 0, false, err
	}
	var last store.AuditAnchor
	var lastMs int64
	n, stop := int64(0), false
	for rows.Next() {
		var seq, ms int64
		var hash []byte
		if err := rows.Scan(&seq, &hash, &ms); err != nil {
			rows.Close()
			return store.AuditAnchor{}, 0, false, err
		}
		if ms >= before {
			stop = true
			break
		}
		last.Seq, last.Hash, lastMs = seq, hash, ms
		n++
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return store.AuditAnchor{}, 0, false, err
	}
	if n == 0 {
		a, err := auditAnchor(ctx, tx)
		return a, 0, false, err
	}
	for _, q := range []string{
		`DELETE FROM audit_idx WHERE id IN (SELECT id FROM audit WHERE seq <= ?)`,
		`DELETE FROM audit WHERE seq <= ?`,
	} {
		if _, err := tx.ExecContext(ctx, q, last.Seq); err != nil {
			return store.AuditAnchor{}, 0, false, err
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor (one, seq, hash, recorded) VALUES (1, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, recorded = excluded.recorded`,
		last.Seq, last.Hash, lastMs); err != nil {
		return store.AuditAnchor{}, 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return store.AuditAnchor{}, 0, false, err
	}
	last.Recorded = fromMillis(lastMs)
	return last, n, !stop && n == pruneChunk, nil
}
