package api

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// The access seam. What a caller may see is decided in package auth, as data (auth.Restriction): the
// patients, practices, publication, record date and withheld labels that confine each type. Every path
// that reads resources applies it through one of two functions:
//   - restrict turns it into store clauses (restrictionClauses, the one translation) on a query and on
//     every sub-query inside it (chains, _has). Searches, counts, includes and conditional matches all
//     call it before running a query, so that filtering happens before paging and counting.
//   - canRead checks one resource fetched by id (read, vread, history entries, included resources):
//     auth.CanAccess decides on the resource's facts, read from its index entries (auth.FactsOf), against
//     the same Restriction.
//
// Writes are checked by checkWrites, below, which commit runs before every write whatever handler
// makes it.

// restrict confines q, recursively, to the caller's readable resources.
func (s *Server) restrict(req *request, q *store.Query) error {
	caller := req.caller
	if caller == nil {
		// Only authorised requests reach a query; anything else is a bug, and must see nothing.
		return internal(errors.New("restrict: no caller"))
	}
	restrictFor(caller, q)
	s.noteRestricted(req, caller.Restrict(q.Type), q)
	return nil
}

func restrictFor(caller *auth.Caller, q *store.Query) {
	for i := range q.Clauses {
		for j := range q.Clauses[i] {
			if sub := q.Clauses[i][j].Sub; sub != nil {
				restrictFor(caller, sub)
			}
		}
	}
	for _, c := range restrictionClauses(caller.Restrict(q.Type), q.Type) {
		// A patient's compartment search names the very clause the restriction adds
		// (Immunization?patient=theirs); a second copy would be tested again on every candidate.
		if !slices.ContainsFunc(q.Clauses, func(o store.Clause) bool { return reflect.DeepEqual(o, c) }) {
			q.Clauses = append(q.Clauses, c)
		}
	}
}

// nothing matches no resource: ids are never empty.
var nothing = store.Clause{{Param: store.ParamID, Match: store.MatchExact, Value: ""}}

// restrictionClauses is the one translation of a Restriction into store clauses, ANDed with a query's
// own. The withheld-label clauses come last, one per label, so that noteRestricted can probe for what
// they left out.
func restrictionClauses(r auth.Restriction, typ string) []store.Clause {
	if r.Nothing {
		return []store.Clause{nothing}
	}
	var out []store.Clause
	switch {
	case r.PracticeParam != "":
		out = append(out, store.Clause{{Param: r.PracticeParam, Match: store.MatchRefIn, Sub: practiceOrgs(r.Practices)}})
	case r.PatientParam == "":
	case len(r.Practices) > 0:
		registered := practicePatients(r.Practices)
		if typ == "Patient" {
			out = append(out, registered)
		} else {
			out = append(out, store.Clause{{Param: r.PatientParam, Match: store.MatchRefIn,
				Sub: &store.Query{Type: "Patient", Clauses: []store.Clause{registered}}}})
		}
	default:
		var cl store.Clause
		for _, id := range r.Patients {
			if r.PatientParam == store.ParamID {
				cl = append(cl, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: id})
			} else {
				cl = append(cl, store.Predicate{Param: r.PatientParam, Match: store.MatchExact, Value: "Patient/" + id})
			}
		}
		if len(cl) == 0 {
			cl = nothing
		}
		out = append(out, cl)
	}
	if r.PublishedOnly {
		out = append(out, store.Clause{{Param: auth.OnlineBookableParam, Match: store.MatchToken, AnySystem: true, Value: "true"}})
	}
	if r.DateParam != "" {
		out = append(out, store.Clause{{Param: r.DateParam, Match: store.MatchRange,
			Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: r.From.UnixMilli()}}}})
	}
	for _, l := range r.Withheld {
		system, code, _ := strings.Cut(l, "|")
		out = append(out, store.Clause{{Param: "_security", Match: store.MatchToken, Not: true, System: system, Value: code}})
	}
	return out
}

// practicePatients matches Patients registered at one of the practices: their managingOrganization or
// generalPractitioner is an Organization with one of the ODS codes.
func practicePatients(ods []string) store.Clause {
	orgs := practiceOrgs(ods)
	var cl store.Clause
	for _, p := range practiceParams {
		cl = append(cl, store.Predicate{Param: p, Match: store.MatchRefIn, Sub: orgs})
	}
	return cl
}

