package api_test

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

func txImmunization(patientRef string) obj {
	return obj{"resourceType": "Immunization", "status": "completed",
		"vaccineCode":        obj{"coding": arr{obj{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
		"patient":            obj{"reference": patientRef},
		"occurrenceDateTime": "2024-01-01"}
}

func txBundle(typ string, entries ...obj) obj {
	return obj{"resourceType": "Bundle", "type": typ, "entry": arr(func() []any {
		out := make([]any, len(entries))
		for i, e := range entries {
			out[i] = e
		}
		return out
	}())}
}

func txPost(fullURL string, res obj) obj {
	return obj{"fullUrl": fullURL, "resource": res, "request": obj{"method": "POST", "url": res["resourceType"]}}
}

// entries returns the response entries of a transaction-response or batch-response.
func responseEntries(t *testing.T, r *response, wantType string) []map[string]any {
	t.Helper()
	m := r.JSON(t)
	if m["type"] != wantType {
		t.Fatalf("bundle type %v, want %s: %s", m["type"], wantType, r.Body)
	}
	var out []map[string]any
	for _, e := range m["entry"].([]any) {
		out = append(out, e.(map[string]any))
	}
	return out
}

func entryStatus(e map[string]any) string {
	return e["response"].(map[string]any)["status"].(string)
}

func (ts *testServer) txCount(typ, query string) int {
	ts.t.Helper()
	m := ts.mustStatus(ts.do("GET", "/"+typ+"?_summary=count&"+query, nil, nil), 200).JSON(ts.t)
	return int(m["total"].(float64))
}

func TestTransactionCreatesPatientAndImmunizationsWithRewrittenReferences(t *testing.T) {
	ts := newTestServer(t)
	pu := "urn:uuid:" + "6f1b2a3c-0000-4000-8000-000000000001"
	p := patient("Txn", "")
	p["identifier"] = arr{obj{"system": "urn:test", "value": "txn-1"}}
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-000000000002", txImmunization(pu)),
		txPost(pu, p),
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-000000000003", txImmunization(pu)),
	), nil), 200)
	es := responseEntries(t, r, "transaction-response")
	if len(es) != 3 {
		t.Fatalf("%d response entries, want 3", len(es))
	}
	pid := ""
	for _, e := range es {
		if got := entryStatus(e); got != "201 Created" {
			t.Fatalf("entry status %q, want 201 Created: %s", got, r.Body)
		}
		resp := e["response"].(map[string]any)
		if !strings.Contains(resp["location"].(string), "/_history/1") || resp["etag"] != `W/"1"` || resp["lastModified"] == nil {
			t.Errorf("response %v lacks location, etag or lastModified", resp)
		}
		if res := e["resource"].(map[string]any); res["resourceType"] == "Patient" {
			pid = res["id"].(string)
		}
	}
	for _, i := range []int{0, 2} {
		imm := es[i]["resource"].(map[string]any)
		if got := imm["patient"].(map[string]any)["reference"]; got != "Patient/"+pid {
			t.Errorf("entry %d patient reference %v, want Patient/%s", i, got, pid)
		}
	}
	if n := ts.txCount("Immunization", "patient=Patient/"+pid); n != 2 {
		t.Errorf("%d Immunizations stored for the new patient, want 2", n)
	}
}

// Rewriting a urn:uuid reference leaves the rest of the entry as it was sent: a decimal keeps its
// precision (FHIR: 0.50 is not 0.5), a number past float64's digits keeps them all.
func TestTransactionReferenceRewritesKeepDecimalsAsSent(t *testing.T) {
	ts := newTestServer(t)
	pu := "urn:uuid:6f1b2a3c-0000-4000-8000-000000000011"
	imm := txImmunization(pu)
	imm["doseQuantity"] = obj{"value": json.Number("0.50"), "unit": "mL"}
	imm["lotNumber"] = "A1"
	imm["extension"] = arr{obj{"url": "https://example.org/dose-volume", "valueDecimal": json.Number("1.250000000000000001")}}
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-000000000012", imm),
		txPost(pu, patient("Decimal", "")),
	), nil), 200)
	loc := responseEntries(t, r, "transaction-response")[0]["response"].(map[string]any)["location"].(string)
	stored := ts.mustStatus(ts.do("GET", "/"+strings.Split(loc, "/_history")[0], nil, nil), 200)
	for _, want := range []string{`"value":0.50`, `"valueDecimal":1.250000000000000001`, `"reference":"Patient/`} {
		if !strings.Contains(string(stored.Body), want) {
			t.Errorf("the stored Immunization lacks %s: %s", want, stored.Body)
		}
	}
}

