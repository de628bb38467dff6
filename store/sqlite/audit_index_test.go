package sqlite

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

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

func openDir(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openUpgraded opens dir and checks that its schema is now this version's.
func openUpgraded(t *testing.T, dir string) *Store {
	t.Helper()
	s := openDir(t, dir)
	var v int
	if err := s.r.QueryRowContext(t.Context(), `PRAGMA user_version`).Scan(&v); err != nil || v != schemaVersion {
		t.Fatalf("user_version = %d %v, want %d", v, err, schemaVersion)
	}
	return s
}

// schemaSQL is the CREATE statement of the table or index name.
func schemaSQL(t *testing.T, s *Store, name string) string {
	t.Helper()
	var text string
	if err := s.r.QueryRowContext(t.Context(), `SELECT sql FROM sqlite_schema WHERE name = ?`, name).Scan(&text); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return text
}

func auditIDs(t *testing.T, s *Store, q store.Query) []string {
	t.Helper()
	q.Type = store.AuditEventType
	return hitIDs(t, s, q)
}

func byAction(v string) store.Clause {
	return store.Clause{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: v}}
}

// TestAuditEventsAreSearchedThroughTheirOwnTables: searches on AuditEvents read the chain rows and
// audit_idx, with date answered from the record's time, in both directions and by range.
func TestAuditEventsAreSearchedThroughTheirOwnTables(t *testing.T) {
	s := openDir(t, auditTrail(t, 6))
	at := func(i int) int64 { return trailStart.Add(time.Duration(i) * time.Second).UnixMilli() }
	cases := []struct {
		name string
		q    store.Query
		want []string
	}{
		{"token", store.Query{Clauses: []store.Clause{byAction("R")}, Sort: []store.SortKey{{Param: auditDate}}},
			[]string{"e1", "e2", "e3", "e4", "e5", "e6"}},
		{"token that matches nothing", store.Query{Clauses: []store.Clause{byAction("C")}}, nil},
		{"reference, newest first", store.Query{Clauses: []store.Clause{{{Param: "entity", Match: store.MatchExact, Value: "Patient/p1"}}},
			Sort: []store.SortKey{{Param: auditDate, Desc: true}}}, []string{"e5", "e3", "e1"}},
		{"date range", store.Query{Clauses: []store.Clause{{{Param: auditDate, Match: store.MatchRange,
			Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: at(2)}, {Field: store.High, Cmp: store.LT, Value: at(4)}}}}}},
			[]string{"e2", "e3"}},
		{"date range and a reference tested per row", store.Query{Clauses: []store.Clause{
			{{Param: auditDate, Match: store.MatchRange, Bounds: []store.Bound{{Field: store.High, Cmp: store.GT, Value: at(3)}}}},
			{{Param: "entity", Match: store.MatchExact, Value: "Patient/p0"}}}}, []string{"e4", "e6"}},
		{"negated reference", store.Query{Clauses: []store.Clause{{{Param: "entity", Match: store.MatchExact, Value: "Patient/p0", Not: true}}}},
			[]string{"e1", "e3", "e5"}},
		{"missing parameter", store.Query{Clauses: []store.Clause{{{Param: "agent", Match: store.MatchPresent, Not: true}}}, Limit: 2},
			[]string{"e1", "e2"}},
		{"date is always present", store.Query{Clauses: []store.Clause{{{Param: auditDate, Match: store.MatchPresent, Not: true}}}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Without a sort, ids come in id order; e1..e6 sort as their numbers.
			if got := auditIDs(t, s, tc.q); !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
	n, err := s.Count(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "entity", Match: store.MatchExact, Value: "Patient/p0"}}}})
	if err != nil || n != 3 {
		t.Errorf("Count = %d %v, want 3", n, err)
	}
	// A Patient found through AuditEvents that refer to it (_has), and history across both tables.
	hist, err := s.History(t.Context(), store.HistoryQuery{Limit: 2})
	if err != nil || len(hist) != 2 || hist[0].ID != "e6" || hist[1].ID != "e5" || hist[0].VersionID != 1 {
		t.Errorf("system history = %v %v, want e6, e5", hist, err)
	}
	if _, err := s.GetVersion(t.Context(), store.AuditEventType, "e1", 2); err == nil {
		t.Error("version 2 of an AuditEvent was found")
	}
}

