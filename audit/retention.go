package audit

import (
	"context"
	"log/slog"
	"time"
)

// Retention is a loop that prunes the audit trail: it removes the records recorded longer ago than a
// retention period, once at start and then periodically, with PruneAudit, which keeps the chain
// verifiable from its anchor. Several processes sharing a store may each run one: PruneAudit tolerates
// concurrent prunes.
type Retention struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// StartRetention starts pruning st of the records recorded more than keep before now(), at once and
// then every every. Stop ends it.
func StartRetention(st Store, keep, every time.Duration, now func() time.Time, log *slog.Logger) *Retention {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Retention{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			prune(ctx, st, now().Add(-keep), log)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return r
}

// prune runs one prune and logs one line: how many records it removed and where the chain now starts.
// Counts and positions only; the records name patients.
func prune(ctx context.Context, st Store, before time.Time, log *slog.Logger) {
	anchor, removed, err := st.PruneAudit(ctx, before)
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: Stop cancelled the prune; what it removed so far is a shorter, intact chain.
	case err != nil:
		log.Error("audit retention: prune failed", "before", before, "removed", removed, "anchor_seq", anchor.Seq, "error", err)
	default:
		log.Info("audit retention: pruned old audit records", "before", before, "removed", removed, "anchor_seq", anchor.Seq)
	}
}

// Stop ends the loop, cancelling a prune in progress, and waits for it.
func (r *Retention) Stop() {
	r.cancel()
	<-r.done
}
