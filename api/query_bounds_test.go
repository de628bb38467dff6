package api_test

import (
	"net/http"
	"strings"
	"testing"
)

// A query string that does not parse is refused, never run without the filters it lost: that would
// answer with everything the caller may see.
func TestMalformedQueryStringsAreRefused(t *testing.T) {
	ts := newTestServer(t)
	ts.create("Patient", patient("Keep", ""))
	ts.create("Patient", patient("Other", ""))
	many := strings.Repeat("family=x&", 10_000) + "family=x"
	tests := []struct {
		name   string
		method string
		path   string
		h      header
		status int
		code   string
		says   string
	}{
		{"a bad percent escape", "GET", "/Patient?family=%zz", nil, 400, "value", "not a valid query string"},
		{"a semicolon separator", "GET", "/Patient?_id=a;b", nil, 400, "value", "not a valid query string"},
		{"under handling=strict too", "GET", "/Patient?family=%zz", header{"Prefer": "handling=strict"}, 400, "value", "not a valid query string"},
		{"10,001 repeated parameters", "GET", "/Patient?" + many, nil, 400, "too-costly", "at most 200"},
		{"a bad escape in history", "GET", "/Patient/_history?_count=%zz", nil, 400, "value", "not a valid query string"},
		{"a bad escape in a conditional delete", "DELETE", "/Patient?family=%zz", nil, 400, "value", "the conditional delete URL is not a valid query string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, nil, tt.h)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Body)
			}
			is := r.issue(t)
			if is["code"] != tt.code || !strings.Contains(is["diagnostics"].(string), tt.says) {
				t.Errorf("issue %v, want code %s saying %q", is, tt.code, tt.says)
			}
		})
	}
	// The refused conditional delete deleted nothing.
	if n := len(bundleIDs(t, ts.mustStatus(ts.do("GET", "/Patient", nil, nil), 200))); n != 2 {
		t.Errorf("%d patients stored, want 2", n)
	}
}

// Searches up to the stated bounds run; past them they get a 400 naming the bound, never a 500 from the
// store.
func TestLargeSearchesRunOrAreRefusedWithTheLimit(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Bound", ""))
	ids := func(n int) string {
		out := make([]string, n)
		for i := range out {
			out[i] = "no-such-" + strings.Repeat("x", i%7) + string(rune('a'+i%26))
		}
		out[n-1] = id
		return strings.Join(out, ",")
	}
	repeat := func(param string, n int) string {
		return strings.TrimSuffix(strings.Repeat(param+"&", n), "&")
	}
	has := "_has:Immunization:patient:status=completed"
	tests := []struct {
		name   string
		path   string
		status int
		says   string
	}{
		{"100 OR values", "/Patient?_id=" + ids(100), 200, ""},
		{"101 OR values", "/Patient?_id=" + ids(101), 400, "at most 100"},
		{"30,000 _id values", "/Patient?_id=" + ids(30_000), 400, "at most 100"},
		{"a parameter repeated 20 times", "/Patient?" + repeat("family=Bound", 20), 200, ""},
		{"a parameter repeated 21 times", "/Patient?" + repeat("family=Bound", 21), 400, "at most 20 times"},
		{"999 repeats", "/Patient?" + repeat("family=Bound", 999), 400, "at most 200"},
		{"20 repeats of 100 OR values", "/Patient?" + repeat("_id="+ids(100), 20), 200, ""},
		{"5 _has", "/Patient?" + repeat(has, 5), 200, ""},
		{"6 _has", "/Patient?" + repeat(has, 6), 400, "at most 5"},
		{"2,000 _has", "/Patient?" + repeat(has, 2000), 400, "at most 200"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do("GET", tt.path, nil, nil)
			if r.Status != tt.status {
				t.Fatalf("status %d, want %d: %.300s", r.Status, tt.status, r.Body)
			}
			if tt.status != http.StatusOK {
				is := r.issue(t)
				if is["code"] != "too-costly" || !strings.Contains(is["diagnostics"].(string), tt.says) {
					t.Errorf("issue %v, want too-costly saying %q", is, tt.says)
				}
			}
		})
	}
}