// TestAppendAuditRefusesADateEntryOtherThanTheRecordedTime: date is served from the record's time, so an
// entry saying otherwise would be searched differently from what it says; it is refused, not dropped.
func TestAppendAuditRefusesADateEntryOtherThanTheRecordedTime(t *testing.T) {
	s := openDir(t, t.TempDir())
	at := trailStart
	recs := []audit.Record{{ID: "x", Recorded: at, Body: []byte(`{}`),
		Index: []store.IndexEntry{{Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli() + 999}}}}
	err := audit.AppendChained(t.Context(), s, recs, 1)
	if err == nil || !strings.Contains(err.Error(), "recorded time") {
		t.Fatalf("append = %v, want a refusal naming the recorded time", err)
	}
	if seq, _, _ := s.AuditHead(t.Context()); seq != 0 {
		t.Errorf("head after a refused append = %d, want 0", seq)
	}
}

// TestPruneAuditRemovesRecordsAndTheirEntries checks what the contract suite cannot see: the index
// entries of pruned records are gone from the file, and a prune of everything leaves the head on the
// anchor, so the next append chains on it.
func TestPruneAuditRemovesRecordsAndTheirEntries(t *testing.T) {
	dir := auditTrail(t, 5)
	s := openDir(t, dir)
	a, n, err := s.PruneAudit(t.Context(), trailStart.Add(4*time.Second))
	if err != nil || n != 3 || a.Seq != 3 || !a.Recorded.Equal(trailStart.Add(3*time.Second)) {
		t.Fatalf("PruneAudit = %+v %d %v, want anchor 3 at e3's time, 3 removed", a, n, err)
	}
	var entries int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref WHERE id IN ('e1', 'e2', 'e3')`).Scan(&entries); err != nil || entries != 0 {
		t.Errorf("index entries of pruned records = %d %v, want 0", entries, err)
	}
	if got := auditIDs(t, s, store.Query{Clauses: []store.Clause{byAction("R")}}); !slices.Equal(got, []string{"e4", "e5"}) {
		t.Errorf("after pruning, search finds %v, want e4 e5", got)
	}
	if _, n, err := s.PruneAudit(t.Context(), trailStart.Add(time.Hour)); err != nil || n != 2 {
		t.Fatalf("second PruneAudit removed %d, %v; want 2", n, err)
	}
	seq, hash, err := s.AuditHead(t.Context())
	if a2, _ := s.AuditAnchor(t.Context()); err != nil || seq != 5 || a2.Seq != 5 || string(hash) != string(a2.Hash) {
		t.Fatalf("head of an emptied chain = %d %x %v, want the anchor %d %x", seq, hash, err, a2.Seq, a2.Hash)
	}
	s.Close()
	appendTrail(t, dir, 6, 6)
	s = openDir(t, dir)
	if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != 1 {
		t.Errorf("VerifyAudit after pruning everything and appending = %v %v, want intact, 1 record", res, err)
	}
}

// TestPruneAuditWorksInChunks prunes more records than one transaction takes.
func TestPruneAuditWorksInChunks(t *testing.T) {
	dir := t.TempDir()
	const n = pruneChunk*2 + 10
	for from := 1; from <= n; from += audit.MaxBatch {
		appendTrail(t, dir, from, min(from+audit.MaxBatch-1, n))
	}
	s := openDir(t, dir)
	a, removed, err := s.PruneAudit(t.Context(), trailStart.Add((n-4)*time.Second))
	if err != nil || removed != n-5 || a.Seq != n-5 {
		t.Fatalf("PruneAudit = %+v %d %v, want %d removed", a, removed, err, n-5)
	}
	if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != 5 {
		t.Errorf("VerifyAudit = %v %v, want intact, 5 records", res, err)
	}
}

// v2File and v3File build the audit part of files as versions 2 and 3 left them, with the tables every
// version has: resource tables and the chain.
var oldResourceTables = []string{
	`CREATE TABLE current (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
		deleted INTEGER NOT NULL, PRIMARY KEY (type, id)) WITHOUT ROWID`,
	`CREATE TABLE history (type TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL, last_updated INTEGER NOT NULL,
		deleted INTEGER NOT NULL, body BLOB NOT NULL, UNIQUE (type, id, version))`,
	`CREATE TABLE idx (type TEXT NOT NULL, id TEXT NOT NULL, param TEXT NOT NULL, system TEXT NOT NULL, value TEXT NOT NULL,
		text TEXT NOT NULL, lo INTEGER NOT NULL, hi INTEGER NOT NULL)`,
}

func oldRecords(n int) []audit.Record {
	var recs []audit.Record
	for i := 1; i <= n; i++ {
		id := "old" + strconv.Itoa(i)
		recs = append(recs, audit.Record{ID: id, Recorded: trailStart.Add(time.Duration(i) * time.Second),
			Body: []byte(`{"resourceType":"AuditEvent","id":"` + id + `"}`)})
	}
	audit.Chain(nil, 0, recs)
	return recs
}

// servedCopy is the materialised copy versions 2 and 3 kept of a record in the resource tables.
func servedCopy(r audit.Record) []string {
	return []string{
		fmt.Sprintf(`INSERT INTO history VALUES ('AuditEvent', '%s', 1, %d, 0, CAST('%s' AS BLOB))`, r.ID, r.Recorded.UnixMilli(), r.Body),
		fmt.Sprintf(`INSERT INTO current VALUES ('AuditEvent', '%s', 1, %d, 0)`, r.ID, r.Recorded.UnixMilli()),
		fmt.Sprintf(`INSERT INTO idx VALUES ('AuditEvent', '%s', 'action', '', 'R', '', 0, 0)`, r.ID),
		fmt.Sprintf(`INSERT INTO idx VALUES ('AuditEvent', '%s', 'date', '', '', '', %d, %d)`, r.ID, r.Recorded.UnixMilli(), r.Recorded.UnixMilli()),
	}
}

// upgraded opens dir, checks the schema version, appends one record and checks that every record is
// searchable by its index, verifies, and that no AuditEvent is left in the resource tables.
func upgraded(t *testing.T, dir string, records int) {
	t.Helper()
	s := openUpgraded(t, dir)
	if err := audit.AppendChained(t.Context(), s, []audit.Record{{ID: "new1", Recorded: trailStart.Add(time.Hour),
		Body: []byte(`{"resourceType":"AuditEvent","id":"new1"}`), Index: []store.IndexEntry{{Param: "action", Value: "R"}}}}, 1); err != nil {
		t.Fatal(err)
	}
	n, err := s.Count(t.Context(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{byAction("R")}})
	if err != nil || n != records+1 {
		t.Errorf("Count by action = %d %v, want %d", n, err, records+1)
	}
	if got := auditIDs(t, s, store.Query{Clauses: []store.Clause{{{Param: auditDate, Match: store.MatchRange,
		Bounds: []store.Bound{{Field: store.Low, Cmp: store.LE, Value: trailStart.Add(time.Second).UnixMilli()}}}}}}); !slices.Equal(got, []string{"old1"}) {
		t.Errorf("search by date = %v, want old1", got)
	}
	if res, err := audit.Verify(t.Context(), s); err != nil || !res.Intact || res.Records != int64(records+1) {
		t.Errorf("VerifyAudit = %v %v, want intact, %d records", res, err, records+1)
	}
	var left int
	if err := s.r.QueryRowContext(t.Context(), `SELECT (SELECT count(*) FROM history WHERE type = 'AuditEvent') +
		(SELECT count(*) FROM current WHERE type = 'AuditEvent') + (SELECT count(*) FROM idx WHERE type = 'AuditEvent')`).Scan(&left); err != nil || left != 0 {
		t.Errorf("AuditEvent rows left in the resource tables: %d %v", left, err)
	}
}

// TestOpenUpgradesASchemaVersion2File: chain rows of seq, id and hash; bodies and index in the resource
// tables.
func TestOpenUpgradesASchemaVersion2File(t *testing.T) {
	dir := t.TempDir()
	stmts := append(slices.Clone(oldResourceTables),
		`CREATE TABLE audit (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, hash BLOB NOT NULL)`, `PRAGMA user_version = 2`)
	for _, r := range oldRecords(2) {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO audit VALUES (%d, '%s', X'%x')`, r.Seq, r.ID, r.Hash))
		stmts = append(stmts, servedCopy(r)...)
	}
	editFile(t, dir, stmts...)
	upgraded(t, dir, 2)
}

