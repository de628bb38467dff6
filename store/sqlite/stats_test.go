package sqlite

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// A store closed while nearly empty left planner statistics saying history held one row; reopened and
// filled, it joined current to history by scanning history for every row (23 s for a page of 1,000 in
// an export of the Synthea sample). The join must go through history's key whatever the store held when
// it was last closed.
func TestStatisticsOfASmallStoreDoNotMisleadThePlanner(t *testing.T) {
	dir := t.TempDir()
	put := func(s *Store, typ, id string, n int) {
		w := store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: time.UnixMilli(int64(n + 1)).UTC(),
			Body: []byte(`{"resourceType":"` + typ + `"}`)}}
		if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	put(s, "Patient", "p0", 0)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if s, err = Open(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 2000 {
		put(s, "Immunization", fmt.Sprintf("i%d", i), i)
	}
	rows, err := s.r.Query(`EXPLAIN QUERY PLAN SELECT h.body FROM current c
		JOIN history h ON h.type = c.type AND h.id = c.id AND h.version = c.version
		WHERE c.type = 'Immunization' ORDER BY c.last_updated LIMIT 1000`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	for _, step := range plan {
		if strings.HasPrefix(step, "SCAN h") {
			t.Fatalf("the join scans history for every row of current: %q", plan)
		}
	}
	hits, err := s.Search(t.Context(), store.Query{Type: "Immunization", Limit: 1000})
	if err != nil || len(hits) != 1000 {
		t.Fatalf("search: %d hits, %v", len(hits), err)
	}
}
