package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// schemaVersion is stored in PRAGMA user_version; Open refuses a file written by a newer schema.
// Version 2 added the audit chain: a version-1 binary would let Apply change AuditEvents, so it must
// not open the file. Version 3 moved each record's body, time and index into its chain row, served
// through a materialised copy in the resource tables. Version 4 serves the chain rows themselves,
// compressed, with their references in audit_ref (see audit.go): a version-3 binary would find no
// AuditEvents. Version 5 keeps each audit_ref entry's record time, for newest-first pages; a version-4
// process still running on the file would write entries without it, so it must not open the file
// either. Version 6 makes idx_system, idx_text and idx_range partial; a version-5 process still running
// on the file answers correctly but cannot use them (its text, date and system-only searches scan the
// parameter's entries). Version 7 gives each idx row n, the history row of the version it indexes, and
// orders idx_value, idx_system and idx_text by it before the id; a version-6 process would write rows
// with n = 0, which sort before every newer entry and are still found. Version 8 keys audit_ref by
// time within a value and drops its index audit_ref_time; a version-7 process would name that index in
// its newest-first searches and fail. Version 9 keys idx_resource by n first and keeps each resource's
// n in current; a version-8 process would write current rows without it, whose entries the per-row
// tests would then not find. migrate upgrades files of versions 2 to 8 in place; rebuilding the
// indexes reads idx once, and rebuilding audit_ref reads it once.
const schemaVersion = 9

