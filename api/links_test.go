package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/api"
)

// TestPagingLinksHaveNoEmptyQuery: a search or history with no parameters has a self link without a
// bare "?", and its next link starts its query with the cursor (no "?&"), and still works.
func TestPagingLinksHaveNoEmptyQuery(t *testing.T) {
	ts := newTestServer(t, func(c *api.Config) { c.DefaultCount = 2 })
	var ids []string
	for _, family := range []string{"Links", "Links", "Links"} {
		ids = append(ids, ts.create("Patient", patient(family, "")))
	}
	for _, path := range []string{"/Patient", "/Patient/_history", "/_history", "/Patient/" + ids[0] + "/_history"} {
		t.Run(path, func(t *testing.T) {
			b := ts.mustStatus(ts.get(path, nil), http.StatusOK).JSON(t)
			self := link(b, "self")
			if self != ts.URL+path {
				t.Errorf("self link %q, want %q", self, ts.URL+path)
			}
			next := link(b, "next")
			if path == "/Patient/"+ids[0]+"/_history" {
				return // one version: no next page
			}
			if !strings.HasPrefix(next, ts.URL+path+"?_cursor=") {
				t.Fatalf("next link %q, want %s?_cursor=...", next, ts.URL+path)
			}
			page2 := ts.mustStatus(ts.get(next, nil), http.StatusOK).JSON(t)
			if len(entryIDs(t, page2)) == 0 {
				t.Errorf("the next link %q served an empty page", next)
			}
		})
	}
}
