package api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/auth/devidp"
)

func withLimits(l api.Limits) serverOption {
	return func(c *api.Config) { c.Limits = l }
}

// A flood of token-less requests from one address is refused with 429 before it costs audit writes; the
// requests within the allowance are still answered (401) and audited, and other callers are unaffected.
func TestAnonymousFloodIsThrottledBeforeItIsAudited(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{AnonymousRate: 1, AnonymousBurst: 5}))
	before := ts.committed()
	statuses := map[int]int{}
	var throttled *response
	for range 40 {
		r := ts.get("/Patient", header{"Authorization": ""})
		statuses[r.Status]++
		if r.Status == http.StatusTooManyRequests && throttled == nil {
			throttled = r
		}
	}
	if statuses[401] != 5 || statuses[429] != 35 {
		t.Fatalf("40 token-less requests with a burst of 5: got %v, want 5×401 and 35×429", statuses)
	}
	if ra := throttled.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("429 without a usable Retry-After: %q", ra)
	}
	if !strings.Contains(string(throttled.Body), `"code":"throttled"`) || !strings.Contains(string(throttled.Body), "too many requests") {
		t.Errorf("429 body: %s", throttled.Body)
	}
	if got := ts.committed() - before; got != 5 {
		t.Errorf("the flood wrote %v audit records; want 5 (the 401s within the allowance only)", got)
	}
	// Health checks and the CapabilityStatement are never throttled; a caller with a token has a
	// bucket of its own.
	ts.mustStatus(ts.get("/healthz", header{"Authorization": ""}), 200)
	ts.mustStatus(ts.get("/metadata", header{"Authorization": ""}), 200)
	ts.mustStatus(ts.get("/Patient?_count=1", nil), 200)
}

// One client over its rate gets 429; another client is served.
func TestClientRateLimitIsPerClient(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{ClientRate: 0.5, ClientBurst: 3}))
	for range 3 {
		ts.mustStatus(ts.get("/Patient?_count=1", nil), 200)
	}
	r := ts.get("/Patient?_count=1", nil)
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" {
		t.Fatalf("fourth request over a burst of 3: %d %s (Retry-After %q)", r.Status, r.Body, r.Header.Get("Retry-After"))
	}
	other := ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs")
	ts.mustStatus(ts.get("/Patient?_count=1", header{"Authorization": "Bearer " + other}), 200)
}

// With every in-flight slot taken, a request waits QueueWait and then gets 503 with Retry-After.
func TestInFlightBoundAnswers503(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{MaxInFlight: 1, QueueWait: 20 * time.Millisecond}))
	pr, pw := io.Pipe()
	// Before the server's own cleanup, which waits for the request to end.
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	held := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", ts.URL+"/Patient", pr)
		req.Header.Set("Authorization", "Bearer "+ts.token)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			held <- 0
			return
		}
		resp.Body.Close()
		held <- resp.StatusCode
	}()
	// The slow upload holds the only slot while its body trickles in.
	raw := mustJSON(t, patient("Slow", validNHS))
	if _, err := pw.Write(raw[:10]); err != nil {
		t.Fatal(err)
	}
	var r *response
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if r = ts.get("/Patient?_count=1", nil); r.Status == http.StatusServiceUnavailable {
			break
		}
	}
	if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "retry shortly") {
		t.Fatalf("a request with the only slot taken: %d %s", r.Status, r.Body)
	}
	if _, err := pw.Write(raw[10:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if code := <-held; code != http.StatusCreated {
		t.Fatalf("the slow request: %d, want 201", code)
	}
	ts.mustStatus(ts.get("/Patient?_count=1", nil), 200)
}

// A request that runs past the timeout is stopped and answered 503; its write is not made.
func TestRequestTimeoutStopsTheRequest(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{RequestTimeout: 100 * time.Millisecond}))
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(io.ErrUnexpectedEOF) })
	raw := mustJSON(t, patient("Late", validNHS))
	go func() {
		_, _ = pw.Write(raw[:10])
		time.Sleep(300 * time.Millisecond)
		_, _ = pw.Write(raw[10:])
		pw.Close()
	}()
	req, _ := http.NewRequest("POST", ts.URL+"/Patient", pr)
	req.Header.Set("Authorization", "Bearer "+ts.token)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "longer than this server allows") {
		t.Fatalf("a request past its timeout: %d %s", resp.StatusCode, body)
	}
	r := ts.mustStatus(ts.get("/Patient?family=Late&_summary=count", nil), 200)
	if !strings.Contains(string(r.Body), `"total":0`) {
		t.Fatalf("the timed-out create was stored: %s", r.Body)
	}
}

// Every answer says it must not be cached and must not be sniffed; /metrics needs its token.
func TestHygieneHeadersAndProtectedMetrics(t *testing.T) {
	ts := newTestServer(t)
	for _, path := range []string{"/Patient?_count=1", "/metadata", "/Patient/nope"} {
		r := ts.get(path, nil)
		if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: Cache-Control %q, X-Content-Type-Options %q", path, r.Header.Get("Cache-Control"), r.Header.Get("X-Content-Type-Options"))
		}
		if r.Header.Get("Server") != "" {
			t.Errorf("%s: Server header %q tells what runs", path, r.Header.Get("Server"))
		}
	}
	if r := ts.get("/metrics", header{"Authorization": ""}); r.Status != 401 {
		t.Errorf("/metrics without a token: %d, want 401", r.Status)
	}
	if r := ts.get("/metrics", nil); r.Status != 401 {
		t.Errorf("/metrics with an API token instead of the metrics token: %d, want 401", r.Status)
	}
	r := ts.mustStatus(ts.get("/metrics", metricsHeader), 200)
	if !strings.Contains(string(r.Body), "gpfhir_http_requests_total") {
		t.Errorf("/metrics: %.200s", r.Body)
	}
	off := newTestServer(t, func(c *api.Config) { c.MetricsToken = "" })
	if r := off.get("/metrics", metricsHeader); r.Status != 404 {
		t.Errorf("/metrics with no metrics token configured: %d, want 404 (served on --metrics-addr only)", r.Status)
	}
}
