package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Run runs the whole contract against stores made by newStore. newStore must return an empty store each
// time and arrange, with t.Cleanup, for it to be released; that cleanup must tolerate a store the suite
// has already closed.
func Run(t *testing.T, newStore func(t *testing.T) audit.Backend) {
	t.Run("CRUD", func(t *testing.T) { testCRUD(t, newStore(t)) })
	t.Run("CompareAndSwap", func(t *testing.T) { testCAS(t, newStore(t)) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrentWriters(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("History", func(t *testing.T) { testHistory(t, newStore(t)) })
	t.Run("Search", func(t *testing.T) { testSearch(t, newStore(t)) })
	t.Run("Sort", func(t *testing.T) { testSort(t, newStore(t)) })
	t.Run("ApplyAtomicity", func(t *testing.T) { testAtomicity(t, newStore(t)) })
	t.Run("IndexReplacement", func(t *testing.T) { testIndexReplacement(t, newStore(t)) })
	t.Run("SetIndex", func(t *testing.T) { testSetIndex(t, newStore(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore(t)) })
	t.Run("AuditConcurrentAppenders", func(t *testing.T) { testAuditConcurrent(t, newStore(t)) })
	t.Run("AuditLargeBatches", func(t *testing.T) { testAuditLargeBatches(t, newStore(t)) })
	t.Run("AuditNewestFirstByReference", func(t *testing.T) { testAuditNewestFirst(t, newStore(t)) })
	t.Run("ApplyAudited", func(t *testing.T) { testApplyAudited(t, newStore(t)) })
	t.Run("AuditPrune", func(t *testing.T) { testPrune(t, newStore(t)) })
	t.Run("AuditPruneConcurrent", func(t *testing.T) { testPruneConcurrent(t, newStore(t)) })
	t.Run("PingAndClose", func(t *testing.T) { testPingClose(t, newStore(t)) })
	t.Run("MatchesReference", func(t *testing.T) { testMatchesReference(t, newStore(t)) })
}

// epoch is an arbitrary, millisecond-aligned instant; tests place writes at epoch+n ms so that history
// order is known in advance.
var epoch = time.Date(2024, 3, 10, 9, 30, 15, 123_000_000, time.UTC)

func at(ms int) time.Time { return epoch.Add(time.Duration(ms) * time.Millisecond) }

func body(typ, id string, version int64, extra string) []byte {
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"meta":{"versionId":"%d"}%s}`, typ, id, version, extra)
}

// writer keeps track of the versions a test writes, so expectations can be computed from them.
type writer struct {
	t       *testing.T
	s       audit.Backend
	clock   int // ms after epoch of the next write
	written []store.Resource
	current map[string]int64
}

func newWriter(t *testing.T, s audit.Backend) *writer {
	return &writer{t: t, s: s, current: map[string]int64{}}
}

func (w *writer) next() time.Time {
	w.clock++
	return at(w.clock)
}

// put writes the next version of typ/id (creating it if new) at the next tick, failing the test on error.
func (w *writer) put(typ, id string, index ...store.IndexEntry) store.Resource {
	w.t.Helper()
	return w.putAt(w.next(), typ, id, index...)
}

func (w *writer) putAt(when time.Time, typ, id string, index ...store.IndexEntry) store.Resource {
	w.t.Helper()
	cur := w.current[typ+"/"+id]
	r := store.Resource{Type: typ, ID: id, VersionID: cur + 1, LastUpdated: when, Body: body(typ, id, cur+1, "")}
	w.apply(store.Write{Resource: r, ExpectVersion: cur, Index: index})
	return r
}

// del writes a tombstone for typ/id at the next tick.
func (w *writer) del(typ, id string) store.Resource {
	w.t.Helper()
	return w.delAt(w.next(), typ, id)
}

func (w *writer) delAt(when time.Time, typ, id string) store.Resource {
	w.t.Helper()
	cur := w.current[typ+"/"+id]
	r := store.Resource{Type: typ, ID: id, VersionID: cur + 1, LastUpdated: when, Deleted: true}
	w.apply(store.Write{Resource: r, ExpectVersion: cur})
	return r
}

func (w *writer) apply(ws ...store.Write) {
	w.t.Helper()
	if err := w.s.Apply(w.t.Context(), ws); err != nil {
		w.t.Fatalf("Apply %v: %v", describe(ws), err)
	}
	for _, x := range ws {
		w.current[x.Resource.Type+"/"+x.Resource.ID] = x.Resource.VersionID
		w.written = append(w.written, x.Resource)
	}
}

func describe(ws []store.Write) []string {
	var out []string
	for _, w := range ws {
		out = append(out, fmt.Sprintf("%s/%s v%d (expect %d)", w.Resource.Type, w.Resource.ID, w.Resource.VersionID, w.ExpectVersion))
	}
	return out
}

// Entry constructors, named after the parameter types of fhir.IndexEntry.

func token(param, system, code string) store.IndexEntry {
	return store.IndexEntry{Param: param, System: system, Value: code}
}

func codingText(param, system, code, text string) store.IndexEntry {
	return store.IndexEntry{Param: param, System: system, Value: code, Text: text}
}

func str(param, raw, normalised string) store.IndexEntry {
	return store.IndexEntry{Param: param, Value: raw, Text: normalised}
}

func ref(param, target string) store.IndexEntry {
	return store.IndexEntry{Param: param, Value: target}
}

func period(param string, lo, hi int64) store.IndexEntry {
	return store.IndexEntry{Param: param, Low: lo, High: hi}
}

func sameResource(t *testing.T, what string, got, want store.Resource) {
	t.Helper()
	if got.Type != want.Type || got.ID != want.ID || got.VersionID != want.VersionID || got.Deleted != want.Deleted {
		t.Errorf("%s: got %s/%s v%d deleted=%v, want %s/%s v%d deleted=%v", what,
			got.Type, got.ID, got.VersionID, got.Deleted, want.Type, want.ID, want.VersionID, want.Deleted)
	}
	if !got.LastUpdated.Equal(want.LastUpdated) {
		t.Errorf("%s: LastUpdated = %v, want %v", what, got.LastUpdated, want.LastUpdated)
	}
	if got.LastUpdated.Location() != time.UTC {
		t.Errorf("%s: LastUpdated is in %v, want UTC", what, got.LastUpdated.Location())
	}
	if string(got.Body) != string(want.Body) {
		t.Errorf("%s: Body = %q, want %q", what, got.Body, want.Body)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: error = %v, want %v", what, err, want)
	}
}

func hitIDs(hits []store.Hit) []string {
	ids := make([]string, 0, len(hits))
	for _, h := range hits {
		ids = append(ids, h.Resource.ID)
	}
	return ids
}

// search runs q, checks that Count agrees with it, and returns the ids in result order.
func search(t *testing.T, s audit.Backend, q store.Query) []string {
	t.Helper()
	hits, err := s.Search(t.Context(), q)
	if err != nil {
		t.Fatalf("Search: %v", err)
	}
	ids := hitIDs(hits)
	if q.Limit == 0 && q.After == nil {
		n, err := s.Count(t.Context(), q)
		if err != nil {
			t.Fatalf("Count: %v", err)
		}
		if n != len(hits) {
			t.Errorf("Count = %d, but Search returned %d hits %v", n, len(hits), ids)
		}
	}
	return ids
}

func sameIDs(t *testing.T, got, want []string) {
	t.Helper()
	if want == nil {
		want = []string{}
	}
	if got == nil {
		got = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("ids = %v, want %v", got, want)
	}
}

func testPingClose(t *testing.T, s audit.Backend) {
	if err := s.Ping(t.Context()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	w := newWriter(t, s)
	w.put("Patient", "p1")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
