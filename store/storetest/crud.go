package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

func testCRUD(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)

	// Bytes a JSON round trip would change: spacing, key order, escapes, non-ASCII.
	odd := []byte(`{"resourceType":"Patient","id":"odd",  "name":[{"text":"Zo\u00eb  Ångström"}],"a":1.50,"meta":{"versionId":"1"}}`)
	// A non-UTC zone: the store must hand back the same instant, in UTC.
	oddAt := at(7).In(time.FixedZone("UTC+05:30", 5*3600+1800))
	oddRes := store.Resource{Type: "Patient", ID: "odd", VersionID: 1, LastUpdated: oddAt, Body: odd}
	w.apply(store.Write{Resource: oddRes})

	v1 := w.put("Observation", "o1", token("code", "http://loinc.org", "1234-5"))
	v2 := w.put("Observation", "o1", token("code", "http://loinc.org", "1234-5"))
	v3 := store.Resource{Type: "Observation", ID: "o1", VersionID: 3, LastUpdated: w.next(), Body: body("Observation", "o1", 3, `,"status":"final"`)}
	w.apply(store.Write{Resource: v3, ExpectVersion: 2})

	t.Run("get returns the body bytes exactly, version and lastUpdated in UTC", func(t *testing.T) {
		got, err := s.Get(ctx, "Patient", "odd")
		if err != nil {
			t.Fatal(err)
		}
		want := oddRes
		want.LastUpdated = oddAt.UTC()
		sameResource(t, "Get", got, want)
	})
	t.Run("get returns the newest version", func(t *testing.T) {
		got, err := s.Get(ctx, "Observation", "o1")
		if err != nil {
			t.Fatal(err)
		}
		sameResource(t, "Get", got, v3)
	})
	t.Run("every version is readable with GetVersion", func(t *testing.T) {
		for _, want := range []store.Resource{v1, v2, v3} {
			got, err := s.GetVersion(ctx, "Observation", "o1", want.VersionID)
			if err != nil {
				t.Fatalf("GetVersion %d: %v", want.VersionID, err)
			}
			sameResource(t, fmt.Sprintf("GetVersion %d", want.VersionID), got, want)
		}
	})
	notFound := []struct {
		name string
		get  func() error
	}{
		{name: "get of an unknown id is not found", get: func() error { _, err := s.Get(ctx, "Observation", "nope"); return err }},
		{name: "get of an id known under another type is not found", get: func() error { _, err := s.Get(ctx, "Patient", "o1"); return err }},
		{name: "version 0 is not found", get: func() error { _, err := s.GetVersion(ctx, "Observation", "o1", 0); return err }},
		{name: "a version after the current one is not found", get: func() error { _, err := s.GetVersion(ctx, "Observation", "o1", 4); return err }},
		{name: "a version of an unknown id is not found", get: func() error { _, err := s.GetVersion(ctx, "Observation", "nope", 1); return err }},
	}
	for _, tc := range notFound {
		t.Run(tc.name, func(t *testing.T) { wantErr(t, "lookup", tc.get(), store.ErrNotFound) })
	}
}

func testCAS(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	first := w.put("Patient", "p1", token("identifier", "urn:x", "v1"))
	second := w.put("Patient", "p1", token("identifier", "urn:x", "v2"))

	cases := []struct {
		name  string
		write store.Write
	}{
		{
			name: "creating an existing resource conflicts",
			write: store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: w.next(),
				Body: body("Patient", "p1", 1, `,"x":"again"`)}, Index: []store.IndexEntry{token("identifier", "urn:x", "stale")}},
		},
		{
			name: "an update with a stale ExpectVersion conflicts",
			write: store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 2, LastUpdated: w.next(),
				Body: body("Patient", "p1", 2, `,"x":"stale"`)}, ExpectVersion: 1, Index: []store.IndexEntry{token("identifier", "urn:x", "stale")}},
		},
		{
			name: "an update ahead of the current version conflicts",
			write: store.Write{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 4, LastUpdated: w.next(),
				Body: body("Patient", "p1", 4, `,"x":"ahead"`)}, ExpectVersion: 3, Index: []store.IndexEntry{token("identifier", "urn:x", "stale")}},
		},
		{
			name: "an update of a resource that does not exist conflicts",
			write: store.Write{Resource: store.Resource{Type: "Patient", ID: "p2", VersionID: 2, LastUpdated: w.next(),
				Body: body("Patient", "p2", 2, "")}, ExpectVersion: 1, Index: []store.IndexEntry{token("identifier", "urn:x", "stale")}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name+" and changes nothing", func(t *testing.T) {
			err := s.Apply(ctx, []store.Write{tc.write})
			wantErr(t, "Apply", err, store.ErrVersionConflict)

			got, err := s.Get(ctx, "Patient", "p1")
			if err != nil {
				t.Fatal(err)
			}
			sameResource(t, "Get after the conflict", got, second)
			got, err = s.GetVersion(ctx, "Patient", "p1", 1)
			if err != nil {
				t.Fatal(err)
			}
			sameResource(t, "GetVersion 1 after the conflict", got, first)
			_, err = s.Get(ctx, "Patient", "p2")
			wantErr(t, "Get p2", err, store.ErrNotFound)
			hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 2 {
				t.Errorf("history has %d versions, want 2", len(hist))
			}
			q := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: "urn:x", Value: "stale"}}}}
			sameIDs(t, search(t, s, q), nil)
			q.Clauses[0][0].Value = "v2"
			sameIDs(t, search(t, s, q), []string{"p1"})
		})
	}
}

