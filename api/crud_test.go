package api_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

func TestCreateAssignsIDAndVersionAndLocation(t *testing.T) {
	ts := newTestServer(t)
	body := patient("Smith", validNHS)
	body["id"] = "client-chosen" // ignored on create, as the spec says
	r := ts.mustStatus(ts.do("POST", "/Patient", body, nil), http.StatusCreated)
	m := r.JSON(t)
	id := m["id"].(string)
	if id == "client-chosen" || id == "" {
		t.Fatalf("id %q: the server must assign the id on create", id)
	}
	meta := m["meta"].(map[string]any)
	if meta["versionId"] != "1" || meta["lastUpdated"] == nil {
		t.Fatalf("meta = %v, want versionId 1 and lastUpdated", meta)
	}
	if got, want := r.Header.Get("Location"), ts.URL+"/Patient/"+id+"/_history/1"; got != want {
		t.Errorf("Location = %q, want %q", got, want)
	}
	if got := r.Header.Get("ETag"); got != `W/"1"` {
		t.Errorf("ETag = %q", got)
	}
	if _, err := http.ParseTime(r.Header.Get("Last-Modified")); err != nil {
		t.Errorf("Last-Modified %q: %v", r.Header.Get("Last-Modified"), err)
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("Content-Type = %q", ct)
	}
	// The stored resource is what a read returns, byte for byte.
	got := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), http.StatusOK)
	if string(got.Body) != string(r.Body) {
		t.Errorf("read body differs from create body:\n%s\n%s", got.Body, r.Body)
	}
}

func TestReadAnswers404And410AndNotModified(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Jones", ""))
	created := ts.do("GET", "/Patient/"+id, nil, nil)
	lastMod := created.Header.Get("Last-Modified")

	tests := []struct {
		name   string
		path   string
		header header
		want   int
	}{
		{"unknown id is 404", "/Patient/nope", nil, 404},
		{"matching If-None-Match is 304", "/Patient/" + id, header{"If-None-Match": `W/"1"`}, 304},
		{"stale If-None-Match is 200", "/Patient/" + id, header{"If-None-Match": `W/"7"`}, 200},
		{"If-Modified-Since at lastUpdated is 304", "/Patient/" + id, header{"If-Modified-Since": lastMod}, 304},
		{"If-Modified-Since before is 200", "/Patient/" + id, header{"If-Modified-Since": time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)}, 200},
		{"bad id is 400", "/Patient/has%20space", nil, 400},
		{"unknown type is 404", "/Spaceship/1", nil, 404},
		{"vread of version 1 is 200", "/Patient/" + id + "/_history/1", nil, 200},
		{"vread of missing version is 404", "/Patient/" + id + "/_history/9", nil, 404},
		{"vread of a non-number is 404", "/Patient/" + id + "/_history/x", nil, 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("GET", tt.path, nil, tt.header)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if tt.want >= 400 {
				r.issue(t)
			}
			if tt.want == 304 && len(r.Body) != 0 {
				t.Errorf("304 with a body: %s", r.Body)
			}
		})
	}

	ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil, nil), http.StatusNoContent)
	r := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), http.StatusGone)
	if code := r.issue(t)["code"]; code != "deleted" {
		t.Errorf("410 issue code %v, want deleted", code)
	}
	ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history/2", nil, nil), http.StatusGone)
	ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history/1", nil, nil), http.StatusOK)
}

