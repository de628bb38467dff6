package sqlite

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/storetest"
)

// planCases is one query per Match kind, plus sorts, paging, chains and _has: together they touch every
// SQL shape buildSearch, buildCount and buildExists produce.
func planCases() []struct {
	name string
	q    store.Query
} {
	p := func(pr store.Predicate) store.Query {
		return store.Query{Type: "Patient", Clauses: []store.Clause{{pr}}}
	}
	sub := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"}}}}
	obs := store.Query{Type: "Observation", Clauses: []store.Clause{{{Param: "code", Match: store.MatchToken, System: "http://loinc.org", Value: "1234"}}}}
	return []struct {
		name string
		q    store.Query
	}{
		{"present", p(store.Predicate{Param: "identifier", Match: store.MatchPresent})},
		{"missing", p(store.Predicate{Param: "identifier", Match: store.MatchPresent, Not: true})},
		{"token", p(store.Predicate{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"})},
		{"token any system", p(store.Predicate{Param: "identifier", Match: store.MatchToken, AnySystem: true, Value: "1"})},
		{"token system only", p(store.Predicate{Param: "identifier", Match: store.MatchToken, System: "urn:nhs"})},
		{"token not", p(store.Predicate{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1", Not: true})},
		{"token text", p(store.Predicate{Param: "language", Match: store.MatchTokenText, Value: "eng"})},
		{"exact", p(store.Predicate{Param: "name", Match: store.MatchExact, Value: "Alice"})},
		{"prefix", p(store.Predicate{Param: "name", Match: store.MatchPrefix, Value: "ali"})},
		{"contains", p(store.Predicate{Param: "name", Match: store.MatchContains, Value: "lic"})},
		{"range low", p(store.Predicate{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}}})},
		{"range high", p(store.Predicate{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.High, Cmp: store.LT, Value: 1}}})},
		{"range both", p(store.Predicate{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}, {Field: store.High, Cmp: store.LE, Value: 2}}})},
		{"chain", store.Query{Type: "Immunization", Clauses: []store.Clause{{{Param: "patient", Match: store.MatchRefIn, Sub: &sub}}}}},
		{"has", p(store.Predicate{Param: "_has", Match: store.MatchHas, Sub: &obs, HasParam: "subject"})},
		{"_id", p(store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: "p1"})},
		{"_lastUpdated", p(store.Predicate{Param: store.ParamLastUpdated, Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}}})},
		{"or", store.Query{Type: "Patient", Clauses: []store.Clause{{
			{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"},
			{Param: "name", Match: store.MatchPrefix, Value: "ali"},
		}}}},
		{"or with not", store.Query{Type: "Patient", Clauses: []store.Clause{{
			{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"},
			{Param: "name", Match: store.MatchPrefix, Value: "ali", Not: true},
		}}}},
		{"and", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"}},
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
		}}},
		{"everything", store.Query{Type: "Patient"}},
		// A patient's search: withheld labels as one NOT EXISTS per candidate, and the probe for them as one
		// EXISTS over an OR (tokenSet), each found under the candidate's id.
		{"token nots of one parameter", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchExact, Value: "Alice"}},
			{{Param: "identifier", Match: store.MatchToken, System: "urn:a", Value: "R", Not: true}},
			{{Param: "identifier", Match: store.MatchToken, System: "urn:a", Value: "V", Not: true}}}}},
		{"an OR of tokens of one parameter", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchExact, Value: "Alice"}},
			{{Param: "identifier", Match: store.MatchToken, System: "urn:a", Value: "R"}, {Param: "identifier", Match: store.MatchToken, System: "urn:a", Value: "V"}}}}},
		// The shapes the API builds for _include (a _has over the page's ids), _revinclude (an OR of
		// references), :of-type, a date ge (an OR of two ranges) and a chain inside a _has.
		{"include: has over an id list", store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "_has", Match: store.MatchHas, HasParam: "patient",
			Sub: &store.Query{Type: "Immunization", Clauses: []store.Clause{{
				{Param: store.ParamID, Match: store.MatchExact, Value: "i1"}, {Param: store.ParamID, Match: store.MatchExact, Value: "i2"}}}}}}}}},
		{"revinclude: references in an OR", store.Query{Type: "Immunization", Clauses: []store.Clause{{
			{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}, {Param: "patient", Match: store.MatchExact, Value: "Patient/p2"}}}}},
		{"of-type token", p(store.Predicate{Param: "identifier:of-type", Match: store.MatchToken, System: "http://terminology.hl7.org/CodeSystem/v2-0203", Value: "MR|1"})},
		{"date ge as two ranges", store.Query{Type: "Patient", Clauses: []store.Clause{{
			{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.High, Cmp: store.GT, Value: 2}}},
			{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}, {Field: store.High, Cmp: store.LE, Value: 2}}}}}}},
		{"chain inside has", p(store.Predicate{Param: "_has", Match: store.MatchHas, HasParam: "patient",
			Sub: &store.Query{Type: "Immunization", Clauses: []store.Clause{{{Param: "patient", Match: store.MatchRefIn, Sub: &sub}}}}})},
		{"sorted and paged", store.Query{Type: "Patient",
			Clauses: []store.Clause{{{Param: "gender", Match: store.MatchToken, AnySystem: true, Value: "female"}}},
			Sort:    []store.SortKey{{Param: "family"}, {Param: "birthdate", Desc: true}, {Param: store.ParamLastUpdated}},
			After:   []store.SortValue{{Str: "smith"}, {Int: 5, IsInt: true}, {Int: 7, IsInt: true}, {Str: "p1"}},
			Limit:   10}},
		{"sorted by _id only", store.Query{Type: "Patient", Sort: []store.SortKey{{Param: store.ParamID, Desc: true}}, Limit: 10}},
		// Clauses after the driving one are tested per candidate row, as correlated EXISTS: every kind of
		// predicate in that form, negations, chains pinned by the reference at any depth, and _has.
		{"per row: every match", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"}},
			{{Param: "identifier", Match: store.MatchPresent}},
			{{Param: "identifier", Match: store.MatchToken, AnySystem: true, Value: "1"}},
			{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs"}},
			{{Param: "language", Match: store.MatchTokenText, Value: "eng"}},
			{{Param: "name", Match: store.MatchExact, Value: "Alice"}},
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
			{{Param: "name", Match: store.MatchContains, Value: "lic"}},
			{{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}, {Field: store.High, Cmp: store.LE, Value: 2}}}},
			{{Param: store.ParamID, Match: store.MatchExact, Value: "p1"}, {Param: store.ParamLastUpdated, Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}}}},
		}}},
		{"per row: negations", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
			{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1", Not: true}},
			{{Param: "identifier", Match: store.MatchPresent, Not: true}, {Param: "name", Match: store.MatchExact, Value: "Alice"}},
		}}},
		{"per row: only negations", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1", Not: true}},
		}}},
		{"per row: chain", store.Query{Type: "Immunization", Clauses: []store.Clause{
			{{Param: "vaccine-code", Match: store.MatchToken, System: "urn:sct", Value: "flu"}},
			{{Param: "patient", Match: store.MatchRefIn, Sub: &sub}},
		}}},
		{"per row: chain not", store.Query{Type: "Immunization", Clauses: []store.Clause{
			{{Param: "vaccine-code", Match: store.MatchToken, System: "urn:sct", Value: "flu"}},
			{{Param: "patient", Match: store.MatchRefIn, Sub: &sub, Not: true}},
		}}},
		{"per row: has", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
			{{Param: "_has", Match: store.MatchHas, Sub: &obs, HasParam: "subject"}},
		}}},
		{"per row: has with a chain", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
			{{Param: "_has", Match: store.MatchHas, HasParam: "patient",
				Sub: &store.Query{Type: "Immunization", Clauses: []store.Clause{{{Param: "patient", Match: store.MatchRefIn, Sub: &sub}}}}}},
		}}},
		// The shapes api/policy.go builds for a GP system: the practice's patients (a chain to an
		// Organization by ODS code), appended to a compartment search, an identifier search, a chained
		// search (whose sub-query is restricted too), a _revinclude, a sorted page, and on its own.
		{"practice: compartment search", practice("Immunization", store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}})},
		{"practice: identifier search", practice("Patient", store.Clause{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"}})},
		{"practice: chained search", practice("Immunization", store.Clause{{Param: "patient", Match: store.MatchRefIn,
			Sub: ptr(practice("Patient", store.Clause{{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "1"}}))}})},
		{"practice: revinclude", practice("Immunization", store.Clause{
			{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}, {Param: "patient", Match: store.MatchExact, Value: "Patient/p2"}})},
		{"practice: sorted page", func() store.Query {
			q := practice("Immunization", store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}})
			q.Sort, q.Limit = []store.SortKey{{Param: "date", Desc: true}}, 20
			return q
		}()},
		{"practice: alone", practice("Immunization")},
		{"practice: patients alone", practice("Patient")},
		// A bulk export's page (Scan): the primary key walked from the cursor, the practice tested per row.
		{"practice: export page", func() store.Query {
			q := practice("Immunization")
			q.Scan, q.After, q.Limit = true, []store.SortValue{{Str: "i1"}}, 1001
			return q
		}()},
		{"practice: export's first page of patients", func() store.Query {
			q := practice("Patient")
			q.Scan, q.Limit = true, 1001
			return q
		}()},
		// AuditEvents, kept in their own tables: the auditor's questions (who saw this patient, newest
		// first; what happened in a period; what this agent did, refused), the patient's own trail (the
		// restriction api/audit.go appends), a chain from AuditEvent, and a _has into AuditEvents.
		{"audit: patient, newest first", store.Query{Type: store.AuditEventType,
			Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}},
			Sort:    []store.SortKey{{Param: "date", Desc: true}},
			After:   []store.SortValue{{Int: 5, IsInt: true}, {Str: "a1"}}, Limit: 20}},
		// A later page of the whole trail, newest first: the keyset seeks in the date index (the first
		// page walks it from the start and stops at the page).
		{"audit: all, newest first, a later page", store.Query{Type: store.AuditEventType,
			Sort: []store.SortKey{{Param: "date", Desc: true}}, After: []store.SortValue{{Int: 5, IsInt: true}, {Str: "a1"}}, Limit: 20}},
		{"audit: date period", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "date", Match: store.MatchRange,
			Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}, {Field: store.High, Cmp: store.LE, Value: 2}}}}}}},
		{"audit: agent and outcome", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{
			{{Param: "agent", Match: store.MatchExact, Value: "Practitioner/x"}},
			{{Param: "outcome", Match: store.MatchToken, System: "http://hl7.org/fhir/audit-event-outcome", Value: "8"}},
			{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}},
			{{Param: "date", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 1}}}},
			{{Param: "entity-type", Match: store.MatchPresent}},
		}}},
		{"audit: a patient's own trail", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{
			{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}},
			{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}, {Param: "patient", Match: store.MatchExact, Value: "Patient/p2"}},
		}}},
		{"audit: chain to the patient", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{
			{{Param: "patient", Match: store.MatchRefIn, Sub: &sub}},
			{{Param: "subtype", Match: store.MatchToken, AnySystem: true, Value: "read"}},
		}}},
		{"audit: has", p(store.Predicate{Param: "_has", Match: store.MatchHas, HasParam: "patient",
			Sub: &store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "agent", Match: store.MatchExact, Value: "Practitioner/x"}}}}})},
		{"audit: per row has", store.Query{Type: "Patient", Clauses: []store.Clause{
			{{Param: "name", Match: store.MatchPrefix, Value: "ali"}},
			{{Param: "_has", Match: store.MatchHas, HasParam: "patient",
				Sub: &store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "agent", Match: store.MatchExact, Value: "Practitioner/x"}}}}}},
		}}},
	}
}

