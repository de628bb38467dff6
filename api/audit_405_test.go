package api_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
)

// Requests that no route handles (a method the path does not allow, a type this server does not serve)
// are attempts all the same, and an attempt to change the audit trail is the one auditors care most
// about: the token is checked first, as on every other FHIR path, and the AuditEvent names who tried.

// tokenClaims are the claims of an access token that its AuditEvent's agents should show.
type tokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	ClientID string `json:"client_id"`
	AZP      string `json:"azp"`
	JTI      string `json:"jti"`
}

func claimsOf(t *testing.T, token string) tokenClaims {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %.40s", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c tokenClaims
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.ClientID == "" {
		c.ClientID = c.AZP
	}
	if c.JTI == "" || c.ClientID == "" {
		t.Fatalf("token without jti or client: %+v", c)
	}
	return c
}

// agents are an AuditEvent's requesting user (IRCP) and client (DICOM 110153) agents, nil when absent.
func agents(ev map[string]any) (user, client map[string]any) {
	for _, a := range list(ev["agent"]) {
		typ, _ := a["type"].(map[string]any)
		if typ == nil {
			continue
		}
		switch typ["coding"].([]any)[0].(map[string]any)["code"] {
		case "IRCP":
			user = a
		case "110153":
			client = a
		}
	}
	return user, client
}

// who returns an agent's who.identifier (system, value) and who.reference.
func who(a map[string]any) (system, value, reference string) {
	w, _ := a["who"].(map[string]any)
	if w == nil {
		return "", "", ""
	}
	if id, ok := w["identifier"].(map[string]any); ok {
		system, _ = id["system"].(string)
		value, _ = id["value"].(string)
	}
	reference, _ = w["reference"].(string)
	return system, value, reference
}

// auditEventsFor counts the stored AuditEvents of the request with X-Request-ID reqID.
func (ts *testServer) auditEventsFor(reqID string) int {
	ts.t.Helper()
	recs, err := ts.store.AuditRange(context.Background(), 0, 0)
	if err != nil {
		ts.t.Fatal(err)
	}
	n := 0
	for _, r := range recs {
		if strings.Contains(string(r.Body), `"value":"`+reqID+`"`) {
			n++
		}
	}
	return n
}

func TestRefusedMethodsAndUnknownTypesAreAuditedWithTheCallersIdentity(t *testing.T) {
	ts := newTestServer(t)
	pid := ts.create("Patient", patient("Tries", validNHS))
	gp := ts.systemToken(devidp.AllPracticesClientID, "system/*.cruds")
	pt := ts.patientToken(validNHS, "P9", "")
	ev := `{"resourceType":"AuditEvent","id":"x"}`
	patch := `[{"op":"replace","path":"/action","value":"D"}]`
	patchType := header{"Content-Type": "application/json-patch+json"}

	tests := []struct {
		name         string
		method, path string
		body         string
		h            header
		status       int
		code         string // OperationOutcome issue code
		allow        string // part of the Allow header of a 405
		subtype      string
		action       string
		entity       string // a reference among the event's entities, when the path names one
	}{
		{"PUT on an AuditEvent", "PUT", "/AuditEvent/x", ev, nil, 405, "not-supported", "GET", "update", "U", "AuditEvent/x"},
		{"DELETE on an AuditEvent", "DELETE", "/AuditEvent/x", "", nil, 405, "not-supported", "GET", "delete", "D", "AuditEvent/x"},
		{"PATCH on an AuditEvent", "PATCH", "/AuditEvent/x", patch, patchType, 405, "not-supported", "GET", "patch", "U", "AuditEvent/x"},
		{"POST of an AuditEvent", "POST", "/AuditEvent", ev, nil, 405, "not-supported", "GET", "create", "C", ""},
		{"conditional DELETE of AuditEvents", "DELETE", "/AuditEvent?_id=x", "", nil, 405, "not-supported", "GET", "delete", "D", ""},
		{"PATCH on the CapabilityStatement", "PATCH", "/metadata", patch, patchType, 405, "not-supported", "GET", "patch", "U", ""},
		{"POST to a Patient instance", "POST", "/Patient/" + pid, "{}", nil, 405, "not-supported", "PUT", "create", "C", "Patient/" + pid},
		{"an unknown type", "GET", "/Spaceship/1", "", nil, 404, "not-supported", "", "read", "R", ""},
	}
	callers := []struct {
		name  string
		token string
		// user is the user agent's who.identifier value; userRef its who.reference, if any.
		user, userRef string
	}{
		{"GP system", gp, claimsOf(t, gp).Subject, ""},
		{"patient", pt, validNHS, "Patient/" + pid},
	}
	for _, cl := range callers {
		claims := claimsOf(t, cl.token)
		for _, tc := range tests {
			t.Run(cl.name+"/"+tc.name, func(t *testing.T) {
				reqID := "refused-" + strings.ReplaceAll(cl.name+"-"+tc.name, " ", "-")
				h := header{"X-Request-ID": reqID, "Authorization": "Bearer " + cl.token}
				for k, v := range tc.h {
					h[k] = v
				}
				var body any
				if tc.body != "" {
					body = tc.body
				}
				r := ts.mustStatus(ts.do(tc.method, tc.path, body, h), tc.status)
				if iss := r.issue(t); iss["code"] != tc.code {
					t.Errorf("issue code %v, want %s: %s", iss["code"], tc.code, r.Body)
				}
				if tc.status == http.StatusMethodNotAllowed && !strings.Contains(r.Header.Get("Allow"), tc.allow) {
					t.Errorf("Allow %q lacks %s", r.Header.Get("Allow"), tc.allow)
				}

				e := ts.auditEvent(reqID)
				f := factsOf(e)
				if f.subtype != tc.subtype || f.action != tc.action || f.outcome != "4" {
					t.Errorf("subtype %s action %s outcome %s, want %s %s 4", f.subtype, f.action, f.outcome, tc.subtype, tc.action)
				}
				if want := strings.TrimSpace(http.StatusText(tc.status)); !strings.Contains(f.desc, want) {
					t.Errorf("outcomeDesc %q lacks %q", f.desc, want)
				}
				if tc.entity != "" && !slices.Contains(f.entities, tc.entity) {
					t.Errorf("entities %v lack %s", f.entities, tc.entity)
				}
				user, client := agents(e)
				if user == nil {
					t.Fatalf("no user agent: the refused attempt is not attributed: %v", e["agent"])
				}
				if sys, val, ref := who(user); val != cl.user || ref != cl.userRef {
					t.Errorf("user agent who %s|%s ref %q, want %s ref %q", sys, val, ref, cl.user, cl.userRef)
				}
				if user["requestor"] != true {
					t.Errorf("the user agent is not the requestor: %v", user)
				}
				if want := []string{"urn:ietf:params:oauth:jti:" + claims.JTI}; !slices.Equal(f.policies, want) {
					t.Errorf("user agent policy %v, want %v", f.policies, want)
				}
				if sys, val, _ := who(client); sys != "urn:ietf:params:oauth:client-id" || val != claims.ClientID {
					t.Errorf("client agent %s|%s, want the token's client %s", sys, val, claims.ClientID)
				}
			})
		}
	}
}

