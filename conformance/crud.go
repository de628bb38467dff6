package conformance

import (
	"net/http"
	"slices"
	"strings"
	"time"
)

// crudChecks test the instance interactions of every declared type: on the suite's fixtures for the
// types it can make, on an existing resource found by search for the others.
func (s *suite) crudChecks() {
	for _, typ := range fixtureOrder {
		if s.cs.typ(typ) == nil {
			s.check("type/"+typ, func(c *C) {
				c.Skipf("the server does not declare %s, so none of its checks apply", typ)
			})
		}
	}
	for _, typ := range s.typesInOrder() {
		if _, known := fixtureDefs[typ]; known && s.cs.supports(typ, "create") {
			s.typeCRUD(typ)
		} else {
			s.existingChecks(typ)
		}
	}
}

func (s *suite) typeCRUD(typ string) {
	t := s.cs.typ(typ)
	s.check("create/"+typ, func(c *C) {
		f := s.ensure(typ, "A")
		c.show(f.created)
		if f.created == nil || f.created.err != nil {
			c.Fatalf("%s", f.err)
		}
		e := f.created
		c.wantStatus(e, http.StatusCreated)
		loc := e.header.Get("Location")
		if loc == "" {
			c.Fatalf("no Location header (R4 http.html: create SHALL return one with the new id and version)")
		}
		id, ver := idFromLocation(loc, typ)
		if id == "" || ver == "" {
			c.Fatalf("Location %q is not [base]/%s/[id]/_history/[vid]", loc, typ)
		}
		c.wantETag(e, ver)
		if len(e.body) > 0 {
			res := c.wantResource(e, typ)
			if str(res, "id") != id {
				c.Fatalf("the body's id %q differs from the Location's %q", str(res, "id"), id)
			}
			s.checkMeta(c, res, ver)
		}
	})
	s.check("read/"+typ, func(c *C) {
		f := s.need(c, typ, "A")
		e := c.getAs(s.principalFor(typ), typ+"/"+f.id)
		c.wantStatus(e, http.StatusOK)
		res := c.wantResource(e, typ)
		if str(res, "id") != f.id {
			c.Fatalf("read %s/%s returned id %q", typ, f.id, str(res, "id"))
		}
		c.wantETag(e, versionOf(res))
		s.checkMeta(c, res, f.version)
		if lm := e.header.Get("Last-Modified"); lm != "" {
			if _, err := http.ParseTime(lm); err != nil {
				c.Fatalf("Last-Modified %q is not an HTTP date", lm)
			}
		}
		if !sameJSON(res["identifier"], f.sent["identifier"]) {
			c.Fatalf("the identifier read back differs from the one created")
		}
	})
	s.check("read/"+typ+"/unknown", func(c *C) {
		e := c.getAs(s.principalFor(typ), typ+"/"+s.runID+"-no-such-"+strings.ToLower(typ))
		c.wantError(e, http.StatusNotFound)
	})
	s.conditionalReadChecks(typ)
	s.check("vread/"+typ, func(c *C) {
		if !t.has("vread") {
			c.Skipf("the server does not declare vread on %s", typ)
		}
		f := s.need(c, typ, "A")
		e := c.getAs(s.principalFor(typ), typ+"/"+f.id+"/_history/"+f.version)
		c.wantStatus(e, http.StatusOK)
		res := c.wantResource(e, typ)
		if versionOf(res) != f.version {
			c.Fatalf("vread of version %s returned version %q", f.version, versionOf(res))
		}
		c.wantETag(e, f.version)
	})
	s.check("vread/"+typ+"/unknown-version", func(c *C) {
		if !t.has("vread") {
			c.Skipf("the server does not declare vread on %s", typ)
		}
		f := s.need(c, typ, "A")
		e := c.getAs(s.principalFor(typ), typ+"/"+f.id+"/_history/987654")
		c.wantError(e, http.StatusNotFound)
	})
	s.updateChecks(typ)
	s.deleteChecks(typ)
}

// need returns a fixture or skips the check, saying why it could not be made.
func (s *suite) need(c *C, typ, v string) *fixture {
	f := s.ensure(typ, v)
	if f.err != "" {
		c.Skipf("needs the fixture %s %s, which could not be created: %s", typ, v, f.err)
	}
	return f
}

