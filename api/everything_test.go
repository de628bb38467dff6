package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/online"
)

// everythingWorld is a patient with immunisations, an appointment (which references a Location and a
// Slot outside the compartment) and another patient whose record must never appear.
func everythingWorld(t *testing.T, ts *testServer) (*servicesWorld, []string) {
	t.Helper()
	w := newServicesWorld(t, ts)
	var imms []string
	for i := 0; i < 5; i++ {
		imms = append(imms, ts.create("Immunization", immunization(w.me, time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC))))
	}
	ts.create("Immunization", immunization(w.other, time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)))
	start := w.base.Add(72 * time.Hour)
	ts.create("Appointment", w.appointment(w.me, start, start.Add(10*time.Minute), w.slotFree))
	return w, imms
}

// everythingPages follows next links and returns every entry's Type/id with its search mode.
func everythingPages(t *testing.T, ts *testServer, path string, h header) (match, include []string, pages int, last *response) {
	t.Helper()
	for path != "" {
		r := ts.mustStatus(ts.do("GET", path, nil, h), 200)
		last = r
		pages++
		m := r.JSON(t)
		if m["type"] != "searchset" {
			t.Fatalf("not a searchset: %s", r.Body)
		}
		entries, _ := m["entry"].([]any)
		for _, e := range entries {
			e := e.(map[string]any)
			res := e["resource"].(map[string]any)
			mode := e["search"].(map[string]any)["mode"]
			key := res["resourceType"].(string) + "/" + str(res["id"])
			switch mode {
			case "match":
				match = append(match, key)
			case "include":
				include = append(include, key)
			}
		}
		path = ""
		for _, l := range m["link"].([]any) {
			l := l.(map[string]any)
			if l["relation"] == "next" {
				u, err := url.Parse(l["url"].(string))
				if err != nil {
					t.Fatal(err)
				}
				path = u.RequestURI()
			}
		}
		if pages > 50 {
			t.Fatal("more than 50 pages")
		}
	}
	return match, include, pages, last
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func TestPatientEverything(t *testing.T) {
	ts := newTestServer(t)
	w, imms := everythingWorld(t, ts)

	t.Run("GP system: compartment and references, paged", func(t *testing.T) {
		match, include, pages, _ := everythingPages(t, ts, "/Patient/"+w.me+"/$everything?_count=2", nil)
		if pages < 4 {
			t.Errorf("%d pages at _count=2 for 7 resources, want at least 4", pages)
		}
		want := append([]string{"Patient/" + w.me}, prefixed("Immunization/", imms)...)
		for _, k := range want {
			if !containsStr(match, k) {
				t.Errorf("%s missing from the matches %v", k, match)
			}
		}
		if n := countPrefix(match, "Appointment/"); n != 1 {
			t.Errorf("%d appointments, want 1: %v", n, match)
		}
		if n := countPrefix(match, "Immunization/"); n != 5 {
			t.Errorf("%d immunisations, want 5 (the other patient's excluded): %v", n, match)
		}
		for _, k := range []string{"Location/" + w.loc, "Slot/" + w.slotFree, "Organization/test-practice"} {
			if !containsStr(include, k) {
				t.Errorf("referenced %s missing from the includes %v", k, include)
			}
		}
		if containsStr(match, "Patient/"+w.other) {
			t.Errorf("another patient in the result")
		}
	})
	t.Run("_type and _since", func(t *testing.T) {
		match, _, _, _ := everythingPages(t, ts, "/Patient/"+w.me+"/$everything?_type=Immunization", nil)
		if len(match) != 5 || countPrefix(match, "Immunization/") != 5 {
			t.Errorf("_type=Immunization gives %v", match)
		}
		future := url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
		match, _, _, _ = everythingPages(t, ts, "/Patient/"+w.me+"/$everything?_since="+future, nil)
		if len(match) != 0 {
			t.Errorf("_since in the future gives %v", match)
		}
	})
	t.Run("patient token: own record, Patient/$everything", func(t *testing.T) {
		tok := bearer(ts.patientToken(w.meNHS, "P9", ""))
		match, _, _, _ := everythingPages(t, ts, "/Patient/$everything", tok)
		if !containsStr(match, "Patient/"+w.me) || countPrefix(match, "Immunization/") != 5 {
			t.Errorf("own $everything gives %v", match)
		}
		r := ts.do("GET", "/Patient/"+w.other+"/$everything", nil, tok)
		if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
			t.Errorf("another patient's $everything: status %d, want 403 or 404: %s", r.Status, r.Body)
		}
	})
	t.Run("summary level and redacted items: filtered as a search, with the notice", func(t *testing.T) {
		hidden := ts.create("Immunization", immunization(w.me, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC),
			online.SecurityLabelSystem, online.RedactedOnlineCode))
		w.setAccess(t, w.me, onlineAccess("summary", "2024-01-03", "none", "none"))
		tok := bearer(ts.patientToken(w.meNHS, "P9", ""))
		match, _, _, last := everythingPages(t, ts, "/Patient/"+w.me+"/$everything", tok)
		if containsStr(match, "Immunization/"+hidden) {
			t.Errorf("redacted immunisation shown")
		}
		if n := countPrefix(match, "Immunization/"); n != 3 {
			t.Errorf("%d immunisations at summary level from 2024-01-03, want 3: %v", n, match)
		}
		if !strings.Contains(string(last.Body), online.ConfidentialItemsCode) {
			t.Errorf("no withheld notice: %s", last.Body)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"_since=yesterday", "_type=Claim", "_count=0", "foo=bar"} {
			r := ts.do("GET", "/Patient/"+w.me+"/$everything?"+q, nil, nil)
			if r.Status != http.StatusBadRequest {
				t.Errorf("%s: status %d, want 400: %s", q, r.Status, r.Body)
			}
			r.issue(t)
		}
		if r := ts.do("GET", "/Patient/$everything", nil, nil); r.Status != http.StatusBadRequest {
			t.Errorf("GP system Patient/$everything without id: status %d, want 400", r.Status)
		}
		if r := ts.do("GET", "/Patient/nope/$everything", nil, nil); r.Status != http.StatusNotFound {
			t.Errorf("unknown patient: status %d, want 404", r.Status)
		}
	})
	t.Run("listed in the CapabilityStatement", func(t *testing.T) {
		r := ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200)
		if !strings.Contains(string(r.Body), "Patient-everything") {
			t.Errorf("$everything not in the CapabilityStatement")
		}
	})
}

func prefixed(p string, ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = p + id
	}
	return out
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func countPrefix(list []string, p string) int {
	n := 0
	for _, v := range list {
		if strings.HasPrefix(v, p) {
			n++
		}
	}
	return n
}
