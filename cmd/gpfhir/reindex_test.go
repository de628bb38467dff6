package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// staleStore writes resources with no index entries, as if their parameters had been added after they
// were written, and closes the store.
func staleStore(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	var ws []store.Write
	for i, family := range []string{"Smith", "Smythe", "Ångström"} {
		id := fmt.Sprintf("p%d", i+1)
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.Now().UTC(),
			Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"name":[{"family":%q}]}`, id, family)}})
	}
	ws = append(ws, store.Write{Resource: store.Resource{Type: "Immunization", ID: "i1", VersionID: 1, LastUpdated: time.Now().UTC(),
		Body: []byte(`{"resourceType":"Immunization","id":"i1","status":"completed","vaccineCode":{"text":"flu"},"patient":{"reference":"https://gp.example/fhir/Patient/p1"},"occurrenceDateTime":"2024"}`)}})
	if err := st.Apply(context.Background(), ws); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

// indexed lists the ids found by q in the store in dir.
func indexed(t *testing.T, dir string, q store.Query) []string {
	t.Helper()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hits, err := st.Search(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, h := range hits {
		ids = append(ids, h.Resource.ID)
	}
	return ids
}

func family(prefix string) store.Query {
	return store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "family", Match: store.MatchPrefix, Value: prefix}}}}
}

func TestReindex(t *testing.T) {
	tests := []struct {
		name       string
		checkpoint string // written before the run
		args       []string
		want       []string // Patients with a family entry afterwards
		wantImm    bool     // the Immunization's absolute reference is indexed as Patient/p1
	}{
		{"rebuilds every type from the stored bodies", "", nil, []string{"p1", "p2", "p3"}, true},
		{"resumes after the checkpoint", "Patient/p1", nil, []string{"p2", "p3"}, false},
		{"--resume-after beats the checkpoint", "Patient/p1", []string{"--resume-after", "Patient/p2"}, []string{"p3"}, false},
		{"--restart ignores the checkpoint", "Patient/p3", []string{"--restart"}, []string{"p1", "p2", "p3"}, true},
		{"--type limits the types", "", []string{"--type", "Immunization"}, nil, true},
		{"small pages", "", []string{"--batch", "1"}, []string{"p1", "p2", "p3"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := staleStore(t)
			cp := filepath.Join(dir, "reindex.checkpoint")
			if tt.checkpoint != "" {
				if err := os.WriteFile(cp, []byte(tt.checkpoint+"\n"), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			var out, progress bytes.Buffer
			args := append([]string{"reindex", "--data-dir", dir, "--base-url", "https://gp.example/fhir"}, tt.args...)
			if err := run(context.Background(), args, envFrom(nil), &out, &progress); err != nil {
				t.Fatalf("reindex: %v\n%s", err, progress.String())
			}
			if got := indexed(t, dir, family("")); !slices.Equal(got, tt.want) {
				t.Errorf("patients indexed: %v, want %v", got, tt.want)
			}
			if got := indexed(t, dir, family("angs")); slices.Contains(tt.want, "p3") && !slices.Equal(got, []string{"p3"}) {
				t.Errorf("accent-folded family: %v", got)
			}
			imm := indexed(t, dir, store.Query{Type: "Immunization", Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p1"}}}})
			if (len(imm) == 1) != tt.wantImm {
				t.Errorf("immunization by local reference: %v, want found=%v", imm, tt.wantImm)
			}
			if _, err := os.Stat(cp); !os.IsNotExist(err) {
				t.Errorf("the checkpoint must be removed after a complete run: %v", err)
			}
			if !strings.Contains(out.String(), "reindexed") {
				t.Errorf("summary: %q", out.String())
			}
		})
	}
}

func TestReindexReportsEveryConfigurationErrorTogether(t *testing.T) {
	err := run(context.Background(), []string{"reindex", "--data-dir", t.TempDir(), "--type", "Nope", "--batch", "0", "--restart", "--resume-after", "Patient/1"}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("bad flags accepted")
	}
	for _, want := range []string{"--type", "--batch", "--resume-after"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	err = run(context.Background(), []string{"reindex", "--data-dir", t.TempDir(), "--resume-after", "nonsense"}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "nonsense") {
		t.Errorf("a bad resume position: %v", err)
	}
}

// The store refuses SetIndex on AuditEvents, so a reindex that walked them would fail on the first one;
// it must leave them, and the chain, as they are.
func TestReindexLeavesTheAuditTrailAlone(t *testing.T) {
	dir := staleStore(t)
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	appendAudit(t, st, 0, "a1", "a2")
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	var out, progress bytes.Buffer
	if err := run(context.Background(), []string{"reindex", "--data-dir", dir}, envFrom(nil), &out, &progress); err != nil {
		t.Fatalf("reindex with audit records in the store: %v\n%s", err, progress.String())
	}
	if got := indexed(t, dir, family("")); !slices.Equal(got, []string{"p1", "p2", "p3"}) {
		t.Errorf("patients indexed: %v", got)
	}
	if strings.Contains(progress.String(), "AuditEvent") {
		t.Errorf("AuditEvents were walked: %s", progress.String())
	}
	st, err = sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if res, err := audit.Verify(context.Background(), st); err != nil || !res.Intact || res.Records != 2 {
		t.Errorf("audit chain after reindex: %v %v", res, err)
	}

	err = run(context.Background(), []string{"reindex", "--data-dir", dir, "--type", "AuditEvent"}, envFrom(nil), &out, &progress)
	if err == nil || !strings.Contains(err.Error(), "AuditEvent") {
		t.Errorf("--type AuditEvent: %v", err)
	}
}
