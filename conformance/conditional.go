package conformance

import (
	"net/http"
)

// conditionalChecks test conditional create, update and delete on each type, with criteria that match
// only the run's own resources: its identifiers, or its tag where several must match.
func (s *suite) conditionalChecks() {
	for _, typ := range s.typesInOrder() {
		if !s.canCreate(typ) || !s.selectedPrefix("conditional/"+typ) {
			continue
		}
		s.conditionalType(typ)
	}
}

func (s *suite) conditionalType(typ string) {
	t := s.cs.typ(typ)
	as := s.principalFor(typ)
	byID := func(v string) string { return query("identifier", IdentifierSystem+"|"+s.identifierValue(typ, v)) }
	hasIdentifier := func() bool { _, ok := t.params["identifier"]; return ok }
	var kID string
	s.check("conditional/"+typ+"/create-new", func(c *C) {
		if !t.conditionalCreate {
			c.Skipf("the server does not declare conditionalCreate on %s", typ)
		}
		if !hasIdentifier() {
			c.Skipf("%s has no identifier search parameter to make criteria of", typ)
		}
		body, err := s.body(typ, "K")
		if err != nil {
			c.Skipf("%v", err)
		}
		e := c.send(http.MethodPost, typ, body, "If-None-Exist", byID("K"))
		kID = s.createdFrom(typ, e)
		c.wantStatus(e, http.StatusCreated)
		if kID == "" {
			c.Fatalf("the conditional create named no id (Location header or body)")
		}
	})
	s.check("conditional/"+typ+"/create-existing", func(c *C) {
		if kID == "" {
			c.Skipf("needs conditional/%s/create-new to have created a resource", typ)
		}
		body, _ := s.body(typ, "K")
		e := c.send(http.MethodPost, typ, body, "If-None-Exist", byID("K"))
		if id := s.createdFrom(typ, e); id != "" && id != kID {
			c.Fatalf("a conditional create whose criteria match %s/%s created %s/%s", typ, kID, typ, id)
		}
		// R4 http.html: one match, "the server ignores the post and returns 200 OK".
		c.wantStatus(e, http.StatusOK)
	})
	s.check("conditional/"+typ+"/create-multiple", func(c *C) {
		if !t.conditionalCreate {
			c.Skipf("the server does not declare conditionalCreate on %s", typ)
		}
		s.need(c, typ, "A")
		s.need(c, typ, "B")
		body, err := s.body(typ, "M")
		if err != nil {
			c.Skipf("%v", err)
		}
		e := c.send(http.MethodPost, typ, body, "If-None-Exist", query("_tag", s.tagParam()))
		s.createdFrom(typ, e)
		// R4 http.html: several matches, "the server returns a 412 Precondition Failed error".
		c.wantError(e, http.StatusPreconditionFailed)
	})
	s.check("conditional/"+typ+"/update-match", func(c *C) {
		if !t.conditionalUpdate {
			c.Skipf("the server does not declare conditionalUpdate on %s", typ)
		}
		if kID == "" {
			c.Skipf("needs conditional/%s/create-new to have created a resource", typ)
		}
		body, _ := s.body(typ, "K")
		if e := fixtureDefs[typ].edit; e.key != "" {
			body[e.key] = e.v2
		}
		e := c.send(http.MethodPut, typ+"?"+byID("K"), body)
		if id := s.createdFrom(typ, e); e.status == http.StatusCreated {
			c.Fatalf("a conditional update whose criteria match %s/%s created %s/%s", typ, kID, typ, id)
		}
		c.wantStatus(e, http.StatusOK)
		res, _ := s.current(c, typ, kID)
		if k := fixtureDefs[typ].edit.key; k != "" && !sameJSON(res[k], fixtureDefs[typ].edit.v2) {
			c.Fatalf("the conditional update did not change %s/%s", typ, kID)
		}
	})
	s.check("conditional/"+typ+"/update-none", func(c *C) {
		if !t.conditionalUpdate {
			c.Skipf("the server does not declare conditionalUpdate on %s", typ)
		}
		if !hasIdentifier() {
			c.Skipf("%s has no identifier search parameter to make criteria of", typ)
		}
		body, err := s.body(typ, "N")
		if err != nil {
			c.Skipf("%v", err)
		}
		e := c.send(http.MethodPut, typ+"?"+byID("N"), body)
		s.createdFrom(typ, e)
		// R4 http.html: no match, the server performs a create and answers 201.
		c.wantStatus(e, http.StatusCreated)
	})
	s.check("conditional/"+typ+"/update-multiple", func(c *C) {
		if !t.conditionalUpdate {
			c.Skipf("the server does not declare conditionalUpdate on %s", typ)
		}
		s.need(c, typ, "A")
		s.need(c, typ, "B")
		body, err := s.body(typ, "M")
		if err != nil {
			c.Skipf("%v", err)
		}
		e := c.send(http.MethodPut, typ+"?"+query("_tag", s.tagParam()), body)
		s.createdFrom(typ, e)
		c.wantError(e, http.StatusPreconditionFailed)
	})
	s.check("conditional/"+typ+"/delete", func(c *C) {
		if t.conditionalDelete != "single" && t.conditionalDelete != "multiple" {
			c.Skipf("the server does not declare conditionalDelete on %s", typ)
		}
		if kID == "" {
			c.Skipf("needs conditional/%s/create-new to have created a resource", typ)
		}
		e := c.send(http.MethodDelete, typ+"?"+byID("K"), nil)
		c.wantStatus(e, http.StatusOK, http.StatusAccepted, http.StatusNoContent)
		e = c.getAs(as, typ+"/"+kID)
		c.wantError(e, http.StatusGone, http.StatusNotFound)
	})
	s.check("conditional/"+typ+"/delete-multiple", func(c *C) {
		// Only a server that deletes one at a time is asked: one declaring "multiple" would rightly
		// delete every match.
		if t.conditionalDelete != "single" {
			c.Skipf("the server declares conditionalDelete %q, not single", t.conditionalDelete)
		}
		s.need(c, typ, "A")
		s.need(c, typ, "B")
		e := c.send(http.MethodDelete, typ+"?"+query("_tag", s.tagParam()), nil)
		c.wantError(e, http.StatusPreconditionFailed)
		if a := s.ensure(typ, "A"); a.err == "" {
			if g := c.getAs(as, typ+"/"+a.id); g.status != http.StatusOK {
				c.Fatalf("after a refused conditional delete, %s/%s reads %d", typ, a.id, g.status)
			}
		}
	})
}