func TestUpdateVersionsAndUpdateAsCreate(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Brown", ""))
	p := patient("Browne", "")
	p["id"] = id
	r := ts.mustStatus(ts.do("PUT", "/Patient/"+id, p, nil), http.StatusOK)
	if v := r.JSON(t)["meta"].(map[string]any)["versionId"]; v != "2" {
		t.Fatalf("versionId after update = %v, want 2", v)
	}
	if loc := r.Header.Get("Content-Location"); loc != ts.URL+"/Patient/"+id+"/_history/2" {
		t.Errorf("Content-Location = %q", loc)
	}
	old := ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history/1", nil, nil), 200).JSON(t)
	if fam := old["name"].([]any)[0].(map[string]any)["family"]; fam != "Brown" {
		t.Errorf("version 1 family = %v, want the original Brown", fam)
	}

	p2 := patient("New", "")
	p2["id"] = "my-id.1"
	r = ts.mustStatus(ts.do("PUT", "/Patient/my-id.1", p2, nil), http.StatusCreated)
	if r.Header.Get("Location") != ts.URL+"/Patient/my-id.1/_history/1" {
		t.Errorf("update-as-create Location = %q", r.Header.Get("Location"))
	}

	tests := []struct {
		name     string
		path     string
		body     map[string]any
		header   header
		want     int
		wantCode string
	}{
		{"id missing from body", "/Patient/" + id, patient("X", ""), nil, 400, "required"},
		{"id differs from URL", "/Patient/" + id, withID(patient("X", ""), "other"), nil, 400, "invalid"},
		{"id too long for update-as-create", "/Patient/" + strings.Repeat("a", 65), withID(patient("X", ""), strings.Repeat("a", 65)), nil, 400, "value"},
		{"stale If-Match", "/Patient/" + id, withID(patient("X", ""), id), header{"If-Match": `W/"1"`}, 412, "conflict"},
		{"If-Match on a missing resource", "/Patient/ghost", withID(patient("X", ""), "ghost"), header{"If-Match": `W/"1"`}, 412, "conflict"},
		{"malformed If-Match", "/Patient/" + id, withID(patient("X", ""), id), header{"If-Match": `banana`}, 400, "value"},
		{"body type differs from URL", "/Patient/" + id, map[string]any{"resourceType": "Organization", "id": id, "name": "x"}, nil, 400, "invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("PUT", tt.path, tt.body, tt.header)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if code := r.issue(t)["code"]; code != tt.wantCode {
				t.Errorf("issue code %v, want %s", code, tt.wantCode)
			}
		})
	}
	// None of the refused updates changed anything.
	cur := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200)
	if cur.Header.Get("ETag") != `W/"2"` {
		t.Errorf("after refused updates ETag = %s, want W/\"2\"", cur.Header.Get("ETag"))
	}

	ok := ts.do("PUT", "/Patient/"+id, withID(patient("Matched", ""), id), header{"If-Match": `W/"2"`})
	ts.mustStatus(ok, http.StatusOK)
}

func withID(m map[string]any, id string) map[string]any {
	m["id"] = id
	return m
}

func TestPatchAppliesJSONPatchWithTheUpdateRules(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Patchy", ""))
	jp := header{"Content-Type": "application/json-patch+json"}
	r := ts.mustStatus(ts.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/gender","value":"male"}]`, jp), http.StatusOK)
	m := r.JSON(t)
	if m["gender"] != "male" || m["meta"].(map[string]any)["versionId"] != "2" {
		t.Fatalf("after patch: gender %v version %v", m["gender"], m["meta"])
	}

	tests := []struct {
		name     string
		body     string
		header   header
		want     int
		wantCode string
	}{
		{"wrong content type", `[{"op":"replace","path":"/gender","value":"male"}]`, header{"Content-Type": "application/fhir+json"}, 415, "not-supported"},
		{"not a patch document", `{"op":"replace"}`, jp, 400, "structure"},
		{"failed test op", `[{"op":"test","path":"/gender","value":"female"}]`, jp, 422, "processing"},
		{"result breaks a required binding", `[{"op":"replace","path":"/gender","value":"bloke"}]`, jp, 422, ""},
		{"result has an unknown element", `[{"op":"add","path":"/favouriteColour","value":"red"}]`, jp, 0, ""},
		{"changes the id", `[{"op":"replace","path":"/id","value":"other"}]`, jp, 422, "invalid"},
		{"stale If-Match", `[{"op":"replace","path":"/gender","value":"other"}]`, header{"Content-Type": "application/json-patch+json", "If-Match": `W/"1"`}, 412, "conflict"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("PATCH", "/Patient/"+id, tt.body, tt.header)
			if tt.want == 0 {
				if r.Status != 400 && r.Status != 422 {
					t.Fatalf("status %d, want 400 or 422: %s", r.Status, r.Body)
				}
			} else if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if code := r.issue(t)["code"]; tt.wantCode != "" && code != tt.wantCode {
				t.Errorf("issue code %v, want %s", code, tt.wantCode)
			}
		})
	}
	if etag := ts.do("GET", "/Patient/"+id, nil, nil).Header.Get("ETag"); etag != `W/"2"` {
		t.Errorf("refused patches changed the resource: ETag %s", etag)
	}
	ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil, nil), 204)
	ts.mustStatus(ts.do("PATCH", "/Patient/"+id, `[{"op":"replace","path":"/gender","value":"male"}]`, jp), http.StatusGone)
	ts.mustStatus(ts.do("PATCH", "/Patient/nobody", `[{"op":"replace","path":"/gender","value":"male"}]`, jp), http.StatusNotFound)
}

