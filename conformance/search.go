package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

const subsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"

// searchChecks test every declared search parameter of every type the suite has fixtures for, then
// includes, sorting, paging, _summary, _elements and _total.
func (s *suite) searchChecks() {
	tampered := false
	for _, typ := range s.typesInOrder() {
		t := s.cs.typ(typ)
		if !t.has("search-type") {
			continue
		}
		if _, known := searchTable[typ]; !known || !s.canCreate(typ) {
			continue // existingChecks searched it
		}
		if !s.anySelected("search/"+typ, "include/"+typ, "revinclude/"+typ, "sort/"+typ, "paging/"+typ,
			"summary/"+typ, "elements/"+typ, "total/"+typ, "errors/tampered-paging-link") {
			continue
		}
		a, b := s.ensure(typ, "A"), s.ensure(typ, "B")
		if a.err != "" || b.err != "" {
			why := a.err
			if why == "" {
				why = b.err
			}
			s.check("search/"+typ, func(c *C) { c.Skipf("needs the fixtures %s A and B: %s", typ, why) })
			continue
		}
		s.searchBasics(typ, a, b)
		s.searchParams(typ, a, b)
		s.includeChecks(typ, a)
		s.sortChecks(typ, a, b)
		s.pagingChecks(typ, !tampered)
		tampered = true
		s.resultChecks(typ, a, b)
	}
	s.iterateCheck()
}

func (s *suite) anySelected(prefixes ...string) bool {
	for _, p := range prefixes {
		if s.selectedPrefix(p) {
			return true
		}
	}
	return false
}

