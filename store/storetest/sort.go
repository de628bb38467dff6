package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// sortPatient models one resource of the sort dataset, so that expected orders are computed rather than
// written out. Family names are capitalised alike, so raw and normalised values sort the same way.
type sortPatient struct {
	id       string
	families []string
	births   []int64
	gender   string
	lu       int64
}

func (p sortPatient) index() []store.IndexEntry {
	var idx []store.IndexEntry
	for _, f := range p.families {
		idx = append(idx, str("family", f, strings.ToLower(f)))
	}
	for _, b := range p.births {
		idx = append(idx, period("birthdate", b, b+day))
	}
	if p.gender != "" {
		idx = append(idx, token("gender", gender, p.gender))
	}
	return idx
}

// key returns the resource's value for a sort parameter: nil when missing, else a string or an int64.
func (p sortPatient) key(param string) any {
	switch param {
	case store.ParamID:
		return p.id
	case store.ParamLastUpdated:
		return p.lu
	case "family":
		if len(p.families) == 0 {
			return nil
		}
		return strings.ToLower(slices.MinFunc(p.families, func(a, b string) int { return cmp.Compare(strings.ToLower(a), strings.ToLower(b)) }))
	case "birthdate":
		if len(p.births) == 0 {
			return nil
		}
		return slices.Min(p.births)
	case "gender":
		if p.gender == "" {
			return nil
		}
		return p.gender
	}
	panic("test bug: unknown sort parameter " + param)
}

func compareKey(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	switch a := a.(type) {
	case string:
		return cmp.Compare(a, b.(string))
	case int64:
		return cmp.Compare(a, b.(int64))
	}
	panic("test bug")
}

// sortOrder is the documented order: each key (missing first ascending), then the id ascending.
func sortOrder(keys []store.SortKey) func(a, b sortPatient) int {
	return func(a, b sortPatient) int {
		for _, k := range keys {
			c := compareKey(a.key(k.Param), b.key(k.Param))
			if k.Desc {
				c = -c
			}
			if c != 0 {
				return c
			}
		}
		return cmp.Compare(a.id, b.id)
	}
}

func expectedOrder(ps map[string]sortPatient, keys []store.SortKey, keep func(sortPatient) bool) []string {
	var list []sortPatient
	for _, p := range ps {
		if keep == nil || keep(p) {
			list = append(list, p)
		}
	}
	slices.SortFunc(list, sortOrder(keys))
	var ids []string
	for _, p := range list {
		ids = append(ids, p.id)
	}
	return ids
}