// The body lives only in history: the current table points at a version, so an update writes the body once.
// idx rows have one column per IndexEntry field; which indexes serve which Match is listed in query.go.
var schema = []string{
	// n is the n of the current version's idx rows (below): how idx_resource finds them.
	`CREATE TABLE IF NOT EXISTS current (
		type TEXT NOT NULL,
		id TEXT NOT NULL,
		version INTEGER NOT NULL,
		last_updated INTEGER NOT NULL,
		deleted INTEGER NOT NULL,
		n INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (type, id)
	) WITHOUT ROWID`,
	`CREATE INDEX IF NOT EXISTS current_last_updated ON current (type, last_updated, id)`,
	`CREATE TABLE IF NOT EXISTS history (
		type TEXT NOT NULL,
		id TEXT NOT NULL,
		version INTEGER NOT NULL,
		last_updated INTEGER NOT NULL,
		deleted INTEGER NOT NULL,
		body BLOB NOT NULL,
		UNIQUE (type, id, version)
	)`,
	`CREATE INDEX IF NOT EXISTS history_system ON history (last_updated DESC, type, id, version DESC)`,
	`CREATE INDEX IF NOT EXISTS history_type ON history (type, last_updated DESC, id, version DESC)`,
	`CREATE TABLE IF NOT EXISTS idx (
		type TEXT NOT NULL,
		id TEXT NOT NULL,
		param TEXT NOT NULL,
		system TEXT NOT NULL,
		value TEXT NOT NULL,
		text TEXT NOT NULL,
		lo INTEGER NOT NULL,
		hi INTEGER NOT NULL,
		n INTEGER NOT NULL DEFAULT 0
	)`,
	// n before id: a key's entries in the order they were written, so that a new entry goes at the end
	// of its key's run rather than at a random place in it (ids are UUIDs). An import writing "status
	// final" for thousands of Observations then dirties the run's last page instead of a page per entry:
	// the first import of the Synthea sample wrote 40% fewer bytes and ran a third faster (docs/sync.md).
	// n is the history row's rowid (applyIn), which grows with every version written. Searches
	// read these indexes for the ids they list, which the key still holds; a test of one resource's
	// entries goes through idx_resource (query.go, perRowIndex).
	`CREATE INDEX IF NOT EXISTS idx_value ON idx (type, param, value, system, n, id)`,
	// Partial: an entry is in the indexes its matches can use, not in all of them (query.go names which).
	// A Synthea import writes 11 entries per resource, fewer than half with a system or a text and one in
	// ten with a date: full indexes made each entry six b-tree inserts, and each import commit wrote their
	// pages twice over (WAL and checkpoint).
	`CREATE INDEX IF NOT EXISTS idx_system ON idx (type, param, system, value, n, id) WHERE system <> ''`,
	`CREATE INDEX IF NOT EXISTS idx_text ON idx (type, param, text, n, id) WHERE text <> ''`,
	`CREATE INDEX IF NOT EXISTS idx_range ON idx (type, param, lo, hi, id) WHERE value = ''`,
	// One resource's entries, by the n its current row holds: n first, so that a version's entries go at
	// the end of the index together instead of a page per resource (ids are UUIDs). Keyed by type and
	// id first, it was about a quarter of the first Synthea import's writing (docs/sync.md). The type and
	// id after n keep a look-up to the one resource whatever n's history: rows written before schema 7
	// all have n = 0.
	`CREATE INDEX IF NOT EXISTS idx_resource ON idx (n, type, id, param, value, text, lo)`,
	auditTable,
	// last_updated, id: date searches and sorts, and the audit arm of system history, in its order.
	`CREATE INDEX IF NOT EXISTS audit_last_updated ON audit (last_updated DESC, id)`,
	// The entries of an AuditEvent's reference parameters, by value (audit.go says why only those),
	// each value's newest first by its record's time (t, the record's last_updated): "who saw this
	// patient" reads a page of them and stops (query.go, refOrdered). One b-tree, not the key and an
	// index in time order beside it: the copier (refs.go) wrote each entry twice, and under P9 reads at
	// 64 connections that second insert cost about a tenth of the reads a second (docs/operations.md).
	// The virtual columns give it the columns of idx that the compiler names.
	`CREATE TABLE IF NOT EXISTS audit_ref (
		value TEXT NOT NULL,
		param TEXT NOT NULL,
		id TEXT NOT NULL,
		system TEXT NOT NULL,
		type TEXT GENERATED ALWAYS AS ('AuditEvent') VIRTUAL,
		text TEXT GENERATED ALWAYS AS ('') VIRTUAL,
		lo INTEGER GENERATED ALWAYS AS (0) VIRTUAL,
		hi INTEGER GENERATED ALWAYS AS (0) VIRTUAL,
		t INTEGER NOT NULL DEFAULT 0,
		PRIMARY KEY (value, param, t DESC, id, system)
	) WITHOUT ROWID`,
	// How far the audit_ref copy has got (refs.go).
	`CREATE TABLE IF NOT EXISTS audit_ref_mark (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		seq INTEGER NOT NULL
	)`,
	`INSERT OR IGNORE INTO audit_ref_mark (one, seq) VALUES (1, 0)`,
	// Where a pruned chain starts (audit.Anchor): at most one row.
	`CREATE TABLE IF NOT EXISTS audit_anchor (
		one INTEGER PRIMARY KEY CHECK (one = 1),
		seq INTEGER NOT NULL,
		hash BLOB NOT NULL,
		recorded INTEGER NOT NULL
	)`,
}

// auditTable is the audit chain: one row per record, in chain order (last_updated is the record's time
// in Unix milliseconds; body and idx, its index entries, are compressed, see codec.go). It is also the
// served AuditEvent: the virtual columns give it the columns of current and history, at no cost per row.
const auditTable = `CREATE TABLE IF NOT EXISTS audit (
		seq INTEGER PRIMARY KEY,
		id TEXT NOT NULL UNIQUE,
		last_updated INTEGER NOT NULL,
		hash BLOB NOT NULL,
		body BLOB NOT NULL,
		idx BLOB NOT NULL,
		type TEXT GENERATED ALWAYS AS ('AuditEvent') VIRTUAL,
		version INTEGER GENERATED ALWAYS AS (1) VIRTUAL,
		deleted INTEGER GENERATED ALWAYS AS (0) VIRTUAL
	)`