// checkMeta checks what R4 says a stored resource carries: meta.versionId and meta.lastUpdated, and the
// tag the suite gave it (tags are kept across versions; the suite finds its data by it).
func (s *suite) checkMeta(c *C, res map[string]any, version string) {
	if versionOf(res) == "" {
		c.Fatalf("meta.versionId is missing")
	}
	if version != "" && versionOf(res) != version {
		c.Fatalf("meta.versionId is %q, want %q", versionOf(res), version)
	}
	lu := str(res, "meta", "lastUpdated")
	if lu == "" {
		c.Fatalf("meta.lastUpdated is missing")
	}
	if _, err := time.Parse(time.RFC3339Nano, lu); err != nil {
		c.Fatalf("meta.lastUpdated %q is not an instant", lu)
	}
	tagged := false
	for _, t := range list(res, "meta", "tag") {
		tagged = tagged || (str(t, "system") == TagSystem && str(t, "code") == s.runID)
	}
	if !tagged {
		c.Fatalf("the server dropped meta.tag %s", s.tagParam())
	}
}

func (s *suite) conditionalReadChecks(typ string) {
	t := s.cs.typ(typ)
	as := s.principalFor(typ)
	declared := func(kinds ...string) bool { return slices.Contains(kinds, t.conditionalRead) }
	s.check("read/"+typ+"/if-none-match", func(c *C) {
		f := s.need(c, typ, "A")
		e := c.getAs(as, typ+"/"+f.id, "If-None-Match", `W/"`+f.version+`"`)
		if e.status == http.StatusOK && !declared("not-match", "full-support") {
			c.Skipf("the server does not declare conditionalRead not-match (it declares %q)", t.conditionalRead)
		}
		c.wantStatus(e, http.StatusNotModified)
		if len(e.body) > 0 {
			c.Fatalf("a 304 answer has a body")
		}
		e = c.getAs(as, typ+"/"+f.id, "If-None-Match", `W/"987654"`)
		c.wantStatus(e, http.StatusOK)
	})
	s.check("read/"+typ+"/if-modified-since", func(c *C) {
		f := s.need(c, typ, "A")
		later := s.serverNow().Add(time.Hour).UTC().Format(http.TimeFormat)
		e := c.getAs(as, typ+"/"+f.id, "If-Modified-Since", later)
		if e.status == http.StatusOK && !declared("modified-since", "full-support") {
			c.Skipf("the server does not declare conditionalRead modified-since (it declares %q)", t.conditionalRead)
		}
		c.wantStatus(e, http.StatusNotModified)
		earlier := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC).Format(http.TimeFormat)
		e = c.getAs(as, typ+"/"+f.id, "If-Modified-Since", earlier)
		c.wantStatus(e, http.StatusOK)
		c.wantResource(e, typ)
	})
}

// current reads a resource's current version for a check.
func (s *suite) current(c *C, typ, id string) (map[string]any, string) {
	e := c.getAs(s.principalFor(typ), typ+"/"+id)
	c.wantStatus(e, http.StatusOK)
	res := c.wantResource(e, typ)
	return res, versionOf(res)
}

// editBody is fixture f's body with the edit element set to value, the id set and the server's meta
// dropped (the suite's own tag and label kept).
func (s *suite) editBody(f *fixture, value any) map[string]any {
	b := clone(f.sent)
	b["id"] = f.id
	if e := fixtureDefs[f.typ].edit; e.key != "" {
		b[e.key] = value
	}
	return b
}