func TestTransactionFailuresStoreNothingAndNameTheEntry(t *testing.T) {
	ts := newTestServer(t)
	existing := ts.create("Patient", patient("Existing", ""))
	cases := []struct {
		name     string
		entries  []obj
		status   int
		mentions string
	}{
		{"an invalid resource", []obj{
			txPost("urn:uuid:a", patient("Good", "")),
			txPost("urn:uuid:b", obj{"resourceType": "Patient", "birthDate": "not-a-date"}),
		}, 0, "Bundle.entry[1]"},
		{"an If-Match on a stale version", []obj{
			txPost("urn:uuid:a", patient("Good", "")),
			{"resource": func() obj { p := patient("Changed", ""); p["id"] = existing; return p }(),
				"request": obj{"method": "PUT", "url": "Patient/" + existing, "ifMatch": `W/"7"`}},
		}, 412, "Bundle.entry[1]"},
		{"a type this server does not serve", []obj{
			txPost("urn:uuid:a", patient("Good", "")),
			txPost("urn:uuid:b", obj{"resourceType": "Claim", "status": "active"}),
		}, 404, "Bundle.entry[1]"},
		{"a method FHIR has no entry for", []obj{
			txPost("urn:uuid:a", patient("Good", "")),
			{"request": obj{"method": "OPTIONS", "url": "Patient/" + existing}},
		}, 400, "Bundle.entry[1]"},
		{"a reference to nothing", []obj{
			txPost("urn:uuid:a", patient("Good", "")),
			txPost("urn:uuid:b", txImmunization("Patient/does-not-exist")),
		}, 422, "Bundle.entry[1]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.txCount("Patient", "family=Good")
			r := ts.do("POST", "/", txBundle("transaction", tc.entries...), nil)
			if tc.status != 0 && r.Status != tc.status || r.Status < 400 {
				t.Fatalf("status %d, want %d: %s", r.Status, tc.status, r.Body)
			}
			if !strings.Contains(string(r.Body), tc.mentions) {
				t.Errorf("the OperationOutcome does not name %s: %s", tc.mentions, r.Body)
			}
			if after := ts.txCount("Patient", "family=Good"); after != before {
				t.Errorf("%d Patients stored by a failed transaction", after-before)
			}
		})
	}
	if v := ts.mustStatus(ts.do("GET", "/Patient/"+existing, nil, nil), 200).JSON(t)["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("the patient a failed transaction updated is at version %v", v)
	}
}

func TestBatchStoresGoodEntriesAndReportsEachStatus(t *testing.T) {
	ts := newTestServer(t)
	r := ts.mustStatus(ts.do("POST", "/", txBundle("batch",
		txPost("", patient("BatchA", "")),
		txPost("", obj{"resourceType": "Patient", "birthDate": "never"}),
		obj{"request": obj{"method": "DELETE", "url": "Patient/no-such-patient"}},
		txPost("", patient("BatchB", "")),
	), nil), 200)
	es := responseEntries(t, r, "batch-response")
	want := []string{"201", "4", "404", "201"}
	for i, e := range es {
		if got := entryStatus(e); !strings.HasPrefix(got, want[i]) {
			t.Errorf("entry %d status %q, want %s…", i, got, want[i])
		}
	}
	out, _ := es[1]["response"].(map[string]any)["outcome"].(map[string]any)
	if out == nil || !strings.Contains(string(r.Body), "Bundle.entry[1]") {
		t.Errorf("the failed entry has no OperationOutcome naming it: %s", r.Body)
	}
	if n := ts.txCount("Patient", "family=BatchA,BatchB"); n != 2 {
		t.Errorf("%d good Patients stored, want 2", n)
	}
}

