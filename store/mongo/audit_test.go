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

// appendTrail appends AuditEvents e1..en to s, one batch per record so that each has its own chain
// document.
func appendTrail(t *testing.T, s *Store, n int) {
	t.Helper()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("e%d", i)
		rec := []audit.Record{{ID: id, Recorded: t0.Add(time.Duration(i) * time.Second),
			Body:  fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"outcome":"0"}`, id),
			Index: []store.IndexEntry{{Param: "action", Value: "R"}, {Param: "date", Low: int64(i), High: int64(i)}}}}
		if err := audit.AppendChained(t.Context(), s, rec, 1); err != nil {
			t.Fatal(err)
		}
	}
}

// TestVerifyAuditFindsTamperingInTheDatabase edits the stored documents with the driver, as someone with
// database access could, and checks that verification names the first broken link.
func TestVerifyAuditFindsTamperingInTheDatabase(t *testing.T) {
	uri := mongotest.Start(t)
	hist := func(id string) bson.D { return bson.D{{Key: "_id", Value: histKey(store.AuditEventType, id, 1)}} }
	setBody := bson.D{{Key: "$set", Value: bson.D{{Key: "body", Value: []byte(`{"resourceType":"AuditEvent","id":"e3","outcome":"8"}`)}}}}
	cases := []struct {
		name     string
		tamper   func(t *testing.T, s *Store) error
		brokenAt int64
		reason   string
	}{
		{
			name: "an edited history body breaks its own link",
			tamper: func(t *testing.T, s *Store) error {
				_, err := s.db.Collection(collHistory).UpdateOne(t.Context(), hist("e3"), setBody)
				return err
			},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name: "an edited body in the searched collection is found",
			tamper: func(t *testing.T, s *Store) error {
				_, err := s.res(store.AuditEventType).UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "e3"}}, setBody)
				return err
			},
			brokenAt: 3, reason: "AuditEvent/e3 is served with a body other than the chained one",
		},
		{
			name: "a deleted chain document leaves a gap",
			tamper: func(t *testing.T, s *Store) error {
				_, err := s.db.Collection(collAudit).DeleteOne(t.Context(), bson.D{{Key: "_id", Value: int64(3)}})
				return err
			},
			brokenAt: 3, reason: "record 3 is missing",
		},
		{
			name: "a record deleted from the searched collection is found",
			tamper: func(t *testing.T, s *Store) error {
				_, err := s.res(store.AuditEventType).DeleteOne(t.Context(), bson.D{{Key: "_id", Value: "e4"}})
				return err
			},
			brokenAt: 4, reason: "AuditEvent/e4 is chained but not served by search",
		},
		{
			name: "two swapped records break the first of them",
			tamper: func(t *testing.T, s *Store) error {
				c := s.db.Collection(collAudit)
				var two, four auditDoc
				if err := c.FindOne(t.Context(), bson.D{{Key: "_id", Value: int64(2)}}).Decode(&two); err != nil {
					return err
				}
				if err := c.FindOne(t.Context(), bson.D{{Key: "_id", Value: int64(4)}}).Decode(&four); err != nil {
					return err
				}
				two.Recs[0].ID, two.Recs[0].Hash, four.Recs[0].ID, four.Recs[0].Hash = four.Recs[0].ID, four.Recs[0].Hash, two.Recs[0].ID, two.Recs[0].Hash
				if _, err := c.ReplaceOne(t.Context(), bson.D{{Key: "_id", Value: int64(2)}}, two); err != nil {
					return err
				}
				_, err := c.ReplaceOne(t.Context(), bson.D{{Key: "_id", Value: int64(4)}}, four)
				return err
			},
			brokenAt: 2, reason: "AuditEvent/e4 does not match its hash",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t, uri, Options{})
			appendTrail(t, s, 5)
			if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != 5 {
				t.Fatalf("before tampering: %v %v, want intact, 5 records", res, err)
			}
			if err := tc.tamper(t, s); err != nil {
				t.Fatalf("tamper: %v", err)
			}
			got, err := audit.Verify(t.Context(), s)
			if err != nil {
				t.Fatal(err)
			}
			if got.Intact || got.BrokenAt != tc.brokenAt || !strings.Contains(got.Reason, tc.reason) || got.Records != tc.brokenAt-1 {
				t.Errorf("after tampering: %v, want broken at %d, %d intact, saying %q", got, tc.brokenAt, tc.brokenAt-1, tc.reason)
			}
		})
	}
}

// TestAppendAuditCrashAfterChainingIsFinishedByTheNextReader simulates a process that dies after its
// batch document is inserted but before the AuditEvents are written (journal mode): the batch stays in
// the chain (a later batch may chain on it), and the next process to read the head writes them.
func TestAppendAuditCrashAfterChainingIsFinishedByTheNextReader(t *testing.T) {
	uri := mongotest.Start(t)
	readers := []struct {
		name string
		next func(t *testing.T, s *Store) error
	}{
		{"the next append", func(t *testing.T, s *Store) error {
			return audit.AppendChained(t.Context(), s, []audit.Record{{ID: "later", Recorded: time.Now().UTC(), Body: []byte(`{"resourceType":"AuditEvent","id":"later"}`)}}, 1)
		}},
		{"the next Open", func(t *testing.T, s *Store) error {
			s2, err := Open(t.Context(), Options{URI: uri, Database: s.db.Name(), Timeout: 20 * time.Second})
			if err == nil {
				err = s2.Close()
			}
			return err
		}},
		{"a range read", func(t *testing.T, s *Store) error { _, err := s.AuditRange(t.Context(), 0, 0); return err }},
	}
	for _, tc := range readers {
		t.Run("finished by "+tc.name, func(t *testing.T) {
			s := open(t, uri, Options{Txn: TxnJournal})
			appendTrail(t, s, 2)
			crash := errors.New("crash")
			s.afterAuditChain = func() error { return crash }
			recs := []audit.Record{
				{ID: "c1", Recorded: time.Now().UTC(), Body: []byte(`{"resourceType":"AuditEvent","id":"c1"}`), Index: []store.IndexEntry{{Param: "action", Value: "C"}}},
				{ID: "c2", Recorded: time.Now().UTC(), Body: []byte(`{"resourceType":"AuditEvent","id":"c2"}`), Index: []store.IndexEntry{{Param: "action", Value: "C"}}},
			}
			if err := audit.AppendChained(t.Context(), s, recs, 1); !errors.Is(err, crash) {
				t.Fatalf("append: %v, want the simulated crash", err)
			}
			s.afterAuditChain = nil
			if _, err := s.Get(t.Context(), store.AuditEventType, "c1"); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Get c1 right after the crash: %v, want not found (its documents are not written yet)", err)
			}
			if err := tc.next(t, s); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			for _, id := range []string{"c1", "c2"} {
				got, err := s.Get(t.Context(), store.AuditEventType, id)
				if err != nil || got.VersionID != 1 {
					t.Errorf("Get %s after recovery: %+v %v", id, got, err)
				}
			}
			hits, err := s.Search(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "C"}}}})
			if err != nil || len(hits) != 2 {
				t.Errorf("search of the recovered batch: %d hits, %v", len(hits), err)
			}
			res, err := audit.Verify(t.Context(), s)
			if err != nil || !res.Intact || res.Records < 4 {
				t.Errorf("VerifyAudit after recovery = %v %v, want intact", res, err)
			}
			var d auditDoc
			if err := s.db.Collection(collAudit).FindOne(t.Context(), bson.D{{Key: "_id", Value: int64(3)}}).Decode(&d); err != nil || d.Pending || len(d.Docs) > 0 {
				t.Errorf("batch 3 after recovery: pending=%v docs=%d %v", d.Pending, len(d.Docs), err)
			}
		})
	}
}
