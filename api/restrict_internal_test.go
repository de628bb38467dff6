package api

import (
	"testing"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/store"
)

// A patient's compartment search names the clause the restriction would add (their own patient); it is
// kept once, so the store does not test it twice on every candidate. Everything else the restriction
// adds (the withheld labels) is still there, and another patient's clause is kept beside it.
func TestRestrictionAddsNoClauseTheQueryHasAlready(t *testing.T) {
	caller := &auth.Caller{Kind: auth.KindPatient, NHSNumber: "9000000009", Level: "P9", Resolved: true,
		PatientIDs: []string{"p1"}, Scopes: []auth.Scope{{Context: "patient", Type: "*", Perms: "rs"}}}
	own := store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}

	bare := store.Query{Type: "Immunization"}
	restrictFor(caller, &bare)
	if !containsClause(bare.Clauses, own) {
		t.Fatalf("the restriction of a bare search has no clause for the caller's patient: %+v", bare.Clauses)
	}

	q := store.Query{Type: "Immunization", Clauses: []store.Clause{own}}
	restrictFor(caller, &q)
	n := 0
	for _, c := range q.Clauses {
		if clauseEqual(c, own) {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the caller's patient clause appears %d times: %+v", n, q.Clauses)
	}
	if len(q.Clauses) != len(bare.Clauses) {
		t.Errorf("restricted search has %d clauses, the bare search's restriction %d: %+v", len(q.Clauses), len(bare.Clauses), q.Clauses)
	}

	other := store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p2"}}
	q = store.Query{Type: "Immunization", Clauses: []store.Clause{other}}
	restrictFor(caller, &q)
	if !containsClause(q.Clauses, own) || !containsClause(q.Clauses, other) {
		t.Errorf("a search for another patient lost a clause: %+v", q.Clauses)
	}
}

func containsClause(cs []store.Clause, c store.Clause) bool {
	for _, o := range cs {
		if clauseEqual(o, c) {
			return true
		}
	}
	return false
}

func clauseEqual(a, b store.Clause) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Param != b[i].Param || a[i].Match != b[i].Match || a[i].Value != b[i].Value || a[i].Not != b[i].Not || a[i].Sub != nil || b[i].Sub != nil {
			return false
		}
	}
	return true
}
