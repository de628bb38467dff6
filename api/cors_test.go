package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/api"
)

func corsOrigins(loopback bool, origins ...string) serverOption {
	return func(c *apiConfig) { c.CORSOrigins, c.CORSLoopback = origins, loopback }
}

func preflight(origin, method, headers string) header {
	return header{"Authorization": "", "Origin": origin, "Access-Control-Request-Method": method,
		"Access-Control-Request-Headers": headers}
}

func TestCORSPreflightOnFHIRPathsListsTheFHIRHeaders(t *testing.T) {
	ts := newTestServer(t, corsOrigins(false, "https://app.example.org"))
	for _, path := range []string{"/Patient", "/Patient/abc", "/Appointment/abc/_history/2", "/Patient/$match", "/", "/metadata", "/.well-known/smart-configuration"} {
		r := ts.do("OPTIONS", path, nil, preflight("https://app.example.org", "PUT", "authorization,content-type,if-match"))
		if r.Status != http.StatusNoContent {
			t.Fatalf("preflight %s: status %d, want 204: %s", path, r.Status, r.Body)
		}
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.org" {
			t.Errorf("preflight %s: Allow-Origin %q", path, got)
		}
		for _, h := range []string{"Authorization", "Content-Type", "If-Match", "If-None-Match", "If-None-Exist", "If-Modified-Since", "Prefer", "X-Request-ID", "Accept"} {
			if !strings.Contains(r.Header.Get("Access-Control-Allow-Headers"), h) {
				t.Errorf("preflight %s: Allow-Headers %q lacks %s", path, r.Header.Get("Access-Control-Allow-Headers"), h)
			}
		}
		for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			if !strings.Contains(r.Header.Get("Access-Control-Allow-Methods"), m) {
				t.Errorf("preflight %s: Allow-Methods %q lacks %s", path, r.Header.Get("Access-Control-Allow-Methods"), m)
			}
		}
		if r.Header.Get("Access-Control-Max-Age") == "" || !strings.Contains(strings.Join(r.Header.Values("Vary"), ","), "Origin") {
			t.Errorf("preflight %s: Max-Age %q, Vary %q", path, r.Header.Get("Access-Control-Max-Age"), r.Header.Values("Vary"))
		}
		if r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("preflight %s: Allow-Credentials sent; bearer tokens need none", path)
		}
	}
}

func TestCORSActualRequestExposesFHIRHeadersToAnAllowedOrigin(t *testing.T) {
	ts := newTestServer(t, corsOrigins(false, "https://App.Example.org/"))
	id := ts.create("Patient", patient("Cors", validNHS))
	r := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, header{"Origin": "https://app.example.org"}), 200)
	if got := r.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example.org" {
		t.Errorf("Allow-Origin %q", got)
	}
	for _, h := range []string{"ETag", "Location", "Content-Location", "X-Request-ID", "X-Progress", "Last-Modified", "WWW-Authenticate", "Retry-After"} {
		if !strings.Contains(r.Header.Get("Access-Control-Expose-Headers"), h) {
			t.Errorf("Expose-Headers %q lacks %s", r.Header.Get("Access-Control-Expose-Headers"), h)
		}
	}
	// A refusal is readable too, so that the app can show the OperationOutcome.
	r = ts.do("GET", "/Patient/"+id, nil, header{"Origin": "https://app.example.org", "Authorization": "Bearer not-a-token"})
	if r.Status != http.StatusUnauthorized || r.Header.Get("Access-Control-Allow-Origin") != "https://app.example.org" {
		t.Errorf("401: status %d, Allow-Origin %q", r.Status, r.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSRefusesOriginsNotAllowed(t *testing.T) {
	ts := newTestServer(t, corsOrigins(false, "https://app.example.org"))
	r := ts.do("OPTIONS", "/Patient", nil, preflight("https://evil.example", "GET", "authorization"))
	if r.Status != http.StatusForbidden {
		t.Fatalf("preflight from a stranger: status %d, want 403", r.Status)
	}
	if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "https://evil.example") || !strings.Contains(d, "--cors-origin") {
		t.Errorf("the refusal does not name the origin and the flag: %q", d)
	}
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a refused preflight carries Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	r = ts.mustStatus(ts.do("GET", "/metadata", nil, header{"Origin": "https://evil.example"}), 200)
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a stranger's request carries Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
	// Loopback origins are allowed only with --dev.
	r = ts.do("OPTIONS", "/Patient", nil, preflight("http://127.0.0.1:5173", "GET", "authorization"))
	if r.Status != http.StatusForbidden {
		t.Errorf("loopback origin without --dev: status %d, want 403", r.Status)
	}
}

func TestCORSWildcardOpensOnlyThePublicDocuments(t *testing.T) {
	ts := newTestServer(t, corsOrigins(false, "*"))
	for _, path := range []string{"/metadata", "/.well-known/smart-configuration"} {
		r := ts.mustStatus(ts.do("GET", path, nil, header{"Origin": "https://any.example", "Authorization": ""}), 200)
		if got := r.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Allow-Origin %q, want *", path, got)
		}
		if r.Header.Get("Access-Control-Allow-Credentials") != "" {
			t.Errorf("%s: * with Allow-Credentials", path)
		}
	}
	r := ts.do("OPTIONS", "/Patient", nil, preflight("https://any.example", "GET", "authorization"))
	if r.Status != http.StatusForbidden {
		t.Errorf("preflight on a FHIR data path under *: status %d, want 403", r.Status)
	}
	if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "wildcard") {
		t.Errorf("the refusal does not explain the wildcard: %q", d)
	}
	r = ts.do("GET", "/Patient", nil, header{"Origin": "https://any.example"})
	if r.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("a data request under * carries Allow-Origin %q", r.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestCORSDevAllowsLoopbackOrigins(t *testing.T) {
	ts := newTestServer(t, corsOrigins(true))
	for _, o := range []string{"http://127.0.0.1:5173", "http://localhost:3000", "http://[::1]:8000"} {
		r := ts.do("OPTIONS", "/Patient", nil, preflight(o, "GET", "authorization"))
		if r.Status != http.StatusNoContent || r.Header.Get("Access-Control-Allow-Origin") != o {
			t.Errorf("%s: status %d, Allow-Origin %q", o, r.Status, r.Header.Get("Access-Control-Allow-Origin"))
		}
	}
	for _, o := range []string{"http://127.0.0.1.evil.example", "http://localhost.evil.example:80"} {
		if r := ts.do("OPTIONS", "/Patient", nil, preflight(o, "GET", "authorization")); r.Status != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", o, r.Status)
		}
	}
}

