package api_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
)

// withVerifier replaces the server's verifier, to move its clock or change its audience.
func withVerifier(clock func() time.Time, audience string) serverOption {
	return func(c *apiConfig) {
		aud := audience
		if aud == "" {
			aud = c.BaseURL
		}
		v, err := auth.NewVerifier(auth.Config{Issuers: []string{c.BaseURL + "/dev-idp"}, Audience: aud, Now: clock})
		if err != nil {
			panic(err)
		}
		c.Auth = v
	}
}

func b64(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func segment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// mustBe401 checks the RFC 6750 challenge and the OperationOutcome.
func mustBe401(t *testing.T, ts *testServer, token string) {
	t.Helper()
	r := ts.do("GET", "/Patient", nil, bearer(token))
	if r.Status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", r.Status, r.Body)
	}
	if h := r.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, `Bearer error="invalid_token", error_description="`) {
		t.Errorf("WWW-Authenticate %q", h)
	}
	if r.issue(t)["code"] != "login" {
		t.Errorf("issue %v", r.issue(t))
	}
}

func TestAttacksGet401(t *testing.T) {
	ts := newTestServer(t)
	good := ts.token
	parts := strings.Split(good, ".")
	hdr, payload := segment(t, good, 0), segment(t, good, 1)

	// The provider's published RSA key, for the HMAC key-confusion attack.
	resp, err := http.Get(ts.Issuer + "/keys")
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	der, err := x509.MarshalPKIXPublicKey(set.Keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs256 := func(secret []byte) string {
		h := map[string]any{"alg": "HS256", "typ": "JWT", "kid": hdr["kid"]}
		input := b64(h) + "." + parts[1]
		mac := hmac.New(sha256.New, secret)
		mac.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
	}

	tampered := map[string]any{}
	for k, v := range payload {
		tampered[k] = v
	}
	tampered["ods_codes"] = []string{"A81001", "B82005", "P81002", testPracticeODS, "Z99999"}
	swapped := map[string]any{}
	for k, v := range hdr {
		swapped[k] = v
	}
	swapped["kid"] = "another-key"

	// A correctly signed token from a provider that is not trusted, with the right audience.
	var h2 http.Handler
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h2.ServeHTTP(w, r) }))
	defer other.Close()
	idp2, err := devidp.New(devidp.Config{Dev: true, Issuer: other.URL + "/dev-idp", Audience: ts.URL, Seed: testSeed, People: testPeople})
	if err != nil {
		t.Fatal(err)
	}
	h2 = http.StripPrefix("", idp2.Handler())
	untrusted, err := devidp.SystemToken(context.Background(), nil, other.URL+"/dev-idp", testSeed, devidp.AllPracticesClientID, []string{"system/*.cruds"})
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		token string
	}{
		{"no token", ""},
		{"not a JWT", "not-a-token"},
		{"alg none", b64(map[string]any{"alg": "none", "typ": "JWT"}) + "." + parts[1] + "."},
		{"HS256 signed with the public key as the secret", hs256(pubPEM)},
		{"HS256 signed with the JWK modulus as the secret", hs256([]byte(parts[2]))},
		{"tampered payload with the signature kept", parts[0] + "." + b64(tampered) + "." + parts[2]},
		{"kid swapped to another key", b64(swapped) + "." + parts[1] + "." + parts[2]},
		{"correctly signed by an untrusted issuer", untrusted.AccessToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { mustBe401(t, ts, tt.token) })
	}
	// The good token still works, so the refusals above are about the attacks.
	ts.mustStatus(ts.do("GET", "/Patient", nil, nil), 200)
}

func TestTokenTimesAndAudience(t *testing.T) {
	tests := []struct {
		name   string
		offset time.Duration
		aud    string
		want   int
	}{
		{"within the 60 s skew after expiry", time.Hour + 30*time.Second, "", 200},
		{"expired beyond the skew", time.Hour + 2*time.Minute, "", 401},
		{"not valid yet beyond the skew", -5 * time.Minute, "", 401},
		{"wrong audience", 0, "https://another.example/fhir", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, withVerifier(func() time.Time { return time.Now().Add(tt.offset) }, tt.aud))
			if tt.want == 401 {
				mustBe401(t, ts, ts.token)
				return
			}
			ts.mustStatus(ts.do("GET", "/Patient", nil, nil), tt.want)
		})
	}
}

// patientWorld is two patients at the test practice, each with an immunisation, and one at another
// practice.
type patientWorld struct {
	me, other, far     string
	myImm, otherImm    string
	farOrg             string
	meNHS, otherNHS    string
	unknownNHS, farNHS string
}