// practice is q over typ with clauses, restricted as api/policy.go restricts a GP system's queries: to
// the patients whose organization or general-practitioner is an Organization with an ODS code.
func practice(typ string, clauses ...store.Clause) store.Query {
	return storetest.PracticeQuery("A12345", typ, clauses...)
}

func ptr[T any](v T) *T { return &v }

// TestQueryPlansUseIndexes fails when SQLite would answer any compiled search by scanning a table: every
// table access must be a SEARCH on an index. Scans of SQLite's own temporary lists and sorters are fine.
func TestQueryPlansUseIndexes(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A few rows, so the planner is not looking at empty tables.
	var ws []store.Write
	for i := range 50 {
		id := fmt.Sprintf("p%d", i)
		ws = append(ws, store.Write{
			Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.UnixMilli(int64(i)), Body: []byte("{}")},
			Index: []store.IndexEntry{
				{Param: "identifier", System: "urn:nhs", Value: id},
				{Param: "name", Value: "Alice", Text: "alice"},
				{Param: "birthdate", Low: int64(i), High: int64(i + 1)},
			},
		})
	}
	if err := s.Apply(t.Context(), ws); err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for i := range 50 {
		at := time.UnixMilli(int64(i))
		recs = append(recs, audit.Record{ID: fmt.Sprintf("a%d", i), Recorded: at, Body: []byte("{}"), Index: []store.IndexEntry{
			{Param: "patient", Value: fmt.Sprintf("Patient/p%d", i)},
			{Param: "action", System: "http://hl7.org/fhir/audit-event-action", Value: "R"},
			{Param: "date", Low: at.UnixMilli(), High: at.UnixMilli()},
		}})
	}
	if err := audit.AppendChained(t.Context(), s, recs, 1); err != nil {
		t.Fatal(err)
	}

	for _, tc := range planCases() {
		t.Run(tc.name, func(t *testing.T) {
			builds := []func(store.Query) (string, []any, error){buildSearch, buildCount, buildExists, buildKeyedPage, buildKeyedScreened}
			if len(tc.q.Clauses) == 0 && tc.q.Type == store.AuditEventType {
				// Counting the whole trail reads it all; only the page has to be found by index.
				builds = []func(store.Query) (string, []any, error){buildSearch}
			}
			for _, build := range builds {
				query, args, err := build(tc.q)
				if err == errNotKeyed {
					continue
				}
				if err != nil {
					t.Fatal(err)
				}
				rows := explainRows(t, s, query, args)
				plan := make([]string, len(rows))
				for i, r := range rows {
					plan[i] = r.detail
				}
				for _, line := range plan {
					if scansTable(line) {
						t.Errorf("plan scans a table: %q\nquery: %s\nplan:\n  %s", line, query, strings.Join(plan, "\n  "))
					}
				}
				if want := partialIndexOf[tc.name]; want != "" && !strings.Contains(strings.Join(plan, "\n"), " INDEX "+want+" ") {
					t.Errorf("plan does not use the partial %s\nquery: %s\nplan:\n  %s", want, query, strings.Join(plan, "\n  "))
				}
				if line := notPerRow(rows); line != "" {
					t.Errorf("plan tests a clause per row with a lookup that is not keyed by the row: %q\nquery: %s\nplan:\n  %s", line, query, strings.Join(plan, "\n  "))
				}
				if testing.Verbose() {
					t.Logf("%s\n  %s", query, strings.Join(plan, "\n  "))
				}
			}
		})
	}
}

