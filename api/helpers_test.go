package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

// testServer is the real API on a real store (SQLite on disk, or FerretDB: see openTestStore), served over HTTP on 127.0.0.1 with a random
// port (httptest binds loopback only), with authorisation on: the dev identity provider is mounted at
// /dev-idp on the same server, and requests carry a token obtained from it over HTTP.
type testServer struct {
	t     *testing.T
	URL   string
	store audit.Backend
	http  *http.Client
	logs  *lockedWriter
	// Issuer is the dev identity provider's URL.
	Issuer string
	// token is what ts.do sends unless a request sets Authorization itself: the token of the GP-system
	// client bound to every practice in testPeople, with system/*.cruds.
	token string
}

type serverOption func(*api.Config)

// The test practice, created when the test server starts. patient() registers patients there.
const (
	testPracticeID  = "test-practice"
	testPracticeODS = "T99991"
	testSeed        = 1
)

func newTestServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	return newTestServerOn(t, openTestStore(t), opts...)
}

// testPeople is the directory the test identity provider serves: the test practice and the seeded
// practices (whose ODS codes tests use for their own Organizations). Each gets a GP-system client, and
// gp-all-practices is bound to all of them, as in `serve --dev`.
var testPeople = func() seed.Directory {
	d := seed.Directory{Practices: []seed.Practice{{ODS: testPracticeODS, OrganizationID: testPracticeID, Name: "Test Practice"}}}
	d.Practices = append(d.Practices, seed.People(seed.Options{Seed: testSeed}).Practices...)
	return d
}()

// startAPI serves the API with the dev identity provider and returns it with its URL and the default
// token. Benchmarks use it too, calling the handler in process.
func startAPI(tb testing.TB, st audit.Backend, logs io.Writer, opts ...serverOption) (srv *api.Server, base, token string) {
	tb.Helper()
	var handler http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	tb.Cleanup(hs.Close)
	issuer := hs.URL + "/dev-idp"
	idp, err := devidp.New(devidp.Config{Dev: true, Issuer: issuer, Audience: hs.URL, Seed: testSeed, People: testPeople,
		DashboardRedirectURIs: []string{hs.URL + "/dashboard/callback"}})
	if err != nil {
		tb.Fatalf("devidp.New: %v", err)
	}
	verifier, err := auth.NewVerifier(auth.Config{Issuers: []string{issuer}, Audience: hs.URL})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := api.Config{
		Store:                st,
		BaseURL:              hs.URL,
		Logger:               slog.New(slog.NewJSONHandler(logs, nil)),
		Auth:                 verifier,
		IdentityProvider:     idp.Handler(),
		IdentityProviderPath: idp.Prefix(),
		MetricsToken:         testMetricsToken,
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err = api.New(cfg)
	if err != nil {
		tb.Fatalf("api.New: %v", err)
	}
	handler = srv.Handler()
	org := `{"resourceType":"Organization","name":"Test Practice","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"` + testPracticeODS + `"}]}`
	if err := srv.Import(context.Background(), "Organization", testPracticeID, []byte(org)); err != nil {
		// A second server on the same store finds it there already.
		if _, gerr := st.Get(context.Background(), "Organization", testPracticeID); gerr != nil {
			tb.Fatalf("create the test practice: %v", err)
		}
	}
	tok, err := devidp.SystemToken(context.Background(), nil, issuer, testSeed, devidp.AllPracticesClientID, []string{"system/*.cruds"})
	if err != nil {
		tb.Fatalf("default token: %v", err)
	}
	return srv, hs.URL, tok.AccessToken
}

func newTestServerOn(t *testing.T, st audit.Backend, opts ...serverOption) *testServer {
	t.Helper()
	logs := &lockedWriter{w: &bytes.Buffer{}}
	_, base, token := startAPI(t, st, logs, opts...)
	t.Cleanup(func() { _ = st.Close() })
	return &testServer{t: t, URL: base, store: st, http: &http.Client{}, logs: logs, Issuer: base + "/dev-idp", token: token}
}

// patientToken signs in on the dev identity provider's login page as a patient, over HTTP.
func (ts *testServer) patientToken(nhs, level, proxyFor string, scopes ...string) string {
	ts.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{"patient/*.rs"}
	}
	tok, err := devidp.PatientToken(context.Background(), nil, ts.Issuer, nhs, level, proxyFor, scopes)
	if err != nil {
		ts.t.Fatalf("patient token: %v", err)
	}
	return tok.AccessToken
}