// practiceOrgs matches the Organizations of the practices with the ODS codes.
func practiceOrgs(ods []string) *store.Query {
	var byCode store.Clause
	for _, code := range ods {
		byCode = append(byCode, store.Predicate{Param: "identifier", Match: store.MatchToken, System: fhir.ODSOrganizationSystem, Value: code})
	}
	return &store.Query{Type: "Organization", Clauses: []store.Clause{byCode}}
}

// canRead reports whether the caller may read r; the error is the refusal to send.
func (s *Server) canRead(req *request, r store.Resource) error {
	caller := req.caller
	if caller == nil {
		return internal(errors.New("canRead: no caller"))
	}
	d, err := s.mayRead(req, caller, r)
	if err != nil {
		return err
	}
	if d.Outcome == auth.DenyRedacted {
		// Answered exactly as for a resource that does not exist, so that a redacted entry's existence
		// is not revealed either.
		req.decide(d)
		return fail(kindNotFound, "%s/%s is not known to this server", r.Type, r.ID)
	}
	if !d.Allow() {
		return s.refuse(req, d)
	}
	return nil
}

// mayRead is canRead's decision, without recording it as the request's outcome: history pages use it
// to leave out entries silently.
func (s *Server) mayRead(req *request, caller *auth.Caller, r store.Resource) (auth.Decision, error) {
	if !caller.HasScope(auth.Read, r.Type) && !caller.HasScope(auth.Search, r.Type) {
		return auth.Authorize(caller, auth.Read, r.Type), nil
	}
	f, err := s.facts(req, caller, r, nil)
	if err != nil {
		return auth.Decision{}, err
	}
	return auth.CanAccess(caller, auth.Interaction(req.interaction), f), nil
}

// facts reads what the policy decides on about r from r's index entries, the values its searches are
// matched on, and for GP systems where its patients are registered. A tombstone has no body, so the
// version before it speaks for it; and for patients, a redaction label on the newest version hides every
// version, since earlier ones hold the same content. index is r's entries when the caller has them (a
// write about to be stored carries them), nil otherwise: the body is then decoded for them. Decoding
// each entry of a Synthea transaction again was 2% of an import's CPU.
func (s *Server) facts(req *request, caller *auth.Caller, r store.Resource, index []fhir.IndexEntry) (auth.Facts, error) {
	ctx := req.ctx()
	if auth.ClassOf(r.Type) == auth.ClassAudit {
		return auditFacts(r)
	}
	body := r.Body
	if r.Deleted {
		if r.VersionID <= 1 {
			return auth.Facts{Type: r.Type}, nil
		}
		prev, err := s.store.GetVersion(ctx, r.Type, r.ID, r.VersionID-1)
		if err != nil {
			return auth.Facts{Type: r.Type}, err
		}
		body = prev.Body
	}
	params := auth.FactParams(r.Type)
	system := caller.Kind == auth.KindSystem && auth.ClassOf(r.Type) == auth.ClassPatient
	if system && r.Type == "Patient" {
		// Where the patient is registered is in the same body: one decoding serves both.
		params = patientSystemParams()
	}
	var entries []fhir.IndexEntry
	if index != nil && !r.Deleted {
		entries = paramEntries(index, params)
	} else {
		var err error
		if entries, err = s.entriesOf(body, params...); err != nil {
			return auth.Facts{Type: r.Type}, err
		}
	}
	f := auth.FactsOf(r.Type, r.ID, entries)
	if !r.Deleted {
		if req.patientsOfVersion == nil {
			req.patientsOfVersion = map[versionKey][]string{}
		}
		req.patientsOfVersion[versionKey{r.Type, r.ID, r.VersionID}] = f.PatientIDs
	}
	if caller.RedactionApplies() && !f.Redacted && (r.Deleted || req.readCurrent != versionKey{r.Type, r.ID, r.VersionID}) {
		newest, err := s.newestBody(ctx, r)
		if err != nil {
			return f, err
		}
		if newest != nil {
			if entries, err := s.entriesOf(newest, "_security"); err != nil {
				return f, err
			} else {
				f.Redacted = auth.FactsOf(r.Type, r.ID, entries).Redacted
			}
		}
	}
	if caller.Kind == auth.KindSystem && auth.ClassOf(r.Type) == auth.ClassPractice {
		for _, id := range f.Organizations {
			codes, err := s.orgODS(req, id)
			if err != nil {
				return f, err
			}
			f.PracticeODS = append(f.PracticeODS, codes...)
		}
		return f, nil
	}
	if !system {
		return f, nil
	}
	for _, pid := range f.PatientIDs {
		var pt []fhir.IndexEntry
		if r.Type == "Patient" && pid == r.ID {
			pt = entries
		} else if codes, ok := req.practiceMemo()[pid]; ok {
			f.PracticeODS = append(f.PracticeODS, codes...)
			continue
		}
		codes, err := s.practicesOf(req, pid, pt)
		if err != nil {
			return f, err
		}
		f.PracticeODS = append(f.PracticeODS, codes...)
	}
	return f, nil
}

