package api_test

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

type manifest struct {
	TransactionTime     string `json:"transactionTime"`
	Request             string `json:"request"`
	RequiresAccessToken bool   `json:"requiresAccessToken"`
	Output              []struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int    `json:"count"`
	} `json:"output"`
	Error []any `json:"error"`
}

// relative turns an absolute URL of the test server into a path for ts.do.
func relative(t *testing.T, u string) string {
	t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		t.Fatal(err)
	}
	return p.RequestURI()
}

// kickOff starts an export and polls it to its manifest.
func kickOff(t *testing.T, ts *testServer, path string, h header) (manifest, string) {
	t.Helper()
	hh := header{"Prefer": "respond-async"}
	for k, v := range h {
		hh[k] = v
	}
	r := ts.mustStatus(ts.do("GET", path, nil, hh), http.StatusAccepted)
	status := r.Header.Get("Content-Location")
	if !strings.Contains(status, "/$export-poll/") {
		t.Fatalf("Content-Location %q", status)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ts.do("GET", relative(t, status), nil, h)
		switch r.Status {
		case http.StatusAccepted:
			if r.Header.Get("X-Progress") == "" || r.Header.Get("Retry-After") == "" {
				t.Errorf("a 202 poll without X-Progress and Retry-After: %v", r.Header)
			}
			if time.Now().After(deadline) {
				t.Fatal("the export did not finish in 30s")
			}
			time.Sleep(50 * time.Millisecond)
			continue
		case http.StatusOK:
			var m manifest
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatalf("manifest %s: %v", r.Body, err)
			}
			return m, status
		}
		t.Fatalf("poll answered %d: %s\n%s", r.Status, r.Body, ts.logs.String())
	}
}

// download reads an ndjson file of a manifest and returns its resources' ids.
func download(t *testing.T, ts *testServer, u string, h header) []string {
	t.Helper()
	r := ts.mustStatus(ts.do("GET", relative(t, u), nil, h), 200)
	if ct := r.Header.Get("Content-Type"); ct != "application/fhir+ndjson" {
		t.Errorf("file Content-Type %q", ct)
	}
	var ids []string
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		var res struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &res); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		ids = append(ids, res.ID)
	}
	return ids
}

