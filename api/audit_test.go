package api_test

import (
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// auditEvent is the stored AuditEvent of the request with X-Request-ID reqID, read from the chain
// itself, so that the test also shows the record was durable before the response arrived.
func (ts *testServer) auditEvent(reqID string) map[string]any {
	ts.t.Helper()
	found := ts.auditEvents(reqID)
	if len(found) != 1 {
		ts.t.Fatalf("%d AuditEvents for request %s, want 1", len(found), reqID)
	}
	return found[0]
}

// auditEvents is every stored AuditEvent of the request with X-Request-ID reqID: a bundle's own and its
// entries'.
func (ts *testServer) auditEvents(reqID string) []map[string]any {
	ts.t.Helper()
	recs, err := ts.store.AuditRange(context.Background(), 0, 0)
	if err != nil {
		ts.t.Fatal(err)
	}
	var found []map[string]any
	for _, r := range recs {
		var ev map[string]any
		if err := json.Unmarshal(r.Body, &ev); err != nil {
			ts.t.Fatal(err)
		}
		for _, e := range list(ev["entity"]) {
			if what, _ := e["what"].(map[string]any); what != nil {
				if id, _ := what["identifier"].(map[string]any); id != nil && id["value"] == reqID {
					found = append(found, ev)
				}
			}
		}
	}
	return found
}

func list(v any) []map[string]any {
	var out []map[string]any
	for _, x := range v.([]any) {
		out = append(out, x.(map[string]any))
	}
	return out
}

// auditFacts flattens what tests check of an event: subtype, action, outcome, the references of its
// entities, its agents' who identifiers and policies, and whether a query entity is there.
type auditFacts struct {
	subtype, action, outcome, desc string
	entities, patients, policies   []string
	userID, clientID               string
	query                          string
	hasQuery                       bool
}

func factsOf(ev map[string]any) auditFacts {
	f := auditFacts{action: ev["action"].(string), outcome: ev["outcome"].(string)}
	f.desc, _ = ev["outcomeDesc"].(string)
	f.subtype = list(ev["subtype"])[0]["code"].(string)
	for _, a := range list(ev["agent"]) {
		code := a["type"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		who, _ := a["who"].(map[string]any)
		var idv string
		if who != nil {
			if id, ok := who["identifier"].(map[string]any); ok {
				idv, _ = id["value"].(string)
			}
		}
		switch code {
		case "IRCP":
			f.userID = idv
			for _, p := range a["policy"].([]any) {
				f.policies = append(f.policies, p.(string))
			}
		case "110153":
			f.clientID = idv
		}
	}
	for _, e := range list(ev["entity"]) {
		role, _ := e["role"].(map[string]any)
		what, _ := e["what"].(map[string]any)
		switch {
		case role != nil && role["code"] == "24":
			f.hasQuery = true
			raw, _ := base64.StdEncoding.DecodeString(e["query"].(string))
			f.query = string(raw)
		case role != nil && role["code"] == "1":
			f.patients = append(f.patients, what["reference"].(string))
		case what != nil && what["reference"] != nil:
			f.entities = append(f.entities, what["reference"].(string))
		}
	}
	return f
}

// jti reads the token id of an access token (a JWT) without verifying it: the server did that.
func jti(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c.JTI
}

func (ts *testServer) auditorToken(scopes ...string) string {
	ts.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"user/AuditEvent.rs"}
	}
	tok, err := devidp.SecretToken(context.Background(), nil, ts.Issuer, devidp.LocalToolClientID, devidp.LocalToolSecret, scopes)
	if err != nil {
		ts.t.Fatalf("auditor token: %v", err)
	}
	return tok.AccessToken
}

