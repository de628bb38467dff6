package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// auditTrail writes a chain of n AuditEvents (e1..en) to a new store in a temporary directory, closes
// it, and returns the directory. Nothing has read them, so none is materialised yet.
func auditTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	appendTrail(t, dir, 1, n)
	return dir
}

// appendTrail appends AuditEvents e<from>..e<to> to the store in dir with the background indexer off,
// so that they stay unmaterialised until something reads AuditEvents.
func appendTrail(t *testing.T, dir string, from, to int) {
	t.Helper()
	st, err := open(t.Context(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	var recs []store.AuditRecord
	for i := from; i <= to; i++ {
		id := fmt.Sprintf("e%d", i)
		recs = append(recs, store.AuditRecord{ID: id, Recorded: t0.Add(time.Duration(i) * time.Second),
			Body:  fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"action":"R","outcome":"0"}`, id),
			Index: []store.IndexEntry{{Param: "action", Value: "R"}}})
	}
	if err := store.AppendChained(t.Context(), st, recs, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAuditFindsTamperingInTheDatabaseFile edits the database file directly, as someone with
// access to the disk could, and checks that verification names the first broken link. Records e1..e5
// have been read (so materialised) before the edit; the cases with pending records append e6 and e7
// after that, so the edit reaches them while they exist only in the chain.
func TestVerifyAuditFindsTamperingInTheDatabaseFile(t *testing.T) {
	const e3Body = `CAST(REPLACE(CAST(body AS TEXT), '"outcome":"0"', '"outcome":"8"') AS BLOB)`
	cases := []struct {
		name     string
		pending  bool
		sql      []string
		brokenAt int64 // 0: still intact
		reason   string
	}{
		{
			name:     "an edited chain body breaks its own link",
			sql:      []string{`UPDATE audit SET body = ` + e3Body + ` WHERE id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name:     "an edited chain time breaks its own link",
			sql:      []string{`UPDATE audit SET recorded = recorded + 1000 WHERE id = 'e2'`},
			brokenAt: 2, reason: "AuditEvent/e2 does not match its hash",
		},
		{
			name:     "an edited served body differs from the chain",
			sql:      []string{`UPDATE history SET body = ` + e3Body + ` WHERE type = 'AuditEvent' AND id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 is served with a body other than the chained one",
		},
		{
			name:     "an edited served time differs from the chain",
			sql:      []string{`UPDATE history SET last_updated = last_updated + 1000 WHERE type = 'AuditEvent' AND id = 'e2'`},
			brokenAt: 2, reason: "AuditEvent/e2 is served with a time or version other than the chained one",
		},
		{
			name: "a body edited alike in both copies breaks its own link",
			sql: []string{`UPDATE audit SET body = ` + e3Body + ` WHERE id = 'e3'`,
				`UPDATE history SET body = ` + e3Body + ` WHERE type = 'AuditEvent' AND id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name: "a deleted record leaves a gap",
			sql: []string{`DELETE FROM audit WHERE seq = 3`, `DELETE FROM history WHERE type = 'AuditEvent' AND id = 'e3'`,
				`DELETE FROM current WHERE type = 'AuditEvent' AND id = 'e3'`, `DELETE FROM idx WHERE type = 'AuditEvent' AND id = 'e3'`},
			brokenAt: 3, reason: "record 3 is missing",
		},
		{
			name:     "a record deleted from the chain only leaves a gap",
			sql:      []string{`DELETE FROM audit WHERE seq = 3`},
			brokenAt: 3, reason: "record 3 is missing",
		},
		{
			name: "a record removed from the served copy only is not served",
			sql: []string{`DELETE FROM history WHERE type = 'AuditEvent' AND id = 'e4'`, `DELETE FROM current WHERE type = 'AuditEvent' AND id = 'e4'`,
				`DELETE FROM idx WHERE type = 'AuditEvent' AND id = 'e4'`},
			brokenAt: 4, reason: "AuditEvent/e4 is chained but not served by search",
		},
		{
			name: "two swapped records break the first of them",
			sql: []string{`UPDATE audit SET seq = -2 WHERE seq = 2`, `UPDATE audit SET seq = 2 WHERE seq = 4`,
				`UPDATE audit SET seq = 4 WHERE seq = -2`},
			brokenAt: 2, reason: "AuditEvent/e4 does not match its hash",
		},
		{
			name: "a record rewritten with a fresh hash breaks the next link",
			sql: []string{`UPDATE audit SET body = CAST('{"resourceType":"AuditEvent","id":"e3"}' AS BLOB), hash = X'00' WHERE seq = 3`,
				`UPDATE history SET body = CAST('{"resourceType":"AuditEvent","id":"e3"}' AS BLOB) WHERE type = 'AuditEvent' AND id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name: "an AuditEvent inserted beside the chain is reported",
			sql: []string{`INSERT INTO history (type, id, version, last_updated, deleted, body) VALUES ('AuditEvent', 'forged', 1, 0, 0, CAST('{}' AS BLOB))`,
				`INSERT INTO current (type, id, version, last_updated, deleted) VALUES ('AuditEvent', 'forged', 1, 0, 0)`},
			brokenAt: 6, reason: "1 AuditEvents are served that are not in the chain",
		},
		{
			name:     "a record forged at the end of the chain does not chain",
			sql:      []string{`INSERT INTO audit (seq, id, recorded, hash, body, idx) VALUES (6, 'forged', 0, X'00', CAST('{}' AS BLOB), X'01')`},
			brokenAt: 6, reason: "AuditEvent/forged does not match its hash",
		},
		{
			name:     "a pending record edited before it is served breaks its own link",
			pending:  true,
			sql:      []string{`UPDATE audit SET body = CAST(REPLACE(CAST(body AS TEXT), '"outcome":"0"', '"outcome":"8"') AS BLOB) WHERE id = 'e6'`},
			brokenAt: 6, reason: "AuditEvent/e6 does not match its hash",
		},
		{
			name:     "a watermark moved past pending records leaves them unserved",
			pending:  true,
			sql:      []string{`UPDATE audit_indexed SET seq = 7`},
			brokenAt: 6, reason: "AuditEvent/e6 is chained but not served by search",
		},
		{
			name:     "a pending record deleted from the chain leaves a gap",
			pending:  true,
			sql:      []string{`DELETE FROM audit WHERE seq = 6`},
			brokenAt: 6, reason: "record 6 is missing",
		},
		{
			name:    "a watermark moved back serves every record once, as chained",
			pending: true,
			sql:     []string{`UPDATE audit_indexed SET seq = 0`},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := auditTrail(t, 5)
			intact := verify(t, dir)
			if !intact.Intact || intact.Records != 5 {
				t.Fatalf("before tampering: %v, want intact, 5 records", intact)
			}
			records := int64(5)
			if tc.pending {
				appendTrail(t, dir, 6, 7)
				records = 7
			}

			db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gpfhir.db"))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range tc.sql {
				if _, err := db.ExecContext(t.Context(), q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}

			got := verify(t, dir)
			if tc.brokenAt == 0 {
				if !got.Intact || got.Records != records {
					t.Errorf("after the edit: %v, want intact, %d records", got, records)
				}
				return
			}
			if got.Intact || got.BrokenAt != tc.brokenAt || !strings.Contains(got.Reason, tc.reason) || got.Records != tc.brokenAt-1 {
				t.Errorf("after tampering: %v (at %d, %d intact), want broken at %d, %d intact, saying %q",
					got, got.BrokenAt, got.Records, tc.brokenAt, tc.brokenAt-1, tc.reason)
			}
		})
	}
}

func verify(t *testing.T, dir string) store.VerifyResult {
	t.Helper()
	st, err := open(context.Background(), dir, false)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := store.VerifyAudit(t.Context(), st)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	return res
}

// TestAppendAuditSerialisesTwoStoresOnOneFile has two Stores (as two processes would) append on the same
// file: the compare-and-swap on the head is SQLite's write lock, so the loser conflicts and retries.
func TestAppendAuditSerialisesTwoStoresOnOneFile(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rec := func(id string) []store.AuditRecord {
		return []store.AuditRecord{{ID: id, Recorded: time.Now().UTC(), Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`)}}
	}
	stale := rec("from-b")
	store.Chain(nil, 0, stale) // b read the head (empty) before a appended
	if err := store.AppendChained(t.Context(), a, rec("from-a"), 1); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(t.Context(), stale); err == nil || !strings.Contains(err.Error(), store.ErrVersionConflict.Error()) {
		t.Fatalf("append on a stale head from the second store: %v, want a version conflict", err)
	}
	if err := store.AppendChained(t.Context(), b, stale, 2); err != nil {
		t.Fatal(err)
	}
	res, err := store.VerifyAudit(t.Context(), a)
	if err != nil || !res.Intact || res.Records != 2 {
		t.Errorf("VerifyAudit = %v %v, want intact, 2 records", res, err)
	}
}