func slotEntries(schedule string, n int) []obj {
	start := time.Now().UTC().Truncate(time.Hour).Add(48 * time.Hour)
	var out []obj
	for i := 0; i < n; i++ {
		s := start.Add(time.Duration(i) * 10 * time.Minute)
		out = append(out, txPost("", obj{"resourceType": "Slot", "schedule": ref("Schedule", schedule), "status": "free",
			"extension": arr{obj{"url": fhir.OnlineBookableExtension, "valueBoolean": true}},
			"start":     rfc(s), "end": rfc(s.Add(10 * time.Minute))}))
	}
	return out
}

func TestSlotsInBulkByTransaction(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	before := ts.txCount("Slot", "schedule=Schedule/"+w.online)
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction", slotEntries(w.online, 50)...), nil), 200)
	if es := responseEntries(t, r, "transaction-response"); len(es) != 50 {
		t.Fatalf("%d response entries, want 50", len(es))
	}
	if n := ts.txCount("Slot", "schedule=Schedule/"+w.online); n != before+50 {
		t.Errorf("%d Slots after the transaction, want %d", n, before+50)
	}

	t.Run("a patient cannot create slots in a bundle", func(t *testing.T) {
		me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
		r := ts.do("POST", "/", txBundle("transaction", slotEntries(w.online, 2)...), me)
		if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "Bundle.entry[0]") {
			t.Fatalf("status %d, want 403 naming entry 0: %s", r.Status, r.Body)
		}
		if n := ts.txCount("Slot", "schedule=Schedule/"+w.online); n != before+50 {
			t.Errorf("a refused transaction changed the Slots: %d", n)
		}
	})

	t.Run("more entries than the limit", func(t *testing.T) {
		small := newTestServer(t, func(c *apiConfig) { c.MaxBundleEntries = 3 })
		r := small.do("POST", "/", txBundle("transaction", slotEntries("x", 4)...), nil)
		if r.Status != http.StatusRequestEntityTooLarge {
			t.Fatalf("status %d, want 413: %s", r.Status, r.Body)
		}
		r.issue(t)
	})
}

func TestBundleEntriesAreAuditedEachAndTheBundleToo(t *testing.T) {
	ts := newTestServer(t)
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
		txPost("urn:uuid:p", patient("Audited", "")),
		txPost("urn:uuid:i", txImmunization("urn:uuid:p")),
	), nil), 200)
	var ids []string
	for _, e := range responseEntries(t, r, "transaction-response") {
		res := e["resource"].(map[string]any)
		ids = append(ids, res["resourceType"].(string)+"/"+res["id"].(string))
	}
	aud := bearer(ts.auditorToken())
	subtypes := func(query string) []string {
		m := ts.mustStatus(ts.do("GET", "/AuditEvent?"+query, nil, aud), 200).JSON(t)
		var out []string
		for _, e := range txList(m["entry"]) {
			ev := e.(map[string]any)["resource"].(map[string]any)
			for _, st := range txList(ev["subtype"]) {
				out = append(out, st.(map[string]any)["code"].(string))
			}
		}
		return out
	}
	for _, id := range ids {
		got := subtypes("entity=" + id)
		if !txContains(got, "create") || !txContains(got, "transaction") {
			t.Errorf("AuditEvents about %s have subtypes %v, want a create and the transaction", id, got)
		}
	}
}

func txList(v any) []any { l, _ := v.([]any); return l }

func txContains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestCapabilityStatementListsBatchAndTransaction(t *testing.T) {
	ts := newTestServer(t)
	m := ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200).JSON(t)
	var codes []string
	for _, in := range txList(m["rest"].([]any)[0].(map[string]any)["interaction"]) {
		codes = append(codes, in.(map[string]any)["code"].(string))
	}
	for _, want := range []string{"batch", "transaction"} {
		if !txContains(codes, want) {
			t.Errorf("rest.interaction %v lacks %s", codes, want)
		}
	}
}