// testConcurrentWriters races writers through read-modify-write cycles on one resource. Compare-and-swap
// must let exactly one writer win each version, with no gap and no lost update.
func testConcurrentWriters(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	const writers, rounds = 16, 8
	type win struct {
		writer, round int
		body          []byte
	}
	var (
		mu        sync.Mutex
		wins      = map[int64]win{}
		conflicts int
	)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for r := range rounds {
				var cur int64
				got, err := s.Get(ctx, "Patient", "hot")
				switch {
				case err == nil:
					cur = got.VersionID
				case !errors.Is(err, store.ErrNotFound):
					t.Errorf("writer %d: Get: %v", g, err)
					return
				}
				b := body("Patient", "hot", cur+1, fmt.Sprintf(`,"writer":%d,"round":%d`, g, r))
				err = s.Apply(ctx, []store.Write{{
					Resource:      store.Resource{Type: "Patient", ID: "hot", VersionID: cur + 1, LastUpdated: at(int(cur + 1)), Body: b},
					ExpectVersion: cur,
					Index:         []store.IndexEntry{token("writer", "", fmt.Sprint(g))},
				}})
				mu.Lock()
				switch {
				case err == nil:
					if prev, ok := wins[cur+1]; ok {
						t.Errorf("version %d won twice: by writer %d round %d and writer %d round %d", cur+1, prev.writer, prev.round, g, r)
					}
					wins[cur+1] = win{g, r, b}
				case errors.Is(err, store.ErrVersionConflict):
					conflicts++
				default:
					t.Errorf("writer %d: Apply version %d: %v", g, cur+1, err)
				}
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	if t.Failed() {
		return
	}

	n := int64(len(wins))
	if n == 0 {
		t.Fatal("no writer won")
	}
	if got := len(wins) + conflicts; got != writers*rounds {
		t.Errorf("%d wins + %d conflicts, want %d attempts", len(wins), conflicts, writers*rounds)
	}
	cur, err := s.Get(ctx, "Patient", "hot")
	if err != nil {
		t.Fatal(err)
	}
	if cur.VersionID != n {
		t.Errorf("current version %d, want %d (one per win)", cur.VersionID, n)
	}
	hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "hot"})
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(hist)) != n {
		t.Fatalf("history has %d versions, want %d", len(hist), n)
	}
	for i, h := range hist {
		v := n - int64(i)
		if h.VersionID != v {
			t.Errorf("history[%d] is version %d, want %d (no gaps, newest first)", i, h.VersionID, v)
			continue
		}
		if string(h.Body) != string(wins[v].body) {
			t.Errorf("version %d body %s, want the winner's %s", v, h.Body, wins[v].body)
		}
	}
	// Only the last winner's index entries survive.
	last := fmt.Sprint(wins[n].writer)
	for g := range writers {
		q := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "writer", Match: store.MatchToken, AnySystem: true, Value: fmt.Sprint(g)}}}}
		var want []string
		if fmt.Sprint(g) == last {
			want = []string{"hot"}
		}
		sameIDs(t, search(t, s, q), want)
	}
}