// Store is a SQLite-backed store.Store. It is safe for concurrent use, and several processes may open the
// same directory.
type Store struct {
	w *sql.DB // exactly one connection: writers queue here, in process, before SQLite's lock
	r *sql.DB // query_only connections, so a read can never take the write lock

	getStmt        *keyStmt
	getVersionStmt *keyStmt
	getAuditStmt   *keyStmt
	generationStmt *keyStmt

	path string // the database file, for Backup

	stmts        stmtCache     // audit statements on w (audit.go)
	copier       *copier       // background copy of audit references (refs.go)
	appended     refQueue      // the references of this process's appends, not copied yet (refs.go)
	checkpointer *checkpointer // background WAL checkpoints (checkpoint.go)

	// applyIn's statements, prepared on w when the store opens: prepared inside a transaction, which
	// holds w's only connection, they would wait for that connection for ever.
	applyStmt [len(applyStmts)]*sql.Stmt
	// idxStmt[k] inserts 1<<k index entries, prepared likewise.
	idxStmt [idxShapes]*sql.Stmt
}

// The backend implements both the resource store and the audit trail's storage.
var (
	_ store.Store       = (*Store)(nil)
	_ audit.Store       = (*Store)(nil)
	_ store.Screener    = (*Store)(nil)
	_ store.Generations = (*Store)(nil)
)

// Open opens (creating if needed) the database dir/gpfhir.db, creating dir with mode 0700 because the
// file holds health records. A file of schema version 2 is upgraded; one of a newer schema is refused.
func Open(ctx context.Context, dir string, opts ...Option) (*Store, error) {
	return open(ctx, dir, true, opts...)
}

