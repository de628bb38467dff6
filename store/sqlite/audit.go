package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// The audit trail is kept in two forms (see doc.go):
//
//   - the chain, table audit: one row per record holding everything the record is (seq, id, recorded,
//     hash, body) and its index entries encoded in one blob. AppendAudit writes only these rows, in one
//     BEGIN IMMEDIATE transaction, so the durable part of an append is one row per record: this is what
//     every request with audit on waits for.
//   - the served copy: the AuditEvent's history, current and idx rows, which Get, History and Search
//     read like any other resource's. Writing them costs a dozen index rows and some sixty b-tree
//     updates per record, so they are materialised later, by indexAudit, up to the watermark kept in
//     audit_indexed: from a background goroutine shortly after an append, and before any read that could
//     see AuditEvents (auditReady), so a read never misses a record that was appended before it.

// appendRows is how many records one INSERT writes. A batch of up to this many is one statement; bigger
// ones (up to store.MaxAuditBatch) are several. 64 rows of 6 parameters stay far below SQLite's limit of
// 32766 bound parameters, and keep the number of statement shapes, each prepared once, small.
const appendRows = 64

// AppendAudit appends records to the audit chain in one BEGIN IMMEDIATE transaction that writes only the
// chain rows. Reading the head inside the transaction is the compare-and-swap: SQLite's write lock
// serialises appenders in this process (one writer connection) and in others sharing the file.
// ErrVersionConflict if records[0].Seq is not head+1; ErrInvalidQuery if the batch is malformed or an
// id is already stored (the UNIQUE constraint on audit.id says so, see translate); ErrUnavailable if the
// write lock stayed busy. A nil error means the batch is on disk. The records become readable as
// resources when the next read of AuditEvents, or the background indexer, materialises them.
func (s *Store) AppendAudit(ctx context.Context, records []store.AuditRecord) error {
	if len(records) == 0 {
		return nil
	}
	if err := store.CheckAuditBatch(records); err != nil {
		return err
	}
	// Encoded once, outside the transaction and its retries, so that the write lock is held only for
	// the inserts.
	args := make([]any, 0, 6*len(records))
	for _, r := range records {
		idx, err := encodeIndex(r.Index)
		if err != nil {
			return fmt.Errorf("%w: AuditEvent/%s: %w", store.ErrInvalidQuery, r.ID, err)
		}
		args = append(args, r.Seq, r.ID, r.Recorded.UnixMilli(), r.Hash, r.Body, idx)
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.appendAudit(ctx, records, args); err == nil || !isBusy(err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		s.indexer.kick()
	}
	return translate(err)
}

func (s *Store) appendAudit(ctx context.Context, records []store.AuditRecord, args []any) error {
	// Prepared before the transaction, which holds the writer pool's only connection.
	var stmts []*sql.Stmt
	for i := 0; i < len(records); i += appendRows {
		st, err := s.stmts.get(ctx, s.w, "audit", min(appendRows, len(records)-i), appendAuditSQL)
		if err != nil {
			return err
		}
		stmts = append(stmts, st)
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
	for k, st := range stmts {
		i := k * appendRows
		n := min(appendRows, len(records)-i)
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args[6*i:6*(i+n)]...); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// appendAuditSQL is the append of n chain rows. OR ROLLBACK: a duplicate id must undo the whole batch
// anyway, and a statement that cannot abort halfway needs no statement journal, which SQLite would
// otherwise write (and spill to a file past 64 KiB) for every multi-row statement in a transaction.
func appendAuditSQL(n int) string {
	return `INSERT OR ROLLBACK INTO audit (seq, id, recorded, hash, body, idx) VALUES ` + rowsOf(n, `(?, ?, ?, ?, ?, ?)`)
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

// AuditRange returns records with Seq > after in Seq order, at most limit (0: no limit), as the chain
// holds them. VerifyAudit checks these against their hashes and against what Search serves from the
// materialised copy, so an edit of either shows up.
func (s *Store) AuditRange(ctx context.Context, after int64, limit int) ([]store.AuditRecord, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, recorded, hash, body FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
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

// seesAudit reports whether q, or any query nested in it, selects AuditEvents.
func seesAudit(q *store.Query) bool {
	if q == nil {
		return false
	}
	if q.Type == store.AuditEventType {
		return true
	}
	for _, c := range q.Clauses {
		for _, p := range c {
			if seesAudit(p.Sub) {
				return true
			}
		}
	}
	return false
}

// auditReady materialises every record appended so far before a read of AuditEvents, so that the
// contract's "readable and searchable once AppendAudit returns" holds in every process sharing the file.
// Reads of other types never call it. It costs one indexed lookup when there is nothing to do.
func (s *Store) auditReady(ctx context.Context) error {
	var pending bool
	err := s.r.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM audit WHERE seq > (SELECT seq FROM audit_indexed))`).Scan(&pending)
	if err != nil {
		return translate(err)
	}
	if !pending {
		return nil
	}
	return s.indexAudit(ctx)
}

// indexChunk is how many records one materialising transaction takes. It bounds how long an append
// waits behind the background indexer for the write lock (some tens of milliseconds).
const indexChunk = 200

// idxRows is how many idx rows one INSERT of the indexer writes at most (7 parameters each). Fewer
// are written as a sum of powers of two, so that the indexer has eight statement shapes, all prepared
// before its transaction starts.
const idxRows = 128

// indexAudit materialises every record past the watermark, a chunk per transaction, until none is left.
// Each chunk re-reads the watermark inside BEGIN IMMEDIATE, so that processes sharing the file (and the
// background indexer of this one) never materialise a record twice.
func (s *Store) indexAudit(ctx context.Context) error {
	busy := 0
	for {
		n, err := s.indexAuditChunk(ctx)
		if isBusy(err) && busy < 2 && ctx.Err() == nil {
			busy++ // busy_timeout has waited already; worth another try, as in Apply
			continue
		}
		if err != nil || n < indexChunk {
			return translate(err)
		}
		busy = 0
	}
}

func (s *Store) indexAuditChunk(ctx context.Context) (int, error) {
	var shapes []*sql.Stmt // shapes[k] inserts 1<<k rows
	for n := 1; n <= idxRows; n *= 2 {
		st, err := s.stmts.get(ctx, s.w, "idx", n, insertAuditIdxSQL)
		if err != nil {
			return 0, err
		}
		shapes = append(shapes, st)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var mark int64
	if err := tx.QueryRowContext(ctx, `SELECT seq FROM audit_indexed`).Scan(&mark); err != nil {
		return 0, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, id, idx FROM audit WHERE seq > ? ORDER BY seq LIMIT ?`, mark, indexChunk)
	if err != nil {
		return 0, err
	}
	var args []any
	n, last := 0, mark
	for rows.Next() {
		var id string
		var blob []byte
		if err := rows.Scan(&last, &id, &blob); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		// The index is derived data, outside the hash: a blob that does not decode (an edit of the file)
		// must not stop every later record from being served, so that record is served unindexed.
		entries, _ := decodeIndex(blob)
		for _, e := range entries {
			args = append(args, id, e.Param, e.System, e.Value, e.Text, e.Low, e.High)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	// Bodies go from the chain row to history inside SQLite, without a trip through Go. OR IGNORE and
	// the idx DELETE make materialising a record twice (a watermark moved back by hand) harmless; a copy
	// edited by hand is left as it is, for VerifyAudit to find. OR IGNORE also means these multi-row
	// statements cannot abort halfway, so SQLite keeps no statement journal for them (see appendAuditSQL).
	for _, q := range []string{
		`INSERT OR IGNORE INTO history (type, id, version, last_updated, deleted, body)
			SELECT 'AuditEvent', id, 1, recorded, 0, body FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq`,
		`INSERT OR IGNORE INTO current (type, id, version, last_updated, deleted)
			SELECT 'AuditEvent', id, 1, recorded, 0 FROM audit WHERE seq > ? AND seq <= ? ORDER BY seq`,
		`DELETE FROM idx WHERE type = 'AuditEvent' AND id IN (SELECT id FROM audit WHERE seq > ? AND seq <= ?)`,
	} {
		if _, err := tx.ExecContext(ctx, q, mark, last); err != nil {
			return 0, err
		}
	}
	for k := len(shapes) - 1; k >= 0; k-- {
		for rows := 1 << k; len(args) >= 7*rows; args = args[7*rows:] {
			if _, err := tx.StmtContext(ctx, shapes[k]).ExecContext(ctx, args[:7*rows]...); err != nil {
				return 0, err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE audit_indexed SET seq = ?`, last); err != nil {
		return 0, err
	}
	return n, tx.Commit()
}

func insertAuditIdxSQL(n int) string {
	return `INSERT OR IGNORE INTO idx (type, id, param, system, value, text, lo, hi) VALUES ` + rowsOf(n, `('AuditEvent', ?, ?, ?, ?, ?, ?, ?)`)
}

// indexVersion is the first byte of an encoded index. Encoded entries follow it, each as four
// length-prefixed strings (param, system, value, text) and two varints (low, high).
const indexVersion = 1

// encodeIndex is the compact form of a record's index entries kept in its chain row until it is
// materialised. It refuses an entry without a parameter, which could never be searched.
func encodeIndex(entries []store.IndexEntry) ([]byte, error) {
	size := 1
	for _, e := range entries {
		size += len(e.Param) + len(e.System) + len(e.Value) + len(e.Text) + 4 + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 1, size)
	b[0] = indexVersion
	for _, e := range entries {
		if e.Param == "" {
			return nil, errors.New("an index entry without a parameter")
		}
		for _, s := range []string{e.Param, e.System, e.Value, e.Text} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendVarint(b, e.Low)
		b = binary.AppendVarint(b, e.High)
	}
	return b, nil
}

var errBadIndex = errors.New("sqlite: malformed audit index blob")

func decodeIndex(b []byte) ([]store.IndexEntry, error) {
	if len(b) == 0 || b[0] != indexVersion {
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

// indexDelay is how long the background indexer lets appends gather before materialising them: long
// enough that it works in chunks, short enough that a reader of AuditEvents rarely finds a backlog.
const indexDelay = 250 * time.Millisecond

// indexer materialises appended records in the background, so that reads of AuditEvents rarely wait
// for it. It works only after an append in this process (or at Open, for a backlog left by a process
// that stopped), so an idle server does no work; records appended by other processes are materialised by
// their indexers, or by the first read that needs them.
type indexer struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Store) startIndexer() {
	ctx, cancel := context.WithCancel(context.Background())
	s.indexer = &indexer{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	s.indexer.kick()
	go s.runIndexer(ctx)
}

// kick asks the indexer to run; kicks while it waits or works fold into one. A nil indexer (a store
// opened without one, in tests) ignores it.
func (ix *indexer) kick() {
	if ix == nil {
		return
	}
	select {
	case ix.wake <- struct{}{}:
	default:
	}
}

func (s *Store) runIndexer(ctx context.Context) {
	ix := s.indexer
	defer close(ix.done)
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-ix.wake:
		}
		t.Reset(indexDelay)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.auditReady(ctx); err != nil && ctx.Err() == nil {
			// Most likely the write lock stayed busy; readers catch up on their own meanwhile.
			ix.kick()
		}
	}
}

// stop ends the indexer, interrupting a chunk in progress (which then rolls back), and waits for it.
func (ix *indexer) stop() {
	if ix == nil {
		return
	}
	ix.cancel()
	<-ix.done
}
