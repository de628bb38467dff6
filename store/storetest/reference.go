package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/memory"
)

// testMatchesReference loads the dataset of reference_data.go into a fresh store/memory (the reference:
// store.Matches and store.ComparePositions and nothing else) and into s, then runs a generated set of
// queries on both and requires s to answer exactly as the reference does: the same resources in the
// same order, the same counts, the same pages, the same history, and ErrInvalidQuery for the same
// malformed queries. The hand-written cases of the other tests say what a query must find; this one
// finds the queries nobody thought to write, among every kind of match, negation, OR, AND, chain, _has,
// sort and page.
//
// The queries are generated from the dataset's own values with a fixed seed, so a failure names a
// query that fails again on the next run. Query values are never empty (the API refuses empty search
// values), except in a token's "system|" and "|".
func testMatchesReference(t *testing.T, s audit.Backend) {
	ref := memory.New()
	t.Cleanup(func() { ref.Close() })
	loadReference(t, ref, s)
	g := newQueryGen()
	parts := []struct {
		name string
		run  func(d *differ)
	}{
		{"Search and Count", func(d *differ) {
			for _, q := range g.filters() {
				d.search(q)
				d.count(q)
			}
		}},
		{"Sort", func(d *differ) {
			for _, q := range g.sorted() {
				d.search(q)
			}
		}},
		{"Paging", func(d *differ) {
			for _, q := range g.paged() {
				d.pages(q)
			}
		}},
		{"History", func(d *differ) {
			for _, q := range g.histories() {
				d.history(q)
			}
		}},
		{"Invalid", func(d *differ) {
			for _, q := range g.invalid() {
				d.search(q)
				d.count(q)
			}
		}},
	}
	for _, part := range parts {
		t.Run(part.name, func(t *testing.T) { part.run(&differ{t: t, ref: ref, s: s}) })
	}
}

// loadReference writes the dataset to every store, the same way on each.
func loadReference(t *testing.T, stores ...audit.Backend) {
	t.Helper()
	ctx := t.Context()
	for _, s := range stores {
		current := map[string]int64{}
		steps := refSteps()
		for i := 0; i < len(steps); {
			st := steps[i]
			if st.reindex {
				if err := s.SetIndex(ctx, st.typ, st.id, current[st.typ+"/"+st.id], st.index); err != nil {
					t.Fatalf("SetIndex %s/%s: %v", st.typ, st.id, err)
				}
				i++
				continue
			}
			// Writes at the same millisecond go in one atomic group.
			var group []store.Write
			for ; i < len(steps) && !steps[i].reindex && steps[i].ms == st.ms; i++ {
				x := steps[i]
				k := x.typ + "/" + x.id
				r := store.Resource{Type: x.typ, ID: x.id, VersionID: current[k] + 1, LastUpdated: at(x.ms), Deleted: x.del}
				if !x.del {
					r.Body = body(x.typ, x.id, r.VersionID, "")
				}
				group = append(group, store.Write{Resource: r, ExpectVersion: current[k], Index: x.index})
				current[k] = r.VersionID
			}
			if err := s.Apply(ctx, group); err != nil {
				t.Fatalf("Apply %v: %v", describe(group), err)
			}
		}
		if err := audit.AppendChained(ctx, s, refAudit(), 10); err != nil {
			t.Fatalf("AppendChained: %v", err)
		}
		if _, removed, err := s.PruneAudit(ctx, at(102)); err != nil || removed != 1 {
			t.Fatalf("PruneAudit removed %d: %v, want 1", removed, err)
		}
	}
}

// differ runs each query on the reference and on the store under test and reports where they differ.
type differ struct {
	t      *testing.T
	ref, s audit.Backend
	diffs  int
}

// maxDiffs bounds the differences reported: past it, one cause is usually behind them all.
const maxDiffs = 25

func (d *differ) report(format string, args ...any) {
	d.t.Helper()
	d.diffs++
	d.t.Errorf(format, args...)
	if d.diffs >= maxDiffs {
		d.t.Fatalf("%d differences from the reference; stopping", d.diffs)
	}
}