// open is Open with or without the background copier of audit references; tests turn it off to see
// searches catch up on their own.
func open(ctx context.Context, dir string, background bool, opts ...Option) (*Store, error) {
	o := options{walLimit: DefaultWALLimit}
	for _, opt := range opts {
		opt(&o)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("sqlite: create %s: %w", dir, err)
	}
	path := filepath.Join(dir, "gpfhir.db")
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: data directory %q may not contain '?' or '#'", dir)
	}
	// busy_timeout comes first (the driver orders it so) so that even the journal_mode switch waits for
	// another process instead of failing.
	common := "file:" + path + fmt.Sprintf("?_pragma=busy_timeout(%d)&_pragma=synchronous(FULL)", writerBusyTimeout) +
		fmt.Sprintf("&_pragma=journal_size_limit(%d)", journalSizeLimit(o.walLimit))
	// No checkpoint on commit: a commit that checkpoints copies hundreds of pages and fsyncs the file
	// before it returns, and every request waiting on that commit waits with it. The checkpointer does
	// it in the background instead (checkpoint.go).
	// The writer's page cache is 64 MiB, not SQLite's 2 MiB: a transaction that touches more index
	// pages than the cache holds spills them to the WAL before its commit and reads them back (pprof of
	// the Synthea import: 70 of 97 s of WAL writing was spill, and most of the reads were pages evicted
	// moments before). Pages are allocated as touched, so a small store uses little.
	w, err := openPool(common + "&_pragma=journal_mode(WAL)&_pragma=wal_autocheckpoint(0)&_pragma=cache_size(-65536)&_txlock=immediate")
	if err != nil {
		return nil, translate(err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)

	s := &Store{w: w, path: path}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	forgetSmallTableStats(w)

	// Readers keep 16 MiB each (four or more of them): the indexes a search walks stay in memory between
	// writes (a reader's cache is dropped whenever another connection has committed).
	r, err := openPool(common + "&_pragma=query_only(1)&_pragma=cache_size(-16384)")
	if err != nil {
		w.Close()
		return nil, translate(err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	s.r = r

	if s.getStmt, err = newKeyStmt(ctx, r, `SELECT h.version, h.last_updated, h.deleted, h.body
		FROM current c JOIN history h ON h.type = c.type AND h.id = c.id AND h.version = c.version
		WHERE c.type = ? AND c.id = ?`); err != nil {
		s.Close()
		return nil, translate(err)
	}
	if s.getVersionStmt, err = newKeyStmt(ctx, r, `SELECT version, last_updated, deleted, body
		FROM history WHERE type = ? AND id = ? AND version = ?`); err != nil {
		s.Close()
		return nil, translate(err)
	}
	if s.getAuditStmt, err = newKeyStmt(ctx, r, `SELECT last_updated, body FROM audit WHERE id = ?`); err != nil {
		s.Close()
		return nil, translate(err)
	}
	if s.generationStmt, err = newKeyStmt(ctx, r, `SELECT n FROM generation WHERE type = ?`); err != nil {
		s.Close()
		return nil, translate(err)
	}
	for i, text := range applyStmts {
		// In s.stmts, which Close closes.
		if s.applyStmt[i], err = s.stmts.get(ctx, w, text, 0, func(int) string { return text }); err != nil {
			s.Close()
			return nil, translate(err)
		}
	}
	for k := range s.idxStmt {
		if s.idxStmt[k], err = s.stmts.get(ctx, w, "idx", 1<<k, insertIdxSQL); err != nil {
			s.Close()
			return nil, translate(err)
		}
	}
	if err := s.startCheckpointer(ctx, path, o); err != nil {
		s.Close()
		return nil, err
	}
	if background {
		s.startCopier()
	}
	return s, nil
}

func (s *Store) migrate(ctx context.Context) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return translate(err)
	}
	if v > schemaVersion {
		return fmt.Errorf("sqlite: database schema version %d is newer than this gpfhir (%d)", v, schemaVersion)
	}
	if v < 6 {
		// Version 6 makes idx_system, idx_text and idx_range partial; CREATE INDEX IF NOT EXISTS below
		// would keep the full ones.
		for _, q := range []string{`DROP INDEX IF EXISTS idx_system`, `DROP INDEX IF EXISTS idx_text`, `DROP INDEX IF EXISTS idx_range`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return translate(err)
			}
		}
	}
	if v > 0 && v < 7 {
		// Version 7 adds n to idx and to the key of three of its indexes (schema); the rows already in
		// the file keep n = 0, before any entry written since.
		for _, q := range []string{`DROP INDEX IF EXISTS idx_value`, `DROP INDEX IF EXISTS idx_system`,
			`DROP INDEX IF EXISTS idx_text`, `ALTER TABLE idx ADD COLUMN n INTEGER NOT NULL DEFAULT 0`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return translate(err)
			}
		}
	}
	if v > 0 && v < 9 {
		// Version 9 finds a resource's entries by the n its current row holds: the n its entries have
		// (0 for those written before version 7), read while idx_resource is still keyed by the id.
		for _, q := range []string{`ALTER TABLE current ADD COLUMN n INTEGER NOT NULL DEFAULT 0`,
			`UPDATE current SET n = (SELECT max(i.n) FROM idx i WHERE i.type = current.type AND i.id = current.id)
				WHERE EXISTS (SELECT 1 FROM idx i WHERE i.type = current.type AND i.id = current.id AND i.n <> 0)`,
			`DROP INDEX IF EXISTS idx_resource`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return translate(err)
			}
		}
	}
	if v == 4 {
		// Version 5 keeps each audit_ref entry's record time, for newest-first pages.
		for _, q := range []string{`ALTER TABLE audit_ref ADD COLUMN t INTEGER NOT NULL DEFAULT 0`,
			// An entry of a pruned record whose entries could not be read (see deleteRefs) names no record.
			`UPDATE audit_ref SET t = COALESCE((SELECT a.last_updated FROM audit a WHERE a.id = audit_ref.id), 0)`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return translate(err)
			}
		}
	}
	if v == 2 || v == 3 {
		// The old chain table makes way for the new one and is copied into it below.
		if _, err := tx.ExecContext(ctx, `ALTER TABLE audit RENAME TO audit_old`); err != nil {
			return translate(err)
		}
	}
	if v >= 4 && v < 8 {
		// Version 8 keys audit_ref by time within a value: the old table, with its index audit_ref_time,
		// makes way for the new one and is copied into it below.
		if _, err := tx.ExecContext(ctx, `ALTER TABLE audit_ref RENAME TO audit_ref_old`); err != nil {
			return translate(err)
		}
	}
	for _, stmt := range append(slices.Clip(schema), generationSchema()...) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return translate(err)
		}
	}
	if v >= 4 && v < 8 {
		for _, q := range []string{`INSERT INTO audit_ref (value, param, id, system, t) SELECT value, param, id, system, t FROM audit_ref_old`,
			`DROP TABLE audit_ref_old`} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return translate(err)
			}
		}
	}
	if v == 2 || v == 3 {
		if err := upgradeAudit(ctx, tx, v); err != nil {
			return translate(err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion)); err != nil {
		return translate(err)
	}
	return translate(tx.Commit())
}

