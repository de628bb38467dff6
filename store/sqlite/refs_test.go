package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/memory"
)

// TestSearchesCatchUpWithReferencesNotCopiedYet: with no background copier, every search that can read
// audit_ref copies what is pending first, so a record is searchable as soon as AppendAudit returns.
func TestSearchesCatchUpWithReferencesNotCopiedYet(t *testing.T) {
	audit := store.Query{Type: store.AuditEventType}
	byEntity := store.Clause{{Param: "entity", Match: store.MatchExact, Value: "Patient/p1"}}
	reads := []struct {
		name string
		read func(s *Store) (int, error)
	}{
		{"search by reference", func(s *Store) (int, error) {
			hits, err := s.Search(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{byEntity}})
			return len(hits), err
		}},
		{"count by reference", func(s *Store) (int, error) {
			return s.Count(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{byEntity}})
		}},
		{"a _has into AuditEvents", func(s *Store) (int, error) {
			sub := audit
			sub.Clauses = []store.Clause{byEntity}
			return s.Count(t.Context(), store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "_has", Match: store.MatchHas, HasParam: "entity", Sub: &sub}}}})
		}},
	}
	for _, tc := range reads {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, err := open(t.Context(), dir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Apply(t.Context(), []store.Write{{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: trailStart, Body: []byte(`{}`)}}}); err != nil {
				t.Fatal(err)
			}
			appendTo(t, s, 1, 5)
			if got := refMark(t, s); got != 0 {
				t.Fatalf("mark before any search = %d, want 0 (nothing copied)", got)
			}
			n, err := tc.read(s)
			want := 3 // e1, e3, e5 name p1
			if tc.name == "a _has into AuditEvents" {
				want = 1
			}
			if err != nil || n != want {
				t.Errorf("got %d %v, want %d", n, err, want)
			}
			if got := refMark(t, s); got != 5 {
				t.Errorf("mark after the search = %d, want 5", got)
			}
		})
	}
	// Reads that never use audit_ref do not copy.
	s, err := open(t.Context(), t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	appendTo(t, s, 1, 2)
	if _, err := s.Get(t.Context(), store.AuditEventType, "e1"); err != nil {
		t.Fatal(err)
	}
	if got := refMark(t, s); got != 0 {
		t.Errorf("mark after a Get = %d, want 0", got)
	}
}

