package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// entryIDs lists the ids of match entries in a searchset or history bundle.
func entryIDs(t *testing.T, bundle map[string]any) []string {
	t.Helper()
	var ids []string
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, ok := em["search"].(map[string]any); ok && s["mode"] == "outcome" {
			continue
		}
		res, ok := em["resource"].(map[string]any)
		if !ok {
			ids = append(ids, "(deleted)")
			continue
		}
		ids = append(ids, res["id"].(string))
	}
	return ids
}

func link(bundle map[string]any, rel string) string {
	links, _ := bundle["link"].([]any)
	for _, l := range links {
		lm := l.(map[string]any)
		if lm["relation"] == rel {
			return lm["url"].(string)
		}
	}
	return ""
}

func outcomeEntry(bundle map[string]any) map[string]any {
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, ok := em["search"].(map[string]any); ok && s["mode"] == "outcome" {
			return em["resource"].(map[string]any)
		}
	}
	return nil
}

// get fetches an absolute or server-relative URL.
func (ts *testServer) get(u string, h header) *response {
	ts.t.Helper()
	return ts.do("GET", strings.TrimPrefix(u, ts.URL), nil, h)
}

func TestBasicSearchParameters(t *testing.T) {
	ts := newTestServer(t)
	org := ts.create("Organization", map[string]any{"resourceType": "Organization", "name": "Practice",
		"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}})
	p1 := patient("One", "9000000009")
	p1["managingOrganization"] = map[string]any{"reference": "Organization/" + org}
	a := ts.create("Patient", p1)
	b := ts.create("Patient", patient("Two", "9912003071"))
	before := time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	imm := func(pat string) map[string]any {
		return map[string]any{"resourceType": "Immunization", "status": "completed",
			"vaccineCode":        map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
			"patient":            map[string]any{"reference": "Patient/" + pat},
			"occurrenceDateTime": "2024-03-01T10:00:00Z"}
	}
	ia := ts.create("Immunization", imm(a))
	ts.create("Immunization", imm(b))
	mr := ts.create("MedicationRequest", map[string]any{"resourceType": "MedicationRequest", "status": "active", "intent": "plan",
		"medicationCodeableConcept": map[string]any{"text": "Amlodipine 5mg tablets"},
		"subject":                   map[string]any{"reference": "Patient/" + a}})

	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"_id", "/Patient?_id=" + a, []string{a}},
		{"_id with two values is OR", "/Patient?_id=" + a + "," + b, sorted(a, b)},
		{"identifier system|value", "/Patient?identifier=https://fhir.nhs.uk/Id/nhs-number|9912003071", []string{b}},
		{"identifier value only", "/Patient?identifier=9000000009", []string{a}},
		{"identifier of another system", "/Patient?identifier=http://example.org|9000000009", nil},
		{"_lastUpdated ge", "/Patient?_lastUpdated=ge" + url.QueryEscape(before), sorted(a, b)},
		{"_lastUpdated lt", "/Patient?_lastUpdated=lt" + url.QueryEscape(before), nil},
		{"patient by id", "/Immunization?patient=" + a, []string{ia}},
		{"patient by Type/id", "/Immunization?patient=Patient/" + a, []string{ia}},
		{"patient by absolute URL", "/Immunization?patient=" + url.QueryEscape(ts.URL+"/Patient/"+a), []string{ia}},
		{"subject", "/MedicationRequest?subject=Patient/" + a, []string{mr}},
		{"patient on MedicationRequest", "/MedicationRequest?patient=" + a, []string{mr}},
		{"AND of two parameters", "/Patient?_id=" + a + "&identifier=9912003071", nil},
		{"organization reference", "/Patient?organization=Organization/" + org, []string{a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK)
			got := entryIDs(t, r.JSON(t))
			if strings.Join(sortedSlice(got), ",") != strings.Join(tt.want, ",") {
				t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
			}
		})
	}
}

func sorted(ids ...string) []string { return sortedSlice(ids) }

func sortedSlice(ids []string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestSearchRejectsMalformedValuesAndReportsIgnoredParameters(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name   string
		query  string
		header header
		want   int
	}{
		{"bad date", "/Patient?_lastUpdated=foo", nil, 400},
		{"unknown date prefix", "/Patient?_lastUpdated=xx2024", nil, 400},
		{"negative _count", "/Patient?_count=-1", nil, 400},
		{"non-numeric _count", "/Patient?_count=ten", nil, 400},
		{"bad modifier", "/Patient?identifier:contains=1", nil, 400},
		{"reference to a type that is not a target", "/Immunization?patient=Organization/1", nil, 400},
		{"unknown parameter under strict handling", "/Patient?shoe-size=9", header{"Prefer": "handling=strict"}, 400},
		{"unknown parameter, lenient by default", "/Patient?shoe-size=9", nil, 200},
		{"bad _total", "/Patient?_total=some", nil, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.get(tt.query, tt.header)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if tt.want == 400 {
				iss := r.issue(t)
				d, _ := iss["diagnostics"].(string)
				param := strings.SplitN(strings.TrimPrefix(tt.query, "/Patient?"), "=", 2)[0]
				param = strings.TrimPrefix(param, "/Immunization?")
				if !strings.Contains(d, strings.Split(param, ":")[0]) {
					t.Errorf("diagnostics %q do not name the parameter %s", d, param)
				}
			}
		})
	}
	r := ts.mustStatus(ts.get("/Patient?shoe-size=9&_count=5", nil), 200)
	b := r.JSON(t)
	oo := outcomeEntry(b)
	if oo == nil || !strings.Contains(string(r.Body), "shoe-size") {
		t.Fatalf("lenient search must carry an outcome entry naming the ignored parameter: %s", r.Body)
	}
	if self := link(b, "self"); strings.Contains(self, "shoe-size") || !strings.Contains(self, "_count=5") {
		t.Errorf("self link %q must show only the applied parameters", self)
	}
	r = ts.mustStatus(ts.get("/Patient?_count=5000", nil), 200)
	if self := link(r.JSON(t), "self"); !strings.Contains(self, "_count=1000") {
		t.Errorf("self link %q should show the clamped _count", self)
	}
	if outcomeEntry(r.JSON(t)) == nil {
		t.Errorf("a clamped _count must be reported: %s", r.Body)
	}
}