// Ping checks that both pools can reach the file. It returns ErrUnavailable if not.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.r.PingContext(ctx); err != nil {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1 FROM current LIMIT 1`).Scan(&one); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, translate(err))
	}
	return nil
}

// smallTableRows is the row count below which a table's planner statistics are not kept.
const smallTableRows = 10_000

// forgetSmallTableStats deletes the planner statistics of tables that were small when they were taken. A
// store closed while nearly empty (a new store, a test, the first minutes of an import) leaves statistics
// saying history has one row; a later process that fills it then plans its joins as a scan of history
// for every row of current, which took 23 s for a page of 1,000 resources. Without statistics SQLite
// assumes large tables and uses the indexes, which is right for a table that is about to grow; once a
// table is large, PRAGMA optimize records statistics worth keeping. Best effort, like optimize.
func forgetSmallTableStats(db *sql.DB) {
	if _, err := db.Exec(`DELETE FROM sqlite_stat1 WHERE CAST(stat AS INTEGER) < ?`, smallTableRows); err == nil {
		// Reloads the statistics into this connection's planner.
		_, _ = db.Exec(`ANALYZE sqlite_schema`)
	}
}

// Close waits for statements in progress, lets SQLite refresh its planner statistics, and closes both pools.
func (s *Store) Close() error {
	// First, so that the copier does not start a transaction on pools being closed. What it had not
	// copied yet stays in the rows, for the next search or copier.
	s.copier.stop()
	errs := []error{s.checkpointer.stop(), s.stmts.close()}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	// Best effort: optimize only analyses tables whose statistics are stale, and a failure changes nothing.
	_, _ = s.w.Exec(`PRAGMA optimize`)
	forgetSmallTableStats(s.w)
	errs = append(errs, s.w.Close())
	return errors.Join(errs...)
}

// Get returns the current version, which may be a tombstone. ErrNotFound if the resource never existed.
func (s *Store) Get(ctx context.Context, typ, id string) (store.Resource, error) {
	if typ == store.AuditEventType {
		return s.getAudit(ctx, id)
	}
	res, found, err := versionRow(ctx, s.getStmt, typ, id, typ, id)
	if err == nil && !found {
		err = fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
	}
	return res, err
}

// GetVersion returns one version, which may be a tombstone. ErrNotFound if there is no such version.
func (s *Store) GetVersion(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	if typ == store.AuditEventType {
		if version != 1 {
			return store.Resource{}, fmt.Errorf("%w: %s/%s/_history/%d", store.ErrNotFound, typ, id, version)
		}
		return s.getAudit(ctx, id)
	}
	res, found, err := versionRow(ctx, s.getVersionStmt, typ, id, typ, id, version)
	if err == nil && !found {
		err = fmt.Errorf("%w: %s/%s/_history/%d", store.ErrNotFound, typ, id, version)
	}
	return res, err
}

// getAudit reads an AuditEvent from its chain row: version 1, never deleted.
func (s *Store) getAudit(ctx context.Context, id string) (store.Resource, error) {
	var cols [2]driver.Value
	found, err := s.getAuditStmt.row(uncancelled(ctx), cols[:], id)
	if err != nil {
		return store.Resource{}, translate(err)
	}
	if !found {
		return store.Resource{}, fmt.Errorf("%w: %s/%s", store.ErrNotFound, store.AuditEventType, id)
	}
	lu, err := intValue(cols[0])
	if err != nil {
		return store.Resource{}, err
	}
	body, err := bytesValue(cols[1])
	if err != nil {
		return store.Resource{}, err
	}
	return store.Resource{Type: store.AuditEventType, ID: id, VersionID: 1, LastUpdated: fromMillis(lu), Body: unpack(body)}, nil
}