// systemToken gets a GP-system token for the client of a practice, by client_credentials with
// private_key_jwt.
func (ts *testServer) systemToken(clientID string, scopes ...string) string {
	ts.t.Helper()
	tok, err := devidp.SystemToken(context.Background(), nil, ts.Issuer, testSeed, clientID, scopes)
	if err != nil {
		ts.t.Fatalf("system token: %v", err)
	}
	return tok.AccessToken
}

// bearer is the header that sends token; an empty token sends no Authorization header at all.
func bearer(token string) header {
	if token == "" {
		return header{"Authorization": ""}
	}
	return header{"Authorization": "Bearer " + token}
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a generic tree.
func (r *response) JSON(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body is not JSON (%v): %s", err, r.Body)
	}
	return m
}

// outcome returns the first issue of an OperationOutcome body.
func (r *response) issue(t *testing.T) map[string]any {
	t.Helper()
	m := r.JSON(t)
	if m["resourceType"] != "OperationOutcome" {
		t.Fatalf("body is a %v, want OperationOutcome: %s", m["resourceType"], r.Body)
	}
	issues, _ := m["issue"].([]any)
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r.Body)
	}
	return issues[0].(map[string]any)
}

type header map[string]string

func (ts *testServer) do(method, path string, body any, h header) *response {
	ts.t.Helper()
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, ts.URL+path, rdr)
	if err != nil {
		ts.t.Fatal(err)
	}
	if rdr != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	req.Header.Set("Authorization", "Bearer "+ts.token)
	for k, v := range h {
		if v == "" && k == "Authorization" {
			req.Header.Del(k)
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := ts.http.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	return &response{Status: resp.StatusCode, Header: resp.Header, Body: raw}
}

func (ts *testServer) mustStatus(r *response, want int) *response {
	ts.t.Helper()
	if r.Status != want {
		ts.t.Fatalf("status %d, want %d; body: %s", r.Status, want, r.Body)
	}
	return r
}

// create POSTs a resource and returns its server-assigned id.
func (ts *testServer) create(typ string, body any) string {
	ts.t.Helper()
	r := ts.mustStatus(ts.do("POST", "/"+typ, body, nil), http.StatusCreated)
	id, _ := r.JSON(ts.t)["id"].(string)
	if id == "" {
		ts.t.Fatalf("created %s has no id: %s", typ, r.Body)
	}
	return id
}

// lockedWriter serialises log writes from concurrent handlers into one buffer.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

// String returns everything logged so far.
func (lw *lockedWriter) String() string {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.(*bytes.Buffer).String()
}

func (lw *lockedWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.w.Write(p)
}

const validNHS = "9000000009"

func patient(family string, nhs string) map[string]any {
	p := map[string]any{
		"resourceType": "Patient",
		"name":         []any{map[string]any{"family": family, "given": []any{"Ann"}}},
		"gender":       "female",
		"birthDate":    "1980-05-17",
	}
	// Registered at the test practice (managingOrganization only, so that generalPractitioner stays
	// free for tests), so that GP-system tokens bound to it may see and write them.
	p["managingOrganization"] = map[string]any{"reference": "Organization/" + testPracticeID}
	if nhs != "" {
		p["identifier"] = []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}}
	}
	return p
}

// apiConfig lets test files adjust the server configuration without importing api themselves.
type apiConfig = api.Config

// testMetricsToken is the bearer token /metrics asks for on the test servers.
const testMetricsToken = "test-metrics-token"

// metricsHeader sends the metrics token instead of the caller's.
var metricsHeader = header{"Authorization": "Bearer " + testMetricsToken}