// TestTheCopierRunsInTheBackgroundAndLeavesCommitsDurable: after an append the copier catches up on
// its own, and the writer connection it borrowed with synchronous=NORMAL is back to FULL.
func TestTheCopierRunsInTheBackgroundAndLeavesCommitsDurable(t *testing.T) {
	s := openDir(t, t.TempDir())
	appendTo(t, s, 1, 3)
	deadline := time.Now().Add(10 * time.Second)
	for refMark(t, s) != 3 {
		if time.Now().After(deadline) {
			t.Fatal("the copier did not catch up within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var sync int
	if err := s.w.QueryRowContext(t.Context(), `PRAGMA synchronous`).Scan(&sync); err != nil || sync != 2 {
		t.Errorf("writer synchronous = %d %v, want 2 (FULL)", sync, err)
	}
}

// TestStoresSharingAFileCopyEachRecordOnce: two stores on one file (two processes) catching up at
// once copy every record's references once and agree on the mark.
func TestStoresSharingAFileCopyEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	var stores []*Store
	for range 2 {
		s, err := open(t.Context(), dir, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	appendTo(t, stores[0], 1, 250)
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range stores {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.auditReady(t.Context()) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	var refs int
	if err := stores[1].r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref`).Scan(&refs); err != nil || refs != 250 {
		t.Errorf("audit_ref rows = %d %v, want 250 (one patient entry each)", refs, err)
	}
	if got := refMark(t, stores[1]); got != 250 {
		t.Errorf("mark = %d, want 250", got)
	}
}

// TestAuditMatchAgreesWithTheIndexTable runs the same predicates over the same entries held by Patients
// (the idx table's SQL) and by AuditEvents (audit_match, audit_refs, audit_sort): both must select and
// order alike.
func TestAuditMatchAgreesWithTheIndexTable(t *testing.T) {
	s := openDir(t, t.TempDir())
	entries := func(i int) []store.IndexEntry {
		e := []store.IndexEntry{
			{Param: "entity", Value: fmt.Sprintf("Patient/p%d", i%3)},
			{Param: "patient", Value: fmt.Sprintf("Patient/p%d", i%3)},
			{Param: "action", System: "urn:act", Value: []string{"R", "C", "U"}[i%3], Text: []string{"read", "create", "update"}[i%3]},
			{Param: "outcome", System: "urn:out", Value: fmt.Sprint(i % 2 * 4)},
			{Param: "num", Low: int64(i), High: int64(i + 2)},
		}
		if i%4 == 0 {
			e = append(e, store.IndexEntry{Param: "subtype", System: "urn:sub", Value: "read"}, store.IndexEntry{Param: "subtype", System: "urn:other", Value: "x"})
		}
		return e
	}
	var ws []store.Write
	var recs []audit.Record
	for i := range 12 {
		id := fmt.Sprintf("r%02d", i)
		at := trailStart.Add(time.Duration(i) * time.Second)
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: at, Body: []byte(`{}`)}, Index: entries(i)})
		recs = append(recs, audit.Record{ID: id, Recorded: at, Body: []byte(`{}`), Index: entries(i)})
	}
	if err := s.Apply(t.Context(), ws); err != nil {
		t.Fatal(err)
	}
	if err := audit.AppendChained(t.Context(), s, recs, 1); err != nil {
		t.Fatal(err)
	}
	p := func(pr store.Predicate) store.Clause { return store.Clause{pr} }
	drive := p(store.Predicate{Param: store.ParamLastUpdated, Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 0}}})
	cases := map[string][]store.Clause{
		"token":              {p(store.Predicate{Param: "action", Match: store.MatchToken, System: "urn:act", Value: "R"})},
		"token any system":   {p(store.Predicate{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "C"})},
		"token wrong system": {p(store.Predicate{Param: "action", Match: store.MatchToken, System: "urn:x", Value: "C"})},
		"system only":        {p(store.Predicate{Param: "subtype", Match: store.MatchToken, System: "urn:other"})},
		"not token":          {p(store.Predicate{Param: "outcome", Match: store.MatchToken, System: "urn:out", Value: "4", Not: true})},
		"text":               {p(store.Predicate{Param: "action", Match: store.MatchTokenText, Value: "up"})},
		"contains":           {p(store.Predicate{Param: "action", Match: store.MatchContains, Value: "eat"})},
		"present":            {p(store.Predicate{Param: "subtype", Match: store.MatchPresent})},
		"missing":            {p(store.Predicate{Param: "subtype", Match: store.MatchPresent, Not: true})},
		"range":              {p(store.Predicate{Param: "num", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 3}, {Field: store.High, Cmp: store.LE, Value: 8}}})},
		"reference":          {p(store.Predicate{Param: "entity", Match: store.MatchExact, Value: "Patient/p1"})},
		"or":                 {{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "U"}, {Param: "subtype", Match: store.MatchPresent}}},
		"reference and code": {p(store.Predicate{Param: "entity", Match: store.MatchExact, Value: "Patient/p0"}), p(store.Predicate{Param: "outcome", Match: store.MatchToken, AnySystem: true, Value: "0"})},
		"driven by a column": {drive, p(store.Predicate{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"})},
	}
	sorts := [][]store.SortKey{nil, {{Param: "action"}}, {{Param: "num", Desc: true}}, {{Param: "subtype"}}}
	for name, clauses := range cases {
		for _, sort := range sorts {
			t.Run(fmt.Sprintf("%s sorted by %v", name, sort), func(t *testing.T) {
				var got [2][]string
				for i, typ := range []string{"Patient", store.AuditEventType} {
					hits, err := s.Search(t.Context(), store.Query{Type: typ, Clauses: clauses, Sort: sort})
					if err != nil {
						t.Fatal(err)
					}
					for _, h := range hits {
						got[i] = append(got[i], h.Resource.ID)
					}
				}
				if !slices.Equal(got[0], got[1]) {
					t.Errorf("idx table: %v\naudit:     %v", got[0], got[1])
				}
				if len(got[0]) == 0 && name != "token wrong system" {
					t.Errorf("no match at all: the case tests nothing")
				}
			})
		}
	}
}

// TestPruneAuditStopsAtABrokenLink: pruning must not erase the evidence of tampering.
func TestPruneAuditStopsAtABrokenLink(t *testing.T) {
	dir := auditTrail(t, 5)
	editFile(t, dir, `UPDATE audit SET body = CAST('{"resourceType":"AuditEvent","id":"e3"}' AS BLOB) WHERE id = 'e3'`)
	s := openDir(t, dir)
	a, n, err := s.PruneAudit(t.Context(), trailStart.Add(time.Hour))
	if err == nil || n != 2 || a.Seq != 2 {
		t.Fatalf("PruneAudit = %+v %d %v, want e1 and e2 removed and an error at e3", a, n, err)
	}
	if recs, err := s.AuditRange(t.Context(), 0, 0); err != nil || len(recs) != 3 || recs[0].ID != "e3" {
		t.Errorf("records left = %v %v, want e3 onwards", recs, err)
	}
}

func TestCodecRoundTripsAndReadsPlainValues(t *testing.T) {
	body := []byte(`{"resourceType":"AuditEvent","id":"x","action":"R","outcome":"0"}`)
	packed := packBody(body)
	if packed[0] != bodyMarker || len(packed) >= len(body) || !bytes.Equal(unpack(packed), body) {
		t.Errorf("body does not round-trip: %x", packed)
	}
	if !bytes.Equal(unpack(body), body) {
		t.Error("a plain body is not read as it is")
	}
	// S2 blocks carry no checksum: an edited block may decode to other bytes, or not at all (then the
	// stored bytes come back). Either way not the body, so the record no longer matches its hash.
	broken := append(slices.Clone(packed[:len(packed)-2]), 0xff, 0xff)
	if got := unpack(broken); bytes.Equal(got, body) {
		t.Error("an edited block came back as the original body")
	}
	if got := unpack(packed[:3]); !bytes.Equal(got, packed[:3]) {
		t.Errorf("a truncated block came back as %q, want the stored bytes", got)
	}
	entries := []store.IndexEntry{{Param: "action", System: "urn:a", Value: "R", Text: "read"}, {Param: "n", Low: -5, High: 1 << 40}}
	idx, err := packIndex(entries)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := unpackIndex(idx); err != nil || !slices.Equal(got, entries) {
		t.Errorf("index round trip = %v %v", got, err)
	}
	if _, err := packIndex([]store.IndexEntry{{Value: "v"}}); err == nil {
		t.Error("an entry without a parameter was packed")
	}
	for cut := 1; cut < len(idx); cut++ {
		if got, err := unpackIndex(idx[:cut]); err == nil && len(got) == len(entries) {
			t.Errorf("an index cut at %d of %d decodes whole", cut, len(idx))
		}
	}
}

// appendTo appends e<from>..e<to> as appendTrail does, to an open store.
func appendTo(t *testing.T, s *Store, from, to int) {
	t.Helper()
	var recs []audit.Record
	for i := from; i <= to; i++ {
		id := fmt.Sprintf("e%d", i)
		at := trailStart.Add(time.Duration(i) * time.Second)
		recs = append(recs, audit.Record{ID: id, Recorded: at, Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`),
			Index: []store.IndexEntry{{Param: "entity", Value: fmt.Sprintf("Patient/p%d", i%2)},
				{Param: "patient", Value: fmt.Sprintf("Patient/p%d", i%2)}, {Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli()}}})
	}
	for len(recs) > 0 {
		n := min(len(recs), audit.MaxBatch)
		if err := audit.AppendChained(t.Context(), s, recs[:n], 1); err != nil {
			t.Fatal(err)
		}
		recs = recs[n:]
	}
}

func refMark(t *testing.T, s *Store) int64 {
	t.Helper()
	var seq int64
	if err := s.r.QueryRowContext(t.Context(), `SELECT seq FROM audit_ref_mark`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// BenchmarkUnpackIndex decodes the index of a record with fourteen entries, as the copier and the audit
// SQL functions do for every record they read.
func BenchmarkUnpackIndex(b *testing.B) {
	entries := make([]store.IndexEntry, 14)
	for i := range entries {
		entries[i] = store.IndexEntry{Param: "entity", System: "urn:s", Value: fmt.Sprintf("Patient/p%d", i), Text: "t", Low: int64(i)}
	}
	idx, err := packIndex(entries)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if got, err := unpackIndex(idx); err != nil || len(got) != len(entries) {
			b.Fatal(len(got), err)
		}
	}
}

// TestDeviceReferencesStayOutOfAuditRefAndAreStillSearchable: audit_ref keeps no Device's entries (this
// server's Device is in every record, twice), a search by a Device tests each record's own entries and
// finds what it found before, and pruning still deletes the Device entries a file written before holds.
func TestDeviceReferencesStayOutOfAuditRefAndAreStillSearchable(t *testing.T) {
	s, err := open(t.Context(), t.TempDir(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var recs []audit.Record
	for i := 1; i <= 4; i++ {
		at := trailStart.Add(time.Duration(i) * time.Second)
		recs = append(recs, audit.Record{ID: fmt.Sprintf("e%d", i), Recorded: at, Body: []byte(`{"resourceType":"AuditEvent"}`),
			Index: []store.IndexEntry{
				{Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli()},
				{Param: "agent", Value: fmt.Sprintf("Practitioner/dr%d", i%2)},
				{Param: "agent", Value: "Device/srv"},
				{Param: "source", Value: "Device/srv"},
				{Param: "entity", Value: fmt.Sprintf("Patient/p%d", i%2)},
				{Param: "patient", Value: fmt.Sprintf("Patient/p%d", i%2)},
			}})
	}
	if err := audit.AppendChained(t.Context(), s, recs, 1); err != nil {
		t.Fatal(err)
	}
	// What an older binary copied for e1, with e1's time as every binary since schema 5 has.
	if _, err := s.w.ExecContext(t.Context(), `INSERT INTO audit_ref (value, param, id, system, t)
		SELECT 'Device/srv', 'source', id, '', last_updated FROM audit WHERE id = 'e1'`); err != nil {
		t.Fatal(err)
	}
	q := func(sort bool, limit int, cs ...store.Clause) store.Query {
		q := store.Query{Type: store.AuditEventType, Clauses: cs, Limit: limit}
		if sort {
			q.Sort = []store.SortKey{{Param: auditDate, Desc: true}}
		}
		return q
	}
	byServer := store.Clause{{Param: "source", Match: store.MatchExact, Value: "Device/srv"}}
	asAgent := store.Clause{{Param: "agent", Match: store.MatchExact, Value: "Device/srv"}}
	onP1 := store.Clause{{Param: "entity", Match: store.MatchExact, Value: "Patient/p1"}}
	for _, c := range []struct {
		name string
		q    store.Query
		want []string
	}{
		{"the server as source", q(false, 0, byServer), []string{"e1", "e2", "e3", "e4"}},
		{"the server as agent, newest first, a page", q(true, 2, asAgent), []string{"e4", "e3"}},
		{"the server and a patient", q(false, 0, asAgent, onP1), []string{"e1", "e3"}},
		{"the server or a practitioner", q(false, 0, store.Clause{asAgent[0], {Param: "agent", Match: store.MatchExact, Value: "Practitioner/dr0"}}),
			[]string{"e1", "e2", "e3", "e4"}},
		{"a practitioner", q(false, 0, store.Clause{{Param: "agent", Match: store.MatchExact, Value: "Practitioner/dr0"}}), []string{"e2", "e4"}},
	} {
		if got := auditIDs(t, s, c.q); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if n, err := s.Count(t.Context(), q(false, 0, byServer, onP1)); err != nil || n != 2 {
		t.Errorf("count of the server and a patient = %d, %v; want 2", n, err)
	}
	devices := func() int {
		t.Helper()
		var n int
		if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref WHERE value LIKE 'Device/%'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := devices(); n != 1 {
		t.Errorf("audit_ref holds %d Device entries after the copy, want only the older binary's one", n)
	}
	if _, _, err := s.PruneAudit(t.Context(), trailStart.Add(1500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n := devices(); n != 0 {
		t.Errorf("audit_ref holds %d Device entries after e1 was pruned, want 0", n)
	}
}

// AuditRange reads bodies in place and unpacks them; a body stored plain (an older file, an edit) comes
// back as stored, each record with bytes of its own.
func TestAuditRangeReadsPackedAndPlainBodies(t *testing.T) {
	dir := auditTrail(t, 4)
	editFile(t, dir, `UPDATE audit SET body = CAST('{"plain":"e2"}' AS BLOB) WHERE id = 'e2'`,
		`UPDATE audit SET body = CAST('{"plain":"e4"}' AS BLOB) WHERE id = 'e4'`)
	s := openDir(t, dir)
	recs, err := s.AuditRange(t.Context(), 0, 0)
	if err != nil || len(recs) != 4 {
		t.Fatalf("AuditRange = %d records, %v", len(recs), err)
	}
	for _, r := range recs {
		want := fmt.Sprintf(`{"resourceType":"AuditEvent","id":%q,"action":"R","outcome":"0"}`, r.ID)
		if r.ID == "e2" || r.ID == "e4" {
			want = fmt.Sprintf(`{"plain":%q}`, r.ID)
		}
		if string(r.Body) != want {
			t.Errorf("%s: body %s, want %s", r.ID, r.Body, want)
		}
	}
}

// TestACopiedChunkSkipsRecordsTakenOrPrunedSinceItWasRead: the copier reads a chunk before it takes the
// writer, so another copier may have copied those records, or a prune removed them, by the time it
// inserts. It then copies only what is still past the mark and the anchor, and never moves the mark back.
func TestACopiedChunkSkipsRecordsTakenOrPrunedSinceItWasRead(t *testing.T) {
	refsOf := func(t *testing.T, s *Store, id string) int {
		t.Helper()
		var n int
		if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref WHERE id = ?`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	open := func(t *testing.T) *Store {
		s, err := open(t.Context(), t.TempDir(), false)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		appendTo(t, s, 1, 6)
		return s
	}

	t.Run("taken by another copier", func(t *testing.T) {
		s := open(t)
		chunk, err := s.readRefChunk(t.Context())
		if err != nil || len(chunk) != 6 {
			t.Fatalf("readRefChunk: %d records, %v; want 6", len(chunk), err)
		}
		appendTo(t, s, 7, 8)
		if err := s.copyRefs(t.Context()); err != nil { // a search's copy, say
			t.Fatal(err)
		}
		if n, err := s.copyChunk(t.Context(), chunk, false); err != nil || n != 6 {
			t.Fatalf("copyChunk = %d, %v; want the 6 records read, none copied", n, err)
		}
		if got := refMark(t, s); got != 8 {
			t.Errorf("mark = %d, want 8: a chunk read before must not move it back", got)
		}
	})

	t.Run("pruned meanwhile", func(t *testing.T) {
		s := open(t)
		chunk, err := s.readRefChunk(t.Context())
		if err != nil || len(chunk) != 6 {
			t.Fatalf("readRefChunk: %d records, %v; want 6", len(chunk), err)
		}
		if a, n, err := s.PruneAudit(t.Context(), trailStart.Add(3500*time.Millisecond)); err != nil || n != 3 || a.Seq != 3 {
			t.Fatalf("PruneAudit = %+v, %d, %v; want records 1-3 removed", a, n, err)
		}
		if n, err := s.copyChunk(t.Context(), chunk, false); err != nil || n != 6 {
			t.Fatalf("copyChunk = %d, %v", n, err)
		}
		for i := 1; i <= 6; i++ {
			want := 0
			if i > 3 {
				want = 1
			}
			if got := refsOf(t, s, fmt.Sprintf("e%d", i)); got != want {
				t.Errorf("e%d has %d audit_ref entries, want %d", i, got, want)
			}
		}
		if got := refMark(t, s); got != 6 {
			t.Errorf("mark = %d, want 6", got)
		}
	})
}

// TestPatientsAsAgentOrEntityAreFoundThroughTheirPatientEntries: audit_ref keeps no agent or entity
// entry that names a Patient (the record's patient entry of the same value stands for it), and every
// kind of search by agent or entity still answers as the memory store, which tests each record's own
// entries: a Patient named as patient only, as entity, as agent, as both, beside other references.
func TestPatientsAsAgentOrEntityAreFoundThroughTheirPatientEntries(t *testing.T) {
	ctx := t.Context()
	s := openDir(t, t.TempDir())
	mem := memory.New()
	patients := []store.Write{
		{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: trailStart, Body: []byte(`{"resourceType":"Patient","id":"p1"}`)},
			Index: []store.IndexEntry{{Param: "name", Value: "ann", Text: "ann"}}},
		{Resource: store.Resource{Type: "Patient", ID: "p2", VersionID: 1, LastUpdated: trailStart, Body: []byte(`{"resourceType":"Patient","id":"p2"}`)},
			Index: []store.IndexEntry{{Param: "name", Value: "bob", Text: "bob"}}},
	}
	ref := func(param, v string) store.IndexEntry { return store.IndexEntry{Param: param, Value: v} }
	roles := [][]store.IndexEntry{
		{ref("patient", "Patient/p1"), ref("entity", "Immunization/i1"), ref("agent", "Practitioner/dr1")},
		{ref("patient", "Patient/p1"), ref("entity", "Patient/p1"), ref("agent", "Practitioner/dr1")},
		{ref("patient", "Patient/p1"), ref("agent", "Patient/p1"), ref("entity", "Patient/p1")},
		{ref("patient", "Patient/p1"), ref("agent", "Patient/p1"), ref("entity", "Immunization/i2")},
		{ref("patient", "Patient/p1"), ref("patient", "Patient/p2"), ref("agent", "Patient/p1"), ref("entity", "Patient/p2")},
		{ref("agent", "Practitioner/dr1"), ref("entity", "Observation/o1")},
		{ref("patient", "Patient/p2"), ref("entity", "Patient/p2"), ref("entity", "Observation/o1"), ref("agent", "Practitioner/dr1")},
	}
	var recs []audit.Record
	for i := range 3 * len(roles) {
		at := trailStart.Add(time.Duration(i) * time.Second)
		action := []string{"R", "C"}[i%2]
		idx := append([]store.IndexEntry{{Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli()},
			{Param: "action", System: "urn:act", Value: action}}, roles[i%len(roles)]...)
		id := fmt.Sprintf("a%02d", i)
		recs = append(recs, audit.Record{ID: id, Recorded: at, Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`), Index: idx})
	}
	for _, st := range []interface {
		Apply(context.Context, []store.Write) error
		audit.Store
	}{s, mem} {
		if err := st.Apply(ctx, patients); err != nil {
			t.Fatal(err)
		}
		if err := audit.AppendChained(ctx, st, slices.Clone(recs), 1); err != nil {
			t.Fatal(err)
		}
	}

	exact := func(param, v string) store.Predicate {
		return store.Predicate{Param: param, Match: store.MatchExact, Value: v}
	}
	named := func(name string) *store.Query {
		return &store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "name", Match: store.MatchPrefix, Value: name}}}}
	}
	newest := []store.SortKey{{Param: auditDate, Desc: true}}
	reads := func() *store.Query {
		return &store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}}
	}
	queries := map[string]store.Query{
		"entity":                     {Clauses: []store.Clause{{exact("entity", "Patient/p1")}}},
		"agent":                      {Clauses: []store.Clause{{exact("agent", "Patient/p1")}}},
		"entity of the other":        {Clauses: []store.Clause{{exact("entity", "Patient/p2")}}},
		"entity or an Observation":   {Clauses: []store.Clause{{exact("entity", "Patient/p1"), exact("entity", "Observation/o1")}}},
		"entity and an action":       {Clauses: []store.Clause{{exact("entity", "Patient/p1")}, {{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}},
		"agent and entity":           {Clauses: []store.Clause{{exact("agent", "Patient/p1")}, {exact("entity", "Patient/p2")}}},
		"entity, newest first":       {Clauses: []store.Clause{{exact("entity", "Patient/p1")}}, Sort: newest},
		"agent, a page newest first": {Clauses: []store.Clause{{exact("agent", "Patient/p1")}}, Sort: newest, Limit: 2},
		"agent and an action, newest first": {Clauses: []store.Clause{{exact("agent", "Patient/p1")},
			{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "C"}}}, Sort: newest},
		"entity as a token in any system":  {Clauses: []store.Clause{{{Param: "entity", Match: store.MatchToken, AnySystem: true, Value: "Patient/p1"}}}},
		"entity as a token without system": {Clauses: []store.Clause{{{Param: "entity", Match: store.MatchToken, Value: "Patient/p1"}}}},
		"entity as a token with a system":  {Clauses: []store.Clause{{{Param: "entity", Match: store.MatchToken, System: "urn:x", Value: "Patient/p1"}}}},
		"entity not":                       {Clauses: []store.Clause{{{Param: "entity", Match: store.MatchExact, Value: "Patient/p1", Not: true}}}},
		"entity chained":                   {Clauses: []store.Clause{{{Param: "entity", Match: store.MatchRefIn, Sub: named("ann")}}}},
		"agent chained, newest first":      {Clauses: []store.Clause{{{Param: "agent", Match: store.MatchRefIn, Sub: named("ann")}}}, Sort: newest},
		"patient, for comparison":          {Clauses: []store.Clause{{exact("patient", "Patient/p2")}}},
	}
	for name, q := range queries {
		q.Type = store.AuditEventType
		want := hitIDs(t, mem, q)
		if got := hitIDs(t, s, q); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
		n, err := s.Count(ctx, store.Query{Type: q.Type, Clauses: q.Clauses})
		if wantN, merr := mem.Count(ctx, store.Query{Type: q.Type, Clauses: q.Clauses}); err != nil || merr != nil || n != wantN {
			t.Errorf("%s: count %d %v, want %d %v", name, n, err, wantN, merr)
		}
	}
	// Into AuditEvents: the Patients that some read names as agent or entity; one driven by _has, one
	// tested on each Patient that another clause selects.
	for name, q := range map[string]store.Query{
		"_has agent":             {Clauses: []store.Clause{{{Param: "_has", Match: store.MatchHas, HasParam: "agent", Sub: reads()}}}},
		"_has entity":            {Clauses: []store.Clause{{{Param: "_has", Match: store.MatchHas, HasParam: "entity", Sub: reads()}}}},
		"a name and _has agent":  {Clauses: []store.Clause{{{Param: "name", Match: store.MatchPrefix, Value: "ann"}}, {{Param: "_has", Match: store.MatchHas, HasParam: "agent", Sub: reads()}}}},
		"never an agent":         {Clauses: []store.Clause{{{Param: "name", Match: store.MatchPrefix, Value: "bob"}}, {{Param: "_has", Match: store.MatchHas, HasParam: "agent", Sub: reads()}}}},
		"a name and _has entity": {Clauses: []store.Clause{{{Param: "name", Match: store.MatchPrefix, Value: "bob"}}, {{Param: "_has", Match: store.MatchHas, HasParam: "entity", Sub: reads()}}}},
	} {
		q.Type = "Patient"
		want := hitIDs(t, mem, q)
		if got := hitIDs(t, s, q); !slices.Equal(got, want) || (len(want) == 0) != (name == "never an agent") {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}

	var kept, patientRows int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_ref WHERE param IN ('agent', 'entity') AND value LIKE 'Patient/%'`).Scan(&kept); err != nil || kept != 0 {
		t.Errorf("%d agent or entity entries of Patients in audit_ref (%v), want none", kept, err)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM audit_ref WHERE param = 'entity' AND value = 'Observation/o1'`).Scan(&patientRows); err != nil || patientRows != 6 {
		t.Errorf("%d entity entries of Observation/o1 in audit_ref (%v), want 6", patientRows, err)
	}
}