// sameErr reports whether the store's error agrees with the reference's; when both are nil the caller
// goes on to compare the results.
func (d *differ) sameErr(what string, want, got error) bool {
	d.t.Helper()
	switch {
	case want == nil && got == nil:
		return true
	case want == nil:
		d.report("%s: error %v, the reference answers", what, got)
	case !errors.Is(want, store.ErrInvalidQuery):
		d.t.Fatalf("%s: the reference failed: %v", what, want)
	case !errors.Is(got, store.ErrInvalidQuery):
		d.report("%s: error %v, the reference says ErrInvalidQuery (%v)", what, got, want)
	}
	return false
}

func (d *differ) search(q store.Query) {
	d.t.Helper()
	what := "Search " + queryString(q)
	want, werr := d.ref.Search(d.t.Context(), q)
	got, gerr := d.s.Search(d.t.Context(), q)
	if d.sameErr(what, werr, gerr) {
		d.sameHits(what, got, want)
	}
}

func (d *differ) sameHits(what string, got, want []store.Hit) {
	d.t.Helper()
	if g, w := hitIDs(got), hitIDs(want); !slices.Equal(g, w) {
		d.report("%s\n  got  %v\n  want %v", what, g, w)
		return
	}
	for i := range got {
		g, w := got[i].Resource, want[i].Resource
		if g.Type != w.Type || g.VersionID != w.VersionID || !g.LastUpdated.Equal(w.LastUpdated) || g.Deleted || string(g.Body) != string(w.Body) {
			d.report("%s: hit %d is %s/%s v%d at %v, want v%d at %v", what, i, g.Type, g.ID, g.VersionID, g.LastUpdated, w.VersionID, w.LastUpdated)
		}
	}
}

func (d *differ) count(q store.Query) {
	d.t.Helper()
	what := "Count " + queryString(q)
	want, werr := d.ref.Count(d.t.Context(), q)
	got, gerr := d.s.Count(d.t.Context(), q)
	if d.sameErr(what, werr, gerr) && got != want {
		d.report("%s = %d, want %d", what, got, want)
	}
}

// pages follows each store's own cursor from q (which has a Limit) to the end and compares page by
// page. Cursors are not exchanged: how a missing sort value is encoded is each backend's business.
func (d *differ) pages(q store.Query) {
	d.t.Helper()
	wq, gq := q, q
	for page := 1; page <= 100; page++ {
		what := fmt.Sprintf("Search %s, page %d", queryString(q), page)
		want, werr := d.ref.Search(d.t.Context(), wq)
		got, gerr := d.s.Search(d.t.Context(), gq)
		if !d.sameErr(what, werr, gerr) {
			return
		}
		if g, w := hitIDs(got), hitIDs(want); !slices.Equal(g, w) {
			d.report("%s\n  got  %v\n  want %v", what, g, w)
			return
		}
		if len(want) < q.Limit {
			return
		}
		wq.After, gq.After = want[len(want)-1].SortValues, got[len(got)-1].SortValues
	}
	d.t.Fatalf("Search %s: paging did not end", queryString(q))
}

func (d *differ) history(q store.HistoryQuery) {
	d.t.Helper()
	what := "History " + historyString(q)
	want, werr := d.ref.History(d.t.Context(), q)
	got, gerr := d.s.History(d.t.Context(), q)
	if !d.sameErr(what, werr, gerr) {
		return
	}
	if !slices.Equal(versions(got), versions(want)) {
		d.report("%s\n  got  %v\n  want %v", what, versions(got), versions(want))
		return
	}
	for i := range got {
		if !got[i].LastUpdated.Equal(want[i].LastUpdated) || string(got[i].Body) != string(want[i].Body) {
			d.report("%s: version %d (%s) has another time or body", what, i, versions(got[i:i+1]))
		}
	}
	if q.Limit > 0 && len(want) == q.Limit {
		// The next page, from the last version of this one.
		last := want[len(want)-1]
		q.After = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
		d.history(q)
	}
}

