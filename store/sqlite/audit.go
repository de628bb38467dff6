package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"math/bits"
	"strings"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// The audit trail is kept apart from the resource tables (see doc.go), in two tables:
//
//   - audit: one row per record, which is at once its link in the chain (seq, hash) and the AuditEvent
//     served (id, last_updated, body), with its index entries (idx). AppendAudit writes only these rows.
//     Body and entries are stored compressed (codec.go). Virtual columns type, version and deleted give it the shape of the current
//     and history tables, so that the search compiler reads it with the same SQL.
//   - audit_ref: the entries of the reference parameters (auditRefParams), keyed by value first, which
//     is how searches find records: who acted (agent), on whose record (patient), on what (entity).
//     Each carries its record's time (t), so a value's records can be read newest first. An agent or
//     entity that is a local Patient has no entry of its own (audit.PatientImplied): the patient entry
//     of the same value finds its records, and each is tested on its own entries (patientFound).
//     They are copied there from the rows after the append (refs.go).
//
// Every other parameter is a code with a handful of values (action, outcome, type, subtype,
// entity-type): an index on it would select most of the trail, so a search tests it on each candidate
// record, from the record's own entries (audit_match, registered below), instead of keeping a b-tree
// for it. The date parameter is the record's time, last_updated, which has an index of its own
// (auditDate). A record thus costs its row and a few audit_ref entries, which is what lets every request
// wait for its record to be durable and searchable.

// auditDate is the AuditEvent search parameter whose value is the record's time (AuditEvent.recorded,
// which the API writes equal to meta.lastUpdated). AppendAudit checks that each record's entry for it
// says so, and stores it as last_updated instead of as an entry.
const auditDate = "date"

// auditRefParams are the AuditEvent search parameters kept in audit_ref: the ones that say who or what,
// with as many values as there are users, patients and resources: R4's reference parameters, which
// chains follow, and altid, the user's identity at their identity provider. A search drives from one of
// them (or from the date).
var auditRefParams = map[string]bool{"patient": true, "agent": true, "entity": true, "source": true, "altid": true}

// refKept reports whether audit_ref keeps a reference entry of value v: every one but a Device's. Every
// record names this server's Device twice (as agent and as source), a third of a read's entries and about
// a third of what copying them cost; a search by a Device tests each record's own entries instead
// (drives), and the server's Device selects every record it wrote anyway.
func refKept(v string) bool {
	return !strings.HasPrefix(v, "Device/") && !strings.Contains(v, "/Device/")
}

// appendRows is how many records one INSERT writes, and refRows how many audit_ref entries (refs.go).
// Bigger batches are several statements; smaller ones are written as a sum of powers of two, so each
// table has a handful of statement shapes, all prepared once on the writer connection. Both stay far
// below SQLite's limit of 32766 bound parameters.
const (
	appendRows = 64
	refRows    = 256
)

// AppendAudit appends records to the chain in one BEGIN IMMEDIATE transaction, their index entries
// inside the rows, so that a nil error means each record is durable and readable, and searchable (a
// search first copies the references of records appended before it, refs.go). Reading the head inside
// the transaction is the compare-and-swap: SQLite's write lock serialises appenders in this process (one
// writer connection) and in others sharing the file. ErrVersionConflict if records[0].Seq is
// not head+1; ErrInvalidQuery if the batch is malformed or an id is already stored (the UNIQUE constraint
// on audit.id says so, see translate); ErrUnavailable if the write lock stayed busy.
func (s *Store) AppendAudit(ctx context.Context, records []audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	if err := audit.CheckBatch(records); err != nil {
		return err
	}
	return s.appendRetrying(ctx, nil, false, records)
}

// ApplyAudited makes the writes and appends their audit records in one transaction. The records are
// chained on the head read inside it, under the write lock, so no other appender can come in between.
func (s *Store) ApplyAudited(ctx context.Context, writes []store.Write, records []audit.Record) error {
	if len(records) == 0 {
		return fmt.Errorf("%w: ApplyAudited without audit records", store.ErrInvalidQuery)
	}
	if err := store.CheckWrites(writes); err != nil {
		return err
	}
	// appendAudit chains them on the head it reads under the write lock; what can be checked before
	// is checked here.
	if err := audit.CheckUnchained(records); err != nil {
		return err
	}
	return s.appendRetrying(ctx, writes, true, records)
}

// appendRetrying is appendAudit with the rows built once, retried while another process holds the write
// lock past the busy timeout, and the reference copier woken after it.
func (s *Store) appendRetrying(ctx context.Context, writes []store.Write, chain bool, records []audit.Record) error {
	rows, err := auditRows(records)
	if err != nil {
		return err
	}
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.appendAudit(ctx, writes, chain, records, rows); err == nil || !isBusy(err) || ctx.Err() != nil {
			break
		}
	}
	if err == nil {
		s.appended.add(records)
		s.copier.kick()
	}
	return translate(err)
}

