package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
	"github.com/gpfhir/gpfhir/uptake"
	"github.com/gpfhir/gpfhir/uptake/tally"
)

func patientBody(id string, version int) []byte {
	return []byte(fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"%d"},"identifier":[{"system":"urn:test","value":%q}],"name":[{"family":"V%d"}]}`,
		id, version, id, version))
}

// cancelOnProgress cancels a copy at its first progress report, as an operator's Ctrl-C would.
type cancelOnProgress struct {
	mu     sync.Mutex
	cancel context.CancelFunc
	buf    bytes.Buffer
}

func (c *cancelOnProgress) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if bytes.Contains(p, []byte("progress:")) {
		c.cancel()
	}
	return c.buf.Write(p)
}

func TestStoreCopySQLiteToMongoIsResumableAndVerified(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	src, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 6_000_000, time.UTC)
	put := func(id string, v int, deleted bool) {
		t.Helper()
		r := store.Resource{Type: "Patient", ID: id, VersionID: int64(v), LastUpdated: t0.Add(time.Duration(v) * time.Minute), Deleted: deleted}
		w := store.Write{Resource: r, ExpectVersion: int64(v - 1)}
		if !deleted {
			w.Resource.Body = patientBody(id, v)
			w.Index, _ = fhir.ExtractBody(w.Resource.Body, "")
		}
		if err := src.Apply(ctx, []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("p%02d", i)
		put(id, 1, false)
		if i < 6 {
			put(id, 2, false)
			put(id, 3, false)
		}
	}
	put("p05", 4, true)
	// An audit trail of 7 records in 3 batches: copied as a chain, not through Apply.
	appendAudit(t, src, 0, "a0", "a1", "a2")
	appendAudit(t, src, 3, "a3", "a4")
	appendAudit(t, src, 5, "a5", "a6")
	src.Close()

	uri := mongotest.Start(t)
	db := mongotest.Database(t)
	args := []string{"--from", "sqlite", "--data-dir", dir, "--to", "mongo", "--mongodb-uri", uri, "--mongodb-database", db, "--progress-every", "5"}

	cctx, cancel := context.WithCancel(ctx)
	progress := &cancelOnProgress{cancel: cancel}
	var out bytes.Buffer
	err = run(cctx, append([]string{"store", "copy"}, args...), envFrom(nil), &out, progress)
	if err == nil || !strings.Contains(err.Error(), "resume") {
		t.Fatalf("interrupted copy: err = %v, want an error saying how to resume", err)
	}

	out.Reset()
	var errb bytes.Buffer
	if err := run(ctx, append([]string{"store", "copy"}, args...), envFrom(nil), &out, &errb); err != nil {
		t.Fatalf("resumed copy: %v\n%s", err, errb.String())
	}
	if !strings.Contains(out.String(), "verified: both stores hold 40 versions, audit chain intact, 7 records") {
		t.Errorf("copy report: %q", out.String())
	}
	if !strings.Contains(out.String(), "already present") || strings.Contains(out.String(), "versions (0 already present)") {
		t.Errorf("the resumed copy should have found versions from the interrupted run: %q", out.String())
	}

	dst, err := mongo.Open(ctx, mongo.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	gone, err := dst.Get(ctx, "Patient", "p05")
	if err != nil || !gone.Deleted || gone.VersionID != 4 {
		t.Errorf("p05 on the target: %+v %v, want the version 4 tombstone", gone, err)
	}
	v2, err := dst.GetVersion(ctx, "Patient", "p00", 2)
	if err != nil || string(v2.Body) != string(patientBody("p00", 2)) || !v2.LastUpdated.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("p00 v2 on the target: %s %v %v", v2.Body, v2.LastUpdated, err)
	}
	chain, err := audit.Verify(ctx, dst)
	if err != nil || !chain.Intact || chain.Records != 7 {
		t.Errorf("audit chain on the target: %v %v, want intact, 7 records", chain, err)
	}
	srcSt, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer srcSt.Close()
	want, _ := srcSt.AuditRange(ctx, 0, 0)
	got, _ := dst.AuditRange(ctx, 0, 0)
	if len(got) != len(want) {
		t.Fatalf("target chain has %d records, source %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Seq != want[i].Seq || got[i].ID != want[i].ID || !bytes.Equal(got[i].Hash, want[i].Hash) || !bytes.Equal(got[i].Body, want[i].Body) {
			t.Errorf("record %d on the target: %d %s %x, want %d %s %x", i+1, got[i].Seq, got[i].ID, got[i].Hash, want[i].Seq, want[i].ID, want[i].Hash)
		}
	}
	if a4, err := dst.Get(ctx, store.AuditEventType, "a4"); err != nil || a4.VersionID != 1 || string(a4.Body) != string(auditBody("a4")) {
		t.Errorf("AuditEvent/a4 on the target: %+v %v", a4, err)
	}
	hits, err := dst.Search(ctx, store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: "urn:test", Value: "p03"}}}})
	if err != nil || len(hits) != 1 || hits[0].Resource.VersionID != 3 {
		t.Errorf("index on the target: %d hits, %v", len(hits), err)
	}
}

func TestStoreCopyConfigurationErrors(t *testing.T) {
	err := run(context.Background(), []string{"store", "copy", "--from", "sqlite", "--to", "mongo"}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--to-mongodb-uri") {
		t.Errorf("copy to mongo without a URI: %v", err)
	}
	err = run(context.Background(), []string{"store", "copy", "--from", "sqlite", "--to", "sqlite"}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "same store") {
		t.Errorf("copy onto itself: %v", err)
	}
}

// TestStoreCopyKeepsTheUptakeFiguresReadable: the uptake tally's documents are no FHIR resources, so
// their index cannot come from a FHIR body; the copy gives them the one the tally wrote, and the target
// reads the same month without recounting.
func TestStoreCopyKeepsTheUptakeFiguresReadable(t *testing.T) {
	ctx := context.Background()
	from, to := t.TempDir(), t.TempDir()
	src, err := sqlite.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	const base = "http://gp.example"
	now := time.Now().UTC().Truncate(time.Millisecond)
	for _, r := range []struct{ typ, id, body string }{
		{"Organization", "org-1", `{"resourceType":"Organization","id":"org-1","name":"One","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"A00001"}]}`},
		{"Patient", "p1", `{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"Organization/org-1"}}`},
	} {
		index, _ := fhir.ExtractBody([]byte(r.body), base)
		if err := src.Apply(ctx, []store.Write{{Resource: store.Resource{Type: r.typ, ID: r.id, VersionID: 1, LastUpdated: now, Body: []byte(r.body)}, Index: index}}); err != nil {
			t.Fatal(err)
		}
	}
	in := audit.Input{ID: "view-1", Recorded: now, Interaction: "read", Status: 200, Site: base, Instance: "i",
		User:     &audit.User{Kind: "patient", Subject: "s", NHSNumber: "9000000009", PatientID: "p1"},
		Entities: []audit.Entity{{Type: "Immunization", ID: "i1", Version: 1, PatientIDs: []string{"p1"}}}}
	if err := src.ApplyAudited(ctx, nil, []audit.Record{audit.NewRecord(in, base)}); err != nil {
		t.Fatal(err)
	}
	period := uptake.PeriodOf(now)
	ta := tally.New(src, base, nil, nil)
	if err := ta.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := ta.TakeCensus(ctx, period); err != nil {
		t.Fatal(err)
	}
	src.Close()
	var out, errb bytes.Buffer
	if err := run(ctx, []string{"store", "copy", "--from", "sqlite", "--from-data-dir", from, "--to", "sqlite", "--to-data-dir", to, "--base-url", base},
		envFrom(nil), &out, &errb); err != nil {
		t.Fatalf("copy: %v\n%s", err, errb.String())
	}
	dst, err := sqlite.Open(ctx, to)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	m, err := tally.New(dst, base, nil, nil).Month(ctx, period)
	if err != nil {
		t.Fatal(err)
	}
	if m.Counts["A00001"].RecordViews != 1 || m.Census["A00001"].ListSize != 1 {
		t.Errorf("on the target: counts %+v census %+v", m.Counts["A00001"], m.Census["A00001"])
	}
}