// errNotKeyed: buildKeyedPage's query has no keyed form.
var errNotKeyed = errors.New("no keyed form")

// buildKeyedPage is buildKeyed of q's first page of 20, as the API asks for it.
func buildKeyedPage(q store.Query) (string, []any, error) {
	if q.Limit == 0 {
		q.Limit = 20
	}
	query, args, ok := buildKeyed(q)
	if !ok {
		return "", nil, errNotKeyed
	}
	return query, args, nil
}

// buildKeyedScreened is buildKeyedPage with SearchScreened's flag of the labels a patient may not see.
func buildKeyedScreened(q store.Query) (string, []any, error) {
	if q.Limit == 0 {
		q.Limit = 20
	}
	query, args, ok := buildKeyedFlagged(q, []store.Clause{
		{{Param: "_security", Match: store.MatchToken, Not: true, System: "urn:sec", Value: "R"}},
		{{Param: "_security", Match: store.MatchToken, Not: true, System: "urn:sec", Value: "V"}}})
	if !ok {
		return "", nil, errNotKeyed
	}
	return query, args, nil
}

// partialIndexOf names the partial index a plan case must drive from: SQLite passes one over unless the
// query states its condition (query.go), and then falls back to a wider range of another index.
var partialIndexOf = map[string]string{
	"token system only": "idx_system",
	"token text":        "idx_text",
	"prefix":            "idx_text",
	"contains":          "idx_text",
	"range low":         "idx_range",
	"range high":        "idx_range",
	"range both":        "idx_range",
}