// auditRows encodes the chain rows of records (seq, id, last_updated, hash, body, idx). They are built
// and compressed once, outside the transaction and its retries, so that the write lock is held only for
// the inserts.
func auditRows(records []audit.Record) ([]any, error) {
	rows := make([]any, 0, auditCols*len(records))
	for _, r := range records {
		ms := r.Recorded.UnixMilli()
		entries := make([]store.IndexEntry, 0, len(r.Index))
		for _, e := range r.Index {
			if e.Param == auditDate {
				if e.Low != ms || e.High != ms {
					return nil, fmt.Errorf("%w: AuditEvent/%s: its %s entry is not its recorded time", store.ErrInvalidQuery, r.ID, auditDate)
				}
				continue
			}
			entries = append(entries, e)
		}
		idx, err := packIndex(entries)
		if err != nil {
			return nil, fmt.Errorf("%w: AuditEvent/%s: %w", store.ErrInvalidQuery, r.ID, err)
		}
		rows = append(rows, r.Seq, r.ID, ms, r.Hash, packBody(r.Body), idx)
	}
	return rows, nil
}

const (
	auditCols = 6
	refCols   = 5
)

// appendAudit appends records in one transaction. For AppendAudit (chain false) the caller chained them,
// on a head that must still be the head. For ApplyAudited (chain true) the writes are made first and the
// records are chained here, on the head found under the write lock.
func (s *Store) appendAudit(ctx context.Context, writes []store.Write, chain bool, records []audit.Record, rows []any) error {
	if len(writes) == 0 {
		return s.appendRecords(ctx, chain, records, rows)
	}
	// Prepared before the transaction, which holds the writer pool's only connection.
	recStmts, err := s.shapes(ctx, "audit", len(records), appendRows, appendAuditSQL)
	if err != nil {
		return err
	}
	headStmt, err := s.stmts.get(ctx, s.w, "head", 1, func(int) string { return auditHeadSQL })
	if err != nil {
		return err
	}
	// The wait for the writer connection ends with ctx; once it is ours the transaction runs to its end
	// (uncancelled says why), its waits for the write lock bounded by busy_timeout.
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = uncancelled(ctx)
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.applyIn(ctx, tx, writes); err != nil {
		return err
	}
	if err := appendChain(ctx, sqlChainTx{tx, headStmt, recStmts}, chain, records, rows); err != nil {
		return err
	}
	return tx.Commit()
}

// appendRecords is appendAudit without writes, which is every commit of the audit committer: a
// transaction of the driver's own on the writer connection, its statements prepared there through the
// driver. database/sql's transaction and its statements on it cost about 30 allocations of a commit,
// which a sequential read makes for each request.
func (s *Store) appendRecords(ctx context.Context, chain bool, records []audit.Record, rows []any) error {
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx = uncancelled(ctx)
	return conn.Raw(func(dc any) error {
		b, ok := dc.(driver.ConnBeginTx)
		if !ok {
			return fmt.Errorf("sqlite: the driver's connection %T cannot begin with a context", dc)
		}
		tx, err := b.BeginTx(ctx, driver.TxOptions{}) // BEGIN IMMEDIATE: the writer pool's _txlock
		if err != nil {
			return err
		}
		if err := appendChain(ctx, driverChainTx{dc}, chain, records, rows); err != nil {
			_ = tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			// A COMMIT that failed can leave the transaction open, and the connection goes back to the
			// pool.
			_ = tx.Rollback()
			return err
		}
		return nil
	})
}

// chainTx is the transaction an append runs in.
type chainTx interface {
	head(ctx context.Context) (int64, []byte, error)
	// insert writes the chain rows in args, auditCols values each.
	insert(ctx context.Context, args []any) error
}

// appendChain reads the head inside the transaction, chains records on it when chain is set, checks
// that they link to it, and inserts their rows.
func appendChain(ctx context.Context, t chainTx, chain bool, records []audit.Record, rows []any) error {
	head, hash, err := t.head(ctx)
	if err != nil {
		return err
	}
	if chain {
		// Chained here on the head, so they link to it by construction.
		audit.Chain(hash, head, records)
		for i, r := range records {
			rows[i*auditCols], rows[i*auditCols+3] = r.Seq, r.Hash
		}
	} else if err := audit.CheckLink(head, hash, records[0]); err != nil {
		return err
	}
	return t.insert(ctx, rows)
}

// sqlChainTx is database/sql's transaction, its statements prepared beforehand on the writer pool.
type sqlChainTx struct {
	tx       *sql.Tx
	headStmt *sql.Stmt
	inserts  []shapedStmt
}

