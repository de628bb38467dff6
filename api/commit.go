package api

import (
	"errors"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/store"
)

// change is what a write decides before anything is stored: the atomic group of writes, the answer it
// earns, and what its audit record names. commit is the only way a change reaches the store.
type change struct {
	writes []store.Write
	// checks are the caller's own writes, each under the interaction that makes it (a bundle entry's,
	// or the request's), for the write guard. The rest of writes are derived by the server's rules from
	// a write that is checked: the slot a booking claims, the plan a repeat request marks.
	checks []check
	// conflict, when set, is the answer if the group loses a compare-and-swap race, where retrying would
	// not help (the slot was taken by another booking).
	conflict error

	// status and touched are the answer and the resources the request's audit record names.
	status  int
	touched []store.Resource
	// records, when set, builds the audit records stored with the writes instead of the request's own:
	// a transaction's (the bundle's and each entry's), or one batch entry's.
	records func() ([]audit.Record, error)
	// entry: the records are a batch entry's; the request's own record is still to be appended.
	entry bool
	// respond sends the answer, once the writes and their records are durable.
	respond func()
}

// check is one write the guard checks, under the interaction that makes it.
type check struct {
	in    auth.Interaction
	write store.Write
	// txEntry is the position, counted from 1, of the transaction entry that makes the write, named in
	// a refusal; 0 outside a transaction.
	txEntry int
}

// commit runs a change, in this order: the write guard on the caller's own writes; the writes applied
// atomically together with their audit records, so that a change never stands without its record; and
// the answer. Single interactions and bundle entries alike go through it.
func (s *Server) commit(req *request, ch change) error {
	if err := s.checkChange(req, ch); err != nil {
		return err
	}
	err := s.apply(req, ch)
	if errors.Is(err, store.ErrVersionConflict) && ch.conflict != nil {
		return ch.conflict
	}
	if err != nil {
		return err
	}
	req.touch(ch.touched...)
	if ch.respond != nil {
		ch.respond()
	}
	return nil
}

// checkChange runs the write guard on each of ch's checks. Within a transaction, where each patient is
// registered is looked up once for all its entries rather than once for each (a Synthea patient's
// bundle has hundreds, each naming the patient).
func (s *Server) checkChange(req *request, ch change) error {
	if req.staged != nil {
		req.checkedPractices = map[string][]string{}
		defer func() { req.checkedPractices = nil }()
	}
	for _, ck := range ch.checks {
		if err := s.checkWrites(req, ck.in, []store.Write{ck.write}); err != nil {
			if ck.txEntry > 0 {
				return entryError(ck.txEntry-1, err)
			}
			return err
		}
	}
	return nil
}

// apply stores the writes with their audit records; without an audit trail (a loader, or the benchmark
// that measures what audit costs) it stores the writes alone.
func (s *Server) apply(req *request, ch change) error {
	if s.audit == nil || req.internal {
		return s.store.Apply(req.ctx(), ch.writes)
	}
	var recs []audit.Record
	if ch.records != nil {
		var err error
		if recs, err = ch.records(); err != nil {
			return err
		}
	} else {
		touched := append(req.touched[:len(req.touched):len(req.touched)], ch.touched...)
		rec, err := s.auditRecordOf(req, req.interaction, ch.status, touched, req.path)
		if err != nil {
			return err
		}
		recs = []audit.Record{rec}
	}
	if err := s.trail.ApplyAudited(req.ctx(), ch.writes, recs); err != nil {
		return err
	}
	if s.tally != nil {
		s.tally.Offer(recs)
	}
	if !ch.entry {
		req.audited, req.auditedStatus = true, ch.status
	}
	return nil
}

// change is the change of one prepared write: the caller's own resource first, then what the
// online-services rules derive from it, answered with status.
func (v prepared) change(in string, status int, respond func()) change {
	return change{
		writes:   v.writes,
		checks:   []check{{in: auth.Interaction(in), write: v.writes[0]}},
		conflict: v.conflict,
		status:   status,
		touched:  []store.Resource{v.r},
		respond:  respond,
	}
}