func TestEveryInteractionIsAuditedWithOutcomeAgentsAndEntities(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Audited", validNHS))
	pt := "Patient/" + id
	p5 := ts.patientToken(validNHS, "P5", "")
	auditor := ts.auditorToken()
	tests := []struct {
		name                     string
		method, path             string
		body                     any
		h                        header
		status                   int
		subtype, action, outcome string
		entities                 []string // references that must be among the entities
		patient                  bool     // the patient is an entity
		query                    string   // the query entity, when set
		noUser                   bool     // no identity could be established
		desc                     string   // part of outcomeDesc
	}{
		{"create", "POST", "/Patient", patient("New", ""), nil, 201, "create", "C", "0", nil, false, "", false, "201"},
		{"read", "GET", "/" + pt, nil, nil, 200, "read", "R", "0", []string{pt + "/_history/1"}, true, "", false, "200 OK"},
		{"vread", "GET", "/" + pt + "/_history/1", nil, nil, 200, "vread", "R", "0", []string{pt + "/_history/1"}, true, "", false, ""},
		{"update", "PUT", "/" + pt, withID(patient("Audited", validNHS), id), nil, 200, "update", "U", "0", []string{pt + "/_history/2"}, true, "", false, ""},
		{"patch", "PATCH", "/" + pt, `[{"op":"replace","path":"/gender","value":"male"}]`, header{"Content-Type": "application/json-patch+json"}, 200, "patch", "U", "0", []string{pt + "/_history/3"}, true, "", false, ""},
		{"search with its query", "GET", "/Patient?family=Audited", nil, nil, 200, "search-type", "E", "0", []string{pt + "/_history/3"}, true, "family=Audited", false, ""},
		{"history of an instance", "GET", "/" + pt + "/_history", nil, nil, 200, "history-instance", "R", "0", []string{pt + "/_history/2"}, true, "", false, ""},
		{"history of a type", "GET", "/Patient/_history?_count=1", nil, nil, 200, "history-type", "E", "0", nil, true, "_count=1", false, ""},
		{"a 401 without a token names the target", "GET", "/" + pt, nil, bearer(""), 401, "read", "R", "4", []string{pt}, true, "", true, "401 Unauthorized (deny-token)"},
		{"a 403 for a P5 patient", "GET", "/" + pt, nil, bearer(p5), 403, "read", "R", "4", []string{pt}, true, "", false, "deny-level"},
		{"a 404", "GET", "/Patient/nope", nil, nil, 404, "read", "R", "4", []string{"Patient/nope"}, false, "", false, "404"},
		// A 405 is answered by routing, after the token is read: the attempt is recorded with its user.
		{"a 405 on an AuditEvent", "DELETE", "/AuditEvent/x", nil, nil, 405, "delete", "D", "4", []string{"AuditEvent/x"}, false, "", false, "405"},
		{"an operation", "GET", "/AuditEvent/$verify", nil, bearer(auditor), 200, "operation", "E", "0", nil, false, "", false, "$verify: 200"},
		{"delete", "DELETE", "/" + pt, nil, nil, 204, "delete", "D", "0", []string{pt + "/_history/4"}, true, "", false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqID := "audit-" + strings.ReplaceAll(tc.name, " ", "-")
			h := header{"X-Request-ID": reqID}
			for k, v := range tc.h {
				h[k] = v
			}
			ts.mustStatus(ts.do(tc.method, tc.path, tc.body, h), tc.status)
			f := factsOf(ts.auditEvent(reqID))
			if f.subtype != tc.subtype || f.action != tc.action || f.outcome != tc.outcome {
				t.Errorf("subtype %s action %s outcome %s, want %s %s %s", f.subtype, f.action, f.outcome, tc.subtype, tc.action, tc.outcome)
			}
			if !strings.Contains(f.desc, tc.desc) {
				t.Errorf("outcomeDesc %q lacks %q", f.desc, tc.desc)
			}
			for _, e := range tc.entities {
				if !slices.Contains(f.entities, e) {
					t.Errorf("entities %v lack %s", f.entities, e)
				}
			}
			if tc.patient != slices.Contains(f.patients, pt) {
				t.Errorf("patient entities %v, want %s: %v", f.patients, pt, tc.patient)
			}
			if tc.query != f.query || (tc.subtype == "search-type" && !f.hasQuery) {
				t.Errorf("query %q, want %q", f.query, tc.query)
			}
			token := ts.token
			if v, ok := tc.h["Authorization"]; ok {
				token = strings.TrimPrefix(v, "Bearer ")
			}
			switch {
			case tc.noUser:
				if f.userID != "" || f.policies != nil {
					t.Errorf("an unauthenticated request has a user: %q %v", f.userID, f.policies)
				}
			default:
				if want := []string{"urn:ietf:params:oauth:jti:" + jti(t, token)}; !slices.Equal(f.policies, want) {
					t.Errorf("policies %v, want %v", f.policies, want)
				}
				if f.userID == "" || f.clientID == "" {
					t.Errorf("user %q client %q", f.userID, f.clientID)
				}
			}
		})
	}
	// The P5 patient is identified by NHS number even though refused.
	f := factsOf(ts.auditEvent("audit-a-403-for-a-P5-patient"))
	if f.userID != validNHS {
		t.Errorf("refused patient recorded as %q, want their NHS number", f.userID)
	}
	// Capabilities are not audited; nothing else is missing: every interaction above is one record.
	ts.mustStatus(ts.do("GET", "/metadata", nil, header{"X-Request-ID": "audit-metadata"}), 200)
	recs, _ := ts.store.AuditRange(context.Background(), 0, 0)
	for _, r := range recs {
		if strings.Contains(string(r.Body), "audit-metadata") {
			t.Errorf("capabilities audited")
		}
		// No clinical content: the family name and birth date never appear in the trail, except in
		// the base64 query of the search that asked for them.
		if strings.Contains(string(r.Body), "1980-05-17") || strings.Contains(string(r.Body), `"family"`) {
			t.Errorf("clinical content in an AuditEvent: %s", r.Body)
		}
	}
}