// scansTable reports whether an EXPLAIN QUERY PLAN line reads a whole table or index. The tables are
// aliased r, h, i<n>, c<n> and s in compiled queries; "SCAN q" (the FROM subquery) and lines about
// temporary b-trees and LIST SUBQUERY results are not table reads.
func scansTable(line string) bool {
	rest, ok := strings.CutPrefix(line, "SCAN ")
	if !ok || strings.Contains(rest, " VIRTUAL TABLE ") {
		// json_each over one record's own entries (auditfuncs.go) is not a table read.
		return false
	}
	name, _, _ := strings.Cut(rest, " ")
	switch {
	case name == "current", name == "history", name == "idx", name == "audit", name == "audit_ref",
		name == "r", name == "h", name == "s":
		return true
	case len(name) > 1 && (name[0] == 'i' || name[0] == 'c') && name[1] >= '0' && name[1] <= '9':
		return true
	}
	return false
}

// notPerRow returns the first plan line that runs once per candidate row (inside a correlated subquery,
// or an EXISTS SQLite turned into a join) but does not look up that row's own entries: a list
// materialised per row, or an index range keyed by neither an id nor a reference value, whose cost would
// follow the store rather than the row. "" if there is none.
func notPerRow(rows []planRow) string {
	parent := map[int]int{}
	detail := map[int]string{}
	for _, r := range rows {
		parent[r.id], detail[r.id] = r.parent, r.detail
	}
	correlated := func(id int) bool {
		for p := parent[id]; p != 0; p = parent[p] {
			if strings.HasPrefix(detail[p], "CORRELATED ") {
				return true
			}
		}
		return false
	}
	for _, r := range rows {
		if !correlated(r.id) && !strings.Contains(r.detail, " EXISTS USING ") {
			continue
		}
		if strings.HasPrefix(r.detail, "LIST SUBQUERY") || strings.HasPrefix(r.detail, "MATERIALIZE") {
			return r.detail
		}
		for _, index := range []string{"INDEX idx_", "PRIMARY KEY ("} {
			_, key, ok := strings.Cut(r.detail, index)
			if ok && !strings.Contains(key, "id=?") && !strings.Contains(key, "value=?") {
				return r.detail
			}
		}
	}
	return ""
}