func TestDeleteKeepsHistoryAndIsIdempotent(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Gone", ""))
	ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil, header{"If-Match": `W/"5"`}), http.StatusPreconditionFailed)
	r := ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil, header{"If-Match": `W/"1"`}), http.StatusNoContent)
	if r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("delete ETag = %q, want the tombstone's W/\"2\"", r.Header.Get("ETag"))
	}
	again := ts.mustStatus(ts.do("DELETE", "/Patient/"+id, nil, header{"Prefer": "return=OperationOutcome"}), http.StatusOK)
	again.issue(t)
	h := ts.mustStatus(ts.do("GET", "/Patient/"+id+"/_history", nil, nil), 200).JSON(t)
	entries := h["entry"].([]any)
	if len(entries) != 2 {
		t.Fatalf("history has %d entries, want 2 (create, delete; a second delete adds none)", len(entries))
	}
	first := entries[0].(map[string]any)
	if first["request"].(map[string]any)["method"] != "DELETE" || first["resource"] != nil {
		t.Errorf("newest history entry = %v, want the DELETE without a resource", first)
	}
	ts.mustStatus(ts.do("DELETE", "/Patient/never", nil, nil), http.StatusNotFound)
	// Update after delete brings it back as the next version.
	r = ts.mustStatus(ts.do("PUT", "/Patient/"+id, withID(patient("Back", ""), id), nil), http.StatusCreated)
	if v := r.JSON(t)["meta"].(map[string]any)["versionId"]; v != "3" {
		t.Errorf("re-created version = %v, want 3", v)
	}
}

func TestConditionalCreateUpdateDelete(t *testing.T) {
	ts := newTestServer(t)
	nhs := "https://fhir.nhs.uk/Id/nhs-number|"
	ts.create("Patient", patient("A", "9000000009"))

	// If-None-Exist: a match returns the existing resource instead of creating.
	r := ts.mustStatus(ts.do("POST", "/Patient", patient("A", "9000000009"), header{"If-None-Exist": "identifier=" + nhs + "9000000009"}), http.StatusOK)
	existing := r.JSON(t)["id"]
	ts.mustStatus(ts.do("POST", "/Patient", patient("B", "9912003071"), header{"If-None-Exist": "identifier=" + nhs + "9912003071"}), http.StatusCreated)
	ts.create("Patient", patient("B2", "9912003071"))
	r = ts.mustStatus(ts.do("POST", "/Patient", patient("B", "9912003071"), header{"If-None-Exist": "identifier=" + nhs + "9912003071"}), http.StatusPreconditionFailed)
	r.issue(t)
	ts.mustStatus(ts.do("POST", "/Patient", patient("B", ""), header{"If-None-Exist": "bogus=1"}), http.StatusBadRequest)

	// Conditional update: one match updates it, none creates, several is 412.
	r = ts.mustStatus(ts.do("PUT", "/Patient?identifier="+nhs+"9000000009", patient("A-updated", "9000000009"), nil), http.StatusOK)
	if m := r.JSON(t); m["id"] != existing || m["meta"].(map[string]any)["versionId"] != "2" {
		t.Errorf("conditional update wrote %v v%v, want %v v2", m["id"], m["meta"], existing)
	}
	ts.mustStatus(ts.do("PUT", "/Patient?identifier="+nhs+"9482807146", patient("C", "9482807146"), nil), http.StatusCreated)
	ts.mustStatus(ts.do("PUT", "/Patient?identifier="+nhs+"9912003071", patient("B3", "9912003071"), nil), http.StatusPreconditionFailed)
	ts.mustStatus(ts.do("PUT", "/Patient", patient("B3", ""), nil), http.StatusBadRequest)

	// Conditional delete.
	ts.mustStatus(ts.do("DELETE", "/Patient?identifier="+nhs+"9912003071", nil, nil), http.StatusPreconditionFailed)
	ts.mustStatus(ts.do("DELETE", "/Patient?identifier="+nhs+"9482807146", nil, nil), http.StatusNoContent)
	ts.mustStatus(ts.do("DELETE", "/Patient?identifier="+nhs+"9482807146", nil, nil), http.StatusOK)
	search := ts.mustStatus(ts.do("GET", "/Patient?identifier="+nhs+"9482807146", nil, nil), 200).JSON(t)
	if search["entry"] != nil {
		t.Errorf("deleted patient still found: %v", search["entry"])
	}
}

