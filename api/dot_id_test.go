package api_test

import (
	"testing"
)

// Ids made only of dots are path segments to every URL resolver on the way, so they are refused, and
// nothing is stored under them.
func TestIdsMadeOnlyOfDotsAreRefused(t *testing.T) {
	ts := newTestServer(t)
	for _, id := range []string{"...", "...."} {
		t.Run(id, func(t *testing.T) {
			body := patient("Dots", "")
			body["id"] = id
			r := ts.do("PUT", "/Patient/"+id, body, nil)
			if r.Status != 400 {
				t.Fatalf("status %d, want 400: %s", r.Status, r.Body)
			}
			if c := r.issue(t)["code"]; c != "value" {
				t.Errorf("code %v, want value", c)
			}
		})
	}
	// In a transaction too.
	body := patient("Dots", "")
	body["id"] = "..."
	ts.mustStatus(ts.do("POST", "/", txBundle("transaction", obj{"resource": body, "request": obj{"method": "PUT", "url": "Patient/..."}}), nil), 400)
	if n := len(bundleIDs(t, ts.mustStatus(ts.do("GET", "/Patient", nil, nil), 200))); n != 0 {
		t.Errorf("%d patients stored, want 0", n)
	}
	// A dot inside an id is still allowed.
	ok := patient("Dot", "")
	ok["id"] = "a.b"
	ts.mustStatus(ts.do("PUT", "/Patient/a.b", ok, nil), 201)
}
