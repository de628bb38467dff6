package conformance

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// cleanupRequests bounds the requests of the cleanup, which runs even when the checks used up their own.
const cleanupRequests = 3000

// cleanup deletes what the run created, newest first so that nothing is deleted while something the
// run made still points at it, then searches each type by the run's tag for anything missed (resources
// that bundles or conditional writes created). It is reported as the check cleanup/deleted.
func (s *suite) cleanup() {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.ctx), 2*time.Minute)
	defer cancel()
	if s.cs == nil {
		return
	}
	used := 0
	del := func(typ, id string) {
		if used >= cleanupRequests || !s.cs.supports(typ, "delete") {
			return
		}
		used++
		s.doIn(ctx, request{method: http.MethodDelete, target: typ + "/" + id, as: s.deleterFor(typ)}, true)
	}
	s.mu.Lock()
	order := append([]*fixture(nil), s.order...)
	extra := append([]createdID(nil), s.extra...)
	s.mu.Unlock()
	for i := len(extra) - 1; i >= 0; i-- {
		del(extra[i].typ, extra[i].id)
	}
	for i := len(order) - 1; i >= 0; i-- {
		del(order[i].typ, order[i].id)
	}
	// Sweep: the tag finds what the lists above missed. Dependants first, then what they point at.
	types := slices.Clone(s.typesInOrder())
	slices.Reverse(types)
	sweep := func() (left []string) {
		for _, typ := range types {
			if !s.cs.supports(typ, "search-type") || typ == "AuditEvent" {
				continue
			}
			for page := 0; page < 10 && used < cleanupRequests; page++ {
				used++
				e := s.doIn(ctx, request{method: http.MethodGet, target: s.tagged(typ, "_count", "100"), as: s.principalFor(typ)}, true)
				if e.status != http.StatusOK {
					break
				}
				ids := matches(e.json(), typ)
				if len(ids) == 0 {
					break
				}
				for _, id := range ids {
					left = append(left, typ+"/"+id)
					del(typ, id)
				}
			}
		}
		return left
	}
	if len(s.fixtures) == 0 && len(extra) == 0 {
		return
	}
	sweep()
	s.runCheck("cleanup/deleted", func(c *C) {
		if ctx.Err() != nil {
			c.Fatalf("the cleanup ran out of time; search _tag=%s for what is left", s.tagParam())
		}
		if left := sweep(); len(left) > 0 {
			c.Fatalf("%d of the run's resources could not be deleted (first: %s); search _tag=%s to find them",
				len(left), left[0], s.tagParam())
		}
		c.Notef("deleted %s", plural(len(order)+len(extra), "resource"))
	}, true)
}

// deleterFor is who deletes the run's resources of typ: the main token made them.
func (s *suite) deleterFor(string) string { return "main" }

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}
