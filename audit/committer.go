package audit

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// appendTimeout bounds one batch's append, so that a store that hangs fails the requests waiting rather than
// holding them for ever.
const appendTimeout = 30 * time.Second

// ErrClosed is the committer's answer after Close.
var ErrClosed = errors.New("audit: the server is shutting down")

// Committer is the group committer of the audit trail. Requests hand it their records and wait; it
// appends every record waiting, up to MaxBatch, with one ApplyAudited without writes: one transaction
// (one fsync on SQLite) for the whole batch. While it writes, the next batch gathers, so the cost per
// record falls as the load rises. The store chains each batch on the head it finds inside the commit,
// so several processes (each with a committer) share one chain.
type Committer struct {
	st      Store
	log     *slog.Logger
	observe func(records int, failed bool)
	in      chan *auditPending
	mu      sync.RWMutex
	closed  bool
	done    chan struct{}

	// busy counts the requests being handled that will hand over a record: run waits for them (up to
	// gather) before committing, so that one commit carries them all.
	busy atomic.Int64
	// gather is gatherWait; a test lengthens it so that what it checks does not hang on the scheduler.
	gather time.Duration
	// notify is told of each durable batch (Notify).
	notify atomic.Pointer[func([]Record)]
}

// Notify has f told of each batch once it is durable, with Seq filled, on the committer's goroutine:
// f must not block or keep the slice. The uptake tally takes the records' Summaries from it, so that it
// need not read back and parse what this process has just written.
func (a *Committer) Notify(f func([]Record)) { a.notify.Store(&f) }

// Begin says that a request which will hand over a record is being handled; End that it no longer is
// (it has handed its record over, or will not). The committer waits briefly for such requests before a
// commit. End must come before the hand-over, so that the committer never waits for a request that is
// waiting for it.
func (a *Committer) Begin() { a.busy.Add(1) }

// End: see Begin.
func (a *Committer) End() { a.busy.Add(-1) }

type auditPending struct {
	rec Record
	err chan error
}

// NewCommitter starts a committer appending to st. observe, if not nil, is told the size of each
// commit and whether it failed (for metrics).
func NewCommitter(st Store, log *slog.Logger, observe func(records int, failed bool)) *Committer {
	if observe == nil {
		observe = func(int, bool) {}
	}
	a := &Committer{st: st, log: log, observe: observe, in: make(chan *auditPending, 4*MaxBatch), done: make(chan struct{}),
		gather: gatherWait}
	go a.run()
	return a
}

// Append hands rec to the committer and waits until it is durable or has failed. It does not give up when
// the request's context ends: the record is written either way, and the answer is only withheld.
func (a *Committer) Append(rec Record) error {
	p := &auditPending{rec: rec, err: make(chan error, 1)}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return ErrClosed
	}
	a.in <- p
	a.mu.RUnlock()
	return <-p.err
}

// AppendAll hands every record over before waiting for any, so that the records of a bundle's entries
// share the committer's batches instead of each waiting for one of its own.
func (a *Committer) AppendAll(recs []Record) error {
	if len(recs) == 1 {
		return a.Append(recs[0])
	}
	pending := make([]*auditPending, len(recs))
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return ErrClosed
	}
	for i, rec := range recs {
		pending[i] = &auditPending{rec: rec, err: make(chan error, 1)}
		a.in <- pending[i]
	}
	a.mu.RUnlock()
	var first error
	for _, p := range pending {
		if err := <-p.err; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// gatherWait bounds how long a commit waits for requests still being handled. A commit costs a WAL
// write and an fsync whatever it carries, so committing each record as it comes makes many small
// commits that keep the committer busy while the requests behind them queue; waiting a little for the
// requests in progress makes one commit of them all. The wait ends as soon as none is left, so a
// lone request is committed at once; and it is bounded, so a slow search does not hold up the others.
const gatherWait = time.Millisecond

// A commit also waits (up to gatherWait) until it carries followBatch of the last commit's records.
// Requests in progress are counted only once they reach the audit middleware; under load, the clients
// of the commit just made are still reading their answers and sending their next requests, and none
// is counted yet. The first to arrive was then committed alone, and the next commit was small too: at
// 64 connections of P9 reads a fifth of the commits carried one record and half of them four or fewer
// (19 records on average). Waiting for most of the last commit's number keeps the batches as large as
// the load is; after a lone request the wait is nothing. Measured with gpfhir bench, alternating
// builds: P9 reads rose from 0.143 to 0.153-0.158 of the limit at 64 connections and from 0.105 to
// 0.118-0.121 at 16, and p99 at 16 fell from 9.1-9.3 to 8.5 ms; waiting for half measured between the
// two, and a 2 ms bound no better than 1 ms.
func followBatch(last int) int { return last * 3 / 4 }

func (a *Committer) run() {
	defer close(a.done)
	batch := make([]*auditPending, 0, MaxBatch)
	timer := time.NewTimer(0)
	<-timer.C
	last := 0
	for {
		p, ok := <-a.in
		if !ok {
			return
		}
		batch = append(batch[:0], p)
		open := true
	fill:
		for len(batch) < MaxBatch {
			select {
			case p, ok := <-a.in:
				if !ok {
					open = false
					break fill
				}
				batch = append(batch, p)
			default:
				break fill
			}
		}
		want := followBatch(last)
		if open && (a.busy.Load() > 0 || len(batch) < want) && len(batch) < MaxBatch {
			timer.Reset(a.gather)
		gather:
			for len(batch) < MaxBatch && (a.busy.Load() > 0 || len(batch) < want) {
				select {
				case p, ok := <-a.in:
					if !ok {
						break gather
					}
					batch = append(batch, p)
				case <-timer.C:
					break gather
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		last = len(batch)
		a.commit(batch)
	}
}

func (a *Committer) commit(batch []*auditPending) {
	records := make([]Record, len(batch))
	for i, p := range batch {
		records[i] = p.rec
	}
	// The store chains the batch on the head it finds inside its commit, so neither another process
	// appending nor a write committed with its own record (ApplyAudited with writes) makes it start over.
	ctx, cancel := context.WithTimeout(context.Background(), appendTimeout)
	err := a.st.ApplyAudited(ctx, nil, records)
	cancel()
	a.observe(len(batch), err != nil)
	if err != nil {
		// Ids only: the records themselves name patients.
		a.log.Error("audit records could not be written; their requests fail", "records", len(batch), "error", err)
	} else if f := a.notify.Load(); f != nil {
		(*f)(records)
	}
	for _, p := range batch {
		p.err <- err
	}
}

// Close stops taking records, writes every record already handed over, and waits for the committer.
func (a *Committer) Close() {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.done
		return
	}
	a.closed = true
	close(a.in)
	a.mu.Unlock()
	<-a.done
}