func (t sqlChainTx) head(ctx context.Context) (int64, []byte, error) {
	return scanHead(t.tx.StmtContext(ctx, t.headStmt).QueryRowContext(ctx))
}

func (t sqlChainTx) insert(ctx context.Context, args []any) error {
	return execShapes(ctx, t.tx, t.inserts, args, auditCols)
}

// driverChainTx is the driver's transaction on the connection dc, inside its Raw.
type driverChainTx struct {
	dc any
}

func (t driverChainTx) head(ctx context.Context) (int64, []byte, error) {
	st, err := stmtOn(ctx, t.dc, auditHeadSQL)
	if err != nil {
		return 0, nil, err
	}
	var cols [2]driver.Value
	found, err := firstRow(ctx, st, cols[:], nil)
	if err != nil || !found {
		return 0, nil, err
	}
	seq, err := intValue(cols[0])
	if err != nil {
		return 0, nil, err
	}
	hash, err := bytesValue(cols[1])
	return seq, hash, err
}

func (t driverChainTx) insert(ctx context.Context, args []any) error {
	for n := len(args) / auditCols; n > 0; {
		k := appendRows
		for k > n {
			k /= 2
		}
		st, err := stmtOn(ctx, t.dc, appendAuditTexts[bits.TrailingZeros(uint(k))])
		if err != nil {
			return err
		}
		named, err := namedArgs(args[:k*auditCols])
		if err != nil {
			return err
		}
		if _, err := st.(driver.StmtExecContext).ExecContext(ctx, named); err != nil {
			return err
		}
		args, n = args[k*auditCols:], n-k
	}
	return nil
}

// appendAuditTexts are appendAuditSQL's texts for 1, 2, 4, ... appendRows rows, made once.
var appendAuditTexts = func() []string {
	var texts []string
	for k := 1; k <= appendRows; k *= 2 {
		texts = append(texts, appendAuditSQL(k))
	}
	return texts
}()

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
	return `INSERT OR ROLLBACK INTO audit (seq, id, last_updated, hash, body, idx) VALUES ` + rowsOf(n, `(?, ?, ?, ?, ?, ?)`)
}

// appendAuditRefSQL is the insert of n audit_ref entries. OR IGNORE, for the same reason as OR ROLLBACK
// above, and because two entries of one record may share a key (the patient as entity twice): one is
// all a search needs.
func appendAuditRefSQL(n int) string {
	return `INSERT OR IGNORE INTO audit_ref (value, param, id, system, t) VALUES ` + rowsOf(n, `(?, ?, ?, ?, ?)`)
}

// rowsOf repeats one row of a multi-row VALUES list n times.
func rowsOf(n int, row string) string {
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// stmtCache keeps the audit statements prepared, one per shape (name and row count), so that a batch does
// not pay for parsing a statement of hundreds of parameters, nor an append for parsing the head query,
// nor the audit_ref copier, which runs a few hundred times a second under load, for parsing its own
// (they were an eighth of its CPU). Most are the single writer connection's; the copier's reads are the
// reader pool's. get prepares on the pool, so it must not be called while this goroutine holds the
// connection in a transaction (it would wait for itself).
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
	return scanHead(q.QueryRowContext(ctx, auditHeadSQL))
}

const auditHeadSQL = `SELECT seq, hash FROM (SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1)
	UNION ALL SELECT seq, hash FROM audit_anchor ORDER BY seq DESC LIMIT 1`

