package api_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
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

// slowPost sends a create over a raw connection, headers and the first bytes of the body at once (so that
// the server is certainly serving it), and returns a function that sends the rest and reads the answer.
func slowPost(t *testing.T, ts *testServer, body []byte) (finish func() int, early func() string) {
	t.Helper()
	u, _ := url.Parse(ts.URL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	head := fmt.Sprintf("POST /Patient HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/fhir+json\r\nContent-Length: %d\r\n\r\n",
		u.Host, ts.token, len(body))
	if _, err := conn.Write(append([]byte(head), body[:10]...)); err != nil {
		t.Fatal(err)
	}
	early = func() string {
		// What the server answered before the body was complete, if anything.
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		defer conn.SetReadDeadline(time.Time{})
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			return "no answer yet (" + err.Error() + ")"
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return fmt.Sprintf("%d %s", resp.StatusCode, b)
	}
	finish = func() int {
		if _, err := conn.Write(body[10:]); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	return finish, early
}

// With every in-flight slot taken, a request waits QueueWait and then gets 503 with Retry-After.
func TestInFlightBoundAnswers503(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{MaxInFlight: 1, QueueWait: 20 * time.Millisecond}))
	// The server discovers the token issuer's keys on its first request; that is done before the slot is
	// held, so that the slow request waits in its body, not in discovery.
	ts.mustStatus(ts.get("/Patient?_count=1", nil), 200)
	// The slow upload holds the only slot while its body trickles in. Under load the request before it
	// can still hold the slot when the upload arrives (its answer reaches the client a moment before the
	// slot is given back), and then the upload itself is refused 503 after QueueWait: the server says so
	// only once the body is complete. That is the bound working, so the upload is tried again.
	var finish func() int
	var r *response
	for attempt := 1; ; attempt++ {
		f, early := slowPost(t, ts, mustJSON(t, patient("Slow", validNHS)))
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if r = ts.get("/Patient?_count=1", nil); r.Status == http.StatusServiceUnavailable {
				break
			}
		}
		if r.Status == http.StatusServiceUnavailable {
			finish = f
			break
		}
		desc := early()
		if code := f(); code != http.StatusServiceUnavailable || attempt == 5 {
			t.Fatalf("attempt %d: a request with the only slot taken: %d %s (the slow request: %s, then %d)", attempt, r.Status, r.Body, desc, code)
		}
	}
	if r.Header.Get("Retry-After") == "" || !strings.Contains(string(r.Body), "retry shortly") {
		t.Fatalf("a request with the only slot taken: %d %s %v", r.Status, r.Body, r.Header)
	}
	if code := finish(); code != http.StatusCreated {
		t.Fatalf("the slow request: %d, want 201", code)
	}
	ts.mustStatus(ts.get("/Patient?_count=1", nil), 200)
}

// A request that runs past the timeout is stopped and answered 503; its write is not made.
func TestRequestTimeoutStopsTheRequest(t *testing.T) {
	ts := newTestServer(t, withLimits(api.Limits{RequestTimeout: 100 * time.Millisecond}))
	finish, _ := slowPost(t, ts, mustJSON(t, patient("Late", validNHS)))
	time.Sleep(300 * time.Millisecond)
	if code := finish(); code != http.StatusServiceUnavailable {
		t.Fatalf("a request past its timeout: %d, want 503", code)
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
