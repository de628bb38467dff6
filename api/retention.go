package api

import (
	"context"
	"time"
)

// defaultRetentionEvery is how often the retention loop prunes after its first run at start.
const defaultRetentionEvery = time.Hour

// retention is the loop that prunes the audit trail when Config.AuditRetention is set.
type retention struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// startRetention starts the retention loop if Config.AuditRetention is set: it removes the audit records
// recorded more than AuditRetention before the server clock (Config.Now), once at start and then every
// hour, with store.PruneAudit, which keeps the chain verifiable from its anchor. Several processes sharing
// a store may each run it: PruneAudit tolerates concurrent prunes. Close stops it.
func (s *Server) startRetention() {
	if s.cfg.AuditRetention <= 0 {
		return
	}
	every := s.cfg.retentionEvery
	if every <= 0 {
		every = defaultRetentionEvery
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &retention{cancel: cancel, done: make(chan struct{})}
	s.retention = r
	go func() {
		defer close(r.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.pruneAudit(ctx)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// pruneAudit runs one prune and logs one line: how many records it removed and where the chain now
// starts. Counts and positions only; the records name patients.
func (s *Server) pruneAudit(ctx context.Context) {
	before := s.now().Add(-s.cfg.AuditRetention)
	anchor, removed, err := s.trail.PruneAudit(ctx, before)
	switch {
	case err != nil && ctx.Err() != nil:
		// Stopping: Close cancelled the prune; what it removed so far is a shorter, intact chain.
	case err != nil:
		s.log.Error("audit retention: prune failed", "before", before, "removed", removed, "anchor_seq", anchor.Seq, "error", err)
	default:
		s.log.Info("audit retention: pruned old audit records", "before", before, "removed", removed, "anchor_seq", anchor.Seq)
	}
}

// stopRetention stops the retention loop, cancelling a prune in progress, and waits for it.
func (s *Server) stopRetention() {
	if s.retention != nil {
		s.retention.cancel()
		<-s.retention.done
	}
}