type planRow struct {
	id, parent int
	detail     string
}

func explainRows(t *testing.T, s *Store, query string, args []any) []planRow {
	t.Helper()
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, query)
	}
	defer rows.Close()
	var plan []planRow
	for rows.Next() {
		var r planRow
		var unused int
		if err := rows.Scan(&r.id, &r.parent, &unused, &r.detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return plan
}

// TestAuditPagesByReferenceStopAtThePage: the auditor's "who saw this patient" reads the page from its
// cursor, newest first, from audit_ref's key, and stops. Listed, looked up and sorted whole instead, a
// page cost every record about the patient: 51 pages a second at tens of thousands of records in gpfhir
// bench. (In id order, which the API asks for only with _sort=_id, the page is sorted whole.)
func TestAuditPagesByReferenceStopAtThePage(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	byPatient := store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}
	reads := store.Clause{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}
	newest := []store.SortKey{{Param: "date", Desc: true}}
	const inTime = "SEARCH i1 USING PRIMARY KEY (value=? AND param=?"
	for _, tc := range []struct {
		name, walk string
		q          store.Query
	}{
		{"newest first, first page", inTime, store.Query{Clauses: []store.Clause{byPatient}, Sort: newest}},
		{"newest first, later page", inTime, store.Query{Clauses: []store.Clause{byPatient}, Sort: newest, After: []store.SortValue{{Int: 5, IsInt: true}, {Str: "a1"}}}},
		{"newest first, with a per-record test", inTime, store.Query{Clauses: []store.Clause{reads, byPatient}, Sort: newest}},
	} {
		tc.q.Type, tc.q.Limit = store.AuditEventType, 11
		query, args, err := buildSearch(tc.q)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for _, r := range explainRows(t, s, query, args) {
			plan = append(plan, r.detail)
		}
		joined := strings.Join(plan, "\n  ")
		if !strings.Contains(joined, tc.walk) || strings.Contains(joined, "TEMP B-TREE") || strings.Contains(joined, "LIST SUBQUERY") {
			t.Errorf("%s: the page is not read in order from audit_ref (%s):\n  %s\nquery: %s", tc.name, tc.walk, joined, query)
		} else if testing.Verbose() {
			t.Logf("%s: %s\n  %s", tc.name, query, joined)
		}
	}
}