// TestOpenUpgradesASchemaVersion3File: chain rows with body, time and an encoded index; records up to
// the watermark also have the served copy, those after it only the chain row.
func TestOpenUpgradesASchemaVersion3File(t *testing.T) {
	dir := t.TempDir()
	stmts := append(slices.Clone(oldResourceTables),
		`CREATE TABLE audit (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, recorded INTEGER NOT NULL, hash BLOB NOT NULL,
			body BLOB NOT NULL, idx BLOB NOT NULL)`,
		`CREATE TABLE audit_indexed (one INTEGER PRIMARY KEY CHECK (one = 1), seq INTEGER NOT NULL)`,
		`INSERT INTO audit_indexed VALUES (1, 2)`, `PRAGMA user_version = 3`)
	// The encoded index of version 3: a version byte, then param, system, value, text as length-prefixed
	// strings and low, high as zigzag varints (0 and 0 here).
	blob := "01" + "06" + fmt.Sprintf("%x", "action") + "00" + "01" + fmt.Sprintf("%x", "R") + "00" + "00" + "00"
	for _, r := range oldRecords(3) {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO audit VALUES (%d, '%s', %d, X'%x', CAST('%s' AS BLOB), X'%s')`,
			r.Seq, r.ID, r.Recorded.UnixMilli(), r.Hash, r.Body, blob))
		if r.Seq <= 2 {
			stmts = append(stmts, servedCopy(r)...)
		}
	}
	editFile(t, dir, stmts...)
	upgraded(t, dir, 3)
}

// pagedIDs runs q page after page, each from the last hit's position, and returns the ids found.
func pagedIDs(t *testing.T, s *Store, q store.Query) []string {
	t.Helper()
	var ids []string
	for {
		hits, err := s.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			ids = append(ids, h.Resource.ID)
		}
		if len(hits) < q.Limit {
			return ids
		}
		q.After = hits[len(hits)-1].SortValues
	}
}

// patientTrail appends to the store in dir records about Patient/p1, one at each of minutes after
// trailStart, with ids prefix-last, prefix-(last-1), ... (ids in the opposite order to time), copies
// their references into audit_ref, and closes the store.
func patientTrail(t *testing.T, dir, prefix string, last int, minutes ...int) {
	t.Helper()
	s := openDir(t, dir)
	defer s.Close()
	var recs []audit.Record
	for i, m := range minutes {
		at := trailStart.Add(time.Duration(m) * time.Minute)
		recs = append(recs, audit.Record{ID: fmt.Sprintf("%s-%d", prefix, last-i), Recorded: at, Body: []byte(`{"resourceType":"AuditEvent"}`),
			Index: []store.IndexEntry{{Param: "patient", Value: "Patient/p1"}, {Param: auditDate, Low: at.UnixMilli(), High: at.UnixMilli()}}})
	}
	if err := audit.AppendChained(t.Context(), s, recs, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.auditReady(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// TestOpenUpgradesASchemaVersion4File: audit_ref without the records' times. The upgrade gives every
// entry its record's time, so that the newest-first walk (audit_ref's key) finds old records in order.
func TestOpenUpgradesASchemaVersion4File(t *testing.T) {
	dir := t.TempDir()
	patientTrail(t, dir, "v4", 5, 0, 1, 2, 3, 4, 5)
	editFile(t, dir, `CREATE TABLE audit_ref_v4 (value TEXT NOT NULL, param TEXT NOT NULL, id TEXT NOT NULL, system TEXT NOT NULL,
			type TEXT GENERATED ALWAYS AS ('AuditEvent') VIRTUAL, text TEXT GENERATED ALWAYS AS ('') VIRTUAL,
			lo INTEGER GENERATED ALWAYS AS (0) VIRTUAL, hi INTEGER GENERATED ALWAYS AS (0) VIRTUAL,
			PRIMARY KEY (value, param, id, system)) WITHOUT ROWID`,
		`INSERT INTO audit_ref_v4 (value, param, id, system) SELECT value, param, id, system FROM audit_ref`,
		// An entry left by a pruned record whose entries could not be read: it names no record.
		`INSERT INTO audit_ref_v4 (value, param, id, system) VALUES ('Patient/p1', 'patient', 'pruned', '')`,
		`DROP TABLE audit_ref`, `ALTER TABLE audit_ref_v4 RENAME TO audit_ref`)
	editFile(t, dir, append(version6Idx, `PRAGMA user_version = 4`)...)

	s := openUpgraded(t, dir)
	var untimed int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref r JOIN audit a ON a.id = r.id WHERE r.t <> a.last_updated`).Scan(&untimed); err != nil || untimed != 0 {
		t.Errorf("%d entries without their record's time (%v)", untimed, err)
	}
	got := auditIDs(t, s, store.Query{Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}},
		Sort: []store.SortKey{{Param: auditDate, Desc: true}}, Limit: 4})
	if want := []string{"v4-0", "v4-1", "v4-2", "v4-3"}; !slices.Equal(got, want) {
		t.Errorf("newest first after the upgrade = %v, want %v", got, want)
	}
}