func (s *suite) updateChecks(typ string) {
	t := s.cs.typ(typ)
	edit := fixtureDefs[typ].edit
	var before string
	s.check("update/"+typ, func(c *C) {
		if !t.has("update") {
			c.Skipf("the server does not declare update on %s", typ)
		}
		f := s.need(c, typ, "C")
		_, v := s.current(c, typ, f.id)
		before = v
		e := c.send(http.MethodPut, typ+"/"+f.id, s.editBody(f, edit.v2), "If-Match", `W/"`+v+`"`)
		c.wantStatus(e, http.StatusOK)
		nv := etagVersion(e.header.Get("ETag"))
		if len(e.body) > 0 {
			res := c.wantResource(e, typ)
			nv = versionOf(res)
			s.checkMeta(c, res, "")
		}
		c.wantETag(e, nv)
		if nv == v {
			c.Fatalf("the update kept version %s; a change makes a new version", v)
		}
		res, rv := s.current(c, typ, f.id)
		if rv != nv {
			c.Fatalf("after the update, read returns version %s, want %s", rv, nv)
		}
		if !sameJSON(res[edit.key], edit.v2) {
			c.Fatalf("after the update, %s.%s is not the value sent", typ, edit.key)
		}
	})
	s.check("update/"+typ+"/stale-if-match", func(c *C) {
		if !t.has("update") {
			c.Skipf("the server does not declare update on %s", typ)
		}
		if before == "" {
			c.Skipf("needs the update check to have run")
		}
		f := s.need(c, typ, "C")
		e := c.send(http.MethodPut, typ+"/"+f.id, s.editBody(f, edit.v1), "If-Match", `W/"`+before+`"`)
		// R4 http.html: a version mismatch on If-Match is 412 Precondition Failed.
		c.wantError(e, http.StatusPreconditionFailed)
	})
	s.check("update/"+typ+"/create", func(c *C) {
		if !t.has("update") || !t.updateCreate {
			c.Skipf("the server does not declare updateCreate on %s", typ)
		}
		body, err := s.body(typ, "U")
		if err != nil {
			c.Skipf("%v", err)
		}
		id := s.identifierValue(typ, "U")
		body["id"] = id
		e := c.send(http.MethodPut, typ+"/"+id, body)
		if e.status == http.StatusCreated || e.status == http.StatusOK {
			s.created(typ, id)
		}
		c.wantStatus(e, http.StatusCreated)
		if loc := e.header.Get("Location"); loc == "" {
			c.Fatalf("no Location header on a 201 (R4 http.html)")
		} else if lid, _ := idFromLocation(loc, typ); lid != id {
			c.Fatalf("Location %q does not name the id the client chose (%s)", loc, id)
		}
	})
	s.check("patch/"+typ, func(c *C) {
		if !t.has("patch") {
			c.Skipf("the server does not declare patch on %s", typ)
		}
		if !s.cs.jsonPatch() {
			c.Skipf("the server does not list application/json-patch+json in patchFormat")
		}
		f := s.need(c, typ, "C")
		_, v := s.current(c, typ, f.id)
		ops := []any{map[string]any{"op": "replace", "path": "/" + edit.key, "value": edit.v1}}
		if _, present := f.sent[edit.key]; !present {
			ops[0].(map[string]any)["op"] = "add"
		}
		e := c.do(request{method: http.MethodPatch, target: typ + "/" + f.id, body: encode(ops),
			header: []string{"Content-Type", "application/json-patch+json", "If-Match", `W/"` + v + `"`}})
		c.wantStatus(e, http.StatusOK)
		res, nv := s.current(c, typ, f.id)
		if nv == v {
			c.Fatalf("the patch kept version %s", v)
		}
		if !sameJSON(res[edit.key], edit.v1) {
			c.Fatalf("after the patch, %s.%s is not the value patched in", typ, edit.key)
		}
	})
	s.check("patch/"+typ+"/stale-if-match", func(c *C) {
		if !t.has("patch") || !s.cs.jsonPatch() {
			c.Skipf("the server does not declare JSON Patch on %s", typ)
		}
		f := s.need(c, typ, "C")
		ops := []any{map[string]any{"op": "replace", "path": "/" + edit.key, "value": edit.v2}}
		e := c.do(request{method: http.MethodPatch, target: typ + "/" + f.id, body: encode(ops),
			header: []string{"Content-Type", "application/json-patch+json", "If-Match", `W/"1"`}})
		c.wantError(e, http.StatusPreconditionFailed)
	})
}

func etagVersion(et string) string {
	return strings.Trim(strings.TrimPrefix(strings.TrimSpace(et), "W/"), `"`)
}

