package api_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

func TestRequestAndCorrelationIDsAreEchoed(t *testing.T) {
	ts := newTestServer(t)
	r := ts.do("GET", "/metadata", nil, header{"X-Request-ID": "2f1b7c1e-0c4a-4a8e-9b1a-6b1f1f0e2d3c", "X-Correlation-ID": "corr-1"})
	if r.Header.Get("X-Request-ID") != "2f1b7c1e-0c4a-4a8e-9b1a-6b1f1f0e2d3c" || r.Header.Get("X-Correlation-ID") != "corr-1" {
		t.Errorf("ids not echoed: %v", r.Header)
	}
	r = ts.do("GET", "/metadata", nil, nil)
	if len(r.Header.Get("X-Request-ID")) < 16 {
		t.Errorf("no request id generated: %v", r.Header)
	}
	r = ts.do("GET", "/metadata", nil, header{"X-Request-ID": "bad id with spaces"})
	if strings.Contains(r.Header.Get("X-Request-ID"), " ") {
		t.Errorf("unsafe request id echoed: %q", r.Header.Get("X-Request-ID"))
	}
	// One log line per request, each with its request id, and no query strings (they carry patient data).
	ts.do("GET", "/Patient?family=Secretname", nil, header{"X-Request-ID": "log-check-1"})
	logs := ts.logs.String()
	for _, msg := range []string{"request", "authorization"} {
		if !strings.Contains(logs, `"msg":"`+msg+`","request_id":"log-check-1"`) {
			t.Errorf("no %s line led by the request_id: %s", msg, logs)
		}
	}
	if strings.Contains(logs, "Secretname") {
		t.Errorf("patient data reached the log: %s", logs)
	}
}

