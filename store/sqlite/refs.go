package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// The audit_ref entries are written after the append, not in it. An entry is keyed by the patient or
// resource it names, so each record's entries land on a page of their own in the b-tree, and on this
// kind of disk every page a commit dirties costs about as much again as the fsync itself: written in the
// append, they made a record cost a page, where its row, compressed, costs a tenth of one. So an append
// writes only the rows (the entries are inside them, in idx), and the entries are copied into audit_ref
// up to the mark in audit_ref_mark:
//
//   - by a background goroutine, shortly after an append, in chunks;
//   - first, by any Search or Count that can see AuditEvents (auditReady), so that a search never
//     misses a record appended before it: the contract's "searchable once AppendAudit returns".
//
// The copy commits with synchronous=NORMAL: it is derived from rows that are already durable, and the
// mark moves in the same transaction, so a copy lost to a power cut is made again from the rows. (The
// next durable commit syncs the WAL, copy included.) Processes sharing the file copy each record once:
// each chunk re-reads the mark inside BEGIN IMMEDIATE.

// refChunk is how many records one copying transaction takes: it bounds how long an append waits behind
// the copier for the writer connection. At 500, under a few thousand audited reads a second, every audit
// commit for a few hundred milliseconds each second waited behind a chunk (25-60 ms commits, found by
// timing the committer), and those waits were the read's p99: 38-54 ms at 16 connections, 21-26 ms with
// 64 (gpfhir bench, back to back), with the same throughput. 16 measured no better than 64.
const refChunk = 64

// refDelay is how long the copier lets appends gather before copying them. The entries of a chunk land
// on a page per patient (or resource) named, whatever the chunk's size, so a second's worth costs the
// same pages as a tenth of one; a search that comes first copies the backlog itself (a few thousand
// records at most, some tens of milliseconds).
const refDelay = time.Second

// auditReady copies every pending record's entries before a read that can use audit_ref. It costs one
// indexed lookup when there is nothing to do.
func (s *Store) auditReady(ctx context.Context) error {
	st, err := s.stmts.get(ctx, s.r, "refs pending", 1, func(int) string {
		return `SELECT EXISTS (SELECT 1 FROM audit WHERE seq > (SELECT seq FROM audit_ref_mark))`
	})
	if err != nil {
		return translate(err)
	}
	var pending bool
	if err := st.QueryRowContext(ctx).Scan(&pending); err != nil {
		return translate(err)
	}
	if !pending {
		return nil
	}
	return s.copyRefs(ctx)
}

// copyRefs copies the entries of every record past the mark, a chunk per transaction.
//
// A chunk is taken first from what this process appended (refQueue), which needs no reading back, as
// long as it follows the mark; then from the rows. Only a chunk read from the rows that comes short
// says that everything is copied.
func (s *Store) copyRefs(ctx context.Context) error {
	busy := 0
	fromRows := false
	for {
		var chunk []refRecord
		if !fromRows {
			chunk = s.appended.take(refChunk)
		}
		queued := len(chunk) > 0
		if !queued {
			var err error
			if chunk, err = s.readRefChunk(ctx); err != nil || len(chunk) == 0 {
				return translate(err)
			}
		}
		n, err := s.copyChunk(ctx, chunk, queued)
		switch {
		case errors.Is(err, errRefGap):
			fromRows = true // records another process appended come first
			continue
		case isBusy(err) && busy < 2 && ctx.Err() == nil:
			busy++ // busy_timeout has waited already; worth another try, as in Apply
			continue
		case err != nil:
			return translate(err)
		case !queued && n < refChunk:
			return nil
		}
		fromRows, busy = false, 0
	}
}

// errRefGap: a chunk from the queue does not follow the mark.
var errRefGap = errors.New("sqlite: queued audit references do not follow the copy mark")

// refQueue holds the audit_ref rows of the records this process appended, in Seq order, until they
// are copied: the copier then need not read the records back and decode their entries, which was a
// third of its work under P9 reads. Another process's records leave a gap, which the copier reads from
// the rows.
type refQueue struct {
	mu      sync.Mutex
	pending []refRecord
}