// patientSystemParams are a Patient's fact parameters and its practice parameters, which a GP system's
// access to it needs; made once.
var patientSystemParams = sync.OnceValue(func() []string {
	return slices.Concat(auth.FactParams("Patient"), practiceParams)
})

// practicesOf returns the ODS codes of the practices where patient pid is registered, reading the
// Patient's entries (pt, or its current version's when pt is nil) and its Organizations. Outside a
// transaction the answer is kept for the rest of the request, so that a page of one patient's record
// looks the practice up once. A transaction may change the registration it reads, so while one is
// staged the answer is kept only for the checks of its writes (commit), and only when it was read from
// the staged Patient.
func (s *Server) practicesOf(req *request, pid string, pt []fhir.IndexEntry) ([]string, error) {
	live := pt == nil
	if live {
		cur, ok, err := s.live(req, "Patient", pid)
		if !ok {
			return nil, err
		}
		if pt, err = s.entriesOf(cur.Body, practiceParams...); err != nil {
			return nil, err
		}
	}
	var codes []string
	seen := map[string]bool{}
	for _, e := range pt {
		if e.Param != "organization" && e.Param != "general-practitioner" {
			continue
		}
		id, ok := strings.CutPrefix(e.Value, "Organization/")
		if !ok || seen[id] {
			continue
		}
		seen[id] = true
		oc, err := s.orgODS(req, id)
		if err != nil {
			return nil, err
		}
		codes = append(codes, oc...)
	}
	switch {
	case req.staged == nil:
		if req.practices == nil {
			req.practices = map[string][]string{}
		}
		req.practices[pid] = codes
	case req.checkedPractices != nil && live:
		// Only what the staged Patient says: pt may be a version the transaction replaces.
		req.checkedPractices[pid] = codes
	}
	return codes, nil
}

// practiceMemo is the request's memo of practicesOf that may be read now: none while a transaction is
// staged, except while its writes are checked (commit).
func (req *request) practiceMemo() map[string][]string {
	if req.staged == nil {
		return req.practices
	}
	return req.checkedPractices
}

// paramEntries returns the entries of index for params, in index's order: what entriesOf finds in the
// body that index was extracted from (fhir's TestExtractBodyParamsAgreesWithFullExtraction).
func paramEntries(index []fhir.IndexEntry, params []string) []fhir.IndexEntry {
	var out []fhir.IndexEntry
	for _, e := range index {
		if slices.Contains(params, e.Param) {
			out = append(out, e)
		}
	}
	return out
}

// orgODS returns the ODS codes of Organization id; none when it does not exist or has none.
func (s *Server) orgODS(req *request, id string) ([]string, error) {
	org, ok, err := s.live(req, "Organization", id)
	if !ok {
		return nil, err
	}
	oe, err := s.entriesOf(org.Body, "identifier")
	if err != nil {
		return nil, err
	}
	var codes []string
	for _, e := range oe {
		if e.Param == "identifier" && e.System == fhir.ODSOrganizationSystem && e.Value != "" {
			codes = append(codes, e.Value)
		}
	}
	return codes, nil
}

