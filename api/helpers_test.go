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
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// testServer is the real API on a real SQLite store on disk, served over HTTP on 127.0.0.1 with a random
// port (httptest binds loopback only).
type testServer struct {
	t     *testing.T
	URL   string
	store store.Store
	http  *http.Client
	logs  *lockedWriter
}

type serverOption func(*api.Config)

func newTestServer(t *testing.T, opts ...serverOption) *testServer {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatalf("open sqlite: %v", err)
	}
	return newTestServerOn(t, st, opts...)
}

func newTestServerOn(t *testing.T, st store.Store, opts ...serverOption) *testServer {
	t.Helper()
	logs := &lockedWriter{w: &bytes.Buffer{}}
	ts := &testServer{t: t, store: st, http: &http.Client{}, logs: logs}
	// The base URL is only known once the listener exists, so the handler is installed after.
	var handler http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	cfg := api.Config{
		Store:   st,
		BaseURL: hs.URL,
		Logger:  slog.New(slog.NewJSONHandler(logs, nil)),
	}
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	handler = srv.Handler()
	ts.URL = hs.URL
	t.Cleanup(func() {
		hs.Close()
		_ = st.Close()
	})
	return ts
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
	for k, v := range h {
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
	if nhs != "" {
		p["identifier"] = []any{map[string]any{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs}}
	}
	return p
}

// apiConfig lets test files adjust the server configuration without importing api themselves.
type apiConfig = api.Config
