package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// testPrune is the retention contract: PruneAudit removes a prefix of the chain recorded before the
// cut-off, the last removed record becomes the anchor, and what is left verifies from there.
func testPrune(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	prune := func(t *testing.T, before time.Time, wantRemoved int64, want audit.Anchor) {
		t.Helper()
		anchor, removed, err := s.PruneAudit(ctx, before)
		if err != nil {
			t.Fatalf("PruneAudit(%v): %v", before, err)
		}
		if removed != wantRemoved {
			t.Errorf("PruneAudit(%v) removed %d records, want %d", before, removed, wantRemoved)
		}
		sameAnchor(t, "PruneAudit's anchor", anchor, want)
		got, err := s.AuditAnchor(ctx)
		if err != nil {
			t.Fatalf("AuditAnchor: %v", err)
		}
		sameAnchor(t, "AuditAnchor after PruneAudit", got, want)
	}

	t.Run("an empty chain prunes nothing and has no anchor", func(t *testing.T) {
		prune(t, at(1000), 0, audit.Anchor{})
		wantIntact(t, s, 0)
	})

	// Three batches, so that a prune ends inside a batch as well as between two. The clock stepped back
	// at p5: it is older than p4 but comes after it in the chain.
	recs := appendNew(t, s, auditRecord("p1", 10, "R", "x1"), auditRecord("p2", 20, "R", "x1"), auditRecord("p3", 30, "E", "x2"))
	recs = append(recs, appendNew(t, s, auditRecord("p4", 40, "R", "x2"), auditRecord("p5", 35, "R", "x1"))...)
	recs = append(recs, appendNew(t, s, auditRecord("p6", 50, "C", "x1"), auditRecord("p7", 60, "R", "x2"))...)
	anchorOf := func(r audit.Record) audit.Anchor {
		return audit.Anchor{Seq: r.Seq, Hash: r.Hash, Recorded: r.Recorded}
	}

	t.Run("a cut-off before the first record prunes nothing", func(t *testing.T) {
		prune(t, at(10), 0, audit.Anchor{})
		wantKept(t, s, recs, audit.Anchor{})
	})
	t.Run("a prefix is removed and its last record becomes the anchor", func(t *testing.T) {
		prune(t, at(25), 2, anchorOf(recs[1]))
		wantKept(t, s, recs[2:], anchorOf(recs[1]))
		wantGone(t, s, recs[:2])
		wantIntact(t, s, 5)
	})
	t.Run("a prune stops at the first record not older than the cut-off, even if later ones are older", func(t *testing.T) {
		// p3 (30) goes, p4 (40) stops the prune, p5 (35) stays although it is older than the cut-off.
		prune(t, at(38), 1, anchorOf(recs[2]))
		wantKept(t, s, recs[3:], anchorOf(recs[2]))
		wantGone(t, s, recs[:3])
		wantIntact(t, s, 4)
	})
	t.Run("a cut-off already passed prunes nothing and keeps the anchor", func(t *testing.T) {
		prune(t, at(5), 0, anchorOf(recs[2]))
		wantIntact(t, s, 4)
	})
	t.Run("records appended after a prune chain on the head", func(t *testing.T) {
		recs = append(recs, appendNew(t, s, auditRecord("p8", 70, "R", "x1"))...)
		if recs[7].Seq != 8 {
			t.Fatalf("the record appended after pruning has Seq %d, want 8", recs[7].Seq)
		}
		wantKept(t, s, recs[3:], anchorOf(recs[2]))
		wantIntact(t, s, 5)
	})
	t.Run("pruning again moves the anchor forward, past the clock step back", func(t *testing.T) {
		prune(t, at(45), 2, anchorOf(recs[4]))
		wantKept(t, s, recs[5:], anchorOf(recs[4]))
		wantGone(t, s, recs[:5])
		wantIntact(t, s, 3)
	})
	t.Run("pruning everything leaves the head at the anchor", func(t *testing.T) {
		prune(t, at(1000), 3, anchorOf(recs[7]))
		wantKept(t, s, nil, anchorOf(recs[7]))
		wantGone(t, s, recs)
		seq, hash, err := s.AuditHead(ctx)
		if err != nil || seq != 8 || !bytes.Equal(hash, recs[7].Hash) {
			t.Errorf("AuditHead of a chain pruned to its end = %d %x %v, want 8 %x (the anchor)", seq, hash, err, recs[7].Hash)
		}
		wantIntact(t, s, 0)
		// An appender that read the head before p8 was appended cannot take its place now it is gone.
		stale := chained(recs[6].Hash, 7, auditRecord("late", 95, "R", "x1"))
		wantErr(t, "AppendAudit at a pruned position", s.AppendAudit(ctx, stale), store.ErrVersionConflict)
		_, err = s.Get(ctx, store.AuditEventType, "late")
		wantErr(t, "Get late", err, store.ErrNotFound)
	})
	t.Run("a chain pruned to its end takes appends after the anchor", func(t *testing.T) {
		recs = append(recs, appendNew(t, s, auditRecord("p9", 80, "R", "x1"), auditRecord("p10", 90, "R", "x2"))...)
		if recs[8].Seq != 9 {
			t.Fatalf("the record appended after pruning everything has Seq %d, want 9", recs[8].Seq)
		}
		wantKept(t, s, recs[8:], anchorOf(recs[7]))
		wantIntact(t, s, 2)
		prune(t, at(85), 1, anchorOf(recs[8]))
		wantKept(t, s, recs[9:], anchorOf(recs[8]))
		wantIntact(t, s, 1)
	})
}

