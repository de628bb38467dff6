package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

func historyOrder(a, b store.Resource) int {
	return cmp.Or(
		b.LastUpdated.Compare(a.LastUpdated),
		cmp.Compare(a.Type, b.Type),
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(b.VersionID, a.VersionID),
	)
}

func testHistory(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	// Several versions share a millisecond, so that the tie-breakers (type, id, version desc) decide.
	w.putAt(at(10), "Patient", "a")
	w.putAt(at(20), "Patient", "b")
	w.putAt(at(20), "Observation", "x")
	w.putAt(at(30), "Patient", "a")
	w.putAt(at(40), "Patient", "c")
	w.putAt(at(40), "Observation", "x")
	w.putAt(at(40), "Patient", "a")
	w.putAt(at(50), "Patient", "b")
	w.putAt(at(50), "Patient", "b")
	w.delAt(at(60), "Patient", "b")
	w.putAt(at(70), "Encounter", "e")
	w.delAt(at(80), "Patient", "a")
	all := slices.Clone(w.written)
	slices.SortStableFunc(all, historyOrder)

	expect := func(q store.HistoryQuery) []store.Resource {
		var out []store.Resource
		for _, r := range all {
			if (q.Type == "" || r.Type == q.Type) && (q.ID == "" || r.ID == q.ID) &&
				(q.Type != "" || len(q.Types) == 0 || slices.Contains(q.Types, r.Type)) &&
				(q.Since.IsZero() || !r.LastUpdated.Before(q.Since)) && (q.Before.IsZero() || r.LastUpdated.Before(q.Before)) {
				out = append(out, r)
			}
		}
		if q.Limit > 0 && len(out) > q.Limit {
			out = out[:q.Limit]
		}
		return out
	}
	check := func(t *testing.T, got, want []store.Resource) {
		t.Helper()
		if !slices.Equal(versions(got), versions(want)) {
			t.Fatalf("history =\n  %v\nwant\n  %v", versions(got), versions(want))
		}
		for i := range got {
			sameResource(t, fmt.Sprintf("history[%d]", i), got[i], want[i])
		}
	}

	cases := []struct {
		name string
		q    store.HistoryQuery
	}{
		{"system history lists every version of every type, newest first", store.HistoryQuery{}},
		{"type history lists that type only", store.HistoryQuery{Type: "Patient"}},
		{"instance history lists one resource, tombstones included", store.HistoryQuery{Type: "Patient", ID: "b"}},
		{"instance history of an unknown resource is empty", store.HistoryQuery{Type: "Patient", ID: "zzz"}},
		{"type history of an unknown type is empty", store.HistoryQuery{Type: "Nothing"}},
		{"since is inclusive", store.HistoryQuery{Since: at(40)}},
		{"before is exclusive", store.HistoryQuery{Before: at(40)}},
		{"since and before bound a window", store.HistoryQuery{Type: "Patient", Since: at(20), Before: at(50)}},
		{"limit keeps the newest", store.HistoryQuery{Limit: 4}},
		{"limit larger than the history returns all", store.HistoryQuery{Type: "Observation", Limit: 10}},
		{"limit applies after the filters", store.HistoryQuery{Type: "Patient", Since: at(20), Limit: 3}},
		{"types confine system history to those types", store.HistoryQuery{Types: []string{"Patient", "Encounter"}}},
		{"types with since, before and limit", store.HistoryQuery{Types: []string{"Observation", "Patient"}, Since: at(20), Before: at(80), Limit: 4}},
		{"types naming nothing stored give nothing", store.HistoryQuery{Types: []string{"Nothing"}}},
		{"types without AuditEvent on a store without audit records", store.HistoryQuery{Types: []string{store.AuditEventType}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.History(ctx, tc.q)
			if err != nil {
				t.Fatal(err)
			}
			check(t, got, expect(tc.q))
		})
	}

	pages := []struct {
		name string
		q    store.HistoryQuery
	}{
		{"system", store.HistoryQuery{}},
		{"type", store.HistoryQuery{Type: "Patient"}},
		{"instance", store.HistoryQuery{Type: "Patient", ID: "b"}},
		{"window", store.HistoryQuery{Since: at(20), Before: at(70)}},
		{"types", store.HistoryQuery{Types: []string{"Patient", "Observation"}}},
	}
	for _, tc := range pages {
		for _, size := range []int{1, 2, 3} {
			t.Run(fmt.Sprintf("paging %s history by %d with After gives every version exactly once", tc.name, size), func(t *testing.T) {
				var got []store.Resource
				q := tc.q
				q.Limit = size
				for range 100 {
					page, err := s.History(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) > size {
						t.Fatalf("page of %d for limit %d", len(page), size)
					}
					got = append(got, page...)
					if len(page) < size {
						break
					}
					last := page[len(page)-1]
					q.After = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
				}
				full := tc.q
				check(t, got, expect(full))
			})
		}
	}
	t.Run("types decide whether audit records are listed", func(t *testing.T) {
		rec := appendNew(t, s, auditRecord("hist-audit", 90, "R", "a"))[0]
		got, err := s.History(ctx, store.HistoryQuery{Types: []string{store.AuditEventType}})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Type != store.AuditEventType || got[0].ID != rec.ID {
			t.Fatalf("history of AuditEvent = %v, want the one record", versions(got))
		}
		got, err = s.History(ctx, store.HistoryQuery{Types: []string{"Patient", "Observation", "Encounter"}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, got, all)
		got, err = s.History(ctx, store.HistoryQuery{Types: []string{store.AuditEventType, "Encounter"}, Limit: 2})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0].ID != rec.ID || got[1].Type != "Encounter" {
			t.Fatalf("history of AuditEvent and Encounter = %v, want the record then Encounter/e", versions(got))
		}
		got, err = s.History(ctx, store.HistoryQuery{Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].ID != rec.ID {
			t.Fatalf("system history without types = %v, want the audit record first", versions(got))
		}
	})
	t.Run("after the oldest version there is nothing", func(t *testing.T) {
		oldest := all[len(all)-1]
		got, err := s.History(ctx, store.HistoryQuery{After: &store.HistoryPosition{LastUpdated: oldest.LastUpdated, Type: oldest.Type, ID: oldest.ID, VersionID: oldest.VersionID}})
		if err != nil {
			t.Fatal(err)
		}
		check(t, got, nil)
	})
}