// version7AuditRef turns a new file's audit_ref into what versions 5 to 7 left: keyed by value and
// record id, with an index in time order beside it.
var version7AuditRef = []string{
	`CREATE TABLE audit_ref_v7 (value TEXT NOT NULL, param TEXT NOT NULL, id TEXT NOT NULL, system TEXT NOT NULL,
		type TEXT GENERATED ALWAYS AS ('AuditEvent') VIRTUAL, text TEXT GENERATED ALWAYS AS ('') VIRTUAL,
		lo INTEGER GENERATED ALWAYS AS (0) VIRTUAL, hi INTEGER GENERATED ALWAYS AS (0) VIRTUAL,
		t INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (value, param, id, system)) WITHOUT ROWID`,
	`INSERT INTO audit_ref_v7 (value, param, id, system, t) SELECT value, param, id, system, t FROM audit_ref`,
	`DROP TABLE audit_ref`, `ALTER TABLE audit_ref_v7 RENAME TO audit_ref`,
	`CREATE INDEX audit_ref_time ON audit_ref (value, param, t DESC, id)`,
}

// TestOpenUpgradesASchemaVersion7File: audit_ref keyed by value and record id, with audit_ref_time
// beside it. The upgrade keys it by time within a value, drops the index, and keeps every entry: the
// records are found newest first, paged without a gap, and pruning still deletes their entries.
func TestOpenUpgradesASchemaVersion7File(t *testing.T) {
	dir := t.TempDir()
	// Ids in the opposite order to time, and two records in the same millisecond, across the first
	// page's end.
	patientTrail(t, dir, "v7", 9, 0, 1, 2, 2, 3)
	editFile(t, dir, slices.Concat(version8Resource, version7AuditRef, []string{`PRAGMA user_version = 7`})...)

	s := openUpgraded(t, dir)
	if sqlText := schemaSQL(t, s, "audit_ref"); !strings.Contains(sqlText, "PRIMARY KEY (value, param, t DESC, id, system)") {
		t.Errorf("audit_ref is not keyed by time after the upgrade: %s", sqlText)
	}
	var left int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM sqlite_schema WHERE name IN ('audit_ref_time', 'audit_ref_old')`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d of audit_ref_time and audit_ref_old left after the upgrade (%v)", left, err)
	}
	got := pagedIDs(t, s, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}},
		Sort: []store.SortKey{{Param: auditDate, Desc: true}}, Limit: 2})
	if want := []string{"v7-5", "v7-6", "v7-7", "v7-8", "v7-9"}; !slices.Equal(got, want) {
		t.Errorf("newest first after the upgrade, in pages of 2 = %v, want %v", got, want)
	}
	if _, _, err := s.PruneAudit(t.Context(), trailStart.Add(90*time.Second)); err != nil {
		t.Fatal(err)
	}
	var entries int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM audit_ref`).Scan(&entries); err != nil || entries != 3 {
		t.Errorf("audit_ref holds %d entries after pruning the first two records, want 3 (%v)", entries, err)
	}
}