func TestPatientsSeeOnlyTheirOwnTrailWithoutInternals(t *testing.T) {
	ts := newTestServer(t)
	me := ts.create("Patient", patient("Me", "9000000009"))
	other := ts.create("Patient", patient("Other", "9912003071"))
	ts.mustStatus(ts.do("GET", "/Patient/"+me, nil, header{"X-Request-ID": "gp-reads-me"}), 200)
	ts.mustStatus(ts.do("GET", "/Patient/"+other, nil, header{"X-Request-ID": "gp-reads-other"}), 200)
	ts.mustStatus(ts.do("GET", "/Patient?_count=50", nil, header{"X-Request-ID": "gp-lists-both"}), 200)
	tok := bearer(ts.patientToken("9000000009", "P9", ""))

	r := ts.mustStatus(ts.do("GET", "/AuditEvent?_sort=-date&_count=100", nil, tok), 200)
	body := string(r.Body)
	var bundle struct {
		Entry []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.Body, &bundle); err != nil {
		t.Fatal(err)
	}
	if len(bundle.Entry) < 2 {
		t.Fatalf("the patient's trail has %d events, want the GP's read and list at least: %s", len(bundle.Entry), body)
	}
	for _, gone := range []string{other, "gp-reads-other", "urn:ietf:params:oauth:jti", `"address"`, "110152", `"query"`, "Device/"} {
		if strings.Contains(body, gone) {
			t.Errorf("the patient's trail shows %q", gone)
		}
	}
	if !strings.Contains(body, `"name":"`+devidp.AllPracticesClientID+`"`) {
		t.Errorf("the app's name is not shown: %.400s", body)
	}

	// An event about someone else cannot be read by id either.
	otherEvent := ts.auditEvent("gp-reads-other")["id"].(string)
	if r := ts.do("GET", "/AuditEvent/"+otherEvent, nil, tok); r.Status != 403 {
		t.Errorf("another patient's AuditEvent: %d %s", r.Status, r.Body)
	}
	mine := ts.auditEvent("gp-reads-me")["id"].(string)
	r = ts.mustStatus(ts.do("GET", "/AuditEvent/"+mine, nil, tok), 200)
	if strings.Contains(string(r.Body), "jti") || !strings.Contains(string(r.Body), "Patient/"+me) {
		t.Errorf("own AuditEvent by id: %s", r.Body)
	}
	// Checking the chain is for auditors.
	if r := ts.do("GET", "/AuditEvent/$verify", nil, tok); r.Status != 403 {
		t.Errorf("a patient ran $verify: %d", r.Status)
	}
}