func testDelete(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	name := func(v string) store.IndexEntry { return str("name", v, v) }
	w.put("Patient", "p1", name("alice"))
	w.put("Patient", "p2", name("alice"))
	w.put("Patient", "p1", name("alice"))
	tomb := w.del("Patient", "p1")
	byName := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "name", Match: store.MatchExact, Value: "alice"}}}}

	t.Run("the tombstone is the current version", func(t *testing.T) {
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Deleted || got.VersionID != 3 || len(got.Body) != 0 {
			t.Errorf("Get = v%d deleted=%v body %q, want v3 deleted with no body", got.VersionID, got.Deleted, got.Body)
		}
		sameResource(t, "Get", got, tomb)
	})
	t.Run("a deleted resource is neither searched nor counted", func(t *testing.T) {
		sameIDs(t, search(t, s, byName), []string{"p2"})
		sameIDs(t, search(t, s, store.Query{Type: "Patient"}), []string{"p2"})
		sameIDs(t, search(t, s, store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "name", Match: store.MatchPresent, Not: true}}}}), nil)
	})
	t.Run("history keeps the tombstone and earlier versions", func(t *testing.T) {
		hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 3 || !hist[0].Deleted || hist[0].VersionID != 3 || hist[1].Deleted || hist[2].VersionID != 1 {
			t.Errorf("history = %v, want v3 (deleted), v2, v1", versions(hist))
		}
	})
	t.Run("a create with ExpectVersion 0 after a delete conflicts", func(t *testing.T) {
		err := s.Apply(ctx, []store.Write{{Resource: store.Resource{Type: "Patient", ID: "p1", VersionID: 1, LastUpdated: w.next(), Body: body("Patient", "p1", 1, "")}}})
		wantErr(t, "Apply", err, store.ErrVersionConflict)
	})
	t.Run("deleting a deleted resource is a new tombstone version", func(t *testing.T) {
		w.del("Patient", "p1")
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		if !got.Deleted || got.VersionID != 4 {
			t.Errorf("Get = v%d deleted=%v, want v4 deleted", got.VersionID, got.Deleted)
		}
	})
	t.Run("re-creating after a delete is the next version and searchable again", func(t *testing.T) {
		again := w.put("Patient", "p1", name("alice"))
		if again.VersionID != 5 {
			t.Fatalf("test bug: version %d", again.VersionID)
		}
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		sameResource(t, "Get", got, again)
		sameIDs(t, search(t, s, byName), []string{"p1", "p2"})
	})
}

func versions(rs []store.Resource) []string {
	var out []string
	for _, r := range rs {
		d := ""
		if r.Deleted {
			d = " deleted"
		}
		out = append(out, fmt.Sprintf("%s/%s v%d%s", r.Type, r.ID, r.VersionID, d))
	}
	return out
}

func testAtomicity(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	existing := w.put("Patient", "x", token("tag", "urn:t", "before"))
	tag := []store.IndexEntry{token("tag", "urn:t", "group")}
	create := func(id string) store.Write {
		return store.Write{Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: at(100), Body: body("Patient", id, 1, "")}, Index: tag}
	}
	update := func(expect int64) store.Write {
		return store.Write{Resource: store.Resource{Type: "Patient", ID: "x", VersionID: expect + 1, LastUpdated: at(100), Body: body("Patient", "x", expect+1, "")},
			ExpectVersion: expect, Index: tag}
	}
	byTag := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "tag", Match: store.MatchToken, System: "urn:t", Value: "group"}}}}

	t.Run("a group whose last write conflicts writes nothing", func(t *testing.T) {
		err := s.Apply(ctx, []store.Write{create("a"), create("b"), update(5)})
		wantErr(t, "Apply", err, store.ErrVersionConflict)
		for _, id := range []string{"a", "b"} {
			_, err := s.Get(ctx, "Patient", id)
			wantErr(t, "Get "+id, err, store.ErrNotFound)
		}
		got, err := s.Get(ctx, "Patient", "x")
		if err != nil {
			t.Fatal(err)
		}
		sameResource(t, "Get x", got, existing)
		sameIDs(t, search(t, s, byTag), nil)
		sameIDs(t, search(t, s, store.Query{Type: "Patient"}), []string{"x"})
		hist, err := s.History(ctx, store.HistoryQuery{})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 1 {
			t.Errorf("history = %v, want only Patient/x v1", versions(hist))
		}
	})
	t.Run("a group whose first write conflicts writes nothing", func(t *testing.T) {
		err := s.Apply(ctx, []store.Write{update(0), create("a"), create("b")})
		wantErr(t, "Apply", err, store.ErrVersionConflict)
		sameIDs(t, search(t, s, store.Query{Type: "Patient"}), []string{"x"})
	})
	t.Run("a group without conflicts writes every resource", func(t *testing.T) {
		if err := s.Apply(ctx, []store.Write{create("a"), create("b"), update(1)}); err != nil {
			t.Fatal(err)
		}
		sameIDs(t, search(t, s, byTag), []string{"a", "b", "x"})
		got, err := s.Get(ctx, "Patient", "x")
		if err != nil {
			t.Fatal(err)
		}
		if got.VersionID != 2 {
			t.Errorf("x is at version %d, want 2", got.VersionID)
		}
	})
}