// wantKept checks that exactly kept (in chain order) are left after the anchor: in AuditRange from 0 and
// from the anchor, and as AuditEvents that Get, GetVersion, Search, Count and History serve.
func wantKept(t *testing.T, s audit.Backend, kept []audit.Record, anchor audit.Anchor) {
	t.Helper()
	ctx := t.Context()
	for _, after := range []int64{0, anchor.Seq} {
		got, err := s.AuditRange(ctx, after, 0)
		if err != nil {
			t.Fatalf("AuditRange(%d): %v", after, err)
		}
		sameRecords(t, fmt.Sprintf("AuditRange(%d, 0) after pruning to %d", after, anchor.Seq), got, kept)
	}
	if len(kept) > 1 {
		got, err := s.AuditRange(ctx, 0, 1)
		if err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "AuditRange(0, 1) after pruning", got, kept[:1])
	}
	var ids, newestFirst []string
	for i, r := range kept {
		ids = append(ids, r.ID)
		newestFirst = append(newestFirst, kept[len(kept)-1-i].ID)
		got, err := s.Get(ctx, store.AuditEventType, r.ID)
		if err != nil {
			t.Fatalf("Get kept %s: %v", r.ID, err)
		}
		sameResource(t, "Get kept "+r.ID, got, store.Resource{Type: store.AuditEventType, ID: r.ID, VersionID: 1, LastUpdated: r.Recorded, Body: r.Body})
	}
	sameIDs(t, search(t, s, store.Query{Type: store.AuditEventType, Sort: []store.SortKey{{Param: store.ParamID}}}), sortedIDs(ids))
	hist, err := s.History(ctx, store.HistoryQuery{Type: store.AuditEventType})
	if err != nil {
		t.Fatal(err)
	}
	var histIDs []string
	for _, h := range hist {
		histIDs = append(histIDs, h.ID)
	}
	// History is newest first by lastUpdated; the kept records' times are increasing except at the
	// clock step back, so compare as sets.
	sameIDs(t, sortedIDs(histIDs), sortedIDs(newestFirst))
}

// wantGone checks that pruned records are no longer readable or searchable in any way.
func wantGone(t *testing.T, s audit.Backend, gone []audit.Record) {
	t.Helper()
	ctx := t.Context()
	for _, r := range gone {
		_, err := s.Get(ctx, store.AuditEventType, r.ID)
		wantErr(t, "Get pruned "+r.ID, err, store.ErrNotFound)
		_, err = s.GetVersion(ctx, store.AuditEventType, r.ID, 1)
		wantErr(t, "GetVersion pruned "+r.ID, err, store.ErrNotFound)
		q := store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: store.ParamID, Match: store.MatchExact, Value: r.ID}}}}
		sameIDs(t, search(t, s, q), nil)
	}
	// Through the index too: every test record has a patient, x1 or x2.
	for _, p := range []string{"x1", "x2"} {
		hits := search(t, s, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/" + p}}}})
		for _, id := range hits {
			for _, r := range gone {
				if id == r.ID {
					t.Errorf("search by patient %s still finds pruned AuditEvent/%s", p, id)
				}
			}
		}
	}
	hits := search(t, s, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "date", Match: store.MatchRange,
		Bounds: []store.Bound{{Field: store.High, Cmp: store.LT, Value: at(1000).UnixMilli()}}}}}})
	for _, id := range hits {
		for _, r := range gone {
			if id == r.ID {
				t.Errorf("search by date still finds pruned AuditEvent/%s", id)
			}
		}
	}
}

func sameAnchor(t *testing.T, what string, got, want audit.Anchor) {
	t.Helper()
	if got.Seq != want.Seq || !bytes.Equal(got.Hash, want.Hash) || !got.Recorded.Equal(want.Recorded) {
		t.Errorf("%s = seq %d hash %x recorded %v, want seq %d hash %x recorded %v", what, got.Seq, got.Hash, got.Recorded, want.Seq, want.Hash, want.Recorded)
	}
	if !got.Recorded.IsZero() && got.Recorded.Location() != time.UTC {
		t.Errorf("%s: Recorded in %v, want UTC", what, got.Recorded.Location())
	}
}

func sortedIDs(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

// testPruneConcurrent runs several prunes with different cut-offs at once while appends go on, as the
// retention loops of several processes sharing a store would: the chain must end intact, the anchor at
// the furthest cut-off's prefix, and no kept record lost.
func testPruneConcurrent(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	var recs []audit.Record
	for b := range 4 {
		var batch []audit.Record
		for i := range 3 {
			n := 3*b + i + 1
			batch = append(batch, auditRecord(fmt.Sprintf("c%d", n), 10*n, "R", "x1"))
		}
		recs = append(recs, appendNew(t, s, batch...)...)
	}
	cutoffs := []int{35, 75, 55}
	errs := make(chan error, len(cutoffs)+1)
	for _, c := range cutoffs {
		go func() {
			_, _, err := s.PruneAudit(ctx, at(c))
			errs <- err
		}()
	}
	go func() {
		errs <- audit.AppendChained(ctx, s, []audit.Record{auditRecord("late", 1000, "R", "x1")}, 100)
	}()
	var failed []error
	for range len(cutoffs) + 1 {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if err := errors.Join(failed...); err != nil {
		t.Fatal(err)
	}
	anchor, err := s.AuditAnchor(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// c1..c7 are recorded before 75.
	sameAnchor(t, "AuditAnchor after concurrent prunes", anchor, audit.Anchor{Seq: 7, Hash: recs[6].Hash, Recorded: recs[6].Recorded})
	wantGone(t, s, recs[:7])
	wantIntact(t, s, int64(len(recs)-7+1))
}
