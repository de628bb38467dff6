package mongo

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

func auditRec(id string) audit.Record {
	return audit.Record{ID: id, Recorded: time.Now().UTC().Truncate(time.Millisecond),
		Body:  []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`),
		Index: []store.IndexEntry{{Param: "action", Value: "U"}}}
}

// auditedGroup is the group the tests below make: Patient/a from v1 to v2 and a new Patient/b.
func auditedGroup() []store.Write {
	return []store.Write{
		{Resource: res("Patient", "a", 2, 10), ExpectVersion: 1, Index: []store.IndexEntry{tokenEntry("gender", "new")}},
		{Resource: res("Patient", "b", 1, 11), Index: []store.IndexEntry{tokenEntry("gender", "new")}},
	}
}

// seedAudited gives s Patient/a at v1 and two audit records, and returns the head.
func seedAudited(t *testing.T, s *Store) (int64, []byte) {
	t.Helper()
	if err := s.Apply(t.Context(), []store.Write{{Resource: res("Patient", "a", 1, 1), Index: []store.IndexEntry{tokenEntry("gender", "old")}}}); err != nil {
		t.Fatal(err)
	}
	appendTrail(t, s, 2)
	seq, hash, err := s.AuditHead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return seq, hash
}

// wantGroupUndone checks that the group of auditedGroup left no trace: Patient/a is back at v1 with its
// old index, Patient/b and the new history versions are gone, and no journal is left.
func wantGroupUndone(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	if got, err := s.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 1 {
		t.Errorf("Get a = v%d %v, want v1", got.VersionID, err)
	}
	if _, err := s.Get(ctx, "Patient", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get b: %v, want not found", err)
	}
	if _, err := s.GetVersion(ctx, "Patient", "a", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("GetVersion a 2: %v, want not found", err)
	}
	hits, err := s.Search(ctx, store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "gender", Match: store.MatchToken, System: "s", Value: "new"}}}})
	if err != nil || len(hits) != 0 {
		t.Errorf("gender=new finds %d, %v; want none", len(hits), err)
	}
	if n, err := s.db.Collection(collJournal).CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Errorf("%d journal documents left, %v", n, err)
	}
}

// TestApplyAuditedRollsTheWritesBackWhenTheAppendFails cancels the call after the group's writes, so
// that the append of its record fails (journal mode): the writes must be rolled back, since a change may
// not be stored without its record, and the chain is left as it was.
func TestApplyAuditedRollsTheWritesBackWhenTheAppendFails(t *testing.T) {
	s := open(t, mongotest.Start(t), Options{Txn: TxnJournal})
	seq, hash := seedAudited(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	s.afterWrite = func(i int) error {
		if i == 1 {
			cancel() // the client goes away after the last write, before the append
		}
		return nil
	}
	err := s.ApplyAudited(ctx, auditedGroup(), []audit.Record{auditRec("u1")})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("ApplyAudited = %v, want the cancellation", err)
	}
	s.afterWrite = nil
	wantGroupUndone(t, s)
	if got, h, err := s.AuditHead(t.Context()); err != nil || got != seq || !bytes.Equal(h, hash) {
		t.Errorf("AuditHead = %d %x %v, want %d %x (unchanged)", got, h, err, seq, hash)
	}
	if _, err := s.Get(t.Context(), store.AuditEventType, "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get AuditEvent/u1: %v, want not found", err)
	}
	if err := s.ApplyAudited(t.Context(), auditedGroup(), []audit.Record{auditRec("u1")}); err != nil {
		t.Errorf("ApplyAudited again: %v", err)
	}
	if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != seq+1 {
		t.Errorf("VerifyAudit = %v %v, want intact, %d records", res, err, seq+1)
	}
}

// TestApplyAuditedKeepsTheRecordOfAGroupThatFailedToCommit checks the one-sided guarantee of journal
// mode: when the group cannot be committed after its record was chained (here, recovery took its journal
// because its lease ran out; a crash is the other way), the change is rolled back and the record stays,
// intact in the chain. A record of a change that did not happen is allowed; a change without a record
// is not.
func TestApplyAuditedKeepsTheRecordOfAGroupThatFailedToCommit(t *testing.T) {
	uri := mongotest.Start(t)
	t.Run("the journal is taken by recovery before the commit", func(t *testing.T) {
		s := open(t, uri, Options{Txn: TxnJournal})
		seq, _ := seedAudited(t, s)
		other := open(t, uri, Options{Database: s.db.Name(), Txn: TxnJournal})
		s.afterWrite = func(i int) error {
			if i == 1 {
				return other.recoverJournal(t.Context(), true) // as if the lease had run out
			}
			return nil
		}
		err := s.ApplyAudited(t.Context(), auditedGroup(), []audit.Record{auditRec("u1")})
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("ApplyAudited = %v, want unavailable", err)
		}
		s.afterWrite = nil
		wantGroupUndone(t, s)
		wantRecordKept(t, s, "u1", seq+1)
	})
	t.Run("the process dies after chaining the record", func(t *testing.T) {
		s := open(t, uri, Options{Txn: TxnJournal})
		seq, _ := seedAudited(t, s)
		crashing, err := Open(t.Context(), Options{URI: uri, Database: s.db.Name(), Txn: TxnJournal, JournalLease: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = crashing.client.Disconnect(context.Background()) })
		crashing.afterAuditChain = func() error { return errCrash }
		if err := crashing.ApplyAudited(t.Context(), auditedGroup(), []audit.Record{auditRec("u1")}); !errors.Is(err, errCrash) {
			t.Fatalf("ApplyAudited = %v, want the simulated crash", err)
		}
		// A new process opens the database: recovery rolls the group back and finishes the batch.
		time.Sleep(5 * time.Millisecond)
		next := open(t, uri, Options{Database: s.db.Name(), Txn: TxnJournal})
		wantGroupUndone(t, next)
		wantRecordKept(t, next, "u1", seq+1)
	})
}

// wantRecordKept checks that AuditEvent/id is readable and at the head of an intact chain of seq records.
func wantRecordKept(t *testing.T, s *Store, id string, seq int64) {
	t.Helper()
	if got, err := s.Get(t.Context(), store.AuditEventType, id); err != nil || got.VersionID != 1 {
		t.Errorf("Get AuditEvent/%s = %+v %v, want it kept", id, got, err)
	}
	recs, err := s.AuditRange(t.Context(), seq-1, 0)
	if err != nil || len(recs) != 1 || recs[0].ID != id {
		t.Errorf("AuditRange after %d = %+v %v, want %s alone", seq-1, recs, err, id)
	}
	if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != seq {
		t.Errorf("VerifyAudit = %v %v, want intact, %d records", res, err, seq)
	}
}