// hitIDs is the ids of q's matches in st, in its order.
func hitIDs(t *testing.T, st store.Store, q store.Query) []string {
	t.Helper()
	hits, err := st.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("%+v: %v", q, err)
	}
	return idsOf(hits)
}

// TestQueuedReferencesAreCopiedAsTheRowsWouldBe: the references of a store's own appends are copied
// from its queue, the same rows as read back from the records; with another process's records in
// between, the queue does not follow the mark and the copy reads the rows instead, so no record is
// missed and none is copied twice.
func TestQueuedReferencesAreCopiedAsTheRowsWouldBe(t *testing.T) {
	refRows := func(s *Store) []string {
		t.Helper()
		rows, err := s.r.QueryContext(t.Context(), `SELECT value, param, id, system, t FROM audit_ref ORDER BY id, param, value`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var v, p, id, sys string
			var at int64
			if err := rows.Scan(&v, &p, &id, &sys, &at); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprint(v, p, id, sys, at))
		}
		return out
	}
	copied := func(s *Store) []string {
		t.Helper()
		if err := s.copyRefs(t.Context()); err != nil {
			t.Fatal(err)
		}
		if got := refMark(t, s); got != 150 {
			t.Errorf("mark = %d, want 150", got)
		}
		return refRows(s)
	}

	queued := openDirNoCopier(t, t.TempDir())
	appendTo(t, queued, 1, 150)
	if n := len(queued.appended.take(1000)); n != 150 {
		t.Fatalf("%d records queued, want 150", n)
	}
	readBack := openDirNoCopier(t, t.TempDir())
	appendTo(t, readBack, 1, 150)
	readBack.appended.done(150) // as if another process had appended them
	want := copied(readBack)
	if got := copied(queued); !slices.Equal(got, want) || len(want) != 150 {
		t.Errorf("copied from the queue: %d rows, from the records: %d; they differ: %v", len(got), len(want), !slices.Equal(got, want))
	}
	if n := len(queued.appended.take(1000)); n != 0 {
		t.Errorf("%d records still queued after the copy", n)
	}

	// Two processes on one file: the second appends between the first's records.
	dir := t.TempDir()
	a, b := openDirNoCopier(t, dir), openDirNoCopier(t, dir)
	appendTo(t, a, 1, 50)
	appendTo(t, b, 51, 100)
	appendTo(t, a, 101, 150)
	if got := copied(b); !slices.Equal(got, want) { // b's queue starts at 51, past the mark
		t.Errorf("b copied %d rows, want %d", len(got), len(want))
	}
	if got := copied(a); !slices.Equal(got, want) {
		t.Errorf("a copied %d rows after b, want %d", len(got), len(want))
	}
}

// openDirNoCopier opens dir without the background copier, so that the test decides when to copy.
func openDirNoCopier(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := open(t.Context(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