// queryGen builds queries from the dataset's own values. Its random choices come from a fixed seed, so
// the set is the same on every run and for every backend.
type queryGen struct {
	rng *rand.Rand
	// values holds, per type and parameter, every entry any version of any resource of the type had.
	values map[string]map[string][]store.IndexEntry
	ids    map[string][]string // every id of the type, deleted ones included
	lus    []int64             // every lastUpdated written
	atoms  map[string][]store.Predicate
}

const (
	perGroup  = 3  // predicates of one parameter and match kind
	perChain  = 3  // sub-queries of one chain or _has
	combos    = 24 // ORs, and as many ANDs, per type
	sortCombo = 4  // sorts by several keys, per type
)

func newQueryGen() *queryGen {
	g := &queryGen{
		rng:    rand.New(rand.NewPCG(2024, 3)),
		values: map[string]map[string][]store.IndexEntry{},
		ids:    map[string][]string{},
		atoms:  map[string][]store.Predicate{},
	}
	addValues := func(typ, id string, ms int, index []store.IndexEntry) {
		if g.values[typ] == nil {
			g.values[typ] = map[string][]store.IndexEntry{}
		}
		for _, e := range index {
			if !slices.Contains(g.values[typ][e.Param], e) {
				g.values[typ][e.Param] = append(g.values[typ][e.Param], e)
			}
		}
		if !slices.Contains(g.ids[typ], id) {
			g.ids[typ] = append(g.ids[typ], id)
		}
		if ms >= 0 && !slices.Contains(g.lus, at(ms).UnixMilli()) {
			g.lus = append(g.lus, at(ms).UnixMilli())
		}
	}
	for _, st := range refSteps() {
		ms := st.ms
		if st.reindex {
			ms = -1
		}
		addValues(st.typ, st.id, ms, st.index)
	}
	for _, r := range refAudit() {
		addValues(store.AuditEventType, r.ID, -1, r.Index)
		g.lus = append(g.lus, r.Recorded.UnixMilli())
	}
	slices.Sort(g.lus)
	for _, typ := range refTypes {
		g.atoms[typ] = g.baseAtoms(typ)
	}
	return g
}

// seed makes the choices of one part of the comparison its own, so that running that part alone (go test
// -run .../Paging) generates the queries it generates in a full run.
func (g *queryGen) seed(part uint64) {
	g.rng = rand.New(rand.NewPCG(2024, part))
}

// pick returns at most n elements of xs, chosen at random.
func pick[T any](g *queryGen, xs []T, n int) []T {
	xs = slices.Clone(xs)
	g.rng.Shuffle(len(xs), func(i, j int) { xs[i], xs[j] = xs[j], xs[i] })
	return xs[:min(n, len(xs))]
}

func params(m map[string]kind) []string {
	var ps []string
	for p := range m {
		ps = append(ps, p)
	}
	slices.Sort(ps)
	return ps
}