// A Synthea bundle holds types gpfhir does not serve (Claim, Encounter...): the transaction is refused
// as a whole, with an OperationOutcome naming the first such entry, and stores nothing.
func TestSyntheaTransactionWithUnservedTypesIsRefused(t *testing.T) {
	raw := syntheaBundle(t)
	ts := newTestServer(t)
	before := ts.txCount("Patient", "")
	r := ts.do("POST", "/", raw, nil)
	if r.Status != http.StatusNotFound {
		t.Fatalf("status %d, want 404: %s", r.Status, r.Body)
	}
	if is := r.issue(t); !strings.Contains(is["diagnostics"].(string), "is not served here") ||
		!strings.HasPrefix(is["diagnostics"].(string), "Bundle.entry[") {
		t.Errorf("the OperationOutcome does not name the unserved entry: %v", is)
	}
	if after := ts.txCount("Patient", ""); after != before {
		t.Errorf("a refused Synthea transaction stored %d Patients", after-before)
	}
}

// syntheaBundle reads the first patient bundle of the shared Synthea data, skipping when it is absent.
func syntheaBundle(t *testing.T) []byte {
	t.Helper()
	tr := syntheaArchive(t, "the Synthea transaction test needs it")
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Skip("no patient bundle in synthea-r4.tgz")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !syntheaPatientFile(h.Name) {
			continue
		}
		raw, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Size > 2<<20 {
			continue
		}
		var probe struct{ Type string }
		if json.Unmarshal(raw, &probe) == nil && probe.Type == "transaction" {
			return raw
		}
	}
}

func TestTransactionDeletesUpdatesAndConditionalUpdatesTogether(t *testing.T) {
	ts := newTestServer(t)
	gone := ts.create("Patient", patient("Gone", ""))
	kept := ts.create("Patient", patient("Kept", ""))
	cond := patient("Conditional", "")
	cond["identifier"] = arr{obj{"system": "urn:test", "value": "cond-1"}}
	changed := patient("Changed", "")
	changed["id"] = kept
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
		obj{"resource": changed, "request": obj{"method": "PUT", "url": "Patient/" + kept, "ifMatch": `W/"1"`}},
		obj{"resource": cond, "request": obj{"method": "PUT", "url": "Patient?identifier=urn:test|cond-1"}},
		obj{"request": obj{"method": "DELETE", "url": "Patient/" + gone}},
	), header{"Prefer": "return=minimal"}), 200)
	es := responseEntries(t, r, "transaction-response")
	for i, want := range []string{"200 OK", "201 Created", "204 No Content"} {
		if got := entryStatus(es[i]); got != want {
			t.Errorf("entry %d status %q, want %q", i, got, want)
		}
		if es[i]["resource"] != nil {
			t.Errorf("entry %d has a resource under return=minimal", i)
		}
	}
	ts.mustStatus(ts.do("GET", "/Patient/"+gone, nil, nil), 410)
	if n := ts.txCount("Patient", "identifier=urn:test|cond-1"); n != 1 {
		t.Errorf("%d Patients from the conditional update, want 1", n)
	}
	if v := ts.mustStatus(ts.do("GET", "/Patient/"+kept, nil, nil), 200).JSON(t)["meta"].(map[string]any)["versionId"]; v != "2" {
		t.Errorf("the updated patient is at version %v, want 2", v)
	}
}

// syntheaArchive opens the shared Synthea sample as a tar stream, closed when the test ends; it skips,
// saying why the test needs it, when the sample is absent.
func syntheaArchive(t *testing.T, why string) *tar.Reader {
	t.Helper()
	f, err := os.Open("../../shared/data/synthea-r4.tgz")
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("../shared/data/synthea-r4.tgz is absent; " + why)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	return tar.NewReader(gz)
}

// syntheaPatientFile tells a patient's bundle from the sample's shared hospital and practitioner files.
func syntheaPatientFile(path string) bool {
	name := path[strings.LastIndex(path, "/")+1:]
	return strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, "hospital") && !strings.HasPrefix(name, "practitioner")
}
