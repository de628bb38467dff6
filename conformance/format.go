package conformance

import (
	"net/http"
	"strings"
)

// probeType is the type the one-off checks (formats, Prefer, errors) use: Patient when the suite can
// make it, else the first type it can.
func (s *suite) probeType() string {
	if s.canCreate("Patient") {
		return "Patient"
	}
	for _, t := range s.typesInOrder() {
		if s.canCreate(t) {
			return t
		}
	}
	return ""
}

// formatChecks test _format and Accept negotiation and the media types of requests and answers.
func (s *suite) formatChecks() {
	typ := s.probeType()
	readA := func(c *C) string {
		if typ == "" {
			c.Skipf("the suite can create no type on this server to read back")
		}
		return typ + "/" + s.need(c, typ, "A").id
	}
	xml := s.cs.declaresXML()
	s.check("format/accept-fhir-json", func(c *C) {
		e := c.get(readA(c), "Accept", "application/fhir+json")
		c.wantStatus(e, http.StatusOK)
		// R4 http.html: the FHIR JSON media type is application/fhir+json.
		if mt := e.mediaType(); mt != "application/fhir+json" {
			c.Fatalf("Accept: application/fhir+json answered with Content-Type %q", e.header.Get("Content-Type"))
		}
		c.wantResource(e, typ)
	})
	s.check("format/accept-json", func(c *C) {
		e := c.get(readA(c), "Accept", "application/json")
		c.wantStatus(e, http.StatusOK)
		c.wantResource(e, typ)
	})
	s.check("format/accept-any", func(c *C) {
		e := c.get(readA(c), "Accept", "*/*")
		c.wantStatus(e, http.StatusOK)
		c.wantResource(e, typ)
	})
	for _, f := range []string{"json", "application/fhir+json"} {
		s.check("format/_format="+f, func(c *C) {
			e := c.get(readA(c) + "?" + query("_format", f))
			c.wantStatus(e, http.StatusOK)
			c.wantResource(e, typ)
		})
	}
	s.check("format/accept-xml", func(c *C) {
		e := c.get(readA(c), "Accept", "application/fhir+xml")
		if xml {
			c.wantStatus(e, http.StatusOK)
			if mt := e.mediaType(); mt != "application/fhir+xml" {
				c.Fatalf("Accept: application/fhir+xml answered with Content-Type %q", e.header.Get("Content-Type"))
			}
			return
		}
		// R4 http.html: a format the server cannot produce is 406 Not Acceptable.
		c.wantError(e, http.StatusNotAcceptable)
	})
	s.check("format/_format=xml", func(c *C) {
		// _format overrides Accept (R4 http.html), so JSON in Accept does not rescue it.
		e := c.get(readA(c)+"?_format=xml", "Accept", "application/fhir+json")
		if xml {
			c.wantStatus(e, http.StatusOK)
			if !strings.Contains(e.mediaType(), "xml") {
				c.Fatalf("_format=xml answered with Content-Type %q", e.header.Get("Content-Type"))
			}
			return
		}
		c.wantError(e, http.StatusNotAcceptable)
	})
	s.check("format/content-type-xml", func(c *C) {
		if xml {
			c.Skipf("the server declares XML")
		}
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		body := `<` + typ + ` xmlns="http://hl7.org/fhir"><meta><tag><system value="` + TagSystem + `"/><code value="` + s.runID + `"/></tag></meta></` + typ + `>`
		e := c.send(http.MethodPost, typ, body, "Content-Type", "application/fhir+xml")
		s.createdFrom(typ, e)
		// R4 http.html: a body in a format the server does not accept is 415 Unsupported Media Type.
		c.wantError(e, http.StatusUnsupportedMediaType)
	})
	s.check("format/metadata-_format", func(c *C) {
		e := c.getAs("none", "metadata?_format=json")
		if e.status == http.StatusUnauthorized {
			e = c.get("metadata?_format=json")
		}
		c.wantStatus(e, http.StatusOK)
		c.wantBody(e, "CapabilityStatement")
	})
}

// headerChecks test Prefer: return on create and update (R4 http.html: minimal, representation,
// OperationOutcome).
func (s *suite) headerChecks() {
	typ := ""
	for _, t := range s.typesInOrder() {
		if s.canCreate(t) {
			typ = t
			break
		}
	}
	create := func(c *C, v, prefer string) *exchange {
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		body, err := s.body(typ, v)
		if err != nil {
			c.Skipf("%v", err)
		}
		e := c.send(http.MethodPost, typ, body, "Prefer", "return="+prefer)
		s.createdFrom(typ, e)
		c.wantStatus(e, http.StatusCreated)
		if e.header.Get("Location") == "" {
			c.Fatalf("no Location header")
		}
		return e
	}
	s.check("prefer/create/minimal", func(c *C) {
		e := create(c, "P1", "minimal")
		if len(strings.TrimSpace(string(e.body))) != 0 {
			c.Fatalf("Prefer: return=minimal answered with a body")
		}
	})
	s.check("prefer/create/representation", func(c *C) {
		e := create(c, "P2", "representation")
		c.wantResource(e, typ)
	})
	s.check("prefer/create/OperationOutcome", func(c *C) {
		e := create(c, "P3", "OperationOutcome")
		c.wantBody(e, "OperationOutcome")
	})
	s.check("prefer/update/minimal", func(c *C) {
		if typ == "" || !s.cs.supports(typ, "update") {
			c.Skipf("no type the suite creates declares update")
		}
		f := s.need(c, typ, "P4")
		e := c.send(http.MethodPut, typ+"/"+f.id, s.editBody(f, fixtureDefs[typ].edit.v2), "Prefer", "return=minimal")
		c.wantStatus(e, http.StatusOK)
		if len(strings.TrimSpace(string(e.body))) != 0 {
			c.Fatalf("Prefer: return=minimal answered with a body")
		}
		c.wantETag(e, "")
	})
}