func testSort(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	y := func(year int) int64 { return ms(year, 1, 1) }
	patients := map[string]sortPatient{}
	add := func(p sortPatient) {
		r := w.put("Patient", p.id, p.index()...)
		p.lu = r.LastUpdated.UnixMilli()
		patients[p.id] = p
	}
	for _, p := range []sortPatient{
		{id: "s01", families: []string{"Brown"}, births: []int64{y(1990)}, gender: "male"},
		{id: "s02", families: []string{"Adams"}, gender: "female"},
		{id: "s03", births: []int64{y(1985)}, gender: "female"},
		{id: "s04", families: []string{"Zeta", "Alpha"}, births: []int64{y(2000), y(1970)}, gender: "male"},
		{id: "s05", families: []string{"Brown"}, births: []int64{y(1990)}, gender: "male"},
		{id: "s06"},
		{id: "s07", families: []string{"Carter"}, births: []int64{y(1985)}, gender: "other"},
		{id: "s08", families: []string{"Adams"}, births: []int64{y(1960)}, gender: "female"},
		{id: "s09", families: []string{"Dunn"}, births: []int64{y(1990)}, gender: "male"},
		{id: "s10", births: []int64{y(1975)}, gender: "female"},
		{id: "s11", families: []string{"Evans"}},
		{id: "s12", families: []string{"Brown"}, births: []int64{y(1980)}, gender: "female"},
	} {
		add(p)
	}
	// Written out of id order, so that lastUpdated order differs from id order.
	add(sortPatient{id: "s00", families: []string{"Young"}, births: []int64{y(1999)}, gender: "male"})
	w.put("Patient", "s13", str("family", "Aaron", "aaron"))
	w.del("Patient", "s13")

	female := func(p sortPatient) bool { return p.gender == "female" }
	asc := func(p string) store.SortKey { return store.SortKey{Param: p} }
	desc := func(p string) store.SortKey { return store.SortKey{Param: p, Desc: true} }
	// bornBefore1986 is kept by the clauses of later: a date range after a first clause, which a backend
	// may test on each page's candidates rather than list whole, so that paging must skip the rejected.
	bornBefore1986 := func(p sortPatient) bool {
		return p.gender != "" && slices.ContainsFunc(p.births, func(b int64) bool { return b < y(1986) })
	}
	later := []store.Clause{{pred("gender", store.MatchPresent)}, {rng("birthdate", store.Bound{Field: store.Low, Cmp: store.LT, Value: y(1986)})}}
	cases := []struct {
		name    string
		keys    []store.SortKey
		keep    func(sortPatient) bool
		clauses []store.Clause // instead of the female filter, when keep is set
	}{
		{"by string ascending, lowest of several values, missing first", []store.SortKey{asc("family")}, nil, nil},
		{"by string descending, missing last", []store.SortKey{desc("family")}, nil, nil},
		{"by date ascending uses the lowest low, missing first", []store.SortKey{asc("birthdate")}, nil, nil},
		{"by date descending", []store.SortKey{desc("birthdate")}, nil, nil},
		{"by token ascending", []store.SortKey{asc("gender")}, nil, nil},
		{"by token ascending then date descending", []store.SortKey{asc("gender"), desc("birthdate")}, nil, nil},
		{"by token descending then string ascending", []store.SortKey{desc("gender"), asc("family")}, nil, nil},
		{"by three keys", []store.SortKey{asc("gender"), asc("family"), desc("birthdate")}, nil, nil},
		{"by _lastUpdated descending", []store.SortKey{desc(store.ParamLastUpdated)}, nil, nil},
		{"by _lastUpdated ascending", []store.SortKey{asc(store.ParamLastUpdated)}, nil, nil},
		{"by _id descending", []store.SortKey{desc(store.ParamID)}, nil, nil},
		{"by date then _lastUpdated descending", []store.SortKey{asc("birthdate"), desc(store.ParamLastUpdated)}, nil, nil},
		{"no sort keys is id order", nil, nil, nil},
		{"with a filter", []store.SortKey{asc("family")}, female, nil},
		{"with a range after the first clause", []store.SortKey{asc("family")}, bornBefore1986, later},
		{"with a range after the first clause, by date descending", []store.SortKey{desc("birthdate")}, bornBefore1986, later},
	}
	query := func(keys []store.SortKey, keep func(sortPatient) bool, clauses []store.Clause) store.Query {
		q := store.Query{Type: "Patient", Sort: keys, Clauses: clauses}
		if keep != nil && clauses == nil {
			q.Clauses = []store.Clause{{tok("gender", gender, "female")}}
		}
		return q
	}
	for _, tc := range cases {
		want := expectedOrder(patients, tc.keys, tc.keep)
		t.Run(tc.name, func(t *testing.T) {
			hits, err := s.Search(ctx, query(tc.keys, tc.keep, tc.clauses))
			if err != nil {
				t.Fatal(err)
			}
			sameIDs(t, hitIDs(hits), want)
			for _, h := range hits {
				checkSortValues(t, h, tc.keys, patients[h.Resource.ID])
			}
		})
		for _, size := range []int{1, 3, 5} {
			t.Run(fmt.Sprintf("%s, paged by %d with After", tc.name, size), func(t *testing.T) {
				q := query(tc.keys, tc.keep, tc.clauses)
				q.Limit = size
				got := pageAll(t, s, q, nil)
				sameIDs(t, got, want)
			})
		}
	}

	t.Run("paging continues after the cursor while resources are created and deleted", func(t *testing.T) {
		keys := []store.SortKey{asc("family"), desc("birthdate")}
		q := store.Query{Type: "Patient", Sort: keys, Limit: 4}
		first, err := s.Search(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(first) != 4 {
			t.Fatalf("first page %v", hitIDs(first))
		}
		cursor := patients[first[3].Resource.ID]
		rest := expectedOrder(patients, keys, nil)[4:]

		// Between pages: the cursor's own resource and one not yet seen are deleted, one resource moves
		// before the cursor, and new ones appear on both sides of it.
		delete(patients, cursor.id)
		w.del("Patient", cursor.id)
		delete(patients, rest[2])
		w.del("Patient", rest[2])
		moved := patients[rest[3]]
		moved.families = []string{"Aardvark"}
		patients[moved.id] = moved
		w.put("Patient", moved.id, moved.index()...)
		add(sortPatient{id: "n1", families: []string{"Aa"}})
		add(sortPatient{id: "n2", families: []string{"Zz"}, births: []int64{y(1950)}})
		add(sortPatient{id: "n3", families: []string{cursor.families[0]}, births: cursor.births})

		after := sortOrder(keys)
		want := expectedOrder(patients, keys, func(p sortPatient) bool { return after(p, cursor) > 0 })
		q.After = first[3].SortValues
		got := pageAll(t, s, q, nil)
		sameIDs(t, got, want)
		for _, id := range hitIDs(first) {
			if slices.Contains(got, id) {
				t.Errorf("%s repeated after the first page", id)
			}
		}
	})
}

// pageAll follows After from q until a short page and returns every id, in order.
func pageAll(t *testing.T, s audit.Backend, q store.Query, seen []string) []string {
	t.Helper()
	for range 200 {
		hits, err := s.Search(t.Context(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(hits) > q.Limit {
			t.Fatalf("page of %d for limit %d", len(hits), q.Limit)
		}
		seen = append(seen, hitIDs(hits)...)
		if len(hits) < q.Limit {
			return seen
		}
		q.After = hits[len(hits)-1].SortValues
	}
	t.Fatal("paging did not end")
	return nil
}

// checkSortValues checks what the interface fixes about a Hit's position: one value per key plus the id
// last, integers for _lastUpdated and dates, the id for _id. How a missing value is encoded is the
// backend's business, as long as it pages (checked by the paging cases).
func checkSortValues(t *testing.T, h store.Hit, keys []store.SortKey, p sortPatient) {
	t.Helper()
	sv := h.SortValues
	if len(sv) != len(keys)+1 {
		t.Errorf("%s: %d sort values for %d keys, want keys+1", h.Resource.ID, len(sv), len(keys))
		return
	}
	if last := sv[len(sv)-1]; last.IsInt || last.Str != h.Resource.ID {
		t.Errorf("%s: last sort value %+v, want the id", h.Resource.ID, last)
	}
	for i, k := range keys {
		v := p.key(k.Param)
		switch k.Param {
		case store.ParamID:
			if sv[i].IsInt || sv[i].Str != p.id {
				t.Errorf("%s: _id sort value %+v", p.id, sv[i])
			}
		case store.ParamLastUpdated, "birthdate":
			if v != nil && (!sv[i].IsInt || sv[i].Int != v.(int64)) {
				t.Errorf("%s: %s sort value %+v, want int %d", p.id, k.Param, sv[i], v)
			}
		}
	}
}
