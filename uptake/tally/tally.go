package tally

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/uptake"
)

// Tally keeps one store's uptake figures: the projector of the counts, the census, and reading a month.
// Several Tallies (one per gpfhir process) may share a store.
type Tally struct {
	st   audit.Backend
	base string
	log  *slog.Logger
	now  func() time.Time

	// stepMu serialises this process's projector steps (the background loop and CatchUp); other
	// processes are kept in step by compare-and-swap.
	stepMu sync.Mutex
	// censusMu serialises this process's censuses.
	censusMu sync.Mutex
	// dirty is set when the projector has read a change to the resources a census counts, and cleared
	// when a census starts; lastCensus is when this process last took one of the current month.
	dirty      atomic.Bool
	lastCensus atomic.Int64

	stop chan struct{}
	done chan struct{}

	// offered holds, in Seq order, the Summaries of records this process wrote and has not counted yet
	// (Offer): the projector counts a run of them that starts at its checkpoint without reading them.
	offerMu sync.Mutex
	offered []audit.Record
	// wake starts a projector step before the loop's next tick, once a step's worth is offered.
	wake chan struct{}
}

// offerLimit bounds what Offer keeps: past it, records are left for the projector to read back, as
// another process's are. Under load the loop is woken once a step's worth has been offered, so the
// limit is reached only when the projector falls behind.
const offerLimit = 8 * stepRecords

// Offer gives the projector the Summaries of records this process has appended (Committer.Notify, or
// a write's own ApplyAudited): it counts them from there instead of reading them back and parsing their
// JSON (audit.Summarize), which under patients' reads cost a tenth of each read. Records without a
// Summary, and any this process did not write (another process sharing the store), leave a gap, which
// the projector reads from the store as before; what it counts is the same either way
// (TestOfferedSummariesCountAsTheRecordsWould).
func (t *Tally) Offer(recs []audit.Record) {
	t.offerMu.Lock()
	defer t.offerMu.Unlock()
	for _, r := range recs {
		if r.Summary == nil || len(t.offered) >= offerLimit {
			continue
		}
		kept := audit.Record{Seq: r.Seq, Summary: r.Summary}
		// Batches are committed in Seq order, but a write's own batch may be offered after a later one.
		if n := len(t.offered); n == 0 || t.offered[n-1].Seq < r.Seq {
			t.offered = append(t.offered, kept)
			continue
		}
		i, found := slices.BinarySearchFunc(t.offered, r.Seq, func(o audit.Record, seq int64) int { return cmp.Compare(o.Seq, seq) })
		if !found {
			t.offered = slices.Insert(t.offered, i, kept)
		}
	}
	if len(t.offered) >= stepRecords {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// offeredRun returns the offered records that follow after without a gap, at most n, and forgets those
// up to after, which are counted.
func (t *Tally) offeredRun(after int64, n int) []audit.Record {
	t.offerMu.Lock()
	defer t.offerMu.Unlock()
	i, _ := slices.BinarySearchFunc(t.offered, after+1, func(o audit.Record, seq int64) int { return cmp.Compare(o.Seq, seq) })
	t.offered = slices.Delete(t.offered, 0, i)
	k := 0
	for k < len(t.offered) && k < n && t.offered[k].Seq == after+1+int64(k) {
		k++
	}
	return slices.Clone(t.offered[:k])
}

// New makes the tally of st. base is the server's base URL, which index entries of references are
// relative to; now is the clock.
func New(st audit.Backend, base string, log *slog.Logger, now func() time.Time) *Tally {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &Tally{st: st, base: base, log: log, now: now, wake: make(chan struct{}, 1)}
}

// Loop says how the background loop runs.
type Loop struct {
	// Every is how often the projector looks for new audit records. Default 2 s.
	Every time.Duration
	// CensusEvery is the least time between two censuses of the current month that changes to the
	// resources call for. Default 5 minutes: a census reads every Patient.
	CensusEvery time.Duration
}

// Start runs the projector, and the census when changes call for one, in the background until Stop.
func (t *Tally) Start(l Loop) {
	if l.Every <= 0 {
		l.Every = 2 * time.Second
	}
	if l.CensusEvery <= 0 {
		l.CensusEvery = 5 * time.Minute
	}
	// Changes made before this process started may not be in the current month's census yet.
	t.dirty.Store(true)
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-t.stop
		cancel()
	}()
	go func() {
		defer close(t.done)
		tick := time.NewTicker(l.Every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			case <-t.wake:
			}
			if err := t.CatchUp(ctx); err != nil && ctx.Err() == nil {
				t.log.Warn("uptake projector", "error", err)
			}
			if t.dirty.Load() && t.now().Sub(time.UnixMilli(t.lastCensus.Load())) >= l.CensusEvery {
				if err := t.TakeCensus(ctx, uptake.PeriodOf(t.now())); err != nil && ctx.Err() == nil {
					t.log.Warn("uptake census", "error", err)
				}
			}
		}
	}()
}

// Stop ends the background loop, cancelling a step or census in progress, and waits for it.
func (t *Tally) Stop() {
	if t.stop == nil {
		return
	}
	close(t.stop)
	<-t.done
	t.stop = nil
}

// CatchUp counts every audit record appended before it was called, so that an answer built after it
// includes every request answered before. Records appended meanwhile may be counted too.
func (t *Tally) CatchUp(ctx context.Context) error {
	head, _, err := t.st.AuditHead(ctx)
	if err != nil {
		return err
	}
	for {
		seq, err := t.Checkpoint(ctx)
		if err != nil {
			return err
		}
		if seq >= head {
			return nil
		}
		if _, err := t.Step(ctx); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// Checkpoint is the Seq of the last audit record counted.
func (t *Tally) Checkpoint(ctx context.Context) (int64, error) {
	var cp checkpoint
	_, err := get(ctx, t.st, TypeCheckpoint, checkpointID, &cp)
	return cp.Seq, err
}
