package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// auditTrail writes a chain of n AuditEvents (e1..en) to a new store in a temporary directory, closes
// it, and returns the directory.
func auditTrail(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	appendTrail(t, dir, 1, n)
	return dir
}

// trailStart is the time of record e0; record ei is recorded i seconds later.
var trailStart = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

// appendTrail appends AuditEvents e<from>..e<to> to the store in dir.
func appendTrail(t *testing.T, dir string, from, to int) {
	t.Helper()
	st, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var recs []audit.Record
	for i := from; i <= to; i++ {
		id := fmt.Sprintf("e%d", i)
		at := trailStart.Add(time.Duration(i) * time.Second)
		recs = append(recs, audit.Record{ID: id, Recorded: at,
			Body: fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"action":"R","outcome":"0"}`, id),
			Index: []store.IndexEntry{{Param: "action", Value: "R"}, {Param: "entity", Value: "Patient/p" + strconv.Itoa(i%2)},
				{Param: "patient", Value: "Patient/p" + strconv.Itoa(i%2)},
				{Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli()}}})
	}
	if err := audit.AppendChained(t.Context(), st, recs, 1); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestVerifyAuditFindsTamperingInTheDatabaseFile edits the database file directly, as someone with
// access to the disk could, and checks that verification names the first broken link. Records e1..e5
// are verified intact before the edit.
func TestVerifyAuditFindsTamperingInTheDatabaseFile(t *testing.T) {
	// Bodies are stored compressed (codec.go); an edit either writes plain JSON, which is read as it is,
	// or changes compressed bytes.
	const e3Body = `CAST('{"resourceType":"AuditEvent","id":"e3","action":"R","outcome":"8"}' AS BLOB)`
	cases := []struct {
		name     string
		sql      []string
		brokenAt int64 // 0: still intact
		reason   string
		anchor   int64 // the anchor's Seq after the edit: records up to it are not counted
	}{
		{
			name:     "an edited body breaks its own link",
			sql:      []string{`UPDATE audit SET body = ` + e3Body + ` WHERE id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name:     "a changed byte of a compressed body breaks its own link",
			sql:      []string{`UPDATE audit SET body = substr(body, 1, 12) || CASE WHEN substr(body, 13, 1) = X'5a' THEN X'5b' ELSE X'5a' END || substr(body, 14) WHERE id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name:     "an edited time breaks its own link",
			sql:      []string{`UPDATE audit SET last_updated = last_updated + 1000 WHERE id = 'e2'`},
			brokenAt: 2, reason: "AuditEvent/e2 does not match its hash",
		},
		{
			name:     "an edited id breaks its own link",
			sql:      []string{`UPDATE audit SET id = 'x3' WHERE id = 'e3'`},
			brokenAt: 3, reason: "AuditEvent/x3 does not match its hash",
		},
		{
			name:     "a deleted record leaves a gap",
			sql:      []string{`DELETE FROM audit WHERE seq = 3`, `DELETE FROM audit_ref WHERE id = 'e3'`},
			brokenAt: 3, reason: "record 3 is missing",
		},
		{
			name:     "the oldest records deleted without moving the anchor leave a gap",
			sql:      []string{`DELETE FROM audit WHERE seq <= 2`},
			brokenAt: 1, reason: "record 1 is missing",
		},
		{
			name: "the oldest records deleted with a forged anchor do not chain on it",
			sql: []string{`DELETE FROM audit WHERE seq <= 2`,
				`INSERT INTO audit_anchor (one, seq, hash, recorded) VALUES (1, 2, X'00', 0)`},
			brokenAt: 3, reason: "AuditEvent/e3 does not chain on the anchor", anchor: 2,
		},
		{
			name: "two swapped records break the first of them",
			sql: []string{`UPDATE audit SET seq = -2 WHERE seq = 2`, `UPDATE audit SET seq = 2 WHERE seq = 4`,
				`UPDATE audit SET seq = 4 WHERE seq = -2`},
			brokenAt: 2, reason: "AuditEvent/e4 does not match its hash",
		},
		{
			name:     "a record rewritten with a fresh hash breaks its own link",
			sql:      []string{`UPDATE audit SET body = CAST('{"resourceType":"AuditEvent","id":"e3"}' AS BLOB), hash = X'00' WHERE seq = 3`},
			brokenAt: 3, reason: "AuditEvent/e3 does not match its hash",
		},
		{
			name:     "a record forged at the end of the chain does not chain",
			sql:      []string{`INSERT INTO audit (seq, id, last_updated, hash, body, idx) VALUES (6, 'forged', 0, X'00', CAST('{}' AS BLOB), X'01')`},
			brokenAt: 6, reason: "AuditEvent/forged does not match its hash",
		},
		{
			name: "an AuditEvent put in the resource tables is never served",
			sql: []string{`INSERT INTO history (type, id, version, last_updated, deleted, body) VALUES ('AuditEvent', 'forged', 1, 0, 0, CAST('{}' AS BLOB))`,
				`INSERT INTO current (type, id, version, last_updated, deleted) VALUES ('AuditEvent', 'forged', 1, 0, 0)`},
		},
	}
	records := int64(5)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := auditTrail(t, 5)
			intact := verify(t, dir)
			if !intact.Intact || intact.Records != 5 {
				t.Fatalf("before tampering: %v, want intact, 5 records", intact)
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
			if want := tc.brokenAt - 1 - tc.anchor; got.Intact || got.BrokenAt != tc.brokenAt || !strings.Contains(got.Reason, tc.reason) || got.Records != want {
				t.Errorf("after tampering: %v (at %d, %d intact), want broken at %d, %d intact, saying %q",
					got, got.BrokenAt, got.Records, tc.brokenAt, want, tc.reason)
			}
		})
	}
}

func verify(t *testing.T, dir string) audit.VerifyResult {
	t.Helper()
	st, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	res, err := audit.Verify(t.Context(), st)
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
	rec := func(id string) []audit.Record {
		return []audit.Record{{ID: id, Recorded: time.Now().UTC(), Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`)}}
	}
	stale := rec("from-b")
	audit.Chain(nil, 0, stale) // b read the head (empty) before a appended
	if err := audit.AppendChained(t.Context(), a, rec("from-a"), 1); err != nil {
		t.Fatal(err)
	}
	if err := b.AppendAudit(t.Context(), stale); err == nil || !strings.Contains(err.Error(), store.ErrVersionConflict.Error()) {
		t.Fatalf("append on a stale head from the second store: %v, want a version conflict", err)
	}
	if err := audit.AppendChained(t.Context(), b, stale, 2); err != nil {
		t.Fatal(err)
	}
	res, err := audit.Verify(t.Context(), a)
	if err != nil || !res.Intact || res.Records != 2 {
		t.Errorf("VerifyAudit = %v %v, want intact, 2 records", res, err)
	}
}