func TestPreferControlsTheWriteResponseBody(t *testing.T) {
	ts := newTestServer(t)
	r := ts.mustStatus(ts.do("POST", "/Patient", patient("P", ""), header{"Prefer": "return=minimal"}), 201)
	if len(r.Body) != 0 || r.Header.Get("Location") == "" {
		t.Errorf("return=minimal: body %q Location %q, want no body and a Location", r.Body, r.Header.Get("Location"))
	}
	r = ts.mustStatus(ts.do("POST", "/Patient", patient("P", ""), header{"Prefer": "return=OperationOutcome"}), 201)
	if r.issue(t)["severity"] != "information" {
		t.Errorf("return=OperationOutcome body: %s", r.Body)
	}
	r = ts.mustStatus(ts.do("POST", "/Patient", patient("P", ""), header{"Prefer": "return=representation"}), 201)
	if r.JSON(t)["resourceType"] != "Patient" {
		t.Errorf("return=representation body: %s", r.Body)
	}
}

func TestFormatsJSONOnly(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("F", ""))
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		header header
		want   int
	}{
		{"plain application/json accept", "GET", "/Patient/" + id, nil, header{"Accept": "application/json"}, 200},
		{"fhir json accept with q", "GET", "/Patient/" + id, nil, header{"Accept": "application/fhir+xml;q=0.9, application/fhir+json"}, 200},
		{"browser accept", "GET", "/Patient/" + id, nil, header{"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}, 200},
		{"_format=json", "GET", "/Patient/" + id + "?_format=json", nil, header{"Accept": "application/fhir+xml"}, 200},
		{"xml accept", "GET", "/Patient/" + id, nil, header{"Accept": "application/fhir+xml"}, 406},
		{"_format=xml", "GET", "/Patient/" + id + "?_format=xml", nil, nil, 406},
		{"xml body", "POST", "/Patient", `<Patient xmlns="http://hl7.org/fhir"/>`, header{"Content-Type": "application/fhir+xml"}, 415},
		{"json body as application/json", "POST", "/Patient", patient("J", ""), header{"Content-Type": "application/json"}, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.body, tt.header)
			if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			if tt.want >= 400 {
				if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "JSON") {
					t.Errorf("diagnostics %q should say that only JSON is supported", d)
				}
			}
		})
	}
	r := ts.mustStatus(ts.do("GET", "/Patient/"+id+"?_pretty=true", nil, nil), 200)
	if !strings.Contains(string(r.Body), "\n  \"") {
		t.Errorf("_pretty=true did not indent: %s", r.Body)
	}
}