// typesInOrder are the declared types, those the suite has fixtures for first, referenced ones first.
func (s *suite) typesInOrder() []string {
	var out []string
	for _, t := range fixtureOrder {
		if s.cs.typ(t) != nil {
			out = append(out, t)
		}
	}
	for _, t := range s.cs.order {
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// tagged is the query that scopes a search to the run's own resources of a type.
func (s *suite) tagged(typ string, pairs ...string) string {
	// The tag goes last, so that the report's shortened request lines show the parameters under test.
	return typ + "?" + query(append(pairs, "_tag", s.tagParam())...)
}

func (s *suite) searchBasics(typ string, a, b *fixture) {
	as := s.principalFor(typ)
	s.check("search/"+typ+"/bundle", func(c *C) {
		e := c.getAs(as, s.tagged(typ, "_count", "100"))
		bundle := c.wantBundle(e, "searchset")
		got := matches(bundle, typ)
		if !slices.Contains(got, a.id) || !slices.Contains(got, b.id) {
			c.Fatalf("a search by the run's tag did not find both fixtures (matched %d %s)", len(got), typ)
		}
		for _, en := range entries(bundle) {
			if en.id == a.id {
				if en.mode != "match" {
					c.Fatalf("entry.search.mode of a matched resource is %q, want match", en.mode)
				}
				if !strings.HasSuffix(en.fullURL, "/"+typ+"/"+a.id) {
					c.Fatalf("entry.fullUrl %q is not the resource's URL [base]/%s/%s", en.fullURL, typ, a.id)
				}
			}
		}
		self := link(bundle, "self")
		if self == "" {
			c.Fatalf("the searchset has no self link (R4 search.html: the server returns the search it performed as the self link)")
		}
		if !absolute(self) {
			c.Fatalf("the self link %q is not an absolute URL", self)
		}
		if !selfApplies(bundle, "_tag") {
			c.Fatalf("the self link %q leaves out _tag, which was applied", self)
		}
	})
	s.check("search/"+typ+"/post", func(c *C) {
		form := url.Values{"_tag": {s.tagParam()}, "_id": {a.id}}
		e := c.do(request{method: http.MethodPost, target: typ + "/_search", body: []byte(form.Encode()), as: as,
			header: []string{"Content-Type", "application/x-www-form-urlencoded"}})
		bundle := c.wantBundle(e, "searchset")
		if got := matches(bundle, typ); len(got) != 1 || got[0] != a.id {
			c.Fatalf("POST %s/_search with _id in the form body matched %v, want fixture A only", typ, got)
		}
	})
	s.check("search/"+typ+"/self-link", func(c *C) {
		e := c.getAs(as, s.tagged(typ, "_id", a.id))
		bundle := c.wantBundle(e, "searchset")
		self := link(bundle, "self")
		if self == "" {
			c.Skipf("no self link to follow")
		}
		again := c.getAs(as, self)
		b2 := c.wantBundle(again, "searchset")
		if got := matches(b2, typ); len(got) != 1 || got[0] != a.id {
			c.Fatalf("following the self link matched %v, want what the search matched (fixture A)", got)
		}
	})
}

func (s *suite) searchParams(typ string, a, b *fixture) {
	t := s.cs.typ(typ)
	as := s.principalFor(typ)
	for _, p := range t.paramOrder {
		id := "search/" + typ + "/" + p
		if !s.selectedPrefix(id) {
			continue
		}
		spec, ok := paramSpecFor(typ, p)
		if !ok {
			s.check(id, func(c *C) {
				c.Skipf("the suite has no fixture values for %s.%s (%s)", typ, p, t.params[p].typ)
			})
			continue
		}
		cases, err := s.casesFor(typ, p, spec)
		if err != nil {
			s.check(id, func(c *C) { c.Skipf("%v", err) })
			continue
		}
		for _, sc := range cases {
			s.check(id+"/"+sc.name, func(c *C) { s.runCase(c, as, typ, a, b, sc) })
		}
	}
}

func (s *suite) runCase(c *C, as, typ string, a, b *fixture, sc searchCase) {
	pairs := append([]string{sc.key, sc.value}, sc.extra...)
	pairs = append(pairs, "_count", "100", "_tag", s.tagParam())
	e := c.getAs(as, typ+"?"+query(pairs...))
	if sc.optional && declined(e) {
		c.wantOutcome(e)
		c.Skipf("the server declines %s (%d: %s); R4 lets a server leave it out", sc.key, e.status, e.diagnostics())
	}
	bundle := c.wantBundle(e, "searchset")
	if sc.optional && !selfApplies(bundle, sc.key) {
		c.Skipf("the server ignored %s and says so: its self link leaves it out", sc.key)
	}
	got := matches(bundle, typ)
	inA, inB := slices.Contains(got, a.id), slices.Contains(got, b.id)
	wantA, wantB := strings.Contains(sc.want, "A"), strings.Contains(sc.want, "B")
	if inA != wantA || (!sc.ignoreB && inB != wantB) {
		c.Fatalf("%s=%s matched %s, want %s", sc.key, sc.value, describeGot(inA, inB), describeWant(sc.want))
	}
}

// declined reports a refusal of an optional feature: a 4xx other than an authorisation failure.
func declined(e *exchange) bool {
	return e.status >= 400 && e.status < 500 && e.status != http.StatusUnauthorized && e.status != http.StatusForbidden ||
		e.status == http.StatusNotImplemented
}

func describeGot(a, b bool) string {
	switch {
	case a && b:
		return "both fixtures A and B"
	case a:
		return "only fixture A"
	case b:
		return "only fixture B"
	}
	return "neither fixture"
}

// selfApplies reports whether a searchset's self link names a parameter (R4: the self link shows what
// the server applied). Without a self link the server is taken to have applied everything.
func selfApplies(bundle map[string]any, key string) bool {
	self := link(bundle, "self")
	if self == "" {
		return true
	}
	u, err := url.Parse(self)
	if err != nil {
		return true
	}
	vals, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return true
	}
	_, ok := vals[key]
	return ok
}

// includeChecks test the declared _include values of typ and the _revinclude values that point at it.
func (s *suite) includeChecks(typ string, a *fixture) {
	t := s.cs.typ(typ)
	as := s.principalFor(typ)
	for _, inc := range t.includes {
		parts := strings.Split(inc, ":")
		id := "include/" + typ + "/" + strings.Join(parts[1:], ":")
		s.check(id, func(c *C) {
			if len(parts) < 2 || parts[0] != typ {
				c.Skipf("%q is not an _include of %s", inc, typ)
			}
			refs := s.refsOf(typ, parts[1], "A")
			if len(parts) == 3 {
				refs = slices.DeleteFunc(refs, func(r string) bool { return !strings.HasPrefix(r, parts[2]+"/") })
			}
			if len(refs) == 0 {
				c.Skipf("the suite's fixture %s A has no %s reference it knows of", typ, parts[1])
			}
			e := c.getAs(as, typ+"?"+query("_id", a.id, "_include", inc))
			bundle := c.wantBundle(e, "searchset")
			if got := matches(bundle, typ); len(got) != 1 || got[0] != a.id {
				c.Fatalf("the search matched %v, want fixture A only", got)
			}
			for _, r := range refs {
				if !hasEntry(bundle, r, "include") {
					c.Fatalf("_include=%s did not include %s (with search.mode include)", inc, r)
				}
			}
		})
	}
	for _, rev := range t.revincludes {
		parts := strings.Split(rev, ":")
		id := "revinclude/" + typ + "/" + strings.Join(parts, ":")
		s.check(id, func(c *C) {
			if len(parts) < 2 {
				c.Skipf("%q is not a _revinclude value", rev)
			}
			src, p := parts[0], parts[1]
			spec, ok := paramSpecFor(src, p)
			if !ok || spec.ref == nil || !s.canCreate(src) || s.cs.typ(src) == nil {
				c.Skipf("the suite makes no %s that points at a %s through %s", src, typ, p)
			}
			srcA := s.ensure(src, "A")
			if srcA.err != "" {
				c.Skipf("needs %s A: %s", src, srcA.err)
			}
			var target string
			for _, r := range s.refsOf(src, p, "A") {
				if strings.HasPrefix(r, typ+"/") {
					target = strings.TrimPrefix(r, typ+"/")
					break
				}
			}
			if target == "" {
				c.Skipf("the suite's %s A does not point at a %s through %s", src, typ, p)
			}
			e := c.getAs(as, typ+"?"+query("_id", target, "_revinclude", rev))
			bundle := c.wantBundle(e, "searchset")
			if !hasEntry(bundle, srcA.ref(), "include") {
				c.Fatalf("_revinclude=%s did not include %s (with search.mode include)", rev, srcA.ref())
			}
		})
	}
}

// iterateCheck follows two declared includes in a row with _include:iterate.
func (s *suite) iterateCheck() {
	s.check("include/iterate", func(c *C) {
		for _, typ := range s.typesInOrder() {
			t := s.cs.typ(typ)
			if !t.has("search-type") || !s.canCreate(typ) {
				continue
			}
			for _, inc := range t.includes {
				parts := strings.Split(inc, ":")
				if len(parts) != 2 {
					continue
				}
				for _, first := range s.refsOf(typ, parts[1], "A") {
					mid, _, _ := strings.Cut(first, "/")
					u := s.cs.typ(mid)
					if u == nil || !s.canCreate(mid) {
						continue
					}
					for _, inc2 := range u.includes {
						p2 := strings.Split(inc2, ":")
						if len(p2) != 2 || p2[0] == typ {
							continue
						}
						second := s.refsOf(mid, p2[1], "A")
						if len(second) == 0 || s.ensure(mid, "A").ref() != first {
							continue
						}
						a := s.ensure(typ, "A")
						e := c.getAs(s.principalFor(typ), typ+"?"+query("_id", a.id, "_include", inc, "_include:iterate", inc2))
						if declined(e) {
							c.wantOutcome(e)
							c.Skipf("the server declines _include:iterate (%d: %s)", e.status, e.diagnostics())
						}
						bundle := c.wantBundle(e, "searchset")
						if !hasEntry(bundle, first, "include") {
							c.Fatalf("_include=%s did not include %s", inc, first)
						}
						if !selfApplies(bundle, "_include:iterate") {
							c.Skipf("the server ignored _include:iterate and says so in its self link")
						}
						if !hasEntry(bundle, second[0], "include") {
							c.Fatalf("_include:iterate=%s did not include %s, which the included %s points at", inc2, second[0], first)
						}
						c.Notef("%s then %s", inc, inc2)
						return
					}
				}
			}
		}
		c.Skipf("no two declared includes chain through the suite's fixtures")
	})
}

func hasEntry(bundle map[string]any, ref, mode string) bool {
	typ, id, _ := strings.Cut(ref, "/")
	for _, en := range entries(bundle) {
		if en.typ == typ && en.id == id && en.mode == mode {
			return true
		}
	}
	return false
}

// sortChecks sort the pair by _lastUpdated and by each date parameter, both ways. _sort is optional in
// R4; a server that declines it or leaves it out of its self link is skipped.
func (s *suite) sortChecks(typ string, a, b *fixture) {
	as := s.principalFor(typ)
	type key struct {
		name     string
		aEarlier bool
	}
	keys := []key{{"_lastUpdated", true}}
	for _, p := range s.cs.typ(typ).paramOrder {
		if spec, ok := paramSpecFor(typ, p); ok && spec.date {
			keys = append(keys, key{p, spec.aEarlier})
		}
	}
	for _, k := range keys {
		for _, desc := range []bool{false, true} {
			v := k.name
			if desc {
				v = "-" + k.name
			}
			s.check("sort/"+typ+"/"+v, func(c *C) {
				if lu := str(a.stored, "meta", "lastUpdated"); k.name == "_lastUpdated" && lu != "" && lu == str(b.stored, "meta", "lastUpdated") {
					c.Skipf("fixtures A and B were stored in the same instant (%s), so neither sorts first", lu)
				}
				e := c.getAs(as, s.tagged(typ, "_id", a.id+","+b.id, "_sort", v))
				if declined(e) {
					c.wantOutcome(e)
					c.Skipf("the server declines _sort=%s (%d: %s)", v, e.status, e.diagnostics())
				}
				bundle := c.wantBundle(e, "searchset")
				if !selfApplies(bundle, "_sort") {
					c.Skipf("the server ignored _sort and says so in its self link")
				}
				got := matches(bundle, typ)
				ia, ib := slices.Index(got, a.id), slices.Index(got, b.id)
				if ia < 0 || ib < 0 {
					c.Fatalf("the search did not match both fixtures (%v)", got)
				}
				aFirst := k.aEarlier != desc
				if (ia < ib) != aFirst {
					want := "A before B"
					if !aFirst {
						want = "B before A"
					}
					c.Fatalf("_sort=%s returned the fixtures in the wrong order; want %s", v, want)
				}
			})
		}
	}
}

// pagingChecks walk a search one entry a page by its next links. The first type's next link is also
// tampered with.
func (s *suite) pagingChecks(typ string, tamper bool) {
	as := s.principalFor(typ)
	var full []string
	var firstNext string
	s.check("paging/"+typ, func(c *C) {
		e := c.getAs(as, s.tagged(typ, "_count", "100"))
		full = matches(c.wantBundle(e, "searchset"), typ)
		if len(full) < 2 {
			c.Skipf("fewer than two of the run's %s to page through", typ)
		}
		e = c.getAs(as, s.tagged(typ, "_count", "1"))
		var seen []string
		for pages := 1; ; pages++ {
			bundle := c.wantBundle(e, "searchset")
			got := matches(bundle, typ)
			if len(got) > 1 {
				c.Fatalf("page %d holds %d matches with _count=1", pages, len(got))
			}
			for _, id := range got {
				if slices.Contains(seen, id) {
					c.Fatalf("page %d repeats %s/%s from an earlier page", pages, typ, id)
				}
				seen = append(seen, id)
			}
			next := link(bundle, "next")
			if next == "" {
				break
			}
			if pages == 1 {
				firstNext = next
			}
			if !absolute(next) {
				c.Fatalf("the next link %q is not an absolute URL", next)
			}
			if pages > len(full)+3 {
				c.Fatalf("still a next link after %d pages for %d resources", pages, len(full))
			}
			e = c.getAs(as, next)
		}
		slices.Sort(seen)
		slices.Sort(full)
		if !slices.Equal(seen, full) {
			c.Fatalf("paging with _count=1 returned %d resources, one page at a time; the search holds %d", len(seen), len(full))
		}
		c.Notef("%d pages", len(seen))
	})
	if !tamper {
		return
	}
	s.check("errors/tampered-paging-link", func(c *C) {
		if firstNext == "" {
			c.Skipf("no next link to tamper with")
		}
		u, err := url.Parse(firstNext)
		if err != nil {
			c.Fatalf("the next link %q does not parse: %v", firstNext, err)
		}
		vals := u.Query()
		// Alter the state the server put in the link: the longest value that is not the search's own.
		var name string
		for k, v := range vals {
			if k == "_tag" || k == "_count" || len(v) == 0 {
				continue
			}
			if name == "" || len(v[0]) > len(vals.Get(name)) {
				name = k
			}
		}
		tried := 0
		if name != "" {
			v := []byte(vals.Get(name))
			i := len(v) / 2
			v[i] = flip(v[i])
			vals.Set(name, string(v))
			u.RawQuery = vals.Encode()
			s.judgeTampered(c, as, typ, u.String(), full, "an altered "+name)
			tried++
		}
		// Drop the run's tag: a link that then widens the search would show other data.
		if vals.Has("_tag") {
			vals = u.Query()
			vals.Del("_tag")
			if name != "" {
				orig, _ := url.Parse(firstNext)
				vals.Set(name, orig.Query().Get(name))
			}
			u.RawQuery = vals.Encode()
			s.judgeTampered(c, as, typ, u.String(), full, "the _tag criterion removed")
			tried++
		}
		if tried == 0 {
			c.Skipf("the next link carries no state to alter")
		}
	})
}

func flip(b byte) byte {
	switch {
	case b >= 'a' && b < 'z', b >= 'A' && b < 'Z', b >= '0' && b < '9':
		return b + 1
	case b == 'z':
		return 'a'
	case b == 'Z':
		return 'A'
	case b == '9':
		return '0'
	}
	return 'x'
}

// judgeTampered: a tampered link may be refused (4xx with an OperationOutcome) or answered within the
// original search, never with resources the search did not hold.
func (s *suite) judgeTampered(c *C, as, typ, target string, full []string, what string) {
	e := c.getAs(as, target)
	if e.status >= 400 && e.status < 500 {
		c.wantOutcome(e)
		return
	}
	bundle := c.wantBundle(e, "searchset")
	for _, id := range matches(bundle, typ) {
		if !slices.Contains(full, id) {
			c.Fatalf("a next link with %s returned %s/%s, which the original search did not hold", what, typ, id)
		}
	}
}

// resultParam fetches a search with a result parameter R4 lets a server leave out (_summary, _elements,
// _total): a server that declines it, or ignores it and leaves it out of its self link, is skipped.
func (s *suite) resultParam(c *C, as, target, name string) map[string]any {
	e := c.getAs(as, target)
	if declined(e) {
		c.wantOutcome(e)
		c.Skipf("the server declines %s (%d: %s)", name, e.status, e.diagnostics())
	}
	bundle := c.wantBundle(e, "searchset")
	if !selfApplies(bundle, name) {
		c.Skipf("the server ignored %s and says so in its self link", name)
	}
	return bundle
}

// resultChecks test _summary, _elements and _total on the pair.
func (s *suite) resultChecks(typ string, a, b *fixture) {
	as := s.principalFor(typ)
	s.check("summary/"+typ+"/count", func(c *C) {
		bundle := s.resultParam(c, as, s.tagged(typ, "_id", a.id+","+b.id, "_summary", "count"), "_summary")
		total, ok := bundle["total"].(float64)
		if !ok {
			c.Fatalf("_summary=count returned no Bundle.total")
		}
		if total != 2 {
			c.Fatalf("_summary=count says total %v, want 2", total)
		}
		if n := len(matches(bundle, typ)); n != 0 {
			c.Fatalf("_summary=count returned %d resources, want only the count", n)
		}
	})
	s.check("summary/"+typ+"/true", func(c *C) {
		bundle := s.resultParam(c, as, s.tagged(typ, "_id", a.id, "_summary", "true"), "_summary")
		res := entryResource(bundle, typ, a.id)
		if res == nil {
			c.Fatalf("_summary=true did not return fixture A")
		}
		if !subsetted(res) {
			c.Fatalf("a _summary=true resource lacks meta.tag %s|SUBSETTED (R4 search.html: servers SHOULD mark summaries so that they are not used to overwrite the resource)", subsettedSystem)
		}
	})
	s.check("elements/"+typ, func(c *C) {
		bundle := s.resultParam(c, as, s.tagged(typ, "_id", a.id, "_elements", "identifier"), "_elements")
		res := entryResource(bundle, typ, a.id)
		if res == nil {
			c.Fatalf("_elements=identifier did not return fixture A")
		}
		if res["identifier"] == nil {
			c.Fatalf("_elements=identifier returned the resource without identifier")
		}
		reduced := false
		for k := range a.stored {
			if _, kept := res[k]; !kept && k != "text" {
				reduced = true
			}
		}
		if reduced && !subsetted(res) {
			c.Fatalf("a resource cut down by _elements lacks meta.tag %s|SUBSETTED (R4 SHOULD)", subsettedSystem)
		}
	})
	s.check("total/"+typ+"/accurate", func(c *C) {
		bundle := s.resultParam(c, as, s.tagged(typ, "_id", a.id+","+b.id, "_total", "accurate"), "_total")
		total, ok := bundle["total"].(float64)
		if !ok {
			c.Fatalf("_total=accurate returned no Bundle.total")
		}
		if total != 2 {
			c.Fatalf("_total=accurate says %v, want 2", total)
		}
	})
	s.check("total/"+typ+"/paged", func(c *C) {
		bundle := s.resultParam(c, as, s.tagged(typ, "_id", a.id+","+b.id, "_total", "accurate", "_count", "1"), "_total")
		total, ok := bundle["total"].(float64)
		if !ok {
			c.Fatalf("_total=accurate returned no Bundle.total")
		}
		if total != 2 {
			c.Fatalf("with _count=1, total is %v; it must count every match, not the page (want 2)", total)
		}
	})
}

func entryResource(bundle map[string]any, typ, id string) map[string]any {
	for _, en := range entries(bundle) {
		if en.typ == typ && en.id == id {
			return en.resource
		}
	}
	return nil
}

func subsetted(res map[string]any) bool {
	for _, t := range list(res, "meta", "tag") {
		if str(t, "system") == subsettedSystem && str(t, "code") == "SUBSETTED" {
			return true
		}
	}
	return false
}