// baseAtoms are the predicates of typ on its own entries and columns: every match kind on every
// parameter, with values that occur in the data and some that do not.
func (g *queryGen) baseAtoms(typ string) []store.Predicate {
	var out []store.Predicate
	add := func(ps ...store.Predicate) { out = append(out, pick(g, ps, perGroup)...) }
	v := func(param string, m store.Match, value string) store.Predicate {
		return store.Predicate{Param: param, Match: m, Value: value}
	}
	b := func(f store.Field, c store.Cmp, x int64) store.Bound { return store.Bound{Field: f, Cmp: c, Value: x} }

	add(pred("nobody-has-this", store.MatchPresent))
	for _, param := range params(refSchema[typ]) {
		entries := g.values[typ][param]
		add(pred(param, store.MatchPresent))
		var exact, prefix, contains, text, codes, anyCodes, bareCodes, systems []store.Predicate
		var pivots []int64
		for _, e := range entries {
			switch refSchema[typ][param] {
			case kToken:
				if e.Value != "" {
					codes = append(codes, tok(param, e.System, e.Value))
					anyCodes = append(anyCodes, store.Predicate{Param: param, Match: store.MatchToken, AnySystem: true, Value: e.Value})
					bareCodes = append(bareCodes, tok(param, "", e.Value))
				}
				if e.System != "" {
					systems = append(systems, tok(param, e.System, ""))
				}
				if e.Text != "" {
					text = append(text, v(param, store.MatchTokenText, e.Text[:min(3, len(e.Text))]), v(param, store.MatchTokenText, e.Text))
				}
			case kString:
				exact = append(exact, v(param, store.MatchExact, e.Value), v(param, store.MatchExact, strings.ToLower(e.Value)))
				prefix = append(prefix, v(param, store.MatchPrefix, e.Text[:1]), v(param, store.MatchPrefix, e.Text[:min(3, len(e.Text))]),
					v(param, store.MatchPrefix, e.Text), v(param, store.MatchPrefix, e.Text+"x"))
				if len(e.Text) > 2 {
					contains = append(contains, v(param, store.MatchContains, e.Text[1:len(e.Text)-1]))
				}
				contains = append(contains, v(param, store.MatchContains, e.Text[max(0, len(e.Text)-3):]))
			case kRef, kURI:
				exact = append(exact, v(param, store.MatchExact, e.Value))
			case kDate, kNumber:
				pivots = append(pivots, e.Low, e.High, e.Low-1, e.High+1, e.Low+(e.High-e.Low)/2)
				exact = append(exact, rng(param, b(store.Low, store.GE, e.Low), b(store.High, store.LE, e.High)))
			}
		}
		absent := []store.Predicate{tok(param, "urn:none", "x"), v(param, store.MatchExact, "Nobody"), v(param, store.MatchPrefix, "qq"),
			v(param, store.MatchContains, "qq"), v(param, store.MatchTokenText, "qq")}
		switch refSchema[typ][param] {
		case kToken:
			add(codes...)
			add(anyCodes...)
			add(bareCodes...)
			add(systems...)
			add(text...)
			// "|": every entry without a system, text-only concepts included (not something the API
			// asks, but what the rule says).
			out = append(out, tok(param, "", ""))
			add(absent[0], absent[4])
		case kString:
			add(exact...)
			add(prefix...)
			add(contains...)
			add(absent[1:4]...)
		case kRef, kURI:
			add(append(exact, absent[1])...)
		case kDate, kNumber:
			add(exact...)
			add(rng(param))
			var ranges []store.Predicate
			for _, x := range pivots {
				for _, f := range []store.Field{store.Low, store.High} {
					for _, c := range []store.Cmp{store.LT, store.LE, store.GT, store.GE} {
						ranges = append(ranges, rng(param, b(f, c, x)))
					}
				}
				ranges = append(ranges, rng(param, b(store.Low, store.LE, x), b(store.High, store.GE, x)))
			}
			out = append(out, pick(g, ranges, 4*perGroup)...)
		}
	}

	ids := append(slices.Clone(g.ids[typ]), "nope")
	var byID []store.Predicate
	for _, id := range ids {
		byID = append(byID, v(store.ParamID, store.MatchExact, id))
	}
	add(byID...)
	id := ids[0]
	out = append(out, pred(store.ParamID, store.MatchPresent), tok(store.ParamID, "", id), tok(store.ParamID, "urn:x", id),
		store.Predicate{Param: store.ParamID, Match: store.MatchToken, AnySystem: true, Value: id})
	var lu []store.Predicate
	for _, x := range g.lus {
		for _, c := range []store.Cmp{store.LT, store.LE, store.GT, store.GE} {
			lu = append(lu, rng(store.ParamLastUpdated, b(store.Low, c, x)), rng(store.ParamLastUpdated, b(store.High, c, x)))
		}
		lu = append(lu, rng(store.ParamLastUpdated, b(store.Low, store.GE, x), b(store.High, store.LE, x+5)))
	}
	out = append(out, pick(g, lu, 2*perGroup)...)
	out = append(out, pred(store.ParamLastUpdated, store.MatchPresent), rng(store.ParamLastUpdated))
	return out
}

