package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// version is the write of version v of typ/id at epoch+ms, expecting version v-1.
func version(typ, id string, v int64, ms int, index ...store.IndexEntry) store.Write {
	return store.Write{
		Resource:      store.Resource{Type: typ, ID: id, VersionID: v, LastUpdated: at(ms), Body: body(typ, id, v, "")},
		ExpectVersion: v - 1,
		Index:         index,
	}
}

func testApplyAudited(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	w.put("Patient", "p1")
	prior := []audit.Record{auditRecord("b1", 1, "R", "p1"), auditRecord("b2", 2, "R", "p1")}
	if err := audit.AppendChained(ctx, s, prior, 10); err != nil {
		t.Fatalf("AppendChained: %v", err)
	}
	chain := slices.Clone(prior)

	// unchanged checks that a refused call left the chain as it was and stored none of the given ids.
	unchanged := func(t *testing.T, resources, auditIDs []string) {
		t.Helper()
		last := chain[len(chain)-1]
		seq, hash, err := s.AuditHead(ctx)
		if err != nil || seq != last.Seq || !bytes.Equal(hash, last.Hash) {
			t.Errorf("AuditHead = %d %x %v, want %d %x", seq, hash, err, last.Seq, last.Hash)
		}
		got, err := s.AuditRange(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "AuditRange", got, chain)
		for _, id := range auditIDs {
			_, err := s.Get(ctx, store.AuditEventType, id)
			wantErr(t, "Get AuditEvent/"+id, err, store.ErrNotFound)
		}
		for _, id := range resources {
			_, err := s.Get(ctx, "Patient", id)
			wantErr(t, "Get Patient/"+id, err, store.ErrNotFound)
		}
	}

	t.Run("the writes and their records are stored together, the records chained after the head", func(t *testing.T) {
		writes := []store.Write{
			version("Patient", "p1", 2, 10, token("gender", "", "female")),
			version("Patient", "p2", 1, 11, token("gender", "", "female")),
		}
		recs := []audit.Record{auditRecord("u1", 10, "U", "p1"), auditRecord("u2", 11, "C", "p2")}
		// Whatever the caller put in Seq and Hash is ignored.
		recs[0].Seq, recs[0].Hash = 1, []byte("stale")
		recs[1].Seq, recs[1].Hash = 7, nil
		if err := s.ApplyAudited(ctx, writes, recs); err != nil {
			t.Fatalf("ApplyAudited: %v", err)
		}
		for _, wr := range writes {
			got, err := s.Get(ctx, "Patient", wr.Resource.ID)
			if err != nil {
				t.Fatalf("Get %s: %v", wr.Resource.ID, err)
			}
			sameResource(t, "Get", got, wr.Resource)
		}
		sameIDs(t, search(t, s, store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "gender", Match: store.MatchToken, AnySystem: true, Value: "female"}}}}), []string{"p1", "p2"})

		if recs[0].Seq != 3 || recs[1].Seq != 4 {
			t.Errorf("Seq filled as %d, %d; want 3, 4 (after the 2 records appended before)", recs[0].Seq, recs[1].Seq)
		}
		if !bytes.Equal(recs[0].Hash, audit.ChainHash(prior[1].Hash, recs[0])) || !bytes.Equal(recs[1].Hash, audit.ChainHash(recs[0].Hash, recs[1])) {
			t.Errorf("Hash not filled as the chain continues: %x %x", recs[0].Hash, recs[1].Hash)
		}
		chain = append(chain, recs...)
		seq, hash, err := s.AuditHead(ctx)
		if err != nil || seq != 4 || !bytes.Equal(hash, recs[1].Hash) {
			t.Errorf("AuditHead = %d %x %v, want 4 %x", seq, hash, err, recs[1].Hash)
		}
		got, err := s.AuditRange(ctx, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "AuditRange", got, chain)
		for _, r := range recs {
			ev, err := s.Get(ctx, store.AuditEventType, r.ID)
			if err != nil {
				t.Fatalf("Get AuditEvent/%s: %v", r.ID, err)
			}
			sameResource(t, "Get AuditEvent", ev, store.Resource{Type: store.AuditEventType, ID: r.ID, VersionID: 1, LastUpdated: r.Recorded, Body: r.Body})
		}
		sameIDs(t, search(t, s, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p2"}}}}), []string{"u2"})
		wantIntact(t, s, 4)
	})

	t.Run("a stale write conflicts and stores neither the group nor its record", func(t *testing.T) {
		writes := []store.Write{
			version("Patient", "p3", 1, 20),
			version("Patient", "p1", 2, 21), // p1 is at version 2 already
		}
		err := s.ApplyAudited(ctx, writes, []audit.Record{auditRecord("x1", 20, "C", "p3"), auditRecord("x2", 21, "U", "p1")})
		wantErr(t, "ApplyAudited", err, store.ErrVersionConflict)
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil || got.VersionID != 2 {
			t.Errorf("Get p1 = v%d %v, want v2", got.VersionID, err)
		}
		unchanged(t, []string{"p3"}, []string{"x1", "x2"})
	})

	auditWrite := version(store.AuditEventType, "x9", 1, 30)
	auditWrite.Resource.Body = auditRecord("x9", 30, "C", "p1").Body
	noBody := auditRecord("x1", 30, "C", "p4")
	noBody.Body = nil
	tooMany := make([]audit.Record, audit.MaxBatch+1)
	for i := range tooMany {
		tooMany[i] = auditRecord(fmt.Sprintf("x%d", i+1), 30, "C", "p4")
	}
	create := version("Patient", "p4", 1, 30)
	refused := []struct {
		name    string
		writes  []store.Write
		records []audit.Record
	}{
		{"a write of an AuditEvent", []store.Write{create, auditWrite}, []audit.Record{auditRecord("x1", 30, "C", "p4")}},
		{"no records", []store.Write{create}, nil},
		{"a record without a body", []store.Write{create}, []audit.Record{auditRecord("x2", 30, "C", "p4"), noBody}},
		{"a record without an id", []store.Write{create}, []audit.Record{auditRecord("", 30, "C", "p4")}},
		{"an id twice in the records", []store.Write{create}, []audit.Record{auditRecord("x1", 30, "C", "p4"), auditRecord("x1", 31, "C", "p4")}},
		{"a record id already in the chain", []store.Write{create}, []audit.Record{auditRecord("x1", 30, "C", "p4"), auditRecord("u1", 31, "C", "p4")}},
		{"more records than one batch takes", []store.Write{create}, tooMany},
		{"a version that does not follow the expected one", []store.Write{create, {Resource: version("Patient", "p5", 3, 30).Resource, ExpectVersion: 0}}, []audit.Record{auditRecord("x1", 30, "C", "p4")}},
		{"a resource twice in the group", []store.Write{create, create}, []audit.Record{auditRecord("x1", 30, "C", "p4")}},
	}
	for _, tc := range refused {
		t.Run(tc.name+" is invalid and stores nothing", func(t *testing.T) {
			wantErr(t, "ApplyAudited", s.ApplyAudited(ctx, tc.writes, tc.records), store.ErrInvalidQuery)
			unchanged(t, []string{"p4", "p5"}, []string{"x1", "x2", "x9"})
		})
	}

	t.Run("the next group chains on the head the refused ones left", func(t *testing.T) {
		recs := []audit.Record{auditRecord("v1", 40, "C", "p4")}
		if err := s.ApplyAudited(ctx, []store.Write{version("Patient", "p4", 1, 40)}, recs); err != nil {
			t.Fatalf("ApplyAudited: %v", err)
		}
		if recs[0].Seq != 5 {
			t.Errorf("Seq = %d, want 5", recs[0].Seq)
		}
		chain = append(chain, recs...)
		wantIntact(t, s, int64(len(chain)))
	})

	t.Run("without writes the records are appended wherever the head is", func(t *testing.T) {
		// What a group committer does: it never read the head, and Seq and Hash passed in are ignored.
		recs := []audit.Record{auditRecord("nw1", 50, "R", "p1"), auditRecord("nw2", 51, "E", "")}
		recs[0].Seq, recs[0].Hash = 1, []byte("stale")
		if err := s.ApplyAudited(ctx, nil, recs); err != nil {
			t.Fatalf("ApplyAudited without writes: %v", err)
		}
		if want := chain[len(chain)-1].Seq + 1; recs[0].Seq != want || recs[1].Seq != want+1 {
			t.Errorf("Seq = %d, %d, want %d, %d", recs[0].Seq, recs[1].Seq, want, want+1)
		}
		chain = append(chain, recs...)
		wantIntact(t, s, int64(len(chain)))
	})

	t.Run("concurrent audited writers and appenders each get their records into the chain once", func(t *testing.T) {
		const writers, appenders, rounds = 8, 4, 3
		var wg sync.WaitGroup
		errs := make(chan error, writers+appenders)
		want := map[string]bool{}
		for g := range writers {
			for i := range rounds {
				want[fmt.Sprintf("w%d-%d-a", g, i)] = true
				want[fmt.Sprintf("w%d-%d-b", g, i)] = true
			}
		}
		for g := range appenders {
			for i := range rounds {
				want[fmt.Sprintf("a%d-%d", g, i)] = true
			}
		}
		for g := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					// Each round creates a resource of its own and moves the writer's own resource on.
					writes := []store.Write{
						version("Patient", fmt.Sprintf("w%d-%d", g, i), 1, 100+i),
						version("Observation", fmt.Sprintf("w%d", g), int64(i+1), 100+i),
					}
					recs := []audit.Record{auditRecord(fmt.Sprintf("w%d-%d-a", g, i), 100+i, "C", "p1"), auditRecord(fmt.Sprintf("w%d-%d-b", g, i), 100+i, "U", "p1")}
					if err := s.ApplyAudited(ctx, writes, recs); err != nil {
						errs <- fmt.Errorf("writer %d round %d: %w", g, i, err)
						return
					}
				}
			}()
		}
		for g := range appenders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range rounds {
					if err := audit.AppendChained(ctx, s, []audit.Record{auditRecord(fmt.Sprintf("a%d-%d", g, i), 200+i, "R", "p1")}, 1000); err != nil {
						errs <- fmt.Errorf("appender %d round %d: %w", g, i, err)
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

		got, err := s.AuditRange(ctx, int64(len(chain)), 0)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for i, r := range got {
			if r.Seq != int64(len(chain)+i+1) {
				t.Errorf("record %d has Seq %d", len(chain)+i+1, r.Seq)
			}
			seen[r.ID]++
		}
		for id := range want {
			if seen[id] != 1 {
				t.Errorf("AuditEvent/%s is in the chain %d times, want once", id, seen[id])
			}
		}
		if len(got) != len(want) {
			t.Errorf("%d records appended, want %d", len(got), len(want))
		}
		for g := range writers {
			got, err := s.Get(ctx, "Observation", fmt.Sprintf("w%d", g))
			if err != nil || got.VersionID != rounds {
				t.Errorf("Get Observation/w%d = v%d %v, want v%d", g, got.VersionID, err, rounds)
			}
		}
		wantIntact(t, s, int64(len(chain)+len(want)))
	})
}