// live reads the current version of typ/id as the request sees it; ok is false, with no error, when it
// does not exist or is deleted.
func (s *Server) live(req *request, typ, id string) (r store.Resource, ok bool, err error) {
	r, err = s.current(req, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, false, nil
	}
	return r, err == nil && !r.Deleted, err
}

// practiceParams are the Patient parameters that name where a patient is registered, as the clauses of
// practicePatients read them.
var practiceParams = []string{"organization", "general-practitioner"}

// entriesOf computes a stored body's index entries for params, as the store holds them for its current
// version. The slice is shared (entrycache.go): callers must not change it.
func (s *Server) entriesOf(body []byte, params ...string) ([]fhir.IndexEntry, error) {
	if len(body) == 0 {
		return nil, nil
	}
	entries, err := s.entryCache.entries(body, params, func() ([]fhir.IndexEntry, error) {
		return fhir.ExtractBodyParams(body, s.cfg.BaseURL, params...)
	})
	if err != nil {
		return nil, internal(err)
	}
	return entries, nil
}

// newestBody returns the body of the newest version of r's resource that has one; nil when none has.
func (s *Server) newestBody(ctx context.Context, r store.Resource) ([]byte, error) {
	cur, err := s.store.Get(ctx, r.Type, r.ID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if cur.Deleted {
		if cur.VersionID <= 1 {
			return nil, nil
		}
		if cur, err = s.store.GetVersion(ctx, r.Type, r.ID, cur.VersionID-1); err != nil {
			return nil, err
		}
	}
	return cur.Body, nil
}

// checkWrites is the write guard: a GP system cannot create, change or delete anything belonging to a
// patient outside its practices, and cannot move a record out of them; a patient or proxy only what the
// online services let them. commit runs it on the caller's own writes, each under the interaction of
// the request (or bundle entry) that makes it; writes the server's own rules derive from them (the slot
// a booking claims, the issue a completed repeat request creates) follow from a write already checked.
// An in-process loader (Import) has no caller and is trusted.
func (s *Server) checkWrites(req *request, in auth.Interaction, writes []store.Write) error {
	if req.internal {
		return nil
	}
	caller := req.caller
	if caller == nil {
		return internal(errors.New("write without an authorised caller"))
	}
	for _, w := range writes {
		r := w.Resource
		if w.ExpectVersion > 0 {
			old, err := s.store.GetVersion(req.ctx(), r.Type, r.ID, w.ExpectVersion)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				if err := s.checkWrite(req, caller, in, old, nil, false); err != nil {
					return err
				}
			}
		}
		if !r.Deleted {
			if err := s.checkWrite(req, caller, in, r, w.Index, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// guardCurrent runs the write guard on cur, the current version a write would replace, before the caller
// is told anything about it: whether it matches If-Match, what the online-services rules say of it.
// Otherwise a caller could learn that another practice's patient (or another patient's appointment)
// exists, and at which version, from a 412 where a write without If-Match gets 403. commit checks the
// same version again with the new one; a resource that does not exist yet (VersionID 0) has nothing to
// guard.
func (s *Server) guardCurrent(req *request, in auth.Interaction, cur store.Resource) error {
	if req.internal || cur.VersionID == 0 {
		return nil
	}
	caller := req.caller
	if caller == nil {
		return internal(errors.New("write without an authorised caller"))
	}
	return s.checkWrite(req, caller, in, cur, nil, false)
}

// checkWrite decides on one version a write replaces or stores; stored is set for the version the
// write would store, which must also place a patient only at the caller's practices (auth.CanRegister).
// index is the version's index entries when known (facts).
func (s *Server) checkWrite(req *request, caller *auth.Caller, in auth.Interaction, r store.Resource, index []fhir.IndexEntry, stored bool) error {
	f, err := s.facts(req, caller, r, index)
	if err != nil {
		return err
	}
	d := auth.CanAccess(caller, in, f)
	if stored {
		// The placement's own refusal first, so that every move elsewhere is told the same thing,
		// whether it left one of the caller's practices in place or none.
		if reg := auth.CanRegister(caller, f); !reg.Allow() {
			d = reg
		}
	}
	if !d.Allow() {
		req.decide(d)
		return fail(kindForbidden, "%s", d.Reason)
	}
	return nil
}