func TestSearchPagesWithSignedCursors(t *testing.T) {
	ts := newTestServer(t)
	var all []string
	for i := 0; i < 7; i++ {
		all = append(all, ts.create("Patient", patient("Page", "")))
	}
	seen := map[string]bool{}
	next := "/Patient?_count=3&family=Page"
	pages := 0
	var tampered string
	for next != "" {
		r := ts.mustStatus(ts.get(next, nil), http.StatusOK)
		b := r.JSON(t)
		for _, id := range entryIDs(t, b) {
			if seen[id] {
				t.Errorf("%s served twice", id)
			}
			seen[id] = true
		}
		pages++
		if pages == 1 {
			// Writes between pages must not make the next page skip or repeat.
			ts.create("Patient", patient("Page", ""))
			ts.mustStatus(ts.do("DELETE", "/Patient/"+entryIDs(t, b)[0], nil, nil), 204)
		}
		next = link(b, "next")
		if next != "" && tampered == "" {
			tampered = next
		}
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	for _, id := range all[1:] {
		if !seen[id] {
			// The one deleted after page 1 was already served; all others existed throughout.
			t.Errorf("%s was skipped", id)
		}
	}
	tests := []struct{ name, url string }{
		{"cursor bytes changed", strings.Replace(tampered, "_cursor=", "_cursor=x", 1)},
		{"query widened", strings.Replace(tampered, "family=Page", "family=P", 1)},
		{"page size changed", strings.Replace(tampered, "_count=3", "_count=100", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.url, nil), http.StatusBadRequest)
			if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "paging link") {
				t.Errorf("diagnostics %q", d)
			}
		})
	}
}

func TestHistoryInstanceTypeSystemNewestFirstAndPaged(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("H", ""))
	for i := 0; i < 3; i++ {
		ts.mustStatus(ts.do("PUT", "/Patient/"+id, withID(patient("H", ""), id), nil), 200)
	}
	org := ts.create("Organization", map[string]any{"resourceType": "Organization", "name": "O"})

	h := ts.mustStatus(ts.get("/Patient/"+id+"/_history", nil), 200).JSON(t)
	if h["type"] != "history" {
		t.Errorf("bundle type %v", h["type"])
	}
	var versions []string
	for _, e := range h["entry"].([]any) {
		versions = append(versions, e.(map[string]any)["resource"].(map[string]any)["meta"].(map[string]any)["versionId"].(string))
	}
	if strings.Join(versions, ",") != "4,3,2,1" {
		t.Errorf("instance history versions %v, want newest first 4,3,2,1", versions)
	}
	last := h["entry"].([]any)[3].(map[string]any)
	if last["request"].(map[string]any)["method"] != "POST" {
		t.Errorf("first version's request = %v, want POST", last["request"])
	}

	typ := ts.mustStatus(ts.get("/Patient/_history", nil), 200).JSON(t)
	if n := len(typ["entry"].([]any)); n != 4 {
		t.Errorf("type history has %d entries, want 4", n)
	}
	// System history also holds the test practice that the test server creates at start.
	sys := ts.mustStatus(ts.get("/_history", nil), 200).JSON(t)
	if ids := entryIDs(t, sys); len(ids) != 6 || ids[0] != org || ids[5] != testPracticeID {
		t.Errorf("system history %v, want 6 entries with the Organization first and the test practice last", ids)
	}

	// Paging through system history yields every version once.
	count := 0
	next := "/_history?_count=2"
	for next != "" && count < 20 {
		b := ts.mustStatus(ts.get(next, nil), 200).JSON(t)
		count += len(b["entry"].([]any))
		next = link(b, "next")
	}
	if count != 6 {
		t.Errorf("paged system history served %d entries, want 6", count)
	}

	future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if b := ts.mustStatus(ts.get("/_history?_since="+future, nil), 200).JSON(t); b["entry"] != nil {
		t.Errorf("_since in the future returned entries")
	}
	ts.mustStatus(ts.get("/_history?_since=yesterday", nil), 400).issue(t)
	ts.mustStatus(ts.get("/Patient/nobody/_history", nil), 404).issue(t)
}
