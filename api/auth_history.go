package api

import (
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// historyBatch is how many versions a filtered history reads at a time.
const historyBatch = 100

// historyScan bounds how many versions one history page reads and checks. A page that reaches it
// before it is full is answered as it stands, with a next link that continues after the last version
// read, so that a page costs what its size and this bound cost, however much of the store the caller
// may not see (a patient's system history once read 152,000 audit records for a page of ten).
const historyScan = 1000

// visibleHistory returns up to want versions that the caller may read, in history order. The store
// lists only the types the caller may read; within them versions are checked one by one, and an entry
// the caller may not read is left out, as it would be from a search. Instance history of a resource
// the caller may not read is refused outright, as a read would be.
//
// When the scan bound ends the listing early, more is the position of the last version read, from
// which the next page continues; it is nil when the listing reached its end or was filled.
func (s *Server) visibleHistory(req *request, hq store.HistoryQuery, want int) (out []store.Resource, more *store.HistoryPosition, err error) {
	ctx := req.ctx()
	caller := req.caller
	if hq.ID != "" {
		cur, err := s.store.Get(ctx, hq.Type, hq.ID)
		if err != nil {
			return nil, nil, err
		}
		if err := s.canRead(req, cur); err != nil {
			return nil, nil, err
		}
	}
	if hq.Type == "" {
		hq.Types = readableTypes(caller, auth.Interaction(req.interaction))
		if len(hq.Types) == 0 {
			return nil, nil, nil
		}
	}
	bound := historyScan
	if s.cfg.historyScan > 0 {
		bound = s.cfg.historyScan
	}
	scanned := 0
	if s.cfg.historyScanned != nil {
		defer func() { s.cfg.historyScanned(scanned) }()
	}
	for {
		hq.Limit = min(max(want, historyBatch), bound-scanned)
		batch, err := s.store.History(ctx, hq)
		if err != nil {
			return nil, nil, err
		}
		scanned += len(batch)
		for _, v := range batch {
			d, err := s.mayRead(req, caller, v)
			if err != nil {
				return nil, nil, err
			}
			if !d.Allow() {
				continue
			}
			out = append(out, v)
			if len(out) == want {
				return out, nil, nil
			}
		}
		if len(batch) < hq.Limit {
			return out, nil, nil
		}
		last := batch[len(batch)-1]
		hq.After = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
		if scanned >= bound {
			return out, hq.After, nil
		}
	}
}

// readableTypes are the types whose versions the caller's system history (interaction in) may list:
// those mayRead can allow at all, by scope and by role. The store then never reads the rest (for a GP
// system or a patient, the audit trail, which is most of the store). It may name more types than
// mayRead allows entries of, never fewer: a refusal for want of the history scope itself leaves the
// type in, since mayRead accepts a read or a search scope.
func readableTypes(caller *auth.Caller, in auth.Interaction) []string {
	var out []string
	for _, t := range fhir.Types() {
		if !caller.HasScope(auth.Read, t.Name) && !caller.HasScope(auth.Search, t.Name) {
			continue
		}
		if d := auth.Authorize(caller, in, t.Name); d.Allow() || d.Outcome == auth.DenyScope {
			out = append(out, t.Name)
		}
	}
	return out
}