func TestCapabilityStatementClaimsCORSOnlyWhenSomeOriginIsAllowed(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  serverOption
		want bool
	}{
		{"none", corsOrigins(false), false},
		{"listed", corsOrigins(false, "https://app.example.org"), true},
		{"dev", corsOrigins(true), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := newTestServer(t, tc.opt)
			cs := ts.mustStatus(ts.do("GET", "/metadata", nil, bearer("")), 200).JSON(t)
			sec, _ := cs["rest"].([]any)[0].(map[string]any)["security"].(map[string]any)
			if got, _ := sec["cors"].(bool); got != tc.want {
				t.Errorf("rest.security.cors = %v, want %v", sec["cors"], tc.want)
			}
			r := ts.do("OPTIONS", "/Patient", nil, preflight("https://x.example", "GET", ""))
			if !tc.want && r.Status != http.StatusForbidden {
				t.Errorf("without origins a preflight is answered %d, want 403", r.Status)
			}
		})
	}
}

func TestCORSRejectsMalformedOrigins(t *testing.T) {
	for _, o := range []string{"app.example.org", "https://app.example.org/path", "ftp://x", "https://u@x.example"} {
		if _, err := api.NormalizeOrigin(o); err == nil || !strings.Contains(err.Error(), o) {
			t.Errorf("origin %q: err %v, want a refusal naming it", o, err)
		}
	}
}

// A browser app that is throttled can read the refusal and when to try again; its preflights are not
// what uses up the allowance.
func TestCORSThrottledAnswersAreReadableByTheApp(t *testing.T) {
	ts := newTestServer(t, corsOrigins(false, "https://app.example.org"), withLimits(api.Limits{AnonymousRate: 1, AnonymousBurst: 2}))
	for range 5 {
		ts.mustStatus(ts.do("OPTIONS", "/Patient", nil, preflight("https://app.example.org", "GET", "authorization")), http.StatusNoContent)
	}
	var throttled *response
	for i := range 6 {
		r := ts.do("GET", "/Patient", nil, header{"Authorization": "", "Origin": "https://app.example.org"})
		if r.Status == http.StatusTooManyRequests {
			if i < 2 {
				t.Fatalf("request %d was throttled: the preflights used up the allowance", i+1)
			}
			throttled = r
			break
		}
	}
	if throttled == nil {
		t.Fatal("no 429 after the allowance")
	}
	if throttled.Header.Get("Access-Control-Allow-Origin") != "https://app.example.org" ||
		!strings.Contains(throttled.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Errorf("a 429 the app cannot read: Allow-Origin %q, Expose-Headers %q",
			throttled.Header.Get("Access-Control-Allow-Origin"), throttled.Header.Get("Access-Control-Expose-Headers"))
	}
}