func testIndexReplacement(t *testing.T, s audit.Backend) {
	w := newWriter(t, s)
	q := func(v string) store.Query {
		return store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "name", Match: store.MatchPrefix, Value: v}}}}
	}
	w.put("Patient", "p1", str("name", "Old", "old"), str("name", "Older", "older"))
	w.put("Patient", "p2", str("name", "Old", "old"))
	w.put("Patient", "p1", str("name", "New", "new"))

	cases := []struct {
		name  string
		query store.Query
		want  []string
	}{
		{"the previous version's values no longer match", q("old"), []string{"p2"}},
		{"the new version's values match", q("new"), []string{"p1"}},
		{"other resources' entries are untouched", q("older"), nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { sameIDs(t, search(t, s, tc.query), tc.want) })
	}
	t.Run("an update without entries leaves none", func(t *testing.T) {
		w.put("Patient", "p1")
		sameIDs(t, search(t, s, q("new")), nil)
		sameIDs(t, search(t, s, store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "name", Match: store.MatchPresent, Not: true}}}}), []string{"p1"})
	})
}

func testSetIndex(t *testing.T, s audit.Backend) {
	ctx := t.Context()
	w := newWriter(t, s)
	w.put("Patient", "p1", token("code", "urn:c", "old"))
	cur := w.put("Patient", "p1", token("code", "urn:c", "old"))
	q := func(v string) store.Query {
		return store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "code", Match: store.MatchToken, System: "urn:c", Value: v}}}}
	}

	t.Run("replaces the entries of the current version without a new version", func(t *testing.T) {
		if err := s.SetIndex(ctx, "Patient", "p1", 2, []store.IndexEntry{token("code", "urn:c", "new"), token("code", "urn:c", "newer")}); err != nil {
			t.Fatal(err)
		}
		sameIDs(t, search(t, s, q("old")), nil)
		sameIDs(t, search(t, s, q("new")), []string{"p1"})
		sameIDs(t, search(t, s, q("newer")), []string{"p1"})
		got, err := s.Get(ctx, "Patient", "p1")
		if err != nil {
			t.Fatal(err)
		}
		sameResource(t, "Get", got, cur)
		hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient", ID: "p1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(hist) != 2 {
			t.Errorf("history = %v, want 2 versions", versions(hist))
		}
	})
	t.Run("a version that is no longer current conflicts and changes nothing", func(t *testing.T) {
		err := s.SetIndex(ctx, "Patient", "p1", 1, []store.IndexEntry{token("code", "urn:c", "stale")})
		wantErr(t, "SetIndex", err, store.ErrVersionConflict)
		sameIDs(t, search(t, s, q("stale")), nil)
		sameIDs(t, search(t, s, q("new")), []string{"p1"})
	})
	t.Run("an unknown resource is not found", func(t *testing.T) {
		err := s.SetIndex(ctx, "Patient", "nope", 1, []store.IndexEntry{token("code", "urn:c", "stale")})
		wantErr(t, "SetIndex", err, store.ErrNotFound)
		sameIDs(t, search(t, s, q("stale")), nil)
	})
	// A backend may write a resource's entries several at a time (SQLite: up to 16 per statement), so
	// counts that are not a whole number of its batches must lose none.
	t.Run("every one of many entries is written, on create and on SetIndex", func(t *testing.T) {
		many := func(prefix string, n int) []store.IndexEntry {
			var es []store.IndexEntry
			for i := range n {
				es = append(es, token("code", "urn:c", fmt.Sprintf("%s-%d", prefix, i)))
			}
			return es
		}
		w.put("Patient", "p-many", many("a", 37)...)
		for i := range 37 {
			sameIDs(t, search(t, s, q(fmt.Sprintf("a-%d", i))), []string{"p-many"})
		}
		if err := s.SetIndex(ctx, "Patient", "p-many", 1, many("b", 23)); err != nil {
			t.Fatal(err)
		}
		for i := range 37 {
			sameIDs(t, search(t, s, q(fmt.Sprintf("a-%d", i))), nil)
		}
		for i := range 23 {
			sameIDs(t, search(t, s, q(fmt.Sprintf("b-%d", i))), []string{"p-many"})
		}
	})
}
