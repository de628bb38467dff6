package mongo

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// trailT0 is when appendTrail's e0 would be recorded: en is recorded n seconds later.
var trailT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func wantVerify(t *testing.T, s *Store, intact bool, records, brokenAt int64, reason string) {
	t.Helper()
	res, err := audit.Verify(t.Context(), s)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if res.Intact != intact || res.Records != records || res.BrokenAt != brokenAt || !strings.Contains(res.Reason, reason) {
		t.Errorf("VerifyAudit = %v, want intact=%v, %d records, broken at %d saying %q", res, intact, records, brokenAt, reason)
	}
}

func wantAuditEvents(t *testing.T, s *Store, gone, kept []int) {
	t.Helper()
	for _, n := range gone {
		if _, err := s.Get(t.Context(), store.AuditEventType, fmt.Sprintf("e%d", n)); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get pruned e%d: %v, want not found", n, err)
		}
	}
	for _, n := range kept {
		if _, err := s.Get(t.Context(), store.AuditEventType, fmt.Sprintf("e%d", n)); err != nil {
			t.Errorf("Get kept e%d: %v", n, err)
		}
	}
}

func TestPruneAuditWorksInChunks(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{})
	s.pruneChunk = 2
	appendTrail(t, s, 7)
	anchor, removed, err := s.PruneAudit(t.Context(), trailT0.Add(5500*time.Millisecond))
	if err != nil || removed != 5 || anchor.Seq != 5 || !anchor.Recorded.Equal(trailT0.Add(5*time.Second)) {
		t.Fatalf("PruneAudit = %+v, %d, %v; want the anchor at record 5, 5 removed", anchor, removed, err)
	}
	wantAuditEvents(t, s, []int{1, 2, 3, 4, 5}, []int{6, 7})
	wantVerify(t, s, true, 2, 0, "")
	// One anchor document is left: each finished step removes those it supersedes.
	if n, err := s.db.Collection(collAuditAnchor).CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
		t.Errorf("%d anchor documents (%v), want 1", n, err)
	}
	if n, err := s.db.Collection(collAudit).CountDocuments(t.Context(), bson.D{}); err != nil || n != 2 {
		t.Errorf("%d chain documents (%v), want 2", n, err)
	}
}

// TestPruneAuditCrashLeavesAVerifiableChain simulates a process that dies right after a step has moved
// the anchor (journal mode), before the step's records are deleted: the chain verifies from the new
// anchor at once, and the next reader of the anchor deletes what the step left.
func TestPruneAuditCrashLeavesAVerifiableChain(t *testing.T) {
	uri := mongotest.Start(t)
	readers := []struct {
		name string
		next func(t *testing.T, s *Store) error
	}{
		{"VerifyAudit", func(t *testing.T, s *Store) error { _, err := audit.Verify(t.Context(), s); return err }},
		{"AuditAnchor", func(t *testing.T, s *Store) error { _, err := s.AuditAnchor(t.Context()); return err }},
		{"a range read", func(t *testing.T, s *Store) error { _, err := s.AuditRange(t.Context(), 0, 0); return err }},
		{"the next prune", func(t *testing.T, s *Store) error {
			_, removed, err := s.PruneAudit(t.Context(), trailT0)
			if err == nil && removed != 2 {
				err = fmt.Errorf("the next prune removed %d AuditEvents, want the crashed step's 2", removed)
			}
			return err
		}},
		{"the next Open", func(t *testing.T, s *Store) error {
			s2, err := Open(t.Context(), Options{URI: uri, Database: s.db.Name(), Timeout: 20 * time.Second})
			if err == nil {
				err = s2.Close()
			}
			return err
		}},
	}
	for _, tc := range readers {
		t.Run("finished by "+tc.name, func(t *testing.T) {
			s := open(t, uri, Options{Txn: TxnJournal})
			s.pruneChunk = 2
			appendTrail(t, s, 6)
			crash := errors.New("crash")
			steps := 0
			s.afterPruneAnchor = func() error {
				if steps++; steps == 2 {
					return crash
				}
				return nil
			}
			anchor, removed, err := s.PruneAudit(t.Context(), trailT0.Add(time.Hour))
			if !errors.Is(err, crash) || removed != 2 || anchor.Seq != 4 {
				t.Fatalf("PruneAudit = %+v, %d, %v; want the simulated crash after the second step moved the anchor to 4", anchor, removed, err)
			}
			s.afterPruneAnchor = nil
			var d anchorDoc
			if err := s.db.Collection(collAuditAnchor).FindOne(t.Context(), bson.D{{Key: "_id", Value: int64(4)}}).Decode(&d); err != nil || !d.Pending {
				t.Fatalf("the crashed step's anchor: %+v %v, want pending", d, err)
			}
			if _, err := s.Get(t.Context(), store.AuditEventType, "e3"); err != nil {
				t.Fatalf("Get e3 right after the crash: %v (the crashed step had not deleted it yet)", err)
			}
			got, err := s.auditRange(t.Context(), 0, 0)
			if err != nil || len(got) != 4 {
				t.Fatalf("the chain documents still hold %d records (%v), want 4 (3 to 6)", len(got), err)
			}

			if err := tc.next(t, s); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			wantAuditEvents(t, s, []int{1, 2, 3, 4}, []int{5, 6})
			var after anchorDoc
			if err := s.db.Collection(collAuditAnchor).FindOne(t.Context(), bson.D{{Key: "_id", Value: int64(4)}}).Decode(&after); err != nil || after.Pending || len(after.IDs) > 0 {
				t.Errorf("the step's anchor after recovery: %+v %v, want finished", after, err)
			}
			wantVerify(t, s, true, 2, 0, "")
		})
	}
}