func TestBulkExport(t *testing.T) {
	exportDir := t.TempDir()
	ts := newTestServer(t, func(c *apiConfig) { c.ExportDir = exportDir })
	w := newServicesWorld(t, ts)
	for i := 0; i < 3; i++ {
		ts.create("Immunization", immunization(w.me, time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC)))
	}
	// A patient of another practice, whose record the test practice's client must not export.
	otherODS := testPeople.Practices[1].ODS
	org := ts.create("Organization", obj{"resourceType": "Organization", "name": "Other",
		"identifier": arr{obj{"system": fhir.ODSOrganizationSystem, "value": otherODS}}})
	far := patient("Far", "")
	far["managingOrganization"] = ref("Organization", org)
	farID := ts.create("Patient", far)
	farImm := ts.create("Immunization", immunization(farID, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)))
	own := bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))

	t.Run("system export holds exactly what the client may read", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/$export?_outputFormat="+url.QueryEscape("application/fhir+ndjson"), own)
		if !m.RequiresAccessToken || m.TransactionTime == "" || !strings.Contains(m.Request, "/$export") || m.Error == nil {
			t.Errorf("manifest fields: %+v", m)
		}
		got := map[string][]string{}
		for _, o := range m.Output {
			ids := download(t, ts, o.URL, own)
			if len(ids) != o.Count {
				t.Errorf("%s: %d lines, manifest count %d", o.Type, len(ids), o.Count)
			}
			got[o.Type] = ids
		}
		for _, typ := range []string{"Patient", "Immunization", "Slot"} {
			want := ts.mustStatus(ts.do("GET", "/"+typ+"?_summary=count", nil, own), 200).JSON(t)["total"].(float64)
			if len(got[typ]) != int(want) {
				t.Errorf("%s: %d exported, the client's search counts %v", typ, len(got[typ]), want)
			}
		}
		for _, id := range append(got["Patient"], got["Immunization"]...) {
			if id == farID || id == farImm {
				t.Errorf("another practice's %s exported", id)
			}
		}
		if _, ok := got["AuditEvent"]; ok {
			t.Errorf("AuditEvents exported")
		}
	})
	t.Run("Patient export with _type and _since", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/Patient/$export?_type=Immunization&_since="+url.QueryEscape("2000-01-01T00:00:00Z"), own)
		if len(m.Output) != 1 || m.Output[0].Type != "Immunization" || m.Output[0].Count != 3 {
			t.Errorf("output %+v, want 3 Immunizations", m.Output)
		}
		m, _ = kickOff(t, ts, "/Patient/$export?_since="+url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339)), own)
		if len(m.Output) != 0 {
			t.Errorf("_since in the future exported %+v", m.Output)
		}
	})
	t.Run("_typeFilter", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/$export?_type=Patient&_typeFilter="+url.QueryEscape("Patient?family=Me"), own)
		if len(m.Output) != 1 || m.Output[0].Count != 1 {
			t.Errorf("output %+v, want the one Patient named Me", m.Output)
		}
	})
	t.Run("only the client that started it sees it; DELETE removes it", func(t *testing.T) {
		_, status := kickOff(t, ts, "/$export?_type=Patient", own)
		other := bearer(ts.systemToken(devidp.AllPracticesClientID, "system/*.rs"))
		if r := ts.do("GET", relative(t, status), nil, other); r.Status != http.StatusNotFound {
			t.Errorf("another client polls: %d, want 404", r.Status)
		}
		ts.mustStatus(ts.do("DELETE", relative(t, status), nil, own), http.StatusAccepted)
		if r := ts.do("GET", relative(t, status), nil, own); r.Status != http.StatusNotFound {
			t.Errorf("poll after DELETE: %d, want 404", r.Status)
		}
		id := status[strings.LastIndex(status, "/")+1:]
		if _, err := os.Stat(filepath.Join(exportDir, id)); !os.IsNotExist(err) {
			t.Errorf("the job's files are still there after DELETE: %v", err)
		}
	})
	t.Run("refusals", func(t *testing.T) {
		r := ts.do("GET", "/$export", nil, own)
		if r.Status != http.StatusBadRequest {
			t.Errorf("no Prefer: respond-async: %d, want 400", r.Status)
		}
		for _, q := range []string{"_outputFormat=text/csv", "_type=Claim", "_since=soon", "_typeFilter=Patient%3Fbogus%3D1", "foo=1"} {
			r := ts.do("GET", "/$export?"+q, nil, header{"Prefer": "respond-async"})
			if r.Status < 400 || r.Status >= 500 {
				t.Errorf("%s: status %d, want 4xx", q, r.Status)
			}
			r.issue(t)
		}
		pt := bearer(ts.patientToken(w.meNHS, "P9", ""))
		hh := header{"Prefer": "respond-async", "Authorization": pt["Authorization"]}
		if r := ts.do("GET", "/$export", nil, hh); r.Status != http.StatusForbidden {
			t.Errorf("patient token: %d, want 403", r.Status)
		}
	})
	t.Run("the export is audited as a whole", func(t *testing.T) {
		hits, err := ts.store.Search(t.Context(), store.Query{Type: store.AuditEventType, Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, h := range hits {
			var ae struct {
				Entity []struct {
					Query string `json:"query"`
				} `json:"entity"`
			}
			if err := json.Unmarshal(h.Resource.Body, &ae); err != nil {
				t.Fatal(err)
			}
			for _, e := range ae.Entity {
				q, _ := base64.StdEncoding.DecodeString(e.Query)
				if strings.Contains(string(q), "count.Immunization=") && strings.Contains(string(q), "job=") {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("no AuditEvent names what an export covered")
		}
	})
	t.Run("CapabilityStatement lists $export", func(t *testing.T) {
		body := string(ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200).Body)
		if !strings.Contains(body, "bulkdata/OperationDefinition/export") || !strings.Contains(body, "patient-export") {
			t.Errorf("$export not in the CapabilityStatement")
		}
	})
}

// TestBulkExportContinuesAfterARestart leaves a job in progress as a stopped process would, and checks
// that a new server on the same directory runs it to completion.
func TestBulkExportContinuesAfterARestart(t *testing.T) {
	if os.Getenv(backendEnv) == "mongo" {
		t.Skip("on MongoDB jobs are in the database: TestBulkExportJobsAreSharedOnMongo has a stopped process's job finished by another")
	}
	exportDir := t.TempDir()
	st := openTestStore(t)
	ts := newTestServerOn(t, st, func(c *apiConfig) { c.ExportDir = exportDir })
	ts.create("Patient", patient("Restarted", ""))
	own := bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))
	_, status := kickOff(t, ts, "/$export?_type=Patient", own)
	id := status[strings.LastIndex(status, "/")+1:]
	// Make it look interrupted: back to in-progress, its file gone.
	jobFile := filepath.Join(exportDir, id, "job.json")
	raw, err := os.ReadFile(jobFile)
	if err != nil {
		t.Fatal(err)
	}
	var job map[string]any
	if err := json.Unmarshal(raw, &job); err != nil {
		t.Fatal(err)
	}
	job["status"], job["output"] = "in-progress", nil
	raw, _ = json.Marshal(job)
	if err := os.WriteFile(jobFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(exportDir, id, "Patient.ndjson"))

	ts2 := newTestServerOn(t, st, func(c *apiConfig) { c.ExportDir = exportDir })
	own2 := bearer(ts2.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := ts2.do("GET", "/$export-poll/"+id, nil, own2)
		if r.Status == http.StatusOK {
			var m manifest
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatal(err)
			}
			if len(m.Output) != 1 || m.Output[0].Count < 1 {
				t.Errorf("resumed job's output %+v", m.Output)
			}
			return
		}
		if r.Status != http.StatusAccepted || time.Now().After(deadline) {
			t.Fatalf("after a restart the job answers %d: %s", r.Status, r.Body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
