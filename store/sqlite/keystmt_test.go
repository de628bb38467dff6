package sqlite

import (
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Look-ups by key run on whichever read connection is free, each with the statement prepared on it; more
// readers than connections all get their rows, the versions and tombstones as written, and Close closes
// every statement.
func TestKeyLookupsServeEveryReadConnection(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_123).UTC()
	var ws []store.Write
	for i := range 8 {
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Patient", ID: fmt.Sprint("p", i), VersionID: 1, LastUpdated: at,
			Body: []byte(fmt.Sprintf(`{"n":%d}`, i))}})
	}
	if err := s.Apply(t.Context(), ws); err != nil {
		t.Fatal(err)
	}
	del := store.Write{Resource: store.Resource{Type: "Patient", ID: "p0", VersionID: 2, LastUpdated: at, Deleted: true}, ExpectVersion: 1}
	if err := s.Apply(t.Context(), []store.Write{del}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for g := range 32 {
		wg.Go(func() {
			for j := range 40 {
				i := (g + j) % 8
				id := fmt.Sprint("p", i)
				r, err := s.Get(t.Context(), "Patient", id)
				switch {
				case err != nil:
					errs <- err
					return
				case i == 0 && (!r.Deleted || r.VersionID != 2 || r.Body != nil):
					errs <- fmt.Errorf("%s: want the tombstone, got %+v", id, r)
					return
				case i != 0 && (r.Deleted || r.VersionID != 1 || string(r.Body) != fmt.Sprintf(`{"n":%d}`, i) || !r.LastUpdated.Equal(at)):
					errs <- fmt.Errorf("%s: got %+v", id, r)
					return
				}
				old, err := s.GetVersion(t.Context(), "Patient", "p0", 1)
				if err != nil || old.Deleted || string(old.Body) != `{"n":0}` {
					errs <- fmt.Errorf("p0 version 1: %+v %v", old, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := s.Get(t.Context(), "Patient", "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing resource: %v", err)
	}
	if _, err := s.GetVersion(t.Context(), "Patient", "p1", 2); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a missing version: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Connections that database/sql discards (an interrupted statement, or the store discarding one itself)
// take their statements with them: reads and appends go on, on new connections, and the store closes
// cleanly. Statements kept apart from their connection once outlived it, and closing them then crashed.
func TestDiscardedConnectionsTakeTheirStatements(t *testing.T) {
	s, err := Open(t.Context(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.UnixMilli(1_700_000_000_123).UTC()
	w := store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: at, Body: []byte(`{"n":1}`)}}
	if err := s.Apply(t.Context(), []store.Write{w}); err != nil {
		t.Fatal(err)
	}
	discard := func(db *sql.DB) {
		t.Helper()
		conn, err := db.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if err := conn.Raw(func(any) error { return driver.ErrBadConn }); !errors.Is(err, driver.ErrBadConn) {
			t.Fatalf("discard: %v", err)
		}
		conn.Close()
	}
	var prev []byte
	for i := range 6 {
		if _, err := s.Get(t.Context(), "Patient", "p1"); err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		r := audit.Record{ID: fmt.Sprint("a", i), Recorded: at, Body: []byte(`{"resourceType":"AuditEvent"}`),
			Index: []store.IndexEntry{{Param: "date", Low: at.UnixMilli(), High: at.UnixMilli()}}}
		recs := []audit.Record{r}
		audit.Chain(prev, int64(i), recs)
		if err := s.AppendAudit(t.Context(), recs); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
		prev = recs[0].Hash
		discard(s.r)
		discard(s.w)
	}
	if head, _, err := s.AuditHead(t.Context()); err != nil || head != 6 {
		t.Errorf("head %d, %v; want 6", head, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// Searches run through the driver; they find exactly what database/sql finds with the same statement,
// in the same order and with the same cursors, for every kind of page.
func TestSearchesFindWhatDatabaseSQLFinds(t *testing.T) {
	s := openDir(t, t.TempDir())
	ctx := t.Context()
	at := time.UnixMilli(1_700_000_000_123).UTC()
	var ws []store.Write
	for i := range 20 {
		nhs := fmt.Sprint("900000000", i%4)
		ws = append(ws, store.Write{Resource: store.Resource{Type: "Patient", ID: fmt.Sprintf("p%02d", (i*7)%20), VersionID: 1,
			LastUpdated: at.Add(time.Duration(i) * time.Second), Body: fmt.Appendf(nil, `{"n":%d}`, i)},
			Index: []store.IndexEntry{{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Value: nhs},
				{Param: "gender", Value: []string{"male", "female"}[i%2]}}})
	}
	if err := s.Apply(ctx, ws); err != nil {
		t.Fatal(err)
	}
	del := store.Write{Resource: store.Resource{Type: "Patient", ID: "p07", VersionID: 2, LastUpdated: at, Deleted: true}, ExpectVersion: 1}
	if err := s.Apply(ctx, []store.Write{del}); err != nil {
		t.Fatal(err)
	}
	nhs := func(v string) store.Clause {
		return store.Clause{{Param: "identifier", Match: store.MatchToken, System: "https://fhir.nhs.uk/Id/nhs-number", Value: v}}
	}
	male := store.Clause{{Param: "gender", Match: store.MatchToken, Value: "male"}}
	newest := []store.SortKey{{Param: "_lastUpdated", Desc: true}}
	for name, q := range map[string]store.Query{
		"by NHS number":              {Type: "Patient", Limit: 10, Clauses: []store.Clause{nhs("9000000001")}},
		"by NHS number, a deleted":   {Type: "Patient", Limit: 10, Clauses: []store.Clause{nhs("9000000003")}},
		"a page after a cursor":      {Type: "Patient", Limit: 3, After: []store.SortValue{{Str: "p05"}}, Clauses: []store.Clause{male}},
		"none":                       {Type: "Patient", Limit: 10, Clauses: []store.Clause{nhs("9999999999")}},
		"every one":                  {Type: "Patient"},
		"newest first":               {Type: "Patient", Limit: 4, Sort: newest, Clauses: []store.Clause{male}},
		"newest first, after a page": {Type: "Patient", Limit: 4, Sort: newest, Clauses: []store.Clause{male}, After: []store.SortValue{{Int: at.Add(10 * time.Second).UnixMilli(), IsInt: true}, {Str: "p10"}}},
	} {
		got, err := s.Search(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		want := searchBySQL(t, s, q)
		if len(want) == 0 && name != "none" {
			t.Errorf("%s: database/sql found nothing: the case tests nothing", name)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\ngot  %+v\nwant %+v", name, got, want)
		}
	}
}

// searchBySQL runs q's statement through database/sql, reading its rows as Search did before it ran
// through the driver.
func searchBySQL(t *testing.T, s *Store, q store.Query) []store.Hit {
	t.Helper()
	query, args, err := buildSearch(q)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.QueryContext(t.Context(), query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var hits []store.Hit
	keys := make([]any, len(q.Sort))
	for rows.Next() {
		h := store.Hit{Resource: store.Resource{Type: q.Type}}
		var lu int64
		dest := []any{&h.Resource.ID, &h.Resource.VersionID, &lu, &h.Resource.Deleted, &h.Resource.Body}
		for i := range keys {
			dest = append(dest, &keys[i])
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		h.Resource.LastUpdated = fromMillis(lu)
		for _, k := range keys {
			h.SortValues = append(h.SortValues, sortValue(k))
		}
		h.SortValues = append(h.SortValues, store.SortValue{Str: h.Resource.ID})
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return hits
}