// TestPrunedChainStillFindsTampering removes and edits records and the anchor with the driver, as
// someone with database access could: only PruneAudit's removals verify.
func TestPrunedChainStillFindsTampering(t *testing.T) {
	uri := mongotest.Start(t)
	// deleteRecord removes record n (one chain document per record here) and its AuditEvent copies.
	deleteRecord := func(t *testing.T, s *Store, n int) {
		t.Helper()
		id := fmt.Sprintf("e%d", n)
		for _, del := range []struct {
			coll   string
			filter bson.D
		}{
			{collAudit, bson.D{{Key: "_id", Value: int64(n)}}},
			{collPrefix + store.AuditEventType, bson.D{{Key: "_id", Value: id}}},
			{collHistory, bson.D{{Key: "_id", Value: histKey(store.AuditEventType, id, 1)}}},
			{collIdx, bson.D{{Key: "t", Value: store.AuditEventType}, {Key: "r", Value: id}}},
		} {
			if _, err := s.db.Collection(del.coll).DeleteMany(t.Context(), del.filter); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name     string
		pruneTo  int // records 1..pruneTo are pruned first
		tamper   func(t *testing.T, s *Store)
		records  int64
		brokenAt int64
		reason   string
	}{
		{
			name: "the oldest records deleted without the anchor leave a gap at record 1",
			tamper: func(t *testing.T, s *Store) {
				deleteRecord(t, s, 1)
				deleteRecord(t, s, 2)
			},
			brokenAt: 1, reason: "record 1 is missing (the next stored record is 3)",
		},
		{
			name: "the oldest record after the anchor deleted by hand leaves a gap after the anchor", pruneTo: 2,
			tamper:   func(t *testing.T, s *Store) { deleteRecord(t, s, 3) },
			brokenAt: 3, reason: "record 3 is missing (the next stored record is 4)",
		},
		{
			name: "an anchor whose hash was changed does not chain on the next record", pruneTo: 2,
			tamper: func(t *testing.T, s *Store) {
				_, err := s.db.Collection(collAuditAnchor).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: int64(2)}},
					bson.D{{Key: "$set", Value: bson.D{{Key: "h", Value: []byte("forged")}}}})
				if err != nil {
					t.Fatal(err)
				}
			},
			brokenAt: 3, reason: "AuditEvent/e3 does not chain on the anchor (record 2",
		},
		{
			name: "an anchor moved forward without removing records leaves them served but unchained", pruneTo: 2,
			tamper: func(t *testing.T, s *Store) {
				// A forged anchor at record 3 with record 3's real hash: the walk from it is intact, but
				// e3 is still served, and the served count gives it away.
				recs, err := s.auditRange(t.Context(), 2, 1)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s.db.Collection(collAuditAnchor).InsertOne(t.Context(), anchorDoc{Seq: 3, Hash: recs[0].Hash, Recorded: millis(recs[0].Recorded)}); err != nil {
					t.Fatal(err)
				}
			},
			records: 3, brokenAt: 7, reason: "1 AuditEvents are served that are not in the chain",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, uri, Options{})
			appendTrail(t, s, 6)
			if tc.pruneTo > 0 {
				if _, _, err := s.PruneAudit(t.Context(), trailT0.Add(time.Duration(tc.pruneTo)*time.Second+time.Millisecond)); err != nil {
					t.Fatal(err)
				}
				wantVerify(t, s, true, int64(6-tc.pruneTo), 0, "")
			}
			tc.tamper(t, s)
			wantVerify(t, s, false, tc.records, tc.brokenAt, tc.reason)
		})
	}
}