// versionRow runs a look-up of one version of typ/id with args: its columns are the version,
// last_updated, deleted and the body.
func versionRow(ctx context.Context, k *keyStmt, typ, id string, args ...any) (store.Resource, bool, error) {
	var cols [4]driver.Value
	found, err := k.row(uncancelled(ctx), cols[:], args...)
	if err != nil || !found {
		return store.Resource{}, false, translate(err)
	}
	res, err := resourceOf(typ, id, cols[:])
	return res, err == nil, err
}

// resourceOf makes a Resource of a row's version, last_updated, deleted and body columns, as reads by
// key and searches select them. The body is as stored (AuditEvents' packed).
func resourceOf(typ, id string, cols []driver.Value) (store.Resource, error) {
	res := store.Resource{Type: typ, ID: id}
	var lu, deleted int64
	var err error
	if res.VersionID, err = intValue(cols[0]); err == nil {
		if lu, err = intValue(cols[1]); err == nil {
			if deleted, err = intValue(cols[2]); err == nil {
				res.Body, err = bytesValue(cols[3])
			}
		}
	}
	if err != nil {
		return store.Resource{}, err
	}
	res.LastUpdated, res.Deleted = fromMillis(lu), deleted != 0
	return res, nil
}

// uncancelled is ctx without its cancellation, once it is known not to have ended, for statements there
// is no point interrupting. With a context that can end, database/sql and the driver each start a
// goroutine to watch it for every statement (database/sql's awaitDone, modernc's interruptOnDone): 17
// allocations of a read by id through the API (-bench ReadByID, with the request's context cancellable
// as net/http's is). A look-up by primary key takes microseconds (its wait for a read connection no
// longer ends with ctx either; the read pool has several), and an audit commit waits only for the write
// lock, which busy_timeout bounds. What has already ended still fails at once. It is Background rather
// than WithoutCancel(ctx), which allocates on every statement: neither database/sql nor the driver reads
// a context's values.
func uncancelled(ctx context.Context) context.Context {
	if ctx.Err() != nil {
		return ctx
	}
	return context.Background()
}

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// Apply writes every version and its index entries in one transaction, or nothing. ErrVersionConflict if a
// write's ExpectVersion is not current; ErrInvalidQuery if a write is malformed (version not
// ExpectVersion+1, a tombstone with a body, the same resource twice); ErrUnavailable if another process
// held the write lock past the busy timeout. A nil error means the group is on disk.
func (s *Store) Apply(ctx context.Context, writes []store.Write) error {
	if len(writes) == 0 {
		return nil
	}
	if err := store.CheckWrites(writes); err != nil {
		return err
	}
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = s.apply(ctx, writes); err == nil || !isBusy(err) || ctx.Err() != nil {
			break
		}
	}
	return translate(err)
}

func (s *Store) apply(ctx context.Context, writes []store.Write) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := s.applyIn(ctx, tx, writes); err != nil {
		return err
	}
	return tx.Commit()
}

// applyIn makes the writes in tx, which the caller commits: Apply alone, or ApplyAudited with the
// writes' audit records. Its statements were prepared on the writer connection when the store opened
// (s.applyStmt) and are only bound to tx here: preparing them afresh for each resource was 3% of a
// Synthea import's CPU.
func (s *Store) applyIn(ctx context.Context, tx *sql.Tx, writes []store.Write) error {
	var st [len(applyStmts)]*sql.Stmt
	for i, prepared := range s.applyStmt {
		st[i] = tx.StmtContext(ctx, prepared)
	}
	selectVersion, insertHistory, upsertCurrent, deleteEntries := st[0], st[1], st[2], st[3]
	entries := idxInserter{tx: tx, prepared: &s.idxStmt}
	for _, w := range writes {
		r := w.Resource
		var cur, curN int64
		err := selectVersion.QueryRowContext(ctx, r.Type, r.ID).Scan(&cur, &curN)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != w.ExpectVersion {
			return fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrVersionConflict, r.Type, r.ID, cur, w.ExpectVersion)
		}
		lu := r.LastUpdated.UnixMilli()
		body := r.Body
		if body == nil {
			body = []byte{}
		}
		res, err := insertHistory.ExecContext(ctx, r.Type, r.ID, r.VersionID, lu, r.Deleted, body)
		if err != nil {
			return err
		}
		n, err := res.LastInsertId()
		if err != nil {
			return err
		}
		if _, err := upsertCurrent.ExecContext(ctx, r.Type, r.ID, r.VersionID, lu, r.Deleted, n); err != nil {
			return err
		}
		if w.ExpectVersion != 0 {
			if _, err := deleteEntries.ExecContext(ctx, curN, r.Type, r.ID); err != nil {
				return err
			}
		}
		if err := entries.insert(ctx, r.Type, r.ID, n, w.Index); err != nil {
			return err
		}
	}
	return nil
}

