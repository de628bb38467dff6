package api_test

import (
	"net/url"
	"strings"
	"testing"
)

// A page as large as --max-count allows still gets its includes: the page's references are looked up in
// chunks, not in one query the store cannot take.
func TestIncludesOfALargePageAreFound(t *testing.T) {
	ts := newTestServer(t)
	sched := ts.create("Schedule", obj{"resourceType": "Schedule", "active": true,
		"actor": arr{ref("Location", ts.create("Location", obj{"resourceType": "Location", "name": "Busy"}))}})
	ts.mustStatus(ts.do("POST", "/", txBundle("transaction", slotEntries(sched, 330)...), nil), 200)

	r := ts.mustStatus(ts.do("GET", "/Slot?_count=329&_include=Slot:schedule&schedule=Schedule/"+sched, nil, nil), 200)
	matches, included := 0, 0
	for _, e := range r.JSON(t)["entry"].([]any) {
		m := e.(map[string]any)
		switch m["search"].(map[string]any)["mode"] {
		case "match":
			matches++
		case "include":
			included++
			if id := m["resource"].(map[string]any)["id"]; id != sched {
				t.Errorf("included %v, want Schedule/%s", id, sched)
			}
		}
	}
	if matches != 329 || included != 1 {
		t.Errorf("%d matches and %d included, want 329 and 1", matches, included)
	}

	// 500 copies of one _include are one include: the self link names it once.
	rev := ts.mustStatus(ts.do("GET", "/Schedule?_id="+sched+"&"+strings.TrimSuffix(strings.Repeat("_revinclude=Slot:schedule&", 20), "&"), nil, nil), 200)
	for _, l := range rev.JSON(t)["link"].([]any) {
		lm := l.(map[string]any)
		if lm["relation"] != "self" {
			continue
		}
		u, err := url.Parse(lm["url"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if n := len(u.Query()["_revinclude"]); n != 1 {
			t.Errorf("self link names _revinclude %d times, want once: %s", n, lm["url"])
		}
	}
}