// TestNoQueryIsPreparedAgainOnEveryRun: SQLite prepares a statement again whenever a parameter that its
// plan read is bound, which database/sql does on every run. Two shapes make the plan read one (query.go):
// a term that compares a partial index's column to a parameter with the operator of the index's condition
// ("value = ?" against idx_range's condition, an empty value; valueEq), and "LIMIT ?" (limitParam). No
// query of the plan cases may have either.
func TestNoQueryIsPreparedAgainOnEveryRun(t *testing.T) {
	cond := regexp.MustCompile(`WHERE (\w+) (=|<>) ''$`)
	var shapes []*regexp.Regexp
	for _, stmt := range schema {
		if !strings.Contains(stmt, "CREATE INDEX") {
			continue
		}
		if m := cond.FindStringSubmatch(stmt); m != nil {
			shapes = append(shapes, regexp.MustCompile(`\.`+m[1]+` `+m[2]+` \?\s*(?:$|\)|\bAND\b|\bOR\b|\bORDER\b|\bLIMIT\b)`))
		}
	}
	if len(shapes) < 3 {
		t.Fatalf("found %d partial index conditions in the schema, want idx_system's, idx_text's and idx_range's", len(shapes))
	}
	shapes = append(shapes, regexp.MustCompile(`\bLIMIT \?`))
	for _, tc := range planCases() {
		for _, build := range []func(store.Query) (string, []any, error){buildSearch, buildCount, buildExists, buildKeyedPage} {
			query, _, err := build(tc.q)
			if err == errNotKeyed {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, re := range shapes {
				if loc := re.FindStringIndex(query); loc != nil {
					t.Errorf("%s: the query has %q, a shape that has SQLite prepare it again on every run:\n%s", tc.name, query[loc[0]:loc[1]], query)
				}
			}
		}
	}
}

// TestKeyedSearchesMatchTheGeneralForm: a search of one equality takes the keyed form (buildKeyed),
// which reads the index in its own order. Its pages must be the general form's: in id order, without
// deleted resources, and, for a value with more matches than the page, the first by id, not the first
// the index holds.
func TestKeyedSearchesMatchTheGeneralForm(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Written in descending id order, so that the index's order (the order written) is not id order.
	var ws []store.Write
	for i := 29; i >= 0; i-- {
		id := fmt.Sprintf("p%02d", i)
		ws = append(ws, store.Write{
			Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.UnixMilli(int64(i)), Body: []byte(`{"resourceType":"Patient","id":"` + id + `"}`)},
			Index: []store.IndexEntry{
				{Param: "identifier", System: "urn:nhs", Value: fmt.Sprint(i % 3)},
				{Param: "general-practitioner", Value: "Practitioner/one"},
			},
		})
	}
	if err := s.Apply(t.Context(), ws); err != nil {
		t.Fatal(err)
	}
	if err := s.Apply(t.Context(), []store.Write{{Resource: store.Resource{Type: "Patient", ID: "p03", VersionID: 2, LastUpdated: time.UnixMilli(99), Deleted: true}, ExpectVersion: 1}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		p     store.Predicate
		limit int
		keyed bool // whether the keyed form answers, rather than handing over to the general form
	}{
		{"a token's few matches", store.Predicate{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "0"}, 20, true},
		{"a token's matches, one deleted", store.Predicate{Param: "identifier", Match: store.MatchToken, AnySystem: true, Value: "0"}, 10, true},
		{"a reference's matches, more than the page", store.Predicate{Param: "general-practitioner", Match: store.MatchExact, Value: "Practitioner/one"}, 7, false},
		{"a reference's matches, all on the page", store.Predicate{Param: "general-practitioner", Match: store.MatchExact, Value: "Practitioner/one"}, 29, true},
		{"no match", store.Predicate{Param: "identifier", Match: store.MatchToken, System: "urn:nhs", Value: "9"}, 20, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := store.Query{Type: "Patient", Clauses: []store.Clause{{tc.p}}, Limit: tc.limit}
			query, args, ok := buildKeyed(q)
			if !ok {
				t.Fatal("the query has no keyed form")
			}
			rows, err := s.search(t.Context(), q, query, args)
			if err != nil {
				t.Fatal(err)
			}
			if _, answered := keyedPage(rows, q.Limit); answered != tc.keyed {
				t.Errorf("keyed form answered: %v, want %v (%d rows for a page of %d)", answered, tc.keyed, len(rows), q.Limit)
			}
			got, want := searchAndGeneralForm(t, s, q)
			if !slices.Equal(got, want) {
				t.Errorf("Search gave %v, the general form %v", got, want)
			}
			if slices.Contains(got, "p03") {
				t.Errorf("Search gave the deleted p03: %v", got)
			}
		})
	}
}