// applyStmts are applyIn's statements, in the order it names them.
var applyStmts = [...]string{
	`SELECT version, n FROM current WHERE type = ? AND id = ?`,
	`INSERT INTO history (type, id, version, last_updated, deleted, body) VALUES (?, ?, ?, ?, ?, ?)`,
	`INSERT INTO current (type, id, version, last_updated, deleted, n) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT (type, id) DO UPDATE SET version = excluded.version, last_updated = excluded.last_updated, deleted = excluded.deleted, n = excluded.n`,
	`DELETE FROM idx WHERE n = ? AND type = ? AND id = ?`,
}

// idxShapes is the number of index-insert statements: of 1, 2, 4, ... 1<<(idxShapes-1) entries.
const idxShapes = 5

const idxCols = 9

// insertIdxSQL inserts n index entries. A resource has about a dozen, and one statement for them all
// rather than one for each saves a statement's binding, run and reset per entry: importing 100 Synthea
// patients, the writer's CPU inserting entries fell from 3.0 to 2.4 s (the b-tree inserts are most of
// the rest). OR ROLLBACK, as appendAuditSQL says, so that a multi-row statement needs no statement
// journal; any failure ends the whole write anyway.
func insertIdxSQL(n int) string {
	return `INSERT OR ROLLBACK INTO idx (type, id, param, system, value, text, lo, hi, n) VALUES ` +
		rowsOf(n, `(?, ?, ?, ?, ?, ?, ?, ?, ?)`)
}

// idxInserter inserts index entries in tx with the store's prepared statements, bound to tx as they are
// first needed.
type idxInserter struct {
	tx       *sql.Tx
	prepared *[idxShapes]*sql.Stmt
	bound    [idxShapes]*sql.Stmt
	args     []any
}

// insert inserts the entries of typ/id, whose version is the history row n.
func (x *idxInserter) insert(ctx context.Context, typ, id string, n int64, index []store.IndexEntry) error {
	args := x.args[:0]
	for _, e := range index {
		if e.Param == "" {
			return fmt.Errorf("%w: index entry of %s/%s without a parameter", store.ErrInvalidQuery, typ, id)
		}
		args = append(args, typ, id, e.Param, e.System, e.Value, e.Text, e.Low, e.High, n)
	}
	x.args = args
	for len(args) > 0 {
		k := idxShapes - 1
		for 1<<k > len(args)/idxCols {
			k--
		}
		st := x.bound[k]
		if st == nil {
			st = x.tx.StmtContext(ctx, x.prepared[k])
			x.bound[k] = st
		}
		m := idxCols << k
		if _, err := st.ExecContext(ctx, args[:m]...); err != nil {
			return err
		}
		args = args[m:]
	}
	return nil
}