func TestAuditorsSearchTheTrailAndNothingElse(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Trail", validNHS))
	ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200)
	ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, bearer("")), 401)
	aud := bearer(ts.auditorToken())
	sysAud := bearer(ts.auditorToken("system/AuditEvent.rs"))

	count := func(tok header, query string) int {
		t.Helper()
		r := ts.mustStatus(ts.do("GET", "/AuditEvent?"+query, nil, tok), 200)
		var b struct{ Entry []any }
		_ = json.Unmarshal(r.Body, &b)
		return len(b.Entry)
	}
	tests := []struct {
		query string
		want  int
	}{
		{"patient=Patient/" + id + "&subtype=read", 2},
		{"patient=Patient/" + id + "&subtype=read&outcome=4", 1},
		{"patient=Patient/" + id + "&action=C", 1},
		{"entity=Patient/" + id + "&outcome=0", 2},
		{"type=rest&subtype=http://hl7.org/fhir/restful-interaction|create", 1}, // the test practice's Organization is imported, not audited
		{"entity-type=1&patient=Patient/" + id, 3},
		{"date=ge2000-01-01&patient=Patient/" + id + "&_sort=-date", 3},
		{"agent=Patient/" + id, 0},
	}
	for _, tc := range tests {
		t.Run(tc.query, func(t *testing.T) {
			if got := count(aud, tc.query); got != tc.want {
				t.Errorf("%d events, want %d", got, tc.want)
			}
		})
	}
	if got := count(sysAud, "patient=Patient/"+id); got != 3 {
		t.Errorf("system/AuditEvent.rs auditor found %d", got)
	}
	// The source is this server's instance, as the events name it.
	ev := ts.auditEvent(ts.lastRequestIDFor(t, aud))
	src := ev["source"].(map[string]any)["observer"].(map[string]any)["reference"].(string)
	if got := count(aud, "source="+url.QueryEscape(src)+"&_count=1000"); got < 3 {
		t.Errorf("source=%s found %d", src, got)
	}
	// Who, for a user who is not a Patient: the subject at their identity provider (altid), and the app
	// a request came through (agent-name, a string search on the client's name).
	agents := ev["agent"].([]any)
	subject := agents[0].(map[string]any)["altId"].(string)
	app := agents[1].(map[string]any)["name"].(string)
	r := ts.mustStatus(ts.do("GET", "/AuditEvent?_count=1000&altid="+url.QueryEscape(subject), nil, aud), 200)
	var byUser struct {
		Entry []struct {
			Resource struct {
				Agent []struct{ AltID string }
			}
		}
	}
	_ = json.Unmarshal(r.Body, &byUser)
	if len(byUser.Entry) < len(tests) {
		t.Errorf("altid=%s found %d events, want the auditor's %d searches at least", subject, len(byUser.Entry), len(tests))
	}
	for _, e := range byUser.Entry {
		if e.Resource.Agent[0].AltID != subject {
			t.Errorf("altid=%s found an event of %q", subject, e.Resource.Agent[0].AltID)
		}
	}
	if got := count(aud, "altid=nobody"); got != 0 {
		t.Errorf("altid=nobody found %d", got)
	}
	if got := count(aud, "_count=1000&agent-name="+url.QueryEscape(strings.ToLower(app[:3]))); got < len(tests) {
		t.Errorf("agent-name=%s found %d", app[:3], got)
	}
	// Paged with signed cursors, newest first.
	r = ts.mustStatus(ts.do("GET", "/AuditEvent?_sort=-date&_count=1", nil, aud), 200)
	var page struct {
		Link []struct{ Relation, URL string }
	}
	_ = json.Unmarshal(r.Body, &page)
	next := ""
	for _, l := range page.Link {
		if l.Relation == "next" {
			next = l.URL
		}
	}
	if next == "" {
		t.Fatalf("no next link: %s", r.Body)
	}
	ts.mustStatus(ts.do("GET", strings.TrimPrefix(next, ts.URL), nil, aud), 200)
	// No clinical data for auditors; no AuditEvents for GP systems.
	if r := ts.do("GET", "/Patient/"+id, nil, aud); r.Status != 403 {
		t.Errorf("auditor read a Patient: %d", r.Status)
	}
	if r := ts.do("GET", "/Patient?family=Trail", nil, aud); r.Status != 403 {
		t.Errorf("auditor searched Patients: %d", r.Status)
	}
	if r := ts.do("GET", "/AuditEvent", nil, nil); r.Status != 403 {
		t.Errorf("GP system listed AuditEvents: %d", r.Status)
	}
	if r := ts.do("GET", "/AuditEvent/$verify", nil, nil); r.Status != 403 {
		t.Errorf("GP system ran $verify: %d", r.Status)
	}
}