func TestValidationFailuresSayWhatAndWhere(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name     string
		body     any
		want     int
		wantExpr string
	}{
		{"malformed JSON", `{"resourceType": "Patient",`, 400, ""},
		{"bad NHS number check digit", patient("N", "9000000008"), 422, "Patient.identifier[0].value"},
		{"NHS number too short", patient("N", "900000000"), 422, "Patient.identifier[0].value"},
		{"unknown element", map[string]any{"resourceType": "Patient", "favouriteColour": "red"}, 0, ""},
		{"code outside required binding", map[string]any{"resourceType": "Patient", "gender": "bloke"}, 0, ""},
		{"wrong primitive type", map[string]any{"resourceType": "Patient", "active": "yes"}, 0, ""},
		{"reference that does not resolve", map[string]any{"resourceType": "Patient",
			"managingOrganization": map[string]any{"reference": "Organization/missing"}}, 422, "Patient.managingOrganization"},
		{"empty body", "", 400, ""},
		{"a valid body of another type", map[string]any{"resourceType": "Organization", "name": "Elsewhere"}, 400, "resourceType"},
		{"an incomplete body of another type", map[string]any{"resourceType": "Appointment"}, 400, "resourceType"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("POST", "/Patient", tt.body, nil)
			if tt.want == 0 {
				if r.Status != 400 && r.Status != 422 {
					t.Fatalf("status %d, want 400 or 422: %s", r.Status, r.Body)
				}
			} else if r.Status != tt.want {
				t.Fatalf("status %d, want %d: %s", r.Status, tt.want, r.Body)
			}
			iss := r.issue(t)
			if d, _ := iss["diagnostics"].(string); d == "" {
				t.Errorf("issue without diagnostics: %v", iss)
			}
			if tt.wantExpr != "" {
				exprs, _ := iss["expression"].([]any)
				if len(exprs) == 0 || !strings.HasPrefix(exprs[0].(string), tt.wantExpr) {
					t.Errorf("expression %v, want %s", iss["expression"], tt.wantExpr)
				}
			}
		})
	}
	// Nothing was stored by the refused writes.
	n, err := ts.store.Count(context.Background(), store.Query{Type: "Patient"})
	if err != nil || n != 0 {
		t.Errorf("stored Patients after refused writes: %d (%v), want 0", n, err)
	}
}

func TestBodyLimitAnd405AndUnknownPaths(t *testing.T) {
	ts := newTestServer(t, func(c *apiConfig) { c.MaxBody = 1024 })
	big := patient(strings.Repeat("x", 2000), "")
	r := ts.mustStatus(ts.do("POST", "/Patient", big, nil), http.StatusRequestEntityTooLarge)
	r.issue(t)
	r = ts.mustStatus(ts.do("PATCH", "/Patient", "[]", nil), http.StatusMethodNotAllowed)
	if allow := r.Header.Get("Allow"); !strings.Contains(allow, "POST") || !strings.Contains(allow, "GET") {
		t.Errorf("Allow = %q", allow)
	}
	ts.mustStatus(ts.do("GET", "/Patient/a/b/c/d/e", nil, nil), http.StatusNotFound).issue(t)
}

func TestConcurrentIfMatchUpdatesHaveOneWinnerPerVersion(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Race", ""))
	const workers, rounds = 8, 5
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				cur := ts.do("GET", "/Patient/"+id, nil, nil)
				etag := cur.Header.Get("ETag")
				r := ts.do("PUT", "/Patient/"+id, withID(patient("Race", ""), id), header{"If-Match": etag})
				switch r.Status {
				case http.StatusOK:
					mu.Lock()
					wins[etag]++
					mu.Unlock()
				case http.StatusPreconditionFailed:
				default:
					t.Errorf("status %d: %s", r.Status, r.Body)
				}
			}
		}()
	}
	wg.Wait()
	for etag, n := range wins {
		if n != 1 {
			t.Errorf("%d updates won on %s, want exactly 1", n, etag)
		}
	}
	h, err := ts.store.History(context.Background(), store.HistoryQuery{Type: "Patient", ID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != len(wins)+1 {
		t.Errorf("history has %d versions, want %d (1 create + %d winning updates)", len(h), len(wins)+1, len(wins))
	}
	for i, v := range h {
		if want := int64(len(h) - i); v.VersionID != want {
			t.Errorf("history[%d] is version %d, want %d: versions must run 1..n without gaps", i, v.VersionID, want)
		}
	}
}