// SetIndex replaces the index entries of the current version in place. ErrNotFound if the resource does
// not exist or is deleted (a tombstone has no index); ErrVersionConflict if version is not current.
func (s *Store) SetIndex(ctx context.Context, typ, id string, version int64, index []store.IndexEntry) error {
	if typ == store.AuditEventType {
		return fmt.Errorf("%w: the index of an AuditEvent is kept as appended", store.ErrInvalidQuery)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return translate(err)
	}
	defer tx.Rollback()
	var cur, n int64
	var deleted bool
	// The entries keep the n of the ones they replace, which the current row holds.
	err = tx.QueryRowContext(ctx, `SELECT version, deleted, n FROM current WHERE type = ? AND id = ?`, typ, id).Scan(&cur, &deleted, &n)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
	}
	if err != nil {
		return translate(err)
	}
	if cur != version {
		return fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrVersionConflict, typ, id, cur, version)
	}
	if deleted {
		return fmt.Errorf("%w: %s/%s is deleted", store.ErrNotFound, typ, id)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM idx WHERE n = ? AND type = ? AND id = ?`, n, typ, id); err != nil {
		return translate(err)
	}
	entries := idxInserter{tx: tx, prepared: &s.idxStmt}
	if err := entries.insert(ctx, typ, id, n, index); err != nil {
		return translate(err)
	}
	return translate(tx.Commit())
}

// History lists versions, tombstones included, newest first. ErrInvalidQuery if ID is set without Type.
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]store.Resource, error) {
	if q.ID != "" && q.Type == "" {
		return nil, fmt.Errorf("%w: history of an id without a type", store.ErrInvalidQuery)
	}
	// AuditEvents are served from their chain rows: a history of every type is the union of both
	// tables, merged in one order.
	var tables []string
	var others []string // Types other than AuditEvent, read from history
	switch q.Type {
	case "":
		if len(q.Types) == 0 {
			tables = []string{"history", "audit"}
			break
		}
		for _, t := range q.Types {
			if t != store.AuditEventType {
				others = append(others, t)
			}
		}
		if len(others) > 0 {
			tables = append(tables, "history")
		}
		if slices.Contains(q.Types, store.AuditEventType) {
			tables = append(tables, "audit")
		}
		if len(tables) == 0 {
			return nil, nil
		}
	case store.AuditEventType:
		tables = []string{"audit"}
	default:
		tables = []string{"history"}
	}
	var b strings.Builder
	var args []any
	for i, table := range tables {
		if i > 0 {
			b.WriteString(` UNION ALL `)
		}
		b.WriteString(`SELECT type, id, version, last_updated, deleted, body FROM ` + table + ` WHERE 1`)
		if q.Type != "" {
			b.WriteString(` AND type = ?`)
			args = append(args, q.Type)
		}
		if table == "history" && len(others) > 0 {
			b.WriteString(` AND type IN (?` + strings.Repeat(`,?`, len(others)-1) + `)`)
			for _, t := range others {
				args = append(args, t)
			}
		}
		if q.ID != "" {
			b.WriteString(` AND id = ?`)
			args = append(args, q.ID)
		}
		if !q.Since.IsZero() {
			b.WriteString(` AND last_updated >= ?`)
			args = append(args, q.Since.UnixMilli())
		}
		if !q.Before.IsZero() {
			b.WriteString(` AND last_updated < ?`)
			args = append(args, q.Before.UnixMilli())
		}
		if a := q.After; a != nil {
			lu := a.LastUpdated.UnixMilli()
			b.WriteString(` AND (last_updated < ? OR (last_updated = ? AND (type > ? OR (type = ? AND (id > ? OR (id = ? AND version < ?))))))`)
			args = append(args, lu, lu, a.Type, a.Type, a.ID, a.ID, a.VersionID)
		}
	}
	b.WriteString(` ORDER BY last_updated DESC, type, id, version DESC`)
	if q.Limit > 0 {
		b.WriteString(limitParam)
		args = append(args, q.Limit)
	}
	rows, err := s.r.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, translate(err)
	}
	defer rows.Close()
	var out []store.Resource
	for rows.Next() {
		var res store.Resource
		var lu int64
		if err := rows.Scan(&res.Type, &res.ID, &res.VersionID, &lu, &res.Deleted, &res.Body); err != nil {
			return nil, translate(err)
		}
		if res.Type == store.AuditEventType {
			res.Body = unpack(res.Body)
		}
		res.LastUpdated = fromMillis(lu)
		out = append(out, res)
	}
	return out, translate(rows.Err())
}