// targets returns the types typ's reference parameter param points at in the data, in a fixed order.
func (g *queryGen) targets(typ, param string) []string {
	var out []string
	for _, e := range g.values[typ][param] {
		t, _, ok := strings.Cut(e.Value, "/")
		if ok && refSchema[t] != nil && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

// subQuery is a query of typ for a chain or _has: one or two clauses of its base predicates.
func (g *queryGen) subQuery(typ string) store.Query {
	q := store.Query{Type: typ}
	for range 1 + g.rng.IntN(2) {
		q.Clauses = append(q.Clauses, store.Clause{g.atoms[typ][g.rng.IntN(len(g.atoms[typ]))]})
	}
	return q
}

// linked are the chains and _has of typ: each reference parameter followed to each type it points at,
// one level and two, and each reference to typ followed back.
func (g *queryGen) linked(typ string) []store.Predicate {
	var out []store.Predicate
	for _, param := range params(refSchema[typ]) {
		if refSchema[typ][param] != kRef {
			continue
		}
		for _, target := range g.targets(typ, param) {
			for range perChain {
				out = append(out, chain(param, g.subQuery(target)))
			}
			// Two levels: the target's own chains, one of them.
			for _, p2 := range params(refSchema[target]) {
				if refSchema[target][p2] != kRef {
					continue
				}
				for _, t2 := range g.targets(target, p2) {
					out = append(out, chain(param, store.Query{Type: target, Clauses: []store.Clause{{chain(p2, g.subQuery(t2))}}}))
				}
			}
		}
	}
	for _, from := range refTypes {
		for _, param := range params(refSchema[from]) {
			if refSchema[from][param] == kRef && slices.Contains(g.targets(from, param), typ) {
				for range perChain {
					out = append(out, has(g.subQuery(from), param))
				}
			}
		}
	}
	return out
}

// filters are the unsorted queries: every predicate alone and negated, then random ORs and ANDs of them.
func (g *queryGen) filters() []store.Query {
	g.seed(10)
	var out []store.Query
	for _, typ := range refTypes {
		all := append(slices.Clone(g.atoms[typ]), g.linked(typ)...)
		out = append(out, q(typ))
		for _, p := range all {
			out = append(out, q(typ, or(p)), q(typ, or(not(p))))
		}
		for range combos {
			out = append(out, q(typ, g.clause(all, 2+g.rng.IntN(2))))
		}
		for range combos {
			out = append(out, g.and(typ, all))
		}
	}
	return out
}

// clause is an OR of n predicates of all, some negated.
func (g *queryGen) clause(all []store.Predicate, n int) store.Clause {
	var c store.Clause
	for range n {
		p := all[g.rng.IntN(len(all))]
		if g.rng.IntN(4) == 0 {
			p = not(p)
		}
		c = append(c, p)
	}
	return c
}

// and is a query of two or three clauses of one or two predicates each.
func (g *queryGen) and(typ string, all []store.Predicate) store.Query {
	query := q(typ)
	for range 2 + g.rng.IntN(2) {
		query.Clauses = append(query.Clauses, g.clause(all, 1+g.rng.IntN(2)))
	}
	return query
}

// sortSpecs are, for typ, each parameter ascending and descending, and a few combinations.
func (g *queryGen) sortSpecs(typ string) [][]store.SortKey {
	ps := append(params(refSchema[typ]), store.ParamID, store.ParamLastUpdated)
	var out [][]store.SortKey
	for _, p := range ps {
		out = append(out, []store.SortKey{{Param: p}}, []store.SortKey{{Param: p, Desc: true}})
	}
	for range sortCombo {
		var keys []store.SortKey
		for _, p := range pick(g, ps, 2+g.rng.IntN(2)) {
			keys = append(keys, store.SortKey{Param: p, Desc: g.rng.IntN(2) == 0})
		}
		out = append(out, keys)
	}
	return out
}

// sorted are queries with sort keys: each spec over the whole type and over a random filter.
func (g *queryGen) sorted() []store.Query {
	g.seed(11)
	var out []store.Query
	for _, typ := range refTypes {
		all := append(slices.Clone(g.atoms[typ]), g.linked(typ)...)
		for _, keys := range g.sortSpecs(typ) {
			whole := q(typ)
			whole.Sort = keys
			some := g.and(typ, all)
			some.Sort = keys
			out = append(out, whole, some)
		}
	}
	return out
}

// paged are sorted queries with a small Limit, to be followed page by page. Their filters have a
// positive first clause followed by chains, _has or ranges, which a backend may test on each page's
// candidates rather than select whole.
func (g *queryGen) paged() []store.Query {
	g.seed(12)
	var out []store.Query
	for _, typ := range refTypes {
		all := append(slices.Clone(g.atoms[typ]), g.linked(typ)...)
		later := g.linked(typ)
		for _, p := range g.atoms[typ] {
			if p.Match == store.MatchRange {
				later = append(later, p)
			}
		}
		for i, keys := range g.sortSpecs(typ) {
			query := q(typ)
			switch i % 3 {
			case 1:
				ps := params(refSchema[typ])
				present := pred(ps[g.rng.IntN(len(ps))], store.MatchPresent)
				query.Clauses = []store.Clause{{present}, g.clause(later, 1+g.rng.IntN(2))}
			case 2:
				query = g.and(typ, all)
			}
			query.Sort, query.Limit = keys, 1+g.rng.IntN(4)
			out = append(out, query)
		}
	}
	return out
}

// histories are history queries of every shape: system, type and instance; windows; limits, each paged
// on to its end.
func (g *queryGen) histories() []store.HistoryQuery {
	g.seed(13)
	out := []store.HistoryQuery{{}, {Type: "Nothing"}, {Limit: 4}, {Limit: 7},
		{Types: refTypes[:2]}, {Types: refTypes[1:], Limit: 3}, {Types: []string{store.AuditEventType, refTypes[0]}, Limit: 5}}
	for _, typ := range refTypes {
		out = append(out, store.HistoryQuery{Type: typ}, store.HistoryQuery{Type: typ, Limit: 2})
		for _, id := range pick(g, g.ids[typ], 2) {
			out = append(out, store.HistoryQuery{Type: typ, ID: id}, store.HistoryQuery{Type: typ, ID: id, Limit: 1})
		}
	}
	for range 12 {
		lo, hi := g.lus[g.rng.IntN(len(g.lus))], g.lus[g.rng.IntN(len(g.lus))]
		lo, hi = min(lo, hi), max(lo, hi)
		h := store.HistoryQuery{Since: time.UnixMilli(lo).UTC(), Before: time.UnixMilli(hi).UTC()}
		switch g.rng.IntN(3) {
		case 0:
			h.Type = refTypes[g.rng.IntN(len(refTypes))]
		case 1:
			h.Limit = 1 + g.rng.IntN(3)
		}
		out = append(out, h, store.HistoryQuery{Since: h.Since}, store.HistoryQuery{Before: h.Before, Limit: 3})
	}
	return out
}

// invalid are queries no store can answer, each of which must be refused with ErrInvalidQuery.
func (g *queryGen) invalid() []store.Query {
	female := tok("gender", sysGender, "female")
	sortBy := q("Patient")
	sortBy.Sort = []store.SortKey{{}}
	shortAfter := q("Patient")
	shortAfter.Sort, shortAfter.After = []store.SortKey{{Param: "name"}}, []store.SortValue{{Str: "p1"}}
	return []store.Query{
		{},
		q("Patient", or()),
		q("Patient", or(pred("name", store.Match(99)))),
		q("Patient", or(female), or(pred("name", store.Match(99)))),
		q("Patient", or(val(store.ParamID, store.MatchPrefix, "p"))),
		q("Patient", or(val(store.ParamLastUpdated, store.MatchExact, "1"))),
		q("Patient", or(rng("birthdate", store.Bound{Field: store.Field(9), Cmp: store.LT, Value: 1}))),
		q("Patient", or(female), or(rng("birthdate", store.Bound{Field: store.Low, Cmp: store.Cmp(9), Value: 1}))),
		q("Patient", or(chain("organization", store.Query{}))),
		q("Patient", or(female), or(chain("organization", store.Query{}))),
		q("Patient", or(female), or(chain("organization", q("Organization", or(pred("name", store.Match(99))))))),
		q("Patient", or(has(q("Observation"), ""))),
		q("Patient", or(female), or(has(q("Observation"), ""))),
		sortBy,
		shortAfter,
	}
}

// queryString renders q for a failure message, close to FHIR search syntax.
func queryString(q store.Query) string {
	var b strings.Builder
	b.WriteString(q.Type + "?")
	for i, c := range q.Clauses {
		if i > 0 {
			b.WriteString("&")
		}
		for j, p := range c {
			if j > 0 {
				b.WriteString(",")
			}
			b.WriteString(predicateString(p))
		}
	}
	if len(q.Sort) > 0 {
		var keys []string
		for _, k := range q.Sort {
			if k.Desc {
				keys = append(keys, "-"+k.Param)
			} else {
				keys = append(keys, k.Param)
			}
		}
		b.WriteString(" _sort=" + strings.Join(keys, ","))
	}
	if q.Limit > 0 {
		fmt.Fprintf(&b, " _count=%d", q.Limit)
	}
	if len(q.After) > 0 {
		fmt.Fprintf(&b, " after=%v", q.After)
	}
	return b.String()
}

func predicateString(p store.Predicate) string {
	s := p.Param
	switch p.Match {
	case store.MatchPresent:
		s += ":present"
	case store.MatchToken:
		if p.AnySystem {
			s += "=" + p.Value
		} else {
			s += "=" + p.System + "|" + p.Value
		}
	case store.MatchTokenText:
		s += ":text=" + p.Value
	case store.MatchExact:
		s += ":exact=" + p.Value
	case store.MatchPrefix:
		s += "=" + p.Value
	case store.MatchContains:
		s += ":contains=" + p.Value
	case store.MatchRange:
		var bs []string
		for _, b := range p.Bounds {
			f := map[store.Field]string{store.Low: "low", store.High: "high"}[b.Field]
			c := map[store.Cmp]string{store.LT: "<", store.LE: "<=", store.GT: ">", store.GE: ">="}[b.Cmp]
			bs = append(bs, fmt.Sprintf("%s%s%d", cmp.Or(f, fmt.Sprint(b.Field)), cmp.Or(c, fmt.Sprint(b.Cmp)), b.Value))
		}
		s += "=[" + strings.Join(bs, " ") + "]"
	case store.MatchRefIn:
		if p.Sub == nil {
			s += ":chain(nil)"
		} else {
			s += ":(" + queryString(*p.Sub) + ")"
		}
	case store.MatchHas:
		if p.Sub == nil {
			s = "_has(nil)"
		} else {
			s = "_has:" + p.HasParam + "(" + queryString(*p.Sub) + ")"
		}
	default:
		s += fmt.Sprintf(":match%d=%s", p.Match, p.Value)
	}
	if p.Not {
		s = "!" + s
	}
	return s
}

func historyString(q store.HistoryQuery) string {
	s := fmt.Sprintf("type=%q types=%q id=%q", q.Type, q.Types, q.ID)
	if !q.Since.IsZero() {
		s += fmt.Sprintf(" since=%d", q.Since.UnixMilli())
	}
	if !q.Before.IsZero() {
		s += fmt.Sprintf(" before=%d", q.Before.UnixMilli())
	}
	if q.Limit > 0 {
		s += fmt.Sprintf(" limit=%d", q.Limit)
	}
	if q.After != nil {
		s += fmt.Sprintf(" after=%s/%s v%d at %d", q.After.Type, q.After.ID, q.After.VersionID, q.After.LastUpdated.UnixMilli())
	}
	return s
}