// TestImpliedChainsAreDroppedOnlyWhenImplied: a search of one patient's compartment restricted to a
// practice's patients drops the restriction when that patient is the practice's (dropImpliedChains),
// and keeps it when not, since another of a resource's patient entries may be the practice's. Either
// way the answer is the general form's.
func TestImpliedChainsAreDroppedOnlyWhenImplied(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	put := func(typ, id string, index ...store.IndexEntry) store.Write {
		return store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: time.UnixMilli(1), Body: []byte(`{}`)}, Index: index}
	}
	ref := func(param, value string) store.IndexEntry { return store.IndexEntry{Param: param, Value: value} }
	if err := s.Apply(t.Context(), []store.Write{
		put("Organization", "org1", store.IndexEntry{Param: "identifier", System: fhir.ODSOrganizationSystem, Value: "A1"}),
		put("Organization", "org2", store.IndexEntry{Param: "identifier", System: fhir.ODSOrganizationSystem, Value: "B2"}),
		put("Patient", "pa", ref("organization", "Organization/org1")),
		put("Patient", "pb", ref("general-practitioner", "Organization/org2")),
		put("Immunization", "i1", ref("patient", "Patient/pa")),
		put("Immunization", "i2", ref("patient", "Patient/pb")),
		// Two patient entries, one of them the practice's: not a shape FHIR gives an Immunization, but
		// the store's contract allows it, and the chain must still find it.
		put("Immunization", "i3", ref("patient", "Patient/pa"), ref("patient", "Patient/pb")),
	}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		patient string
		dropped bool
		want    []string
	}{
		{"Patient/pa", true, []string{"i1", "i3"}},
		{"Patient/pb", false, []string{"i3"}},
		{"Patient/nobody", false, nil},
	} {
		q := storetest.PracticeQuery("A1", "Immunization", store.Clause{{Param: "patient", Match: store.MatchExact, Value: tc.patient}})
		q.Limit = 20
		simpler, err := s.dropImpliedChains(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if dropped := len(simpler.Clauses) < len(q.Clauses); dropped != tc.dropped {
			t.Errorf("%s: chain dropped %v, want %v", tc.patient, dropped, tc.dropped)
		}
		got, gen := searchAndGeneralForm(t, s, q)
		if !slices.Equal(got, tc.want) || !slices.Equal(gen, tc.want) {
			t.Errorf("%s: Search gave %v, the general form %v, want %v", tc.patient, got, gen, tc.want)
		}
		if n, err := s.Count(t.Context(), q); err != nil || n != len(tc.want) {
			t.Errorf("%s: Count = %d, %v; want %d", tc.patient, n, err, len(tc.want))
		}
	}
}

// searchAndGeneralForm returns the ids Search gives for q and those of q's general form (buildSearch)
// run as it is, without the keyed form or the dropping of implied chains.
func searchAndGeneralForm(t *testing.T, s *Store, q store.Query) (search, general []string) {
	t.Helper()
	hits, err := s.Search(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	query, args, err := buildSearch(q)
	if err != nil {
		t.Fatal(err)
	}
	direct, err := s.search(t.Context(), q, query, args)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		search = append(search, h.Resource.ID)
	}
	for _, h := range direct {
		general = append(general, h.Resource.ID)
	}
	return search, general
}