func newPatientWorld(t *testing.T, ts *testServer) *patientWorld {
	t.Helper()
	w := &patientWorld{meNHS: "9000000009", otherNHS: "9912003071", farNHS: "9000000017", unknownNHS: "9000000025"}
	w.me = ts.create("Patient", patient("Me", w.meNHS))
	w.other = ts.create("Patient", patient("Other", w.otherNHS))
	w.farOrg = ts.create("Organization", map[string]any{"resourceType": "Organization", "name": "Far",
		"identifier": []any{map[string]any{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "B82005"}}})
	far := patient("Far", w.farNHS)
	far["managingOrganization"] = map[string]any{"reference": "Organization/" + w.farOrg}
	w.far = ts.create("Patient", far)
	imm := func(pat string) string {
		return ts.create("Immunization", map[string]any{"resourceType": "Immunization", "status": "completed",
			"vaccineCode":        map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
			"patient":            map[string]any{"reference": "Patient/" + pat},
			"occurrenceDateTime": "2024-01-01"})
	}
	w.myImm, w.otherImm = imm(w.me), imm(w.other)
	return w
}

func bundleIDs(t *testing.T, r *response) []string {
	t.Helper()
	return entryIDs(t, r.JSON(t))
}

func TestPatientsSeeOnlyTheirOwnCompartment(t *testing.T) {
	ts := newTestServer(t)
	w := newPatientWorld(t, ts)
	p9 := bearer(ts.patientToken(w.meNHS, "P9", ""))

	ts.mustStatus(ts.do("GET", "/Patient/"+w.me, nil, p9), 200)
	ts.mustStatus(ts.do("GET", "/Immunization/"+w.myImm, nil, p9), 200)
	r := ts.mustStatus(ts.do("GET", "/Patient/"+w.other, nil, p9), 403)
	if r.issue(t)["code"] != "forbidden" {
		t.Errorf("issue %v", r.issue(t))
	}
	ts.mustStatus(ts.do("GET", "/Immunization/"+w.otherImm, nil, p9), 403)
	ts.mustStatus(ts.do("GET", "/Immunization/"+w.otherImm+"/_history/1", nil, p9), 403)
	ts.mustStatus(ts.do("GET", "/Patient/"+w.other+"/_history", nil, p9), 403)

	tests := []struct {
		name, path string
		want       []string
	}{
		{"patient search", "/Patient", []string{w.me}},
		{"search by another's NHS number", "/Patient?identifier=" + w.otherNHS, nil},
		{"immunization search", "/Immunization", []string{w.myImm}},
		{"chained search cannot reach another patient", "/Immunization?patient.family=Other", nil},
		{"_has cannot reveal another patient", "/Patient?_has:Immunization:patient:status=completed", []string{w.me}},
		{"type history", "/Immunization/_history", []string{w.myImm}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do("GET", tt.path, nil, p9), 200)
			if got := bundleIDs(t, r); strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("%s: %v, want %v", tt.path, got, tt.want)
			}
		})
	}
	// Counts and includes see the compartment too.
	b := ts.mustStatus(ts.do("GET", "/Immunization?_total=accurate&_include=Immunization:patient", nil, p9), 200).JSON(t)
	if b["total"].(float64) != 1 {
		t.Errorf("_total %v, want 1", b["total"])
	}
	if strings.Contains(string(ts.do("GET", "/Patient?_revinclude=Immunization:patient", nil, p9).Body), w.otherImm) {
		t.Errorf("_revinclude revealed another patient's immunisation")
	}
	// Read scopes do not write.
	r = ts.mustStatus(ts.do("POST", "/Immunization", map[string]any{"resourceType": "Immunization"}, p9), 403)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "patient/Immunization.c") {
		t.Errorf("the refusal must name the missing scope: %s", r.Body)
	}
	// Practice details are for everyone with a scope.
	ts.mustStatus(ts.do("GET", "/Organization/"+testPracticeID, nil, p9), 200)
}

func TestPatientRefusalsExplainThemselves(t *testing.T) {
	ts := newTestServer(t)
	w := newPatientWorld(t, ts)
	tests := []struct {
		name, nhs, level, proxy string
		want                    string
	}{
		{"P5 needs P9", w.meNHS, "P5", "", "P9"},
		{"P0 needs P9", w.meNHS, "P0", "", "P9"},
		{"P9 with no GP record here", w.unknownNHS, "P9", "", "no GP record at this service is linked to this NHS number"},
		{"proxy without a grant", w.unknownNHS, "P9", w.meNHS, "proxy grant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := bearer(ts.patientToken(tt.nhs, tt.level, tt.proxy))
			r := ts.mustStatus(ts.do("GET", "/Immunization", nil, tok), 403)
			if d := r.issue(t)["diagnostics"].(string); !strings.Contains(d, tt.want) {
				t.Errorf("diagnostics %q do not say %q", d, tt.want)
			}
			// Slots and practices need no P9.
			ts.mustStatus(ts.do("GET", "/Organization", nil, tok), 200)
		})
	}
}