// lastRequestIDFor makes one request with tok and returns its request id.
func (ts *testServer) lastRequestIDFor(t *testing.T, tok header) string {
	h := header{"X-Request-ID": "probe-source"}
	for k, v := range tok {
		h[k] = v
	}
	ts.mustStatus(ts.do("GET", "/AuditEvent?_count=1", nil, h), 200)
	return "probe-source"
}

func TestAuditEventsAreAppendOnlyThroughTheAPI(t *testing.T) {
	ts := newTestServer(t)
	ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200)
	ts.create("Patient", patient("X", ""))
	recs, err := ts.store.AuditRange(context.Background(), 0, 0)
	if err != nil || len(recs) == 0 {
		t.Fatalf("no audit records: %v", err)
	}
	id := recs[0].ID
	ev := `{"resourceType":"AuditEvent","id":"` + id + `"}`
	tests := []struct{ method, path, body string }{
		{"POST", "/AuditEvent", ev},
		{"PUT", "/AuditEvent/" + id, ev},
		{"PATCH", "/AuditEvent/" + id, `[{"op":"replace","path":"/action","value":"D"}]`},
		{"DELETE", "/AuditEvent/" + id, ""},
		{"PUT", "/AuditEvent?_id=" + id, ev},
		{"DELETE", "/AuditEvent?_id=" + id, ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			var body any
			if tc.body != "" {
				body = tc.body
			}
			r := ts.mustStatus(ts.do(tc.method, tc.path, body, bearer(ts.auditorToken("user/AuditEvent.cruds"))), 405)
			if r.issue(t)["code"] != "not-supported" || !strings.Contains(r.Header.Get("Allow"), "GET") {
				t.Errorf("405: %s %v", r.Body, r.Header)
			}
		})
	}
	after, _ := ts.store.Get(context.Background(), store.AuditEventType, id)
	if after.VersionID != 1 || string(after.Body) != string(recs[0].Body) {
		t.Errorf("the AuditEvent changed: %+v", after)
	}

	cs := ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200).JSON(t)
	for _, res := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		rm := res.(map[string]any)
		if rm["type"] != "AuditEvent" {
			continue
		}
		var codes []string
		for _, in := range rm["interaction"].([]any) {
			codes = append(codes, in.(map[string]any)["code"].(string))
		}
		if !slices.Equal(codes, []string{"search-type", "read", "vread"}) {
			t.Errorf("AuditEvent interactions %v, want read, vread and search only", codes)
		}
		params := map[string]bool{}
		for _, sp := range rm["searchParam"].([]any) {
			params[sp.(map[string]any)["name"].(string)] = true
		}
		for _, p := range []string{"date", "patient", "agent", "entity", "entity-type", "action", "outcome", "type", "subtype", "source", "altid", "agent-name"} {
			if !params[p] {
				t.Errorf("AuditEvent search parameter %s not listed", p)
			}
		}
		if ops, _ := rm["operation"].([]any); len(ops) != 1 || ops[0].(map[string]any)["name"] != "verify" {
			t.Errorf("AuditEvent operations %v", rm["operation"])
		}
		return
	}
	t.Errorf("AuditEvent is not in the CapabilityStatement")
}

// auditFailingStore makes AppendAudit fail on demand: the audit trail's disk is full.
type auditFailingStore struct {
	audit.Backend
	fail atomic.Bool
}

func (f *auditFailingStore) AppendAudit(ctx context.Context, recs []audit.Record) error {
	if f.fail.Load() {
		return errors.New("audit disk full")
	}
	return f.Backend.AppendAudit(ctx, recs)
}

