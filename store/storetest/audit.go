package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// auditRecord makes an unchained AuditEvent record at epoch+ms, indexed by action, patient and date.
func auditRecord(id string, ms int, action, patient string) audit.Record {
	when := at(ms)
	return audit.Record{
		ID:       id,
		Recorded: when,
		Body:     fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1"},"action":%q}`, id, action),
		Index: []store.IndexEntry{
			token("action", "http://hl7.org/fhir/audit-event-action", action),
			ref("patient", "Patient/"+patient),
			period("date", when.UnixMilli(), when.UnixMilli()),
		},
	}
}

// appendNew chains recs on the current head and appends them, failing the test on error.
func appendNew(t *testing.T, s audit.Backend, recs ...audit.Record) []audit.Record {
	t.Helper()
	head, hash, err := s.AuditHead(t.Context())
	if err != nil {
		t.Fatalf("AuditHead: %v", err)
	}
	audit.Chain(hash, head, recs)
	if err := s.AppendAudit(t.Context(), recs); err != nil {
		t.Fatalf("AppendAudit: %v", err)
	}
	return recs
}

func sameRecords(t *testing.T, what string, got, want []audit.Record) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d records, want %d", what, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Seq != w.Seq || g.ID != w.ID || !g.Recorded.Equal(w.Recorded) || !bytes.Equal(g.Body, w.Body) || !bytes.Equal(g.Hash, w.Hash) {
			t.Errorf("%s[%d]: got seq %d %s %v %s %x, want seq %d %s %v %s %x", what, i,
				g.Seq, g.ID, g.Recorded, g.Body, g.Hash, w.Seq, w.ID, w.Recorded, w.Body, w.Hash)
		}
		if g.Recorded.Location() != time.UTC {
			t.Errorf("%s[%d]: Recorded in %v, want UTC", what, i, g.Recorded.Location())
		}
	}
}

func wantIntact(t *testing.T, s audit.Backend, records int64) {
	t.Helper()
	res, err := audit.Verify(t.Context(), s)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if !res.Intact || res.Records != records {
		t.Errorf("VerifyAudit = %v, want intact, %d records", res, records)
	}
}

