package conformance

import (
	"net/http"
	"slices"
	"strings"
)

// negativeChecks send what a server must refuse, each expecting the status and OperationOutcome R4
// gives for it.
func (s *suite) negativeChecks() {
	typ := s.probeType()
	body := func(c *C, v string) map[string]any {
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		b, err := s.body(typ, v)
		if err != nil {
			c.Skipf("%v", err)
		}
		return b
	}
	// post sends a body that must be refused, and records anything the server made of it for cleanup.
	post := func(c *C, target string, b any, header ...string) *exchange {
		t, _, _ := strings.Cut(target, "/")
		e := c.send(http.MethodPost, target, b, header...)
		s.createdFrom(t, e)
		return e
	}
	s.check("errors/malformed-json", func(c *C) {
		body(c, "E")
		e := post(c, typ, `{"resourceType": "`+typ+`", "meta": {"tag": [`)
		// R4 http.html: 400 Bad Request, the resource could not be parsed.
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/not-a-resource", func(c *C) {
		body(c, "E")
		e := post(c, typ, `["a JSON array is not a resource"]`)
		c.wantError(e, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
	s.check("errors/wrong-resource-type", func(c *C) {
		body(c, "E")
		other := "Organization"
		if typ == other {
			other = "Practitioner"
		}
		b, err := s.body(other, "E")
		if err != nil || !s.canCreate(other) {
			b = map[string]any{"resourceType": other, "meta": s.meta(), "name": "Wrong type"}
		}
		e := post(c, typ, b)
		// A body of another type is not a resource of the URL's type: it cannot be parsed as one (400),
		// as HAPI and others answer ("resource type in body does not match the URL").
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/wrong-resource-type-incomplete", func(c *C) {
		body(c, "E")
		// An Appointment without its required status and participant, sent to another type's URL: the
		// mismatch is the first thing wrong and must be the answer, not the missing elements.
		other := "Appointment"
		if typ == other {
			other = "Immunization"
		}
		e := post(c, typ, map[string]any{"resourceType": other, "meta": s.meta()})
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/wrong-resource-type-update", func(c *C) {
		if typ == "" || !s.cs.supports(typ, "update") {
			c.Skipf("the probe type does not declare update")
		}
		f := s.need(c, typ, "C")
		e := c.send(http.MethodPut, typ+"/"+f.id, map[string]any{"resourceType": "Bundle", "id": f.id, "type": "collection"})
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/unknown-element", func(c *C) {
		b := body(c, "E")
		b["conformanceUnknownElement"] = "not in R4"
		e := post(c, typ, b)
		// R4 json.html: properties the specification does not define are an error; 400 (not a valid
		// resource) or 422 (fails validation).
		c.wantError(e, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
	s.check("errors/wrong-datatype", func(c *C) {
		b := body(c, "E")
		b["meta"] = map[string]any{"tag": s.meta()["tag"], "lastUpdated": "not an instant"}
		e := post(c, typ, b)
		c.wantError(e, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
	s.check("errors/bad-code", func(c *C) {
		if !s.canCreate("Patient") {
			c.Skipf("needs Patient, whose gender has a required binding")
		}
		b, err := s.body("Patient", "E")
		if err != nil {
			c.Skipf("%v", err)
		}
		b["gender"] = "robot"
		e := post(c, "Patient", b)
		// A code outside a required binding makes the resource invalid: 400 or 422 (R4 http.html).
		c.wantError(e, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
	s.check("errors/update-id-mismatch", func(c *C) {
		if typ == "" || !s.cs.supports(typ, "update") {
			c.Skipf("the probe type does not declare update")
		}
		f := s.need(c, typ, "C")
		b := clone(f.sent)
		b["id"] = f.id + "x"
		e := c.send(http.MethodPut, typ+"/"+f.id, b)
		// R4 http.html update: an id that disagrees with the URL is 400.
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/update-without-id", func(c *C) {
		if typ == "" || !s.cs.supports(typ, "update") {
			c.Skipf("the probe type does not declare update")
		}
		f := s.need(c, typ, "C")
		b := clone(f.sent)
		delete(b, "id")
		e := c.send(http.MethodPut, typ+"/"+f.id, b)
		// R4 http.html update: a body without an id is 400.
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/create-ignores-id", func(c *C) {
		b := body(c, "I")
		chosen := s.identifierValue(typ, "chosen")
		b["id"] = chosen
		e := post(c, typ, b)
		c.wantStatus(e, http.StatusCreated)
		id, _ := idFromLocation(e.header.Get("Location"), typ)
		if id == chosen {
			c.Fatalf("the server kept the id in a create's body; R4 http.html: it SHALL be ignored")
		}
	})
	s.check("errors/unknown-type", func(c *C) {
		e := c.get("ConformanceNoSuchType?_count=1")
		// R4 http.html: 404 Not Found, "resource type not supported".
		c.wantError(e, http.StatusNotFound)
	})
	s.check("errors/method-not-allowed", func(c *C) {
		for _, t := range s.typesInOrder() {
			ct := s.cs.typ(t)
			if ct.has("read") && !ct.has("delete") {
				e := c.send(http.MethodDelete, t+"/"+s.runID+"-no-such", nil)
				if e.status == http.StatusForbidden && t == "AuditEvent" {
					// Some servers refuse by role before routing; the method is still not allowed.
					c.Skipf("the main token is refused on %s before the method is judged (403)", t)
				}
				// R4 http.html: 405 Method Not Allowed for an interaction the type does not support.
				c.wantError(e, http.StatusMethodNotAllowed)
				return
			}
		}
		c.Skipf("every declared type that can be read can also be deleted")
	})
	s.check("errors/bad-search-value", func(c *C) {
		t, p := s.dateParam()
		if p == "" {
			c.Skipf("no type declares a date search parameter")
		}
		e := c.getAs(s.principalFor(t), t+"?"+query(p, "foo"))
		// R4 search.html: a syntactically wrong value SHOULD be refused with 400 and an OperationOutcome.
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/bad-search-prefix", func(c *C) {
		t, p := s.dateParam()
		if p == "" {
			c.Skipf("no type declares a date search parameter")
		}
		e := c.getAs(s.principalFor(t), t+"?"+query(p, "zz2020-01-01"))
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/bad-count", func(c *C) {
		t := s.searchableType()
		if t == "" {
			c.Skipf("no type declares search")
		}
		e := c.getAs(s.principalFor(t), t+"?_count=many")
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/unknown-parameter-lenient", func(c *C) {
		t := s.searchableType()
		if t == "" || !s.canCreate(t) {
			c.Skipf("no type the suite creates declares search")
		}
		a, b := s.need(c, t, "A"), s.need(c, t, "B")
		e := c.getAs(s.principalFor(t), s.tagged(t, "conformance-no-such-param", "1", "_count", "100"), "Prefer", "handling=lenient")
		bundle := c.wantBundle(e, "searchset")
		got := matches(bundle, t)
		if !slices.Contains(got, a.id) || !slices.Contains(got, b.id) {
			c.Fatalf("with handling=lenient an unknown parameter must be ignored, but the search lost the run's resources")
		}
		if selfApplies(bundle, "conformance-no-such-param") && link(bundle, "self") != "" {
			c.Fatalf("the self link keeps the ignored parameter; R4 search.html: it shows the parameters applied")
		}
	})
	s.check("errors/unknown-parameter-strict", func(c *C) {
		t := s.searchableType()
		if t == "" {
			c.Skipf("no type declares search")
		}
		e := c.getAs(s.principalFor(t), t+"?"+query("conformance-no-such-param", "1"), "Prefer", "handling=strict")
		// R4 search.html: with handling=strict the server returns an error for an unknown parameter.
		c.wantError(e, http.StatusBadRequest)
	})
	s.check("errors/unknown-modifier", func(c *C) {
		t := s.searchableType()
		if t == "" {
			c.Skipf("no type declares search")
		}
		e := c.getAs(s.principalFor(t), t+"?"+query("_id:conformancenosuchmodifier", "x"), "Prefer", "handling=strict")
		c.wantError(e, http.StatusBadRequest)
	})
}

// dateParam finds a declared date parameter to send bad values to, preferring Patient.birthdate.
func (s *suite) dateParam() (string, string) {
	if p, ok := s.cs.param("Patient", "birthdate"); ok && s.cs.supports("Patient", "search-type") {
		return "Patient", p.name
	}
	for _, t := range s.typesInOrder() {
		ct := s.cs.typ(t)
		if !ct.has("search-type") {
			continue
		}
		for _, name := range ct.paramOrder {
			if ct.params[name].typ == "date" {
				return t, name
			}
		}
	}
	return "", ""
}

// searchableType is the first type that declares search, preferring one the suite creates.
func (s *suite) searchableType() string {
	for _, t := range s.typesInOrder() {
		if s.cs.supports(t, "search-type") && s.canCreate(t) {
			return t
		}
	}
	for _, t := range s.typesInOrder() {
		if s.cs.supports(t, "search-type") {
			return t
		}
	}
	return ""
}
