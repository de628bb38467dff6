package sqlite

import (
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// watermark reads how far the served copy of the chain has been materialised.
func watermark(t *testing.T, s *Store) int64 {
	t.Helper()
	var seq int64
	if err := s.r.QueryRowContext(t.Context(), `SELECT seq FROM audit_indexed`).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	return seq
}

// TestReadsThatCanSeeAuditEventsMaterialiseThemFirst appends with the background indexer off, so only a
// read can materialise the records: each read that could see an AuditEvent must, and no other read may.
func TestReadsThatCanSeeAuditEventsMaterialiseThemFirst(t *testing.T) {
	audit := store.Query{Type: store.AuditEventType}
	cases := []struct {
		name string
		read func(s *Store) error
		sees bool
	}{
		{"Get of an AuditEvent", func(s *Store) error { _, err := s.Get(t.Context(), store.AuditEventType, "e1"); return err }, true},
		{"GetVersion of an AuditEvent", func(s *Store) error {
			_, err := s.GetVersion(t.Context(), store.AuditEventType, "e1", 1)
			return err
		}, true},
		{"Search of AuditEvents", func(s *Store) error { _, err := s.Search(t.Context(), audit); return err }, true},
		{"Count of AuditEvents", func(s *Store) error { _, err := s.Count(t.Context(), audit); return err }, true},
		{"Search of Patients chained to AuditEvents", func(s *Store) error {
			_, err := s.Search(t.Context(), store.Query{Type: "Patient", Clauses: []store.Clause{{{
				Param: "_has", Match: store.MatchHas, HasParam: "patient", Sub: &audit}}}})
			return err
		}, true},
		{"History of every type", func(s *Store) error { _, err := s.History(t.Context(), store.HistoryQuery{}); return err }, true},
		{"History of AuditEvents", func(s *Store) error {
			_, err := s.History(t.Context(), store.HistoryQuery{Type: store.AuditEventType})
			return err
		}, true},
		{"Get of a Patient", func(s *Store) error {
			_, err := s.Get(t.Context(), "Patient", "p1")
			if err != nil && !isNotFound(err) {
				return err
			}
			return nil
		}, false},
		{"Search of Patients", func(s *Store) error { _, err := s.Search(t.Context(), store.Query{Type: "Patient"}); return err }, false},
		{"History of Patients", func(s *Store) error {
			_, err := s.History(t.Context(), store.HistoryQuery{Type: "Patient"})
			return err
		}, false},
		{"AuditRange, which reads the chain", func(s *Store) error { _, err := s.AuditRange(t.Context(), 0, 0); return err }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := auditTrail(t, 3)
			s, err := open(t.Context(), dir, false)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := tc.read(s); err != nil {
				t.Fatal(err)
			}
			want := int64(0)
			if tc.sees {
				want = 3
			}
			if got := watermark(t, s); got != want {
				t.Errorf("watermark after the read = %d, want %d", got, want)
			}
		})
	}
}

func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }

// TestStoresSharingAFileMaterialiseEachRecordOnce has two stores on one file (as two processes) catch
// up at the same time, over and over, while one appends: every record must be served once with its
// index entries once.
func TestStoresSharingAFileMaterialiseEachRecordOnce(t *testing.T) {
	dir := t.TempDir()
	var stores [2]*Store
	for i := range stores {
		s, err := open(t.Context(), dir, false)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores[i] = s
	}
	const batches, perBatch = 10, 30
	var wg sync.WaitGroup
	done := make(chan struct{})
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				if err := s.auditReady(t.Context()); err != nil {
					t.Error(err)
					return
				}
				select {
				case <-done:
					return
				default:
				}
			}
		}()
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for b := range batches {
		var recs []store.AuditRecord
		for i := range perBatch {
			id := fmt.Sprintf("b%d-%d", b, i)
			recs = append(recs, store.AuditRecord{ID: id, Recorded: t0, Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`),
				Index: []store.IndexEntry{{Param: "action", Value: "R"}, {Param: "patient", Value: "Patient/p1"}}})
		}
		if err := store.AppendChained(t.Context(), stores[b%2], recs, 5); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if err := stores[0].auditReady(t.Context()); err != nil {
		t.Fatal(err)
	}
	const n = batches * perBatch
	var served, entries int
	if err := stores[1].r.QueryRowContext(t.Context(), `SELECT
		(SELECT COUNT(*) FROM history WHERE type = 'AuditEvent'),
		(SELECT COUNT(*) FROM idx WHERE type = 'AuditEvent')`).Scan(&served, &entries); err != nil {
		t.Fatal(err)
	}
	if served != n || entries != 2*n {
		t.Errorf("%d AuditEvents served with %d index entries, want %d with %d", served, entries, n, 2*n)
	}
	res, err := store.VerifyAudit(t.Context(), stores[1])
	if err != nil || !res.Intact || res.Records != n {
		t.Errorf("VerifyAudit = %v %v, want intact, %d records", res, err, n)
	}
}

// TestIndexEncodingRoundTrips checks the chain row's index blob against the entries it came from, and
// that a blob that does not decode is refused rather than misread.
func TestIndexEncodingRoundTrips(t *testing.T) {
	cases := []struct {
		name    string
		entries []store.IndexEntry
	}{
		{"no entries", nil},
		{"every field", []store.IndexEntry{{Param: "date", System: "s", Value: "v", Text: "t", Low: -5, High: 1 << 60}}},
		{"several, with empty and non-ASCII strings", []store.IndexEntry{{Param: "a"}, {Param: "name", Text: "zoë\x00"}, {Param: "x", Value: "Patient/1"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := encodeIndex(tc.entries)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeIndex(b)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.entries) {
				t.Errorf("decoded %+v, want %+v", got, tc.entries)
			}
			for cut := 1; cut < len(b); cut++ {
				if d, err := decodeIndex(b[:cut]); err == nil && len(d) == len(tc.entries) {
					t.Errorf("a blob cut at %d of %d decodes to %d entries", cut, len(b), len(d))
				}
			}
		})
	}
	if _, err := encodeIndex([]store.IndexEntry{{Value: "v"}}); err == nil {
		t.Error("an entry without a parameter was encoded")
	}
	if _, err := decodeIndex(nil); err == nil {
		t.Error("an empty blob decoded")
	}
}

// TestAnUndecodableIndexLeavesTheRecordServedButUnindexed: the index is outside the hash, so an edited
// blob must neither stop later records from being served nor make the chain look broken.
func TestAnUndecodableIndexLeavesTheRecordServedButUnindexed(t *testing.T) {
	dir := auditTrail(t, 3)
	editFile(t, dir, `UPDATE audit SET idx = X'ff' WHERE seq = 2`)
	s, err := open(t.Context(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hits, err := s.Search(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.Resource.ID)
	}
	if !slices.Equal(ids, []string{"e1", "e3"}) {
		t.Errorf("search by action found %v, want e1 and e3", ids)
	}
	if _, err := s.Get(t.Context(), store.AuditEventType, "e2"); err != nil {
		t.Errorf("Get e2: %v", err)
	}
	if res, err := store.VerifyAudit(t.Context(), s); err != nil || !res.Intact || res.Records != 3 {
		t.Errorf("VerifyAudit = %v %v, want intact, 3 records", res, err)
	}
}

func editFile(t *testing.T, dir string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gpfhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range stmts {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// TestOpenUpgradesASchemaVersion2File builds a file as version 2 left it (chain rows of seq, id and
// hash; bodies and index in the resource tables) and checks that Open keeps its trail intact and
// servable, and appends to it.
func TestOpenUpgradesASchemaVersion2File(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	recs := []store.AuditRecord{
		{ID: "old1", Recorded: t0, Body: []byte(`{"resourceType":"AuditEvent","id":"old1"}`)},
		{ID: "old2", Recorded: t0.Add(time.Second), Body: []byte(`{"resourceType":"AuditEvent","id":"old2"}`)},
	}
	store.Chain(nil, 0, recs)
	v2 := []string{
		`CREATE TABLE current (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
			deleted INTEGER NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID`,
		`CREATE TABLE history (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
			deleted INTEGER NOT NULL, body BLOB NOT NULL, UNIQUE (type, id, version))`,
		`CREATE TABLE idx (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL,
			text TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL)`,
		`CREATE TABLE audit (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hash BLOB NOT NULL)`,
		`PRAGMA user_version = 2`,
	}
	for _, r := range recs {
		v2 = append(v2,
			fmt.Sprintf(`INSERT INTO audit VALUES (%d, '%s', X'%x')`, r.Seq, r.ID, r.Hash),
			fmt.Sprintf(`INSERT INTO history VALUES ('AuditEvent', '%s', 1, %d, 0, CAST('%s' AS BLOB))`, r.ID, r.Recorded.UnixMilli(), r.Body),
			fmt.Sprintf(`INSERT INTO current VALUES ('AuditEvent', '%s', 1, %d, 0)`, r.ID, r.Recorded.UnixMilli()),
			fmt.Sprintf(`INSERT INTO idx VALUES ('AuditEvent', '%s', 'action', '', 'R', '', 0, 0)`, r.ID))
	}
	editFile(t, dir, v2...)

	s, err := open(t.Context(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var v int
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA user_version`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("user_version = %d %v, want %d", v, err, schemaVersion)
	}
	if got := watermark(t, s); got != 2 {
		t.Errorf("watermark after the upgrade = %d, want 2 (the old records were indexed already)", got)
	}
	if err := store.AppendChained(t.Context(), s, []store.AuditRecord{{ID: "new1", Recorded: t0.Add(2 * time.Second),
		Body: []byte(`{"resourceType":"AuditEvent","id":"new1"}`), Index: []store.IndexEntry{{Param: "action", Value: "R"}}}}, 1); err != nil {
		t.Fatal(err)
	}
	n, err := s.Count(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}}})
	if err != nil || n != 3 {
		t.Errorf("Count by action = %d %v, want 3", n, err)
	}
	if res, err := store.VerifyAudit(t.Context(), s); err != nil || !res.Intact || res.Records != 3 {
		t.Errorf("VerifyAudit = %v %v, want intact, 3 records", res, err)
	}
}