// refQueueLimit bounds the queue; past it, records are read back from the rows.
const refQueueLimit = 1 << 15

// add queues the rows of records, just appended with their Seq, unless that would leave a gap behind
// the queued ones.
func (q *refQueue) add(records []audit.Record) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range records {
		if n := len(q.pending); n >= refQueueLimit || (n > 0 && q.pending[n-1].seq != r.Seq-1) {
			// Out of order (appends of two goroutines crossed) or too many: the rest is read back.
			q.pending = q.pending[:0]
			return
		}
		q.pending = append(q.pending, refRecord{seq: r.Seq, args: refArgs(nil, r.ID, r.Recorded.UnixMilli(), r.Index, false)})
	}
}

// take returns up to n queued records from the first, without removing them (done does).
func (q *refQueue) take(n int) []refRecord {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.pending[:min(n, len(q.pending))])
}

// done forgets the queued records up to seq, copied by this process or another.
func (q *refQueue) done(seq int64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	i := 0
	for i < len(q.pending) && q.pending[i].seq <= seq {
		i++
	}
	q.pending = slices.Delete(q.pending, 0, i)
}

// copyChunk inserts the entries of chunk's records that are still past the mark. The records were read,
// and their entries decoded, before the writer connection is taken (readRefChunk, or the queue), since
// chain rows never change once appended: the copier then holds the writer only for the inserts, and the
// audit commits wait less for it (under P9 reads at 64 connections it held the writer 500 ms of each
// second before, about 360 after; docs/operations.md). Inside the transaction the mark is read again:
// records that another copier (a search's, or another process's) took meanwhile are skipped. So are
// records pruned meanwhile, since PruneAudit copies up to what it removes before removing it. A chunk
// from the queue (queued) must follow the mark without a gap: errRefGap if not.
func (s *Store) copyChunk(ctx context.Context, chunk []refRecord, queued bool) (n int, err error) {
	// Prepared before the connection is taken: preparing on the pool would wait for this very
	// connection.
	shapes := make([]shapedStmt, 0, 9)
	for k := 1; k <= refRows; k *= 2 {
		st, err := s.stmts.get(ctx, s.w, "audit_ref", k, appendAuditRefSQL)
		if err != nil {
			return 0, err
		}
		shapes = append(shapes, shapedStmt{k, st})
	}
	markSt, err := s.stmts.get(ctx, s.w, "ref mark", 1, func(int) string { return `SELECT seq FROM audit_ref_mark` })
	if err != nil {
		return 0, err
	}
	moveSt, err := s.stmts.get(ctx, s.w, "ref mark move", 1, func(int) string { return `UPDATE audit_ref_mark SET seq = ?` })
	if err != nil {
		return 0, err
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return 0, err
	}
	defer func() {
		// The writer connection goes back to durable commits, or is discarded.
		if _, rerr := conn.ExecContext(context.Background(), `PRAGMA synchronous = FULL`); rerr != nil {
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = rerr
			}
		}
		conn.Close()
	}()
	if _, err := conn.ExecContext(ctx, `PRAGMA synchronous = NORMAL`); err != nil {
		return 0, err
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var mark int64
	if err := tx.StmtContext(ctx, markSt).QueryRowContext(ctx).Scan(&mark); err != nil {
		return 0, err
	}
	if queued {
		if chunk[0].seq > mark+1 {
			return 0, errRefGap
		}
		defer func() {
			if err == nil {
				s.appended.done(max(mark, chunk[len(chunk)-1].seq))
			}
		}()
	}
	var args []any
	last := mark
	for _, r := range chunk {
		if r.seq > mark {
			args = append(args, r.args...)
			last = r.seq
		}
	}
	if last == mark {
		return len(chunk), nil // all taken or pruned meanwhile
	}
	if err := execPowers(ctx, tx, shapes, args, refCols); err != nil {
		return 0, err
	}
	if _, err := tx.StmtContext(ctx, moveSt).ExecContext(ctx, last); err != nil {
		return 0, err
	}
	return len(chunk), tx.Commit()
}

// refRecord is one record of a chunk to copy: its seq and its audit_ref rows as statement arguments.
type refRecord struct {
	seq  int64
	args []any
}