// version8Resource turns a new file's idx_resource and current into what versions before 9 left:
// idx_resource keyed by type and id, and no n in current.
var version8Resource = []string{
	`DROP INDEX idx_resource`, `ALTER TABLE current DROP COLUMN n`,
	`CREATE INDEX idx_resource ON idx (type, id, param, value, text, lo)`,
}

// TestOpenUpgradesASchemaVersion8File: idx_resource keyed by type and id, current without n. The upgrade
// gives each current row its entries' n and keys idx_resource by it: a clause tested on each candidate
// still finds the resource's entries, a sort by a parameter still reads them, and an update replaces
// them rather than leaving the old ones beside the new.
func TestOpenUpgradesASchemaVersion8File(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	obs := func(id, status string, version int64) store.Write {
		return store.Write{
			Resource: store.Resource{Type: "Observation", ID: id, VersionID: version, LastUpdated: trailStart, Body: []byte(`{"resourceType":"Observation"}`)},
			Index: []store.IndexEntry{{Param: "code", System: "http://loinc.org", Value: "8302-2"},
				{Param: "status", System: "http://hl7.org/fhir/observation-status", Value: status}},
			ExpectVersion: version - 1,
		}
	}
	for _, w := range []store.Write{obs("a", "final", 1), obs("b", "final", 1), obs("c", "amended", 1)} {
		if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	editFile(t, dir, append(slices.Clone(version8Resource), `PRAGMA user_version = 8`)...)

	s = openUpgraded(t, dir)
	if sqlText := schemaSQL(t, s, "idx_resource"); !strings.Contains(sqlText, "(n, type, id,") {
		t.Errorf("idx_resource is not keyed by n after the upgrade: %s", sqlText)
	}
	var unset int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM current c WHERE c.n <> (SELECT max(i.n) FROM idx i WHERE i.type = c.type AND i.id = c.id)`).Scan(&unset); err != nil || unset != 0 {
		t.Errorf("%d current rows without their entries' n after the upgrade (%v)", unset, err)
	}
	if err := s.Apply(t.Context(), []store.Write{obs("b", "cancelled", 2)}); err != nil {
		t.Fatal(err)
	}
	final := func() []string {
		var got []string
		hits, err := s.Search(t.Context(), store.Query{Type: "Observation", Clauses: []store.Clause{
			{{Param: "code", Match: store.MatchToken, System: "http://loinc.org", Value: "8302-2"}},
			// Tested on each candidate, through idx_resource.
			{{Param: "status", Match: store.MatchToken, System: "http://hl7.org/fhir/observation-status", Value: "final"}}}})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hits {
			got = append(got, h.Resource.ID)
		}
		return got
	}
	if got := final(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("final after the upgrade and b's update = %v, want [a]", got)
	}
	hits, err := s.Search(t.Context(), store.Query{Type: "Observation", Sort: []store.SortKey{{Param: "status"}}})
	if err != nil {
		t.Fatal(err)
	}
	var bySort []string
	for _, h := range hits {
		bySort = append(bySort, h.Resource.ID)
	}
	if want := []string{"c", "b", "a"}; !slices.Equal(bySort, want) {
		t.Errorf("sorted by status (amended, cancelled, final) = %v, want %v", bySort, want)
	}
	var entries int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM idx WHERE type = 'Observation' AND id = 'b'`).Scan(&entries); err != nil || entries != 2 {
		t.Errorf("b has %d entries after its update, want its second version's 2 (%v)", entries, err)
	}
}