func testAudit(t *testing.T, s audit.Backend) {
	ctx := t.Context()

	t.Run("an empty chain has head 0 and verifies intact", func(t *testing.T) {
		seq, hash, err := s.AuditHead(ctx)
		if err != nil || seq != 0 || hash != nil {
			t.Fatalf("AuditHead = %d %x %v, want 0, nil", seq, hash, err)
		}
		wantIntact(t, s, 0)
	})

	first := appendNew(t, s, auditRecord("a1", 1, "R", "p1"), auditRecord("a2", 2, "E", "p1"))
	second := appendNew(t, s, auditRecord("a3", 3, "R", "p2"))
	all := append(slices.Clone(first), second...)

	t.Run("append moves the head to the last record", func(t *testing.T) {
		seq, hash, err := s.AuditHead(ctx)
		if err != nil || seq != 3 || !bytes.Equal(hash, all[2].Hash) {
			t.Fatalf("AuditHead = %d %x %v, want 3 %x", seq, hash, err, all[2].Hash)
		}
	})
	t.Run("range returns records after a position in chain order, at most limit", func(t *testing.T) {
		cases := []struct {
			after int64
			limit int
			want  []audit.Record
		}{
			{0, 0, all}, {0, 10, all}, {0, 2, all[:2]}, {1, 1, all[1:2]}, {2, 5, all[2:]}, {3, 5, nil},
		}
		for _, tc := range cases {
			got, err := s.AuditRange(ctx, tc.after, tc.limit)
			if err != nil {
				t.Fatalf("AuditRange(%d, %d): %v", tc.after, tc.limit, err)
			}
			sameRecords(t, fmt.Sprintf("AuditRange(%d, %d)", tc.after, tc.limit), got, tc.want)
		}
	})
	t.Run("appended records are AuditEvent resources at version 1", func(t *testing.T) {
		for _, r := range all {
			want := store.Resource{Type: store.AuditEventType, ID: r.ID, VersionID: 1, LastUpdated: r.Recorded, Body: r.Body}
			got, err := s.Get(ctx, store.AuditEventType, r.ID)
			if err != nil {
				t.Fatalf("Get %s: %v", r.ID, err)
			}
			sameResource(t, "Get", got, want)
			got, err = s.GetVersion(ctx, store.AuditEventType, r.ID, 1)
			if err != nil {
				t.Fatalf("GetVersion %s: %v", r.ID, err)
			}
			sameResource(t, "GetVersion", got, want)
		}
		hist, err := s.History(ctx, store.HistoryQuery{Type: store.AuditEventType})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hist {
			ids = append(ids, h.ID)
		}
		sameIDs(t, ids, []string{"a3", "a2", "a1"})
	})
	t.Run("appended records are searchable through their index", func(t *testing.T) {
		cases := []struct {
			name string
			q    store.Query
			want []string
		}{
			{"by token", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}}, []string{"a1", "a3"}},
			{"by reference", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}}}, []string{"a1", "a2"}},
			{"by date range, newest first", store.Query{Type: store.AuditEventType,
				Clauses: []store.Clause{{{Param: "date", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.High, Cmp: store.GE, Value: at(2).UnixMilli()}}}}},
				Sort:    []store.SortKey{{Param: "date", Desc: true}}}, []string{"a3", "a2"}},
			{"everything", store.Query{Type: store.AuditEventType}, []string{"a1", "a2", "a3"}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) { sameIDs(t, search(t, s, tc.q), tc.want) })
		}
	})

	refused := []struct {
		name   string
		append []audit.Record
		want   error
	}{
		{"a batch chained on a stale head conflicts", chained(nil, 0, auditRecord("x1", 9, "R", "p1")), store.ErrVersionConflict},
		{"a batch chained one behind the head conflicts", chained(all[1].Hash, 2, auditRecord("x1", 9, "R", "p1")), store.ErrVersionConflict},
		{"a batch that skips a position conflicts", chained(all[2].Hash, 4, auditRecord("x1", 9, "R", "p1")), store.ErrVersionConflict},
		{"a batch at the right position whose hash is not chained on the head is invalid", chained([]byte("not the head"), 3, auditRecord("x1", 9, "R", "p1")), store.ErrInvalidQuery},
		{"a batch whose records do not chain on each other is invalid", tamper(chained(all[2].Hash, 3, auditRecord("x1", 9, "R", "p1"), auditRecord("x2", 9, "R", "p1"))), store.ErrInvalidQuery},
		{"an id already in the chain is invalid", chained(all[2].Hash, 3, auditRecord("a1", 9, "R", "p1")), store.ErrInvalidQuery},
		{"an id twice in one batch is invalid", chained(all[2].Hash, 3, auditRecord("x1", 9, "R", "p1"), auditRecord("x1", 9, "R", "p1")), store.ErrInvalidQuery},
		{"a record without an id is invalid", chained(all[2].Hash, 3, auditRecord("", 9, "R", "p1")), store.ErrInvalidQuery},
	}
	for _, tc := range refused {
		t.Run(tc.name+" and writes nothing", func(t *testing.T) {
			wantErr(t, "AppendAudit", s.AppendAudit(ctx, tc.append), tc.want)
			seq, hash, err := s.AuditHead(ctx)
			if err != nil || seq != 3 || !bytes.Equal(hash, all[2].Hash) {
				t.Errorf("AuditHead after the refusal = %d %x %v, want 3 %x", seq, hash, err, all[2].Hash)
			}
			for _, id := range []string{"x1", "x2"} {
				_, err := s.Get(ctx, store.AuditEventType, id)
				wantErr(t, "Get "+id, err, store.ErrNotFound)
			}
			got, err := s.AuditRange(ctx, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			sameRecords(t, "AuditRange after the refusal", got, all)
		})
	}

	t.Run("no write path changes an AuditEvent", func(t *testing.T) {
		r := store.Resource{Type: store.AuditEventType, ID: "a1", VersionID: 2, LastUpdated: at(20), Body: body(store.AuditEventType, "a1", 2, "")}
		gone := store.Resource{Type: store.AuditEventType, ID: "a2", VersionID: 2, LastUpdated: at(20), Deleted: true}
		fresh := store.Resource{Type: store.AuditEventType, ID: "new", VersionID: 1, LastUpdated: at(20), Body: body(store.AuditEventType, "new", 1, "")}
		writes := []struct {
			name  string
			write store.Write
		}{
			{"update", store.Write{Resource: r, ExpectVersion: 1}},
			{"delete", store.Write{Resource: gone, ExpectVersion: 1}},
			{"create", store.Write{Resource: fresh}},
		}
		for _, w := range writes {
			wantErr(t, "Apply "+w.name, s.Apply(ctx, []store.Write{w.write}), store.ErrInvalidQuery)
		}
		// Not even in a group with an ordinary write, which must then not happen either.
		patient := store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: at(20), Body: body("Patient", "p1", 1, "")}
		wantErr(t, "Apply in a group", s.Apply(ctx, []store.Write{{Resource: patient}, {Resource: fresh}}), store.ErrInvalidQuery)
		_, err := s.Get(ctx, "Patient", "p1")
		wantErr(t, "Get Patient/p1", err, store.ErrNotFound)
		wantErr(t, "SetIndex", s.SetIndex(ctx, store.AuditEventType, "a1", 1, []store.IndexEntry{token("action", "", "D")}), store.ErrInvalidQuery)

		sameIDs(t, search(t, s, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}}), []string{"a1", "a3"})
		got, err := s.Get(ctx, store.AuditEventType, "a2")
		if err != nil {
			t.Fatal(err)
		}
		sameResource(t, "Get a2", got, store.Resource{Type: store.AuditEventType, ID: "a2", VersionID: 1, LastUpdated: all[1].Recorded, Body: all[1].Body})
		_, err = s.Get(ctx, store.AuditEventType, "new")
		wantErr(t, "Get new", err, store.ErrNotFound)
	})
	t.Run("an empty batch appends nothing", func(t *testing.T) {
		if err := s.AppendAudit(ctx, nil); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the chain verifies intact", func(t *testing.T) { wantIntact(t, s, 3) })
}

func chained(prev []byte, head int64, recs ...audit.Record) []audit.Record {
	audit.Chain(prev, head, recs)
	return recs
}

// tamper changes the last record's body after chaining, so that it no longer matches its hash.
func tamper(recs []audit.Record) []audit.Record {
	last := &recs[len(recs)-1]
	last.Body = append(bytes.Clone(last.Body[:len(last.Body)-1]), `,"x":1}`...)
	return recs
}

// testAuditConcurrent has several goroutines append batches at once, each retrying on conflict with
// audit.AppendChained, as several API processes would; the chain must end intact with every record once.
func testAuditConcurrent(t *testing.T, s audit.Backend) {
	const writers, batches, perBatch = 3, 3, 2
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				var recs []audit.Record
				for i := range perBatch {
					id := fmt.Sprintf("w%d-b%d-%d", w, b, i)
					recs = append(recs, auditRecord(id, 100*w+10*b+i, "R", "p1"))
				}
				if err := audit.AppendChained(t.Context(), s, recs, 1000); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, b, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.AuditRange(t.Context(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for i, r := range got {
		if r.Seq != int64(i+1) {
			t.Errorf("record %d has Seq %d", i+1, r.Seq)
		}
		seen[r.ID]++
	}
	if len(seen) != writers*batches*perBatch || len(got) != writers*batches*perBatch {
		t.Errorf("%d records with %d distinct ids, want %d of each", len(got), len(seen), writers*batches*perBatch)
	}
	wantIntact(t, s, writers*batches*perBatch)
}

// testAuditLargeBatches appends batches of sizes that no single statement of a store need write (a store
// may write a batch in parts), each whole and in order, by both ways in: records alone, and records with
// writes.
func testAuditLargeBatches(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	var all []audit.Record
	n := 0
	batch := func(size int) []audit.Record {
		var recs []audit.Record
		for range size {
			recs = append(recs, auditRecord(fmt.Sprintf("big-%03d", n), n, "R", "p1"))
			n++
		}
		return recs
	}
	for _, size := range []int{101, 1, 64, 63} {
		recs := batch(size)
		if err := audit.AppendChained(ctx, s, recs, 1000); err != nil {
			t.Fatalf("a batch of %d: %v", size, err)
		}
		all = append(all, recs...)
	}
	recs := batch(70)
	w := store.Write{Resource: store.Resource{Type: "Patient", ID: "big", VersionID: 1, LastUpdated: at(n), Body: []byte(`{"resourceType":"Patient","id":"big"}`)}}
	if err := s.ApplyAudited(ctx, []store.Write{w}, recs); err != nil {
		t.Fatalf("a batch of 70 with a write: %v", err)
	}
	all = append(all, recs...)
	got, err := s.AuditRange(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameRecords(t, "AuditRange", got, all)
	wantIntact(t, s, int64(len(all)))
}

// testAuditNewestFirst pages through the auditor's question, "who saw this patient", newest first and
// in id order, with and without a further clause: records of the patient among others', several at one instant (ordered by
// id), the patient named twice in one record, and pages that end inside a run of equal times.
func testAuditNewestFirst(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	var recs []audit.Record
	var want, wantReads []string
	for i := range 40 {
		id := fmt.Sprintf("r%02d", i*17%40) // ids in no relation to time, nor ties in append order
		patient, action := "p2", "R"
		if i%3 != 0 {
			patient = "p1"
		}
		if i%4 == 0 {
			action = "U"
		}
		r := auditRecord(id, i/3, action, patient) // three records per millisecond
		if i%5 == 0 {
			r.Index = append(r.Index, ref("entity", "Patient/"+patient), ref("patient", "Patient/"+patient))
		}
		recs = append(recs, r)
	}
	appendNew(t, s, recs...)
	// Expected: newest first, and by id among records of one instant.
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b audit.Record) int {
		if c := b.Recorded.Compare(a.Recorded); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	for _, r := range sorted {
		if slices.ContainsFunc(r.Index, func(e store.IndexEntry) bool { return e.Param == "patient" && e.Value == "Patient/p1" }) {
			want = append(want, r.ID)
			if strings.Contains(string(r.Body), `"action":"R"`) {
				wantReads = append(wantReads, r.ID)
			}
		}
	}
	byPatient := store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}
	reads := store.Clause{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}
	newest := []store.SortKey{{Param: "date", Desc: true}}
	for _, tc := range []struct {
		name    string
		clauses []store.Clause
		sort    []store.SortKey
		want    []string
	}{
		{"by patient, newest first", []store.Clause{byPatient}, newest, want},
		{"by patient, reads only, newest first", []store.Clause{reads, byPatient}, newest, wantReads},
		{"by patient, in id order", []store.Clause{byPatient}, nil, slices.Sorted(slices.Values(want))},
		{"by patient, reads only, in id order", []store.Clause{reads, byPatient}, nil, slices.Sorted(slices.Values(wantReads))},
	} {
		for _, size := range []int{1, 2, 4, 100} {
			t.Run(fmt.Sprintf("%s, pages of %d", tc.name, size), func(t *testing.T) {
				q := store.Query{Type: store.AuditEventType, Clauses: tc.clauses, Sort: tc.sort, Limit: size}
				var got []string
				for range 100 {
					hits, err := s.Search(ctx, q)
					if err != nil {
						t.Fatalf("Search: %v", err)
					}
					for _, h := range hits {
						got = append(got, h.Resource.ID)
					}
					if len(hits) < size {
						break
					}
					q.After = hits[len(hits)-1].SortValues
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("pages give %v, want %v", got, tc.want)
				}
			})
		}
	}
}
