package api

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// The access seam. Every path that reads resources goes through these two functions, so that the
// authorisation policy has exactly one place to say what a caller may see:
//   - restrict adds, to a query and to every sub-query inside it (chains, _has), the clauses that confine
//     it to what the caller may read. Searches, counts, includes and conditional matches all call it
//     before running a query, so that filtering happens before paging and counting.
//   - canRead checks one resource fetched by id (read, vread, history entries, included resources).
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
	if err := s.restrictFor(caller, q); err != nil {
		return err
	}
	s.noteRestricted(req, caller, q)
	return nil
}

func (s *Server) restrictFor(caller *auth.Caller, q *store.Query) error {
	for i := range q.Clauses {
		for j := range q.Clauses[i] {
			if sub := q.Clauses[i][j].Sub; sub != nil {
				if err := s.restrictFor(caller, sub); err != nil {
					return err
				}
			}
		}
	}
	if cl := compartmentClause(caller, q.Type); cl != nil {
		q.Clauses = append(q.Clauses, cl)
	}
	q.Clauses = append(q.Clauses, onlineClauses(caller, q.Type)...)
	if caller.RedactionApplies() {
		q.Clauses = append(q.Clauses, notRedacted...)
	}
	return nil
}

// nothing matches no resource: ids are never empty. A query over a type the caller may not list gets it,
// so that a chain, _has or include through that type reveals nothing rather than failing the search.
var nothing = store.Clause{{Param: store.ParamID, Match: store.MatchExact, Value: ""}}

// compartmentClause is the clause that confines a query over typ to what caller may see; nil when the
// caller may see every resource of the type.
func compartmentClause(caller *auth.Caller, typ string) store.Clause {
	if !auth.Authorize(caller, auth.Search, typ).Allow() && !auth.Authorize(caller, auth.Read, typ).Allow() {
		return nothing
	}
	if auth.ClassOf(typ) == auth.ClassAudit {
		return auditClause(caller)
	}
	if auth.ClassOf(typ) != auth.ClassPatient {
		return nil
	}
	def, _ := auth.PatientCompartment(typ)
	switch caller.Kind {
	case auth.KindPatient:
		if len(caller.PatientIDs) == 0 {
			return nothing
		}
		var cl store.Clause
		for _, id := range caller.PatientIDs {
			if typ == "Patient" {
				cl = append(cl, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: id})
			} else {
				cl = append(cl, store.Predicate{Param: def.Param, Match: store.MatchExact, Value: "Patient/" + id})
			}
		}
		return cl
	case auth.KindSystem:
		registered := practicePatients(caller.ODS)
		if typ == "Patient" {
			return registered
		}
		return store.Clause{{Param: def.Param, Match: store.MatchRefIn,
			Sub: &store.Query{Type: "Patient", Clauses: []store.Clause{registered}}}}
	}
	return nothing
}

// practicePatients matches Patients registered at one of the practices: their managingOrganization or
// generalPractitioner is an Organization with one of the ODS codes.
func practicePatients(ods []string) store.Clause {
	if len(ods) == 0 {
		return nothing
	}
	var byCode store.Clause
	for _, code := range ods {
		byCode = append(byCode, store.Predicate{Param: "identifier", Match: store.MatchToken, System: fhir.ODSOrganizationSystem, Value: code})
	}
	orgs := &store.Query{Type: "Organization", Clauses: []store.Clause{byCode}}
	return store.Clause{
		{Param: "organization", Match: store.MatchRefIn, Sub: orgs},
		{Param: "general-practitioner", Match: store.MatchRefIn, Sub: orgs},
	}
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
	f, err := s.facts(req, caller, r)
	if err != nil {
		return auth.Decision{}, err
	}
	return auth.CanAccess(caller, auth.Interaction(req.interaction), f), nil
}