func (s *suite) deleteChecks(typ string) {
	t := s.cs.typ(typ)
	s.check("delete/"+typ, func(c *C) {
		if !t.has("delete") {
			c.Skipf("the server does not declare delete on %s", typ)
		}
		f := s.need(c, typ, "D")
		e := c.send(http.MethodDelete, typ+"/"+f.id, nil)
		c.wantStatus(e, http.StatusOK, http.StatusAccepted, http.StatusNoContent)
		// R4 http.html: a read of a deleted resource is 410 Gone when the server tracks deletions
		// (versioned servers do), else 404.
		e = c.getAs(s.principalFor(typ), typ+"/"+f.id)
		if t.versioning == "versioned" || t.versioning == "versioned-update" {
			c.wantError(e, http.StatusGone)
		} else {
			c.wantError(e, http.StatusGone, http.StatusNotFound)
		}
		// Deleting again is not an error (R4: "or if the resource does not exist at all").
		e = c.send(http.MethodDelete, typ+"/"+f.id, nil)
		c.wantStatus(e, http.StatusOK, http.StatusAccepted, http.StatusNoContent, http.StatusNotFound, http.StatusGone)
	})
	s.check("delete/"+typ+"/search", func(c *C) {
		if !t.has("delete") || !t.has("search-type") {
			c.Skipf("the server does not declare delete and search on %s", typ)
		}
		f := s.need(c, typ, "D")
		e := c.getAs(s.principalFor(typ), s.tagged(typ, "_id", f.id))
		if got := matches(c.wantBundle(e, "searchset"), typ); len(got) != 0 {
			c.Fatalf("a search still finds the deleted %s/%s", typ, f.id)
		}
	})
}

// existingChecks test a type the suite makes no fixtures for (an AuditEvent, a type it does not know) on
// a resource the server already holds, found by search; nothing is written.
func (s *suite) existingChecks(typ string) {
	t := s.cs.typ(typ)
	as := s.principalFor(typ)
	var found map[string]any
	s.check("search/"+typ+"/bundle", func(c *C) {
		if !t.has("search-type") {
			c.Skipf("the server does not declare search on %s", typ)
		}
		e := c.getAs(as, typ+"?_count=2")
		if e.status == http.StatusForbidden && typ == "AuditEvent" && as != RoleAuditor {
			c.Skipf("the main token may not search AuditEvent (403); give --role auditor CMD to check it")
		}
		bundle := c.wantBundle(e, "searchset")
		for _, en := range entries(bundle) {
			if en.typ == typ && (en.mode == "" || en.mode == "match") {
				found = en.resource
				break
			}
		}
	})
	s.check("read/"+typ, func(c *C) {
		if !t.has("read") {
			c.Skipf("the server does not declare read on %s", typ)
		}
		if found == nil {
			c.Skipf("no existing %s was found to read, and the suite does not create %s", typ, typ)
		}
		e := c.getAs(as, typ+"/"+str(found, "id"))
		c.wantStatus(e, http.StatusOK)
		res := c.wantResource(e, typ)
		c.wantETag(e, versionOf(res))
	})
	s.check("vread/"+typ, func(c *C) {
		if !t.has("vread") {
			c.Skipf("the server does not declare vread on %s", typ)
		}
		if found == nil || versionOf(found) == "" {
			c.Skipf("no existing %s with a version was found to read", typ)
		}
		e := c.getAs(as, typ+"/"+str(found, "id")+"/_history/"+versionOf(found))
		c.wantStatus(e, http.StatusOK)
		res := c.wantResource(e, typ)
		if versionOf(res) != versionOf(found) {
			c.Fatalf("vread returned version %q, want %q", versionOf(res), versionOf(found))
		}
	})
	s.check("read/"+typ+"/unknown", func(c *C) {
		if !t.has("read") {
			c.Skipf("the server does not declare read on %s", typ)
		}
		e := c.getAs(as, typ+"/"+s.runID+"-no-such-"+strings.ToLower(typ))
		if e.status == http.StatusForbidden && typ == "AuditEvent" && as != RoleAuditor {
			c.Skipf("the main token may not read AuditEvent (403); give --role auditor CMD to check it")
		}
		c.wantError(e, http.StatusNotFound)
	})
}

// created records a resource made outside the fixtures, for cleanup.
func (s *suite) created(typ, id string) {
	if id == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range s.extra {
		if x.typ == typ && x.id == id {
			return
		}
	}
	s.extra = append(s.extra, createdID{typ, id})
}

// createdFrom records what a create answer names.
func (s *suite) createdFrom(typ string, e *exchange) string {
	if e == nil || e.err != nil || (e.status != http.StatusCreated && e.status != http.StatusOK) {
		return ""
	}
	id, _ := idFromLocation(e.header.Get("Location"), typ)
	if id == "" {
		if doc := e.json(); str(doc, "resourceType") == typ {
			id = str(doc, "id")
		}
	}
	s.created(typ, id)
	return id
}
