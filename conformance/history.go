package conformance

import (
	"slices"
	"strconv"
	"time"
)

// historyChecks run after the update, patch and delete checks, whose versions they look for.
func (s *suite) historyChecks() {
	pagedOnce := false
	for _, typ := range s.typesInOrder() {
		if !s.canCreate(typ) {
			continue
		}
		t := s.cs.typ(typ)
		as := s.principalFor(typ)
		s.check("history/"+typ+"/instance", func(c *C) {
			if !t.has("history-instance") {
				c.Skipf("the server does not declare history-instance on %s", typ)
			}
			f := s.need(c, typ, "C")
			_, cur := s.current(c, typ, f.id)
			e := c.getAs(as, typ+"/"+f.id+"/_history")
			bundle := c.wantBundle(e, "history")
			var versions []int
			for i, en := range entries(bundle) {
				if en.resource == nil {
					continue
				}
				if en.typ != typ || en.id != f.id {
					c.Fatalf("entry[%d] is %s/%s, not a version of %s/%s", i, en.typ, en.id, typ, f.id)
				}
				v, err := strconv.Atoi(versionOf(en.resource))
				if err != nil {
					c.Fatalf("entry[%d] has versionId %q; the suite expects whole numbers", i, versionOf(en.resource))
				}
				versions = append(versions, v)
			}
			if len(versions) == 0 || strconv.Itoa(versions[0]) != cur {
				c.Fatalf("the newest entry is not the current version %s (versions listed: %v)", cur, versions)
			}
			if !slices.IsSortedFunc(versions, func(a, b int) int { return b - a }) {
				c.Fatalf("history entries are not newest first: versions %v (R4 http.html: sorted with oldest versions last)", versions)
			}
			if n, _ := strconv.Atoi(cur); len(versions) < min(n, 2) {
				c.Fatalf("history lists %d versions; the resource is at version %s", len(versions), cur)
			}
			c.Notef("%d versions", len(versions))
		})
		s.check("history/"+typ+"/deleted", func(c *C) {
			if !t.has("history-instance") || !t.has("delete") {
				c.Skipf("the server does not declare history-instance and delete on %s", typ)
			}
			f := s.need(c, typ, "D")
			e := c.getAs(as, typ+"/"+f.id+"/_history")
			bundle := c.wantBundle(e, "history")
			ens := list(bundle, "entry")
			if len(ens) < 2 {
				c.Fatalf("the history of a created then deleted resource lists %d entries, want 2", len(ens))
			}
			first, _ := ens[0].(map[string]any)
			if m := str(first, "request", "method"); m != "DELETE" {
				c.Fatalf("the newest entry of a deleted resource has request.method %q, want DELETE", m)
			}
			if first["resource"] != nil {
				c.Fatalf("the deletion entry carries a resource; a deletion has none")
			}
		})
		s.check("history/"+typ+"/type", func(c *C) {
			if !t.has("history-type") {
				c.Skipf("the server does not declare history-type on %s", typ)
			}
			a := s.need(c, typ, "A")
			since := s.since()
			found := false
			next := typ + "/_history?" + query("_since", since, "_count", "100")
			for page := 0; next != "" && page < 10 && !found; page++ {
				bundle := c.wantBundle(c.getAs(as, next), "history")
				for _, en := range entries(bundle) {
					found = found || en.typ == typ && en.id == a.id
				}
				next = link(bundle, "next")
			}
			if !found {
				c.Fatalf("%s/_history since the run began does not list %s/%s, created in it", typ, typ, a.id)
			}
		})
		s.check("history/"+typ+"/since-future", func(c *C) {
			if !t.has("history-type") {
				c.Skipf("the server does not declare history-type on %s", typ)
			}
			later := s.serverNow().Add(24 * time.Hour).UTC().Format(time.RFC3339)
			bundle := c.wantBundle(c.getAs(as, typ+"/_history?"+query("_since", later)), "history")
			for _, en := range entries(bundle) {
				if en.resource != nil {
					c.Fatalf("_since a day ahead listed %s/%s", en.typ, en.id)
				}
			}
		})
		if pagedOnce || !t.has("history-instance") {
			continue
		}
		pagedOnce = true
		s.check("history/"+typ+"/paging", func(c *C) {
			f := s.need(c, typ, "C")
			bundle := c.wantBundle(c.getAs(as, typ+"/"+f.id+"/_history?_count=1"), "history")
			ens := entries(bundle)
			if len(ens) != 1 {
				c.Fatalf("_count=1 returned %d entries", len(ens))
			}
			next := link(bundle, "next")
			if next == "" {
				c.Skipf("the resource has one version only, or the server does not page history")
			}
			page2 := c.wantBundle(c.getAs(as, next), "history")
			ens2 := entries(page2)
			if len(ens2) != 1 {
				c.Fatalf("the second page holds %d entries with _count=1", len(ens2))
			}
			if versionOf(ens2[0].resource) == versionOf(ens[0].resource) {
				c.Fatalf("the next page repeats version %s", versionOf(ens[0].resource))
			}
		})
	}
	s.check("history/system", func(c *C) {
		if !s.cs.sysInteractions["history-system"] {
			c.Skipf("the server does not declare history-system")
		}
		var want *fixture
		for _, typ := range s.typesInOrder() {
			if s.canCreate(typ) {
				if f := s.ensure(typ, "A"); f.err == "" {
					want = f
					break
				}
			}
		}
		if want == nil {
			c.Skipf("the suite created nothing to look for")
		}
		since := s.since()
		next := "_history?" + query("_since", since, "_count", "100")
		for page := 0; next != "" && page < 20; page++ {
			e := c.get(next)
			bundle := c.wantBundle(e, "history")
			for _, en := range entries(bundle) {
				if en.typ == want.typ && en.id == want.id {
					return
				}
			}
			next = link(bundle, "next")
		}
		c.Fatalf("system history since the run began does not list %s within 20 pages of 100", want.ref())
	})
}