// facts works out whose record r belongs to, and for GP systems where those patients are registered.
// A tombstone has no body, so the version before it speaks for it.
func (s *Server) facts(req *request, caller *auth.Caller, r store.Resource) (auth.Facts, error) {
	ctx := req.ctx()
	f := auth.Facts{Type: r.Type}
	if caller.RedactionApplies() {
		if err := s.onlineFacts(ctx, &f, r); err != nil {
			return f, err
		}
	}
	if auth.ClassOf(r.Type) == auth.ClassAudit {
		return auditFacts(f, r)
	}
	if auth.ClassOf(r.Type) != auth.ClassPatient {
		return f, nil
	}
	body := r.Body
	if r.Deleted {
		if r.VersionID <= 1 {
			return f, nil
		}
		prev, err := s.store.GetVersion(ctx, r.Type, r.ID, r.VersionID-1)
		if err != nil {
			return f, err
		}
		body = prev.Body
	}
	var tree map[string]any
	if err := json.Unmarshal(body, &tree); err != nil {
		return f, internal(err)
	}
	def, _ := auth.PatientCompartment(r.Type)
	if r.Type == "Patient" {
		f.PatientIDs = []string{r.ID}
	} else {
		for _, path := range def.Paths {
			for _, ref := range refsAt(tree, path) {
				if typ, id, ok := s.localRef(ref); ok && typ == "Patient" {
					f.PatientIDs = append(f.PatientIDs, id)
				}
			}
		}
	}
	if caller.Kind != auth.KindSystem {
		return f, nil
	}
	seen := map[string]bool{}
	for _, pid := range f.PatientIDs {
		pt := tree
		if r.Type != "Patient" || pid != r.ID {
			cur, err := s.current(req, "Patient", pid)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return f, err
			}
			if cur.Deleted {
				continue
			}
			pt = nil
			if err := json.Unmarshal(cur.Body, &pt); err != nil {
				return f, internal(err)
			}
		}
		refs := append(refsAt(pt, "managingOrganization"), refsAt(pt, "generalPractitioner")...)
		for _, ref := range refs {
			typ, id, ok := s.localRef(ref)
			if !ok || typ != "Organization" || seen[id] {
				continue
			}
			seen[id] = true
			org, err := s.current(req, "Organization", id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return f, err
			}
			if org.Deleted {
				continue
			}
			f.PracticeODS = append(f.PracticeODS, odsCodes(org.Body)...)
		}
	}
	return f, nil
}

// refsAt collects the reference strings at a dotted element path, flattening arrays.
func refsAt(tree map[string]any, path string) []string {
	cur := []any{tree}
	for _, el := range strings.Split(path, ".") {
		var next []any
		for _, v := range cur {
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			switch x := m[el].(type) {
			case []any:
				next = append(next, x...)
			case nil:
			default:
				next = append(next, x)
			}
		}
		cur = next
	}
	var out []string
	for _, v := range cur {
		if m, ok := v.(map[string]any); ok {
			if ref, ok := m["reference"].(string); ok {
				out = append(out, ref)
			}
		}
	}
	return out
}

// localRef splits a reference to this server ("Type/id", "Type/id/_history/n" or under the base URL).
func (s *Server) localRef(ref string) (typ, id string, ok bool) {
	ref = strings.TrimPrefix(ref, s.cfg.BaseURL+"/")
	if strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") {
		return "", "", false
	}
	parts := strings.Split(ref, "/")
	if len(parts) != 2 && !(len(parts) == 4 && parts[2] == "_history") {
		return "", "", false
	}
	return parts[0], parts[1], parts[0] != "" && parts[1] != ""
}

func odsCodes(body []byte) []string {
	var org struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(body, &org) != nil {
		return nil
	}
	var out []string
	for _, id := range org.Identifier {
		if id.System == fhir.ODSOrganizationSystem && id.Value != "" {
			out = append(out, id.Value)
		}
	}
	return out
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
				if err := s.checkWrite(req, caller, in, old); err != nil {
					return err
				}
			}
		}
		if !r.Deleted {
			if err := s.checkWrite(req, caller, in, r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) checkWrite(req *request, caller *auth.Caller, in auth.Interaction, r store.Resource) error {
	f, err := s.facts(req, caller, r)
	if err != nil {
		return err
	}
	if d := auth.CanAccess(caller, in, f); !d.Allow() {
		req.decide(d)
		return fail(kindForbidden, "%s", d.Reason)
	}
	return nil
}
