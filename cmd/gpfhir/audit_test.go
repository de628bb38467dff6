package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

var auditT0 = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func auditBody(id string) []byte {
	return fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1"},"action":"R"}`, id)
}

// appendAudit appends AuditEvents with the given ids to st in one batch, the n-th recorded n minutes
// after auditT0 counting from first.
func appendAudit(t *testing.T, st audit.Backend, first int, ids ...string) {
	t.Helper()
	var recs []audit.Record
	for i, id := range ids {
		recs = append(recs, audit.Record{ID: id, Recorded: auditT0.Add(time.Duration(first+i) * time.Minute), Body: auditBody(id)})
	}
	if err := audit.AppendChained(context.Background(), st, recs, 1); err != nil {
		t.Fatal(err)
	}
}

// auditStore makes a SQLite store with AuditEvents e0..e(n-1), recorded a minute apart from auditT0.
func auditStore(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 2 {
		ids := []string{fmt.Sprintf("e%d", i)}
		if i+1 < n {
			ids = append(ids, fmt.Sprintf("e%d", i+1))
		}
		appendAudit(t, st, i, ids...)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestAuditVerify(t *testing.T) {
	cases := []struct {
		name    string
		tamper  string
		wantOut string
		wantErr string
	}{
		{name: "an intact chain is reported with its length and head", wantOut: "intact, 5 records\nhead: record 5, hash "},
		{
			name: "an edited record is reported as the first broken link and fails the command",
			// The store keeps bodies compressed; an edit that writes plain JSON is read as it is.
			tamper:  `UPDATE audit SET body = CAST('{"resourceType":"AuditEvent","id":"e2","action":"D"}' AS BLOB) WHERE id = 'e2'`,
			wantOut: "broken at record 3: AuditEvent/e2 does not match its hash", wantErr: "broken at record 3",
		},
		{
			name:    "a deleted record is reported as a gap",
			tamper:  `DELETE FROM audit WHERE seq = 4`,
			wantOut: "broken at record 4: record 4 is missing", wantErr: "broken at record 4",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := auditStore(t, 5)
			if tc.tamper != "" {
				db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gpfhir.db"))
				if err != nil {
					t.Fatal(err)
				}
				if _, err := db.Exec(tc.tamper); err != nil {
					t.Fatal(err)
				}
				db.Close()
			}
			var out bytes.Buffer
			err := run(context.Background(), []string{"audit", "verify", "--data-dir", dir}, envFrom(nil), &out, &bytes.Buffer{})
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("output %q, want it to contain %q", out.String(), tc.wantOut)
			}
			if tc.wantErr == "" && err != nil {
				t.Errorf("verify of an intact chain: %v", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("verify error %v, want %q (a non-zero exit)", err, tc.wantErr)
			}
		})
	}
}

func TestAuditExport(t *testing.T) {
	dir := auditStore(t, 6)
	ts := func(min int) string { return auditT0.Add(time.Duration(min) * time.Minute).Format(time.RFC3339) }
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"everything in chain order", nil, []string{"e0", "e1", "e2", "e3", "e4", "e5"}},
		{"since is inclusive, until exclusive", []string{"--since", ts(1), "--until", ts(4)}, []string{"e1", "e2", "e3"}},
		{"only since", []string{"--since", ts(5)}, []string{"e5"}},
		{"an empty window", []string{"--since", ts(10)}, nil},
		// The records are at noon on 2025-06-01: a date means its first instant.
		{"since a date, as the README types it", []string{"--since", "2025-06-01"}, []string{"e0", "e1", "e2", "e3", "e4", "e5"}},
		{"until a date", []string{"--until", "2025-06-01"}, nil},
		{"since a date, until the next", []string{"--since", "2025-06-01", "--until", "2025-06-02"}, []string{"e0", "e1", "e2", "e3", "e4", "e5"}},
	}
	for _, tc := range cases {
		for _, toFile := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, to a file %v", tc.name, toFile), func(t *testing.T) {
				args := append([]string{"audit", "export", "--data-dir", dir}, tc.args...)
				out := filepath.Join(t.TempDir(), "audit.ndjson")
				if toFile {
					args = append(args, "--out", out)
				}
				var stdout, stderr bytes.Buffer
				if err := run(context.Background(), args, envFrom(nil), &stdout, &stderr); err != nil {
					t.Fatalf("export: %v", err)
				}
				got := stdout.Bytes()
				if toFile {
					if stdout.Len() != 0 {
						t.Errorf("export to a file wrote to standard output: %q", stdout.String())
					}
					var err error
					if got, err = os.ReadFile(out); err != nil {
						t.Fatal(err)
					}
				}
				var want bytes.Buffer
				for _, id := range tc.want {
					want.Write(auditBody(id))
					want.WriteByte('\n')
				}
				if !bytes.Equal(got, want.Bytes()) {
					t.Errorf("ndjson:\n%s\nwant:\n%s", got, want.Bytes())
				}
				if !strings.Contains(stderr.String(), fmt.Sprintf("exported %d AuditEvents; chain head at record 6", len(tc.want))) {
					t.Errorf("report %q", stderr.String())
				}
			})
		}
	}
}

func TestAuditCommandErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"audit"}, "usage"},
		{"an unknown subcommand", []string{"audit", "erase"}, `unknown audit command "erase"`},
		{"a since that is not a date or time", []string{"audit", "export", "--since", "yesterday"}, `--since "yesterday" is not a date or time`},
		{"since after until", []string{"audit", "export", "--since", "2025-02-01T00:00:00Z", "--until", "2025-01-01T00:00:00Z"}, "--since must be before --until"},
		{"mongo without a URI", []string{"audit", "verify", "--store", "mongo"}, "--mongodb-uri"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestStoreCopyAuditChainResumesFromTheTargetHead copies a chain, appends to the source, and copies
// again: the second run continues from the target's head, and a target whose chain differs is refused.
func TestStoreCopyAuditChainResumesFromTheTargetHead(t *testing.T) {
	srcDir := auditStore(t, 5)
	dstDir := t.TempDir()
	copyArgs := []string{"store", "copy", "--from", "sqlite", "--from-data-dir", srcDir, "--to", "sqlite", "--to-data-dir", dstDir}
	var out bytes.Buffer
	if err := run(context.Background(), copyArgs, envFrom(nil), &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("first copy: %v", err)
	}
	if !strings.Contains(out.String(), "5 audit records (0 already present)") || !strings.Contains(out.String(), "audit chain intact, 5 records") {
		t.Errorf("first copy report: %q", out.String())
	}

	src, err := sqlite.Open(context.Background(), srcDir)
	if err != nil {
		t.Fatal(err)
	}
	appendAudit(t, src, 5, "e5", "e6")
	src.Close()
	out.Reset()
	if err := run(context.Background(), copyArgs, envFrom(nil), &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("second copy: %v", err)
	}
	if !strings.Contains(out.String(), "2 audit records (5 already present)") || !strings.Contains(out.String(), "audit chain intact, 7 records") {
		t.Errorf("second copy report: %q", out.String())
	}

	// Same first three records as the source, then one of its own: the chains part at record 4.
	other := auditStore(t, 3)
	st, err := sqlite.Open(context.Background(), other)
	if err != nil {
		t.Fatal(err)
	}
	appendAudit(t, st, 100, "x")
	st.Close()
	err = run(context.Background(), []string{"store", "copy", "--from", "sqlite", "--from-data-dir", srcDir, "--to", "sqlite", "--to-data-dir", other},
		envFrom(nil), &out, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "is not the beginning of the source's") {
		t.Errorf("copy onto a target with another chain: %v", err)
	}
}

func TestAuditVerifyAndExportOnMongo(t *testing.T) {
	uri := mongotest.Start(t)
	db := mongotest.Database(t)
	st, err := mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db})
	if err != nil {
		t.Fatal(err)
	}
	appendAudit(t, st, 0, "m0", "m1")
	appendAudit(t, st, 2, "m2")
	st.Close()
	flags := []string{"--store", "mongo", "--mongodb-uri", uri, "--mongodb-database", db}
	var out bytes.Buffer
	if err := run(context.Background(), append([]string{"audit", "verify"}, flags...), envFrom(nil), &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	if !strings.HasPrefix(out.String(), "intact, 3 records\n") {
		t.Errorf("verify output %q", out.String())
	}
	out.Reset()
	if err := run(context.Background(), append([]string{"audit", "export", "--since", auditT0.Add(time.Minute).Format(time.RFC3339)}, flags...), envFrom(nil), &out, &bytes.Buffer{}); err != nil {
		t.Fatalf("export: %v", err)
	}
	if want := string(auditBody("m1")) + "\n" + string(auditBody("m2")) + "\n"; out.String() != want {
		t.Errorf("export:\n%s\nwant:\n%s", out.String(), want)
	}
}