func TestRefusedMethodsWithoutAValidTokenAre401AndAudited(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name         string
		method, path string
		token        string // "" sends no Authorization header
		subtype      string
	}{
		{"PUT on an AuditEvent without a token", "PUT", "/AuditEvent/x", "", "update"},
		{"DELETE on an AuditEvent with a forged token", "DELETE", "/AuditEvent/x", "not.a.jwt", "delete"},
		{"PATCH on the CapabilityStatement without a token", "PATCH", "/metadata", "", "patch"},
		{"an unknown type without a token", "GET", "/Spaceship/1", "", "read"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqID := "anon-" + strings.ReplaceAll(tc.name, " ", "-")
			h := bearer(tc.token)
			h["X-Request-ID"] = reqID
			r := ts.mustStatus(ts.do(tc.method, tc.path, nil, h), http.StatusUnauthorized)
			if iss := r.issue(t); iss["code"] != "login" {
				t.Errorf("issue code %v, want login", iss["code"])
			}
			if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
				t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
			}
			if r.Header.Get("Allow") != "" {
				t.Errorf("a 401 tells an unknown caller the allowed methods: %q", r.Header.Get("Allow"))
			}
			e := ts.auditEvent(reqID)
			f := factsOf(e)
			if f.subtype != tc.subtype || f.outcome != "4" || !strings.Contains(f.desc, "401 Unauthorized (deny-token)") {
				t.Errorf("subtype %s outcome %s desc %q", f.subtype, f.outcome, f.desc)
			}
			user, client := agents(e)
			if user != nil || f.policies != nil {
				t.Errorf("a request without a valid token has a user: %v", user)
			}
			if client == nil || client["requestor"] != true {
				t.Errorf("without a user the client agent must be the requestor: %v", client)
			}
		})
	}

	// Not attempts at a FHIR interaction, so neither checked nor audited: a method with no FHIR meaning
	// (OPTIONS is what a browser's CORS preflight sends, without credentials) and a path that is no
	// FHIR REST path at all.
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"OPTIONS", "/AuditEvent/x", http.StatusMethodNotAllowed},
		{"GET", "/Patient/a/b/c/d/e", http.StatusNotFound},
	} {
		reqID := "anon-" + tc.method + "-not-an-interaction"
		h := bearer("")
		h["X-Request-ID"] = reqID
		ts.mustStatus(ts.do(tc.method, tc.path, nil, h), tc.status).issue(t)
		if n := ts.auditEventsFor(reqID); n != 0 {
			t.Errorf("%s %s: %d AuditEvents, want none", tc.method, tc.path, n)
		}
	}
}