// readRefChunk reads the next refChunk records past the mark from a snapshot of the reader pool.
func (s *Store) readRefChunk(ctx context.Context) ([]refRecord, error) {
	st, err := s.stmts.get(ctx, s.r, "ref chunk", 1, func(int) string {
		return `SELECT seq, id, last_updated, idx FROM audit WHERE seq > (SELECT seq FROM audit_ref_mark) ORDER BY seq` + limitParam
	})
	if err != nil {
		return nil, err
	}
	rows, err := st.QueryContext(ctx, refChunk)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var chunk []refRecord
	for rows.Next() {
		var r refRecord
		var id string
		var at int64
		var blob []byte
		if err := rows.Scan(&r.seq, &id, &at, &blob); err != nil {
			return nil, err
		}
		r.args = appendRefs(nil, id, at, blob)
		chunk = append(chunk, r)
	}
	return chunk, rows.Err()
}

// appendRefs appends the audit_ref rows (value, param, id, system, t) of the record id of time t (its
// last_updated) with entries blob. Entries that do not decode (an edit of the file) give none: derived
// data outside the hash must not stop later records from being indexed.
func appendRefs(args []any, id string, t int64, blob []byte) []any {
	entries, _ := unpackIndex(blob)
	return refArgs(args, id, t, entries, false)
}

// refArgs appends the audit_ref row (value, param, id, system, t) of each of entries that audit_ref
// keeps (refKept), or with devices set of each it may hold: a file written before Devices were left
// out holds theirs, which pruning deletes too. All five columns of a row are its key.
// The record's id and time are boxed once for all its rows, and the parameters' names once for all
// records: each boxing of a string or a large integer allocates, and a record has several rows.
func refArgs(args []any, id string, t int64, entries []store.IndexEntry, devices bool) []any {
	var idv, tv any
	for _, e := range entries {
		if !devices && audit.PatientImplied(e) {
			continue // found through the patient entry of the same value (query.go, patientFound)
		}
		if param, ok := refParamArgs[e.Param]; ok && (devices || refKept(e.Value)) {
			if idv == nil {
				idv, tv = id, t
			}
			args = append(args, e.Value, param, idv, e.System, tv)
		}
	}
	return args
}

// refParamArgs holds each of auditRefParams boxed as a statement's argument.
var refParamArgs = func() map[string]any {
	m := make(map[string]any, len(auditRefParams))
	for p := range auditRefParams {
		m[p] = p
	}
	return m
}()

// execPowers writes len(args)/cols rows with statements of 1<<k rows (shapes[k]), largest first.
func execPowers(ctx context.Context, tx *sql.Tx, shapes []shapedStmt, args []any, cols int) error {
	for k := len(shapes) - 1; k >= 0; k-- {
		for n := shapes[k].rows * cols; len(args) >= n; args = args[n:] {
			if _, err := tx.StmtContext(ctx, shapes[k].st).ExecContext(ctx, args[:n]...); err != nil {
				return err
			}
		}
	}
	return nil
}

// copier runs copyRefs in the background after appends in this process (and once at Open, for a backlog
// left by a process that stopped), so an idle server does no work.
type copier struct {
	wake   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Store) startCopier() {
	ctx, cancel := context.WithCancel(context.Background())
	s.copier = &copier{wake: make(chan struct{}, 1), cancel: cancel, done: make(chan struct{})}
	s.copier.kick()
	go s.runCopier(ctx)
}

// kick asks the copier to run; kicks while it waits or works fold into one.
func (c *copier) kick() {
	if c == nil {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (s *Store) runCopier(ctx context.Context) {
	c := s.copier
	defer close(c.done)
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
		}
		t.Reset(refDelay)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := s.auditReady(ctx); err != nil && ctx.Err() == nil {
			// Most likely the write lock stayed busy; searches catch up on their own meanwhile.
			c.kick()
		}
	}
}

// stop ends the copier, interrupting a chunk in progress (which then rolls back), and waits for it.
func (c *copier) stop() {
	if c == nil {
		return
	}
	c.cancel()
	<-c.done
}