// ApplyAudited fails too: the writes and their records are one transaction, which the full disk fails.
func (f *auditFailingStore) ApplyAudited(ctx context.Context, writes []store.Write, recs []audit.Record) error {
	if f.fail.Load() {
		return errors.New("audit disk full")
	}
	return f.Backend.ApplyAudited(ctx, writes, recs)
}

func TestAFailingAuditWriteFailsTheRequest(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := &auditFailingStore{Backend: st}
	ts := newTestServerOn(t, fs)
	id := ts.create("Patient", patient("Loud", ""))
	fs.fail.Store(true)
	tests := []struct{ name, method, path string }{
		{"read", "GET", "/Patient/" + id},
		{"search", "GET", "/Patient"},
		{"a refusal", "GET", "/AuditEvent"},
		{"a 404", "GET", "/Patient/none"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do(tc.method, tc.path, nil, header{"X-Request-ID": "loud-1"}), http.StatusServiceUnavailable)
			if iss := r.issue(t); iss["code"] != "transient" || !strings.Contains(iss["diagnostics"].(string), "audit") {
				t.Errorf("issue %v", iss)
			}
			if r.Header.Get("ETag") != "" || r.Header.Get("X-Request-ID") != "loud-1" {
				t.Errorf("headers of the withheld answer leaked or the request id was lost: %v", r.Header)
			}
			if strings.Contains(r.issue(t)["diagnostics"].(string), "may have been made") {
				t.Errorf("a read is said to have changed something: %v", r.issue(t))
			}
		})
	}
	// Writes: the change and its record are one transaction, so a record that cannot be written leaves
	// nothing changed, and the client is not told that the change may stand.
	writes := []struct{ name, method, path string }{
		{"create", "POST", "/Patient"},
		{"update", "PUT", "/Patient/" + id},
		{"delete", "DELETE", "/Patient/" + id},
	}
	for _, tc := range writes {
		t.Run(tc.name, func(t *testing.T) {
			var body any
			if tc.method != "DELETE" {
				p := patient("Twice", "")
				if tc.method == "PUT" {
					p["id"] = id
				}
				body = p
			}
			r := ts.mustStatus(ts.do(tc.method, tc.path, body, nil), http.StatusServiceUnavailable)
			if iss := r.issue(t); iss["code"] != "transient" || strings.Contains(iss["diagnostics"].(string), "may have been made") {
				t.Errorf("a write whose record failed: issue %v", iss)
			}
			if r.Header.Get("Location") != "" || r.Header.Get("ETag") != "" {
				t.Errorf("the withheld write leaked its headers: %v", r.Header)
			}
		})
	}
	if !strings.Contains(ts.logs.String(), "audit disk full") {
		t.Errorf("the audit failure is not logged")
	}
	fs.fail.Store(false)
	r := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200)
	if v := r.JSON(t)["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("after a failed update and delete the patient is at version %v, want 1", v)
	}
	if n := ts.mustStatus(ts.do("GET", "/Patient?family=Twice&_summary=count", nil, nil), 200).JSON(t)["total"]; n != float64(0) {
		t.Errorf("a create whose record failed was stored: %v Patients named Twice", n)
	}
}

func TestVerifyOperationReportsIntactOrTheFirstBrokenLink(t *testing.T) {
	dir := t.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, st)
	aud := bearer(ts.auditorToken())
	ts.create("Patient", patient("V", ""))
	ts.create("Patient", patient("W", ""))
	verify := func() map[string]any {
		t.Helper()
		r := ts.mustStatus(ts.do("GET", "/AuditEvent/$verify", nil, aud), 200)
		out := map[string]any{}
		for _, p := range list(r.JSON(t)["parameter"]) {
			for k, v := range p {
				if strings.HasPrefix(k, "value") {
					out[p["name"].(string)] = v
				}
			}
		}
		return out
	}
	got := verify()
	if got["intact"] != true || got["result"] != "intact, 2 records" {
		t.Fatalf("fresh chain: %v", got)
	}
	recs, _ := st.AuditRange(context.Background(), 0, 0)
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "gpfhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// The store keeps bodies compressed; an edit that writes plain JSON is read as it is.
	edited := strings.Replace(string(recs[1].Body), `"outcome":"0"`, `"outcome":"4"`, 1)
	if edited == string(recs[1].Body) {
		t.Fatal("record 2 has no outcome 0 to edit")
	}
	if _, err := db.Exec(`UPDATE audit SET body = ? WHERE id = ?`, []byte(edited), recs[1].ID); err != nil {
		t.Fatal(err)
	}
	got = verify()
	if got["intact"] != false || got["brokenAt"] != float64(2) || !strings.Contains(got["result"].(string), "broken at record 2") {
		t.Errorf("after editing record 2 in the database: %v", got)
	}
}