func TestCapabilityStatementComesFromTheRoutingTables(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.mustStatus(ts.get("/metadata", nil), 200).JSON(t)
	if cs["resourceType"] != "CapabilityStatement" || cs["fhirVersion"] != "4.0.1" {
		t.Fatalf("metadata: %v %v", cs["resourceType"], cs["fhirVersion"])
	}
	rest := cs["rest"].([]any)[0].(map[string]any)
	types := map[string]map[string]any{}
	for _, r := range rest["resource"].([]any) {
		rm := r.(map[string]any)
		types[rm["type"].(string)] = rm
	}
	for _, ti := range fhir.Types() {
		res, ok := types[ti.Name]
		if !ok {
			t.Errorf("served type %s missing from the CapabilityStatement", ti.Name)
			continue
		}
		params := map[string]bool{}
		for _, sp := range res["searchParam"].([]any) {
			params[sp.(map[string]any)["name"].(string)] = true
		}
		for _, sp := range ti.Params {
			if !params[sp.Code] {
				t.Errorf("%s search parameter %s missing", ti.Name, sp.Code)
			}
		}
	}
	if len(types) != len(fhir.Types()) {
		t.Errorf("CapabilityStatement lists %d types, the registry serves %d", len(types), len(fhir.Types()))
	}
	// Every advertised interaction answers with something other than 404/405 on a real request.
	id := ts.create("Patient", patient("Cap", ""))
	probe := map[string]struct{ method, path string }{
		"read": {"GET", "/Patient/" + id}, "vread": {"GET", "/Patient/" + id + "/_history/1"},
		"update": {"PUT", "/Patient/" + id}, "patch": {"PATCH", "/Patient/" + id}, "delete": {"DELETE", "/Patient/nope"},
		"history-instance": {"GET", "/Patient/" + id + "/_history"}, "history-type": {"GET", "/Patient/_history"},
		"create": {"POST", "/Patient"}, "search-type": {"GET", "/Patient"},
	}
	for _, in := range types["Patient"]["interaction"].([]any) {
		code := in.(map[string]any)["code"].(string)
		p, ok := probe[code]
		if !ok {
			t.Errorf("advertised interaction %s has no probe", code)
			continue
		}
		if r := ts.do(p.method, p.path, nil, nil); r.Status == 405 || (r.Status == 404 && code != "delete") {
			t.Errorf("advertised %s answered %d", code, r.Status)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ts := newTestServerOn(t, st)
	ts.mustStatus(ts.get("/healthz", nil), 200)
	ts.mustStatus(ts.get("/readyz", nil), 200)
	if r := ts.get("/metrics", metricsHeader); r.Status != 200 || !strings.Contains(string(r.Body), "gpfhir_http_requests_total") {
		t.Errorf("/metrics: %d %.200s", r.Status, r.Body)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	ts.mustStatus(ts.get("/readyz", nil), http.StatusServiceUnavailable)
	ts.mustStatus(ts.get("/healthz", nil), 200)
}

// failingStore wraps the real store and injects failures, the one place where a fake part is the point.
type failingStore struct {
	audit.Backend
	getErr   error
	applyErr error
}

func (f *failingStore) Get(ctx context.Context, typ, id string) (store.Resource, error) {
	if f.getErr != nil {
		return store.Resource{}, f.getErr
	}
	return f.Backend.Get(ctx, typ, id)
}

func (f *failingStore) Apply(ctx context.Context, w []store.Write) error {
	if f.applyErr != nil {
		return f.applyErr
	}
	return f.Backend.Apply(ctx, w)
}

// ApplyAudited fails writes as Apply does; the audit records of reads (no writes) still go through.
func (f *failingStore) ApplyAudited(ctx context.Context, w []store.Write, recs []audit.Record) error {
	if f.applyErr != nil && len(w) > 0 {
		return f.applyErr
	}
	return f.Backend.ApplyAudited(ctx, w, recs)
}

func TestInternalErrorsShowOnlyTheRequestID(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fs := &failingStore{Backend: st, getErr: errors.New("disk on fire at /var/secret/path")}
	ts := newTestServerOn(t, fs)
	r := ts.mustStatus(ts.do("GET", "/Patient/x", nil, header{"X-Request-ID": "req-500"}), http.StatusInternalServerError)
	if strings.Contains(string(r.Body), "disk on fire") || strings.Contains(string(r.Body), "goroutine") {
		t.Errorf("internal detail leaked: %s", r.Body)
	}
	if d := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "internal error") || !strings.Contains(d, "req-500") {
		t.Errorf("diagnostics %q must say internal error and give the request id", d)
	}
	if !strings.Contains(ts.logs.String(), "disk on fire") {
		t.Errorf("the detail must reach the log")
	}

	fs.getErr = store.ErrUnavailable
	ts.mustStatus(ts.do("GET", "/Patient/x", nil, nil), http.StatusServiceUnavailable).issue(t)

	// A compare-and-swap race that never settles ends in 409 rather than looping.
	fs.getErr, fs.applyErr = nil, store.ErrVersionConflict
	r = ts.mustStatus(ts.do("PUT", "/Patient/x", withID(patient("C", ""), "x"), nil), http.StatusConflict)
	if r.issue(t)["code"] != "conflict" {
		t.Errorf("409 issue: %s", r.Body)
	}
}

// An answer whose whole body is known says its length: sent chunked instead (net/http's choice for
// anything past 2 KiB written without one), the 118 KB CapabilityStatement cost twice its bytes to serve.
func TestAnswersSayTheirLength(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 12; i++ {
		ts.create("Patient", patient(fmt.Sprintf("Length%02d", i), ""))
	}
	for _, path := range []string{"/metadata", "/metadata?_pretty=true", "/Patient?family:contains=Length&_count=12"} {
		// Asked for as it is: the Go transport would ask for gzip, unpack /metadata, and drop the length
		// it came with (TestMetadataIsGzippedForClientsThatAcceptIt checks that one).
		r := ts.mustStatus(ts.get(path, header{"Accept-Encoding": "identity"}), 200)
		if len(r.Body) < 4096 {
			t.Fatalf("%s: a %d-byte answer does not show the length of a large one", path, len(r.Body))
		}
		if got := r.Header.Get("Content-Length"); got != strconv.Itoa(len(r.Body)) {
			t.Errorf("%s: Content-Length %q for a body of %d bytes", path, got, len(r.Body))
		}
	}
}