func scanHead(row *sql.Row) (int64, []byte, error) {
	var seq int64
	var hash []byte
	err := row.Scan(&seq, &hash)
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
func (s *Store) AuditRange(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, id, last_updated, hash, body FROM audit WHERE seq > ? ORDER BY seq`+limitParam, after, limit)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		var r audit.Record
		var recorded int64
		// The body is read in place and unpacked into a slice of its own, rather than copied first: the
		// uptake tally reads every record of the trail through here.
		var body sql.RawBytes
		if err := rows.Scan(&r.Seq, &r.ID, &recorded, &r.Hash, &body); err != nil {
			return nil, translate(err)
		}
		r.Recorded = fromMillis(recorded)
		if r.Body = unpack(body); len(body) > 0 && &r.Body[0] == &body[0] {
			r.Body = bytes.Clone(body) // stored uncompressed
		}
		out = append(out, r)
	}
	return out, translate(rows.Err())
}

// AuditAnchor returns the last pruned record's Seq, Hash and time, or the zero anchor.
func (s *Store) AuditAnchor(ctx context.Context) (audit.Anchor, error) {
	return auditAnchor(ctx, s.r)
}

func auditAnchor(ctx context.Context, q queryRower) (audit.Anchor, error) {
	var a audit.Anchor
	var recorded int64
	err := q.QueryRowContext(ctx, `SELECT seq, hash, recorded FROM audit_anchor`).Scan(&a.Seq, &a.Hash, &recorded)
	if errors.Is(err, sql.ErrNoRows) {
		return audit.Anchor{}, nil
	}
	if err != nil {
		return audit.Anchor{}, translate(err)
	}
	a.Recorded = fromMillis(recorded)
	return a, nil
}

// pruneChunk is how many records one pruning transaction removes at most: it bounds how long appends
// wait behind a prune for the write lock.
const pruneChunk = 1000

// PruneAudit removes the oldest records, those recorded before before, up to the first that is not, in
// transactions of at most pruneChunk records. Each removes the records and their entries and moves the
// anchor to the last of them together, so an interrupted prune leaves a shorter chain that verifies. It
// checks the links of what it removes (audit.PrunablePrefix) and stops, with the error, before a broken
// one: pruning must not erase the evidence of tampering.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (audit.Anchor, int64, error) {
	// The references of the records to remove are deleted by key, so they must have been copied.
	if err := s.auditReady(ctx); err != nil {
		return audit.Anchor{}, 0, err
	}
	var removed int64
	for {
		a, n, more, err := s.pruneAuditChunk(ctx, before)
		removed += n
		if err != nil {
			return a, removed, translate(err)
		}
		if !more {
			return a, removed, nil
		}
	}
}

// pruneAuditChunk removes up to pruneChunk records and reports the anchor, how many it removed, and
// whether there may be more to remove.
func (s *Store) pruneAuditChunk(ctx context.Context, before time.Time) (audit.Anchor, int64, bool, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return audit.Anchor{}, 0, false, err
	}
	defer tx.Rollback()
	anchor, err := auditAnchor(ctx, tx)
	if err != nil {
		return audit.Anchor{}, 0, false, err
	}
	rows, err := tx.QueryContext(ctx, `SELECT seq, id, last_updated, hash, body FROM audit ORDER BY seq`+limitParam, pruneChunk)
	if err != nil {
		return audit.Anchor{}, 0, false, err
	}
	var page []audit.Record
	for rows.Next() {
		var r audit.Record
		var ms int64
		if err := rows.Scan(&r.Seq, &r.ID, &ms, &r.Hash, &r.Body); err != nil {
			rows.Close()
			return audit.Anchor{}, 0, false, err
		}
		r.Recorded, r.Body = fromMillis(ms), unpack(r.Body)
		page = append(page, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return audit.Anchor{}, 0, false, err
	}
	n, broken := audit.PrunablePrefix(anchor, page, before)
	if n == 0 {
		return anchor, 0, false, broken
	}
	last := page[n-1]
	if err := deleteRefs(ctx, tx, last.Seq); err != nil {
		return audit.Anchor{}, 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM audit WHERE seq <= ?`, last.Seq); err != nil {
		return audit.Anchor{}, 0, false, err
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO audit_anchor (one, seq, hash, recorded) VALUES (1, ?, ?, ?)
		ON CONFLICT (one) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, recorded = excluded.recorded`,
		last.Seq, last.Hash, last.Recorded.UnixMilli()); err != nil {
		return audit.Anchor{}, 0, false, err
	}
	if err := tx.Commit(); err != nil {
		return audit.Anchor{}, 0, false, err
	}
	a := audit.Anchor{Seq: last.Seq, Hash: last.Hash, Recorded: last.Recorded}
	return a, int64(n), broken == nil && n == len(page) && n == pruneChunk, broken
}

// deleteRefs deletes the audit_ref entries of the records up to seq, found by key from each record's own
// entries. A record whose entries do not decode (an edit of the file) keeps whatever entries it has:
// they name a record that is gone, so no search finds it through them.
func deleteRefs(ctx context.Context, tx *sql.Tx, seq int64) error {
	rows, err := tx.QueryContext(ctx, `SELECT id, last_updated, idx FROM audit WHERE seq <= ?`, seq)
	if err != nil {
		return err
	}
	var keys []any
	for rows.Next() {
		var id string
		var at int64
		var blob []byte
		if err := rows.Scan(&id, &at, &blob); err != nil {
			rows.Close()
			return err
		}
		entries, _ := unpackIndex(blob)
		keys = refArgs(keys, id, at, entries, true)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	// The whole key, time included: a record's entries carry its time (refArgs).
	st, err := tx.PrepareContext(ctx, `DELETE FROM audit_ref WHERE value = ? AND param = ? AND id = ? AND system = ? AND t = ?`)
	if err != nil {
		return err
	}
	defer st.Close()
	for ; len(keys) > 0; keys = keys[refCols:] {
		if _, err := st.ExecContext(ctx, keys[:refCols]...); err != nil {
			return err
		}
	}
	return nil
}