// TestPruneAuditStopsAtABrokenLink: pruning must not erase the evidence of tampering, nor anchor on a
// record that does not verify.
func TestPruneAuditStopsAtABrokenLink(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{})
	appendTrail(t, s, 5)
	_, err := s.db.Collection(collHistory).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: histKey(store.AuditEventType, "e3", 1)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: []byte(`{"resourceType":"AuditEvent","id":"e3","outcome":"8"}`)}}}})
	if err != nil {
		t.Fatal(err)
	}
	anchor, removed, err := s.PruneAudit(t.Context(), trailT0.Add(time.Hour))
	if err == nil || !strings.Contains(err.Error(), "broken at record 3") || removed != 2 || anchor.Seq != 2 {
		t.Fatalf("PruneAudit over an edited record = %+v, %d, %v; want records 1-2 removed and an error naming record 3", anchor, removed, err)
	}
	wantAuditEvents(t, s, []int{1, 2}, []int{3, 4, 5})
	wantVerify(t, s, false, 0, 3, "AuditEvent/e3 does not chain on the anchor")
}

// TestPruneAuditCountsAStepThatAReaderFinished: in journal mode a reader of the anchor (the uptake tally's
// AuditRange) may finish a prune step, deleting its records, between the step's anchor and the step's own
// deletions. The prune removed those records from the chain all the same, and must say so.
func TestPruneAuditCountsAStepThatAReaderFinished(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{Txn: TxnJournal})
	s.pruneChunk = 2
	appendTrail(t, s, 6)
	s.afterPruneAnchor = func() error {
		_, err := s.AuditRange(t.Context(), 0, 0)
		return err
	}
	anchor, removed, err := s.PruneAudit(t.Context(), trailT0.Add(time.Hour))
	if err != nil || removed != 6 || anchor.Seq != 6 {
		t.Fatalf("PruneAudit = %+v, %d, %v; want all 6 records removed, each step finished by a reader first", anchor, removed, err)
	}
	wantAuditEvents(t, s, []int{1, 2, 3, 4, 5, 6}, nil)
}

// TestAuditAnchorIsReturnedOnlyOnceItsRecordsAreGone reads the anchor while another call prunes one
// record per step (journal mode, so each step inserts its anchor before it deletes): an anchor that
// AuditAnchor returns has its records deleted, whichever call deleted them. It read the newest anchor
// document after finishing the pending ones, so a step inserted in between came back with its records
// still stored, and an auditor's search found AuditEvents that retention had already removed from the
// chain.
func TestAuditAnchorIsReturnedOnlyOnceItsRecordsAreGone(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{Txn: TxnJournal})
	s.pruneChunk = 1
	const n = 30
	appendTrail(t, s, n)
	done := make(chan error, 1)
	go func() {
		_, _, err := s.PruneAudit(t.Context(), trailT0.Add(time.Hour))
		done <- err
	}()
	var last int64
	for reads := 0; ; reads++ {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("PruneAudit: %v", err)
			}
			if a, err := s.AuditAnchor(t.Context()); err != nil || a.Seq != n {
				t.Fatalf("AuditAnchor after the prune: %+v %v, want record %d", a, err, n)
			}
			t.Logf("%d anchor reads during the prune, the last at record %d", reads, last)
			return
		default:
		}
		a, err := s.AuditAnchor(t.Context())
		if err != nil {
			t.Fatalf("AuditAnchor: %v", err)
		}
		if a.Seq == 0 {
			continue
		}
		last = a.Seq
		if _, err := s.Get(t.Context(), store.AuditEventType, fmt.Sprintf("e%d", a.Seq)); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("AuditAnchor returned record %d while its AuditEvent was still stored (Get: %v)", a.Seq, err)
		}
	}
}