func TestGPSystemsSeeOnlyTheirPractices(t *testing.T) {
	ts := newTestServer(t)
	w := newPatientWorld(t, ts)
	far := bearer(ts.systemToken(devidp.PracticeClientID("B82005"), "system/*.cruds"))

	ts.mustStatus(ts.do("GET", "/Patient/"+w.far, nil, far), 200)
	ts.mustStatus(ts.do("GET", "/Patient/"+w.me, nil, far), 403)
	ts.mustStatus(ts.do("GET", "/Immunization/"+w.myImm, nil, far), 403)
	if got := bundleIDs(t, ts.mustStatus(ts.do("GET", "/Patient", nil, far), 200)); strings.Join(got, ",") != w.far {
		t.Errorf("search: %v, want only %s", got, w.far)
	}
	if got := bundleIDs(t, ts.mustStatus(ts.do("GET", "/Immunization", nil, far), 200)); len(got) != 0 {
		t.Errorf("immunisations of other practices: %v", got)
	}
	// Writes: not for a patient elsewhere, not moving one's patient elsewhere, but at home yes.
	ts.mustStatus(ts.do("POST", "/Immunization", map[string]any{"resourceType": "Immunization", "status": "completed",
		"vaccineCode": map[string]any{"text": "flu"}, "patient": map[string]any{"reference": "Patient/" + w.me},
		"occurrenceDateTime": "2024-01-01"}, far), 403)
	ts.mustStatus(ts.do("DELETE", "/Patient/"+w.me, nil, far), 403)
	ts.mustStatus(ts.do("POST", "/Patient", patient("New", ""), far), 403)
	home := patient("Home", "")
	home["managingOrganization"] = map[string]any{"reference": "Organization/" + w.farOrg}
	ts.create("Patient", home) // the default all-practices client
	ts.mustStatus(ts.do("POST", "/Patient", home, far), 201)
	moved := withID(patient("Far", w.farNHS), w.far)
	ts.mustStatus(ts.do("PUT", "/Patient/"+w.far, moved, far), 403)

	// Scopes are checked per interaction and the refusal names the missing one.
	readOnly := bearer(ts.systemToken(devidp.PracticeClientID("B82005"), "system/Patient.rs"))
	r := ts.mustStatus(ts.do("POST", "/Patient", home, readOnly), 403)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "system/Patient.c") || !strings.Contains(r.Header.Get("WWW-Authenticate"), "insufficient_scope") {
		t.Errorf("refusal %s / %q", r.Body, r.Header.Get("WWW-Authenticate"))
	}
	ts.mustStatus(ts.do("GET", "/Immunization", nil, readOnly), 403)
}

func TestDecisionsAreLoggedWithoutPatientData(t *testing.T) {
	ts := newTestServer(t)
	w := newPatientWorld(t, ts)
	tok := bearer(ts.patientToken(w.meNHS, "P9", ""))
	tok["X-Request-ID"] = "req-authz-1"
	ts.mustStatus(ts.do("GET", "/Patient/"+w.other, nil, tok), 403)
	var line string
	for _, l := range strings.Split(ts.logs.String(), "\n") {
		if strings.Contains(l, `"msg":"authorization"`) && strings.Contains(l, "req-authz-1") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no decision logged: %s", ts.logs.String())
	}
	for _, want := range []string{`"outcome":"deny-compartment"`, `"caller":"patient"`, `"subject":"dev-`} {
		if !strings.Contains(line, want) {
			t.Errorf("decision line lacks %s: %s", want, line)
		}
	}
	if strings.Contains(ts.logs.String(), w.meNHS) || strings.Contains(ts.logs.String(), w.otherNHS) {
		t.Errorf("an NHS number reached the log")
	}
}

func TestSMARTConfigurationAndCapabilityStatementNameTheIssuer(t *testing.T) {
	ts := newTestServer(t)
	r := ts.mustStatus(ts.do("GET", "/.well-known/smart-configuration", nil, bearer("")), 200).JSON(t)
	if r["issuer"] != ts.Issuer || !strings.HasPrefix(r["token_endpoint"].(string), ts.Issuer) ||
		!strings.HasPrefix(r["authorization_endpoint"].(string), ts.Issuer) {
		t.Errorf("smart-configuration %v", r)
	}
	for _, g := range r["grant_types_supported"].([]any) {
		if g == "implicit" {
			t.Errorf("grant_types_supported offers implicit, which SMART App Launch 2.0 removed")
		}
	}
	scopes, _ := json.Marshal(r["scopes_supported"])
	for _, want := range []string{`"patient/*.cruds"`, `"patient/*.rs"`, `"system/*.cruds"`, `"user/AuditEvent.rs"`, `"launch/patient"`, `"fhirUser"`} {
		if !strings.Contains(string(scopes), want) {
			t.Errorf("scopes_supported lacks %s, which the README uses: %s", want, scopes)
		}
	}
	// The dev identity provider does a standalone launch with patient context (docs/browser-apps.md).
	caps, _ := json.Marshal(r["capabilities"])
	for _, want := range []string{`"launch-standalone"`, `"context-standalone-patient"`, `"client-public"`, `"sso-openid-connect"`} {
		if !strings.Contains(string(caps), want) {
			t.Errorf("capabilities lacks %s: %s", want, caps)
		}
	}
	cs := ts.mustStatus(ts.do("GET", "/metadata", nil, bearer("")), 200).JSON(t)
	sec, _ := cs["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
	raw, _ := json.Marshal(sec)
	for _, want := range []string{"SMART-on-FHIR", "oauth-uris", ts.Issuer + "/authorize"} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("rest.security lacks %s: %s", want, raw)
		}
	}
}