// version6Idx turns a new file's idx into what versions before 7 left: no n, and the id after the value
// (and what versions before 9 left, version8Resource).
var version6Idx = slices.Concat(version8Resource, []string{
	`DROP INDEX idx_value`, `DROP INDEX idx_system`, `DROP INDEX idx_text`, `ALTER TABLE idx DROP COLUMN n`,
	`CREATE INDEX idx_value ON idx (type, param, value, system, id)`,
	`CREATE INDEX idx_system ON idx (type, param, system, value, id) WHERE system <> ''`,
	`CREATE INDEX idx_text ON idx (type, param, text, id) WHERE text <> ''`,
})

// TestOpenUpgradesASchemaVersion6File: idx without n. The upgrade adds it and orders the indexes by it;
// the entries already stored, with n = 0, and those written after are found together, in id order, and
// paged through without a gap, though the newer ones are written in the opposite order.
func TestOpenUpgradesASchemaVersion6File(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	obs := func(id string, version int64) store.Write {
		return store.Write{
			Resource: store.Resource{Type: "Observation", ID: id, VersionID: version, LastUpdated: trailStart, Body: []byte(`{"resourceType":"Observation"}`)},
			Index: []store.IndexEntry{{Param: "code", System: "http://loinc.org", Value: "8302-2", Text: "body height"},
				{Param: "status", System: "http://hl7.org/fhir/observation-status", Value: "final"}},
			ExpectVersion: version - 1,
		}
	}
	for _, id := range []string{"b", "d"} {
		if err := s.Apply(t.Context(), []store.Write{obs(id, 1)}); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	editFile(t, dir, slices.Concat(version6Idx, version7AuditRef, []string{`PRAGMA user_version = 6`})...)

	s = openUpgraded(t, dir)
	for _, name := range []string{"idx_value", "idx_system", "idx_text"} {
		if sqlText := schemaSQL(t, s, name); !strings.Contains(sqlText, " n, id)") {
			t.Errorf("%s is not ordered by n after the upgrade: %s", name, sqlText)
		}
	}
	for _, w := range []store.Write{obs("e", 1), obs("c", 1), obs("a", 1), obs("b", 2)} {
		if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"a", "b", "c", "d", "e"}
	for _, c := range []store.Clause{
		{{Param: "code", Match: store.MatchToken, System: "http://loinc.org", Value: "8302-2"}},
		{{Param: "code", Match: store.MatchToken, System: "http://loinc.org"}},
		{{Param: "code", Match: store.MatchPrefix, Value: "body"}},
	} {
		got := pagedIDs(t, s, store.Query{Type: "Observation", Clauses: []store.Clause{c,
			// Tested on each candidate, through idx_resource.
			{{Param: "status", Match: store.MatchToken, System: "http://hl7.org/fhir/observation-status", Value: "final"}}}, Limit: 2})
		if !slices.Equal(got, want) {
			t.Errorf("%s pages = %v, want %v", c[0].Param, got, want)
		}
	}
	var oldEntries int
	if err := s.r.QueryRowContext(t.Context(), `SELECT count(*) FROM idx WHERE n = 0`).Scan(&oldEntries); err != nil || oldEntries != 2 {
		t.Errorf("%d entries with n = 0 (%v), want d's two: b's were replaced by its second version", oldEntries, err)
	}
}

// TestOpenUpgradesASchemaVersion5File: full idx_system, idx_text and idx_range. The upgrade makes them
// partial, and searches on a stored resource's system, text and date still find it.
func TestOpenUpgradesASchemaVersion5File(t *testing.T) {
	dir := t.TempDir()
	s := openDir(t, dir)
	w := store.Write{
		Resource: store.Resource{Type: "Patient", ID: "v5", VersionID: 1, LastUpdated: trailStart, Body: []byte(`{"resourceType":"Patient"}`)},
		Index: []store.IndexEntry{{Param: "identifier", System: "urn:nhs", Value: "1"}, {Param: "name", Value: "Alice", Text: "alice"},
			{Param: "birthdate", Low: 10, High: 20}},
	}
	if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	editFile(t, dir, slices.Concat(version6Idx, version7AuditRef)...)
	editFile(t, dir, `DROP INDEX idx_system`, `DROP INDEX idx_text`, `DROP INDEX idx_range`,
		`CREATE INDEX idx_system ON idx (type, param, system, value, id)`,
		`CREATE INDEX idx_text ON idx (type, param, text, id)`,
		`CREATE INDEX idx_range ON idx (type, param, lo, hi, id)`, `PRAGMA user_version = 5`)

	s = openUpgraded(t, dir)
	for _, name := range []string{"idx_system", "idx_text", "idx_range"} {
		if sqlText := schemaSQL(t, s, name); !strings.Contains(sqlText, " WHERE ") {
			t.Errorf("%s is still a full index after the upgrade: %s", name, sqlText)
		}
	}
	for _, p := range []store.Predicate{
		{Param: "identifier", Match: store.MatchToken, System: "urn:nhs"},
		{Param: "name", Match: store.MatchPrefix, Value: "ali"},
		{Param: "birthdate", Match: store.MatchRange, Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 5}}},
	} {
		hits, err := s.Search(t.Context(), store.Query{Type: "Patient", Clauses: []store.Clause{{p}}})
		if err != nil || len(hits) != 1 {
			t.Errorf("%s after the upgrade: %d found, %v; want the patient", p.Param, len(hits), err)
		}
	}
}