func TestPatientsSeeAppsByTheirClientNames(t *testing.T) {
	ts := newTestServer(t, func(c *apiConfig) {
		c.ClientNames = map[string]string{devidp.AllPracticesClientID: "Riverside GP System", devidp.AppClientID: "My Health App"}
	})
	me := ts.create("Patient", patient("Me", "9000000009"))
	ts.mustStatus(ts.do("GET", "/Patient/"+me, nil, nil), 200)
	tok := bearer(ts.patientToken("9000000009", "P9", ""))
	ts.mustStatus(ts.do("GET", "/Patient/"+me, nil, tok), 200)
	body := string(ts.mustStatus(ts.do("GET", "/AuditEvent?patient=Patient/"+me+"&_count=100", nil, tok), 200).Body)
	for _, want := range []string{`"name":"Riverside GP System"`, `"name":"My Health App"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the patient's trail lacks %s: %.600s", want, body)
		}
	}
	for _, gone := range []string{`"name":"` + devidp.AllPracticesClientID + `"`, `"name":"` + devidp.AppClientID + `"`} {
		if strings.Contains(body, gone) {
			t.Errorf("the patient's trail shows the bare client id %s", gone)
		}
	}
}

// TestAuditEventSearchesAreNewestFirstByDefault: without _sort an AuditEvent search lists the newest
// record first, across pages, as _sort=-date does; _sort=_id still lists them in id order.
func TestAuditEventSearchesAreNewestFirstByDefault(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Newest", validNHS))
	for range 4 {
		ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200)
	}
	aud := bearer(ts.auditorToken())
	type event struct {
		ID, Recorded string
	}
	pages := func(query string) []event {
		t.Helper()
		var all []event
		for next := "/AuditEvent?" + query; next != ""; {
			r := ts.mustStatus(ts.do("GET", next, nil, aud), 200)
			var b struct {
				Entry []struct{ Resource event }
				Link  []struct{ Relation, URL string }
			}
			if err := json.Unmarshal(r.Body, &b); err != nil {
				t.Fatal(err)
			}
			for _, e := range b.Entry {
				all = append(all, e.Resource)
			}
			next = ""
			for _, l := range b.Link {
				if l.Relation == "next" {
					next = strings.TrimPrefix(l.URL, ts.URL)
				}
			}
		}
		return all
	}
	byDefault := pages("patient=Patient/" + id + "&_count=2")
	if len(byDefault) != 5 {
		t.Fatalf("found %d events about the patient, want its create and 4 reads", len(byDefault))
	}
	newest := pages("patient=Patient/" + id + "&_count=2&_sort=-date")
	if !slices.Equal(byDefault, newest) {
		t.Errorf("without _sort: %v\nwith _sort=-date: %v", byDefault, newest)
	}
	for i := 1; i < len(byDefault); i++ {
		if byDefault[i].Recorded > byDefault[i-1].Recorded {
			t.Errorf("event %d (%s) is newer than the one before it (%s)", i, byDefault[i].Recorded, byDefault[i-1].Recorded)
		}
	}
	byID := pages("patient=Patient/" + id + "&_count=2&_sort=_id")
	if len(byID) != 5 || !slices.IsSortedFunc(byID, func(a, b event) int { return strings.Compare(a.ID, b.ID) }) {
		t.Errorf("_sort=_id: %v, want the 5 events in id order", byID)
	}
}
