package api

import (
	"github.com/gpfhir/gpfhir/store"
)

// historyBatch is how many versions a filtered history reads at a time.
const historyBatch = 100

// visibleHistory returns up to want versions that the caller may read, in history order. The store
// cannot filter history by compartment, so versions are read in batches and checked one by one; an
// entry the caller may not read is left out, as it would be from a search. Instance history of a
// resource the caller may not read is refused outright, as a read would be.
func (s *Server) visibleHistory(req *request, hq store.HistoryQuery, want int) ([]store.Resource, error) {
	ctx := req.ctx()
	caller := req.caller
	if hq.ID != "" {
		cur, err := s.store.Get(ctx, hq.Type, hq.ID)
		if err != nil {
			return nil, err
		}
		if err := s.canRead(req, cur); err != nil {
			return nil, err
		}
	}
	var out []store.Resource
	for {
		hq.Limit = max(want, historyBatch)
		batch, err := s.store.History(ctx, hq)
		if err != nil {
			return nil, err
		}
		for _, v := range batch {
			d, err := s.mayRead(req, caller, v)
			if err != nil {
				return nil, err
			}
			if !d.Allow() {
				continue
			}
			out = append(out, v)
			if len(out) == want {
				return out, nil
			}
		}
		if len(batch) < hq.Limit {
			return out, nil
		}
		last := batch[len(batch)-1]
		hq.After = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
	}
}
