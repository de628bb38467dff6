package conformance

import (
	"net/http"
	"slices"
	"strings"
)

// capStmt is what the suite reads from the CapabilityStatement.
type capStmt struct {
	fhirVersion     string
	formats         []string
	patchFormats    []string
	sysInteractions map[string]bool
	types           map[string]*capType
	order           []string
	security        map[string]any
}

type capType struct {
	name              string
	interactions      map[string]bool
	params            map[string]capParam
	paramOrder        []string
	includes          []string
	revincludes       []string
	conditionalCreate bool
	conditionalUpdate bool
	conditionalDelete string
	conditionalRead   string
	updateCreate      bool
	versioning        string
	operations        []string
	// opDefinitions are the operations' definitions (canonical URLs), by name.
	opDefinitions map[string]string
}

type capParam struct {
	name, typ, definition string
}

func (t *capType) has(interaction string) bool { return t != nil && t.interactions[interaction] }

func (cs *capStmt) typ(name string) *capType { return cs.types[name] }

// supports reports whether the statement declares interaction on typ.
func (cs *capStmt) supports(typ, interaction string) bool { return cs.types[typ].has(interaction) }

func (cs *capStmt) param(typ, name string) (capParam, bool) {
	t := cs.types[typ]
	if t == nil {
		return capParam{}, false
	}
	p, ok := t.params[name]
	return p, ok
}

// jsonPatch reports whether the server declares JSON Patch.
func (cs *capStmt) jsonPatch() bool {
	return slices.Contains(cs.patchFormats, "application/json-patch+json")
}

// declaresXML reports whether the statement lists an XML format.
func (cs *capStmt) declaresXML() bool {
	for _, f := range cs.formats {
		if strings.Contains(f, "xml") {
			return true
		}
	}
	return false
}

func parseCapabilities(doc map[string]any) *capStmt {
	cs := &capStmt{fhirVersion: str(doc, "fhirVersion"), sysInteractions: map[string]bool{}, types: map[string]*capType{}}
	for _, f := range list(doc, "format") {
		if s, ok := f.(string); ok {
			cs.formats = append(cs.formats, s)
		}
	}
	for _, f := range list(doc, "patchFormat") {
		if s, ok := f.(string); ok {
			cs.patchFormats = append(cs.patchFormats, s)
		}
	}
	for _, r := range list(doc, "rest") {
		rm, _ := r.(map[string]any)
		if str(rm, "mode") != "server" {
			continue
		}
		cs.security, _ = rm["security"].(map[string]any)
		for _, in := range list(rm, "interaction") {
			cs.sysInteractions[str(in, "code")] = true
		}
		for _, res := range list(rm, "resource") {
			t := &capType{name: str(res, "type"), interactions: map[string]bool{}, params: map[string]capParam{},
				conditionalDelete: str(res, "conditionalDelete"), conditionalRead: str(res, "conditionalRead"),
				versioning: str(res, "versioning")}
			if t.name == "" {
				continue
			}
			for _, in := range list(res, "interaction") {
				t.interactions[str(in, "code")] = true
			}
			t.conditionalCreate, _ = get(res, "conditionalCreate").(bool)
			t.conditionalUpdate, _ = get(res, "conditionalUpdate").(bool)
			t.updateCreate, _ = get(res, "updateCreate").(bool)
			for _, p := range list(res, "searchParam") {
				cp := capParam{name: str(p, "name"), typ: str(p, "type"), definition: str(p, "definition")}
				if cp.name != "" {
					t.params[cp.name] = cp
					t.paramOrder = append(t.paramOrder, cp.name)
				}
			}
			for _, v := range list(res, "searchInclude") {
				if s, ok := v.(string); ok {
					t.includes = append(t.includes, s)
				}
			}
			for _, v := range list(res, "searchRevInclude") {
				if s, ok := v.(string); ok {
					t.revincludes = append(t.revincludes, s)
				}
			}
			t.opDefinitions = map[string]string{}
			for _, op := range list(res, "operation") {
				t.operations = append(t.operations, str(op, "name"))
				t.opDefinitions[str(op, "name")] = str(op, "definition")
			}
			cs.types[t.name] = t
			cs.order = append(cs.order, t.name)
		}
	}
	return cs
}

// capabilities reads the CapabilityStatement, which every other check is planned from. It returns false
// when there is none to plan from, and the run stops there.
func (s *suite) capabilities() bool {
	var doc map[string]any
	s.check("capabilities/metadata", func(c *C) {
		// A server may keep its statement behind a token; ask without one first, as a client would.
		e := c.getAs("none", "metadata")
		if e.status == http.StatusUnauthorized || e.status == http.StatusForbidden {
			e = c.get("metadata")
		}
		c.wantStatus(e, http.StatusOK)
		res := c.wantBody(e, "CapabilityStatement")
		if v := str(res, "fhirVersion"); !strings.HasPrefix(v, "4.0") {
			c.Fatalf("fhirVersion is %q; this suite tests FHIR R4 (4.0.x)", v)
		}
		for _, el := range []string{"status", "date", "kind"} {
			if str(res, el) == "" {
				c.Fatalf("CapabilityStatement.%s is missing (1..1 in R4)", el)
			}
		}
		if k := str(res, "kind"); k != "instance" && k != "capability" {
			c.Fatalf("CapabilityStatement.kind is %q; a server's own statement is instance (or capability)", k)
		}
		json := false
		for _, f := range list(res, "format") {
			fs, _ := f.(string)
			json = json || fs == "json" || strings.Contains(fs, "json")
		}
		if !json {
			c.Fatalf("CapabilityStatement.format does not list JSON; this suite speaks FHIR JSON only")
		}
		server := false
		for _, r := range list(res, "rest") {
			server = server || str(r, "mode") == "server"
		}
		if !server {
			c.Fatalf("CapabilityStatement has no rest entry with mode server")
		}
		doc = res
		cs := parseCapabilities(res)
		c.Notef("FHIR %s, %d resource types", cs.fhirVersion, len(cs.types))
	})
	if doc == nil {
		if !s.selected("capabilities/metadata") {
			// --only left the statement's check out; it is still read to plan the rest.
			e := s.do(request{method: http.MethodGet, target: "metadata"})
			if e.status == http.StatusOK && str(e.json(), "resourceType") == "CapabilityStatement" {
				doc = e.json()
			}
		}
		if doc == nil {
			return false
		}
	}
	s.cs = parseCapabilities(doc)
	s.smartChecks()
	return true
}

// wantBody checks for a FHIR JSON body holding a resource of typ (an OperationOutcome, Parameters, ...).
func (c *C) wantBody(e *exchange, typ string) map[string]any {
	c.wantFHIRJSON(e)
	if rt := e.resourceType(); rt != typ {
		c.show(e)
		c.Fatalf("the body is a %s, want a %s", rt, typ)
	}
	return e.json()
}

// smartChecks follow what the statement says about security.
func (s *suite) smartChecks() {
	sec := s.cs.security
	smart := false
	for _, svc := range list(sec, "service") {
		for _, cd := range list(svc, "coding") {
			smart = smart || str(cd, "code") == "SMART-on-FHIR"
		}
	}
	var conf map[string]any
	s.check("capabilities/smart-configuration", func(c *C) {
		if !smart {
			c.Skipf("the CapabilityStatement does not declare the SMART-on-FHIR security service")
		}
		// SMART App Launch 2.0: the document is public, JSON, at [base]/.well-known/smart-configuration.
		e := c.getAs("none", ".well-known/smart-configuration", "Accept", "application/json")
		c.wantStatus(e, http.StatusOK)
		if e.json() == nil {
			c.Fatalf("the SMART configuration is not a JSON object")
		}
		doc := e.json()
		if str(doc, "token_endpoint") == "" {
			c.Fatalf("token_endpoint is missing (REQUIRED in SMART App Launch 2.0)")
		}
		if len(list(doc, "capabilities")) == 0 {
			c.Fatalf("capabilities is missing or empty (REQUIRED in SMART App Launch 2.0)")
		}
		if len(list(doc, "grant_types_supported")) == 0 {
			c.Fatalf("grant_types_supported is missing (REQUIRED in SMART App Launch 2.0)")
		}
		methods := list(doc, "code_challenge_methods_supported")
		if str(doc, "authorization_endpoint") != "" {
			if !slices.Contains(methods, any("S256")) {
				c.Fatalf("code_challenge_methods_supported lacks S256 (SMART 2.0: SHALL support PKCE S256)")
			}
		}
		if slices.Contains(methods, any("plain")) {
			c.Fatalf("code_challenge_methods_supported offers plain (SMART 2.0: SHALL NOT)")
		}
		conf = doc
	})
	s.check("capabilities/smart-v2-grants", func(c *C) {
		if conf == nil {
			c.Skipf("no SMART configuration was read")
		}
		if !slices.Contains(list(conf, "capabilities"), any("permission-v2")) {
			c.Skipf("the server does not claim SMART v2 (permission-v2)")
		}
		// SMART 2.0 removed the implicit grant; a v2 server that advertises it invites clients to use it.
		if slices.Contains(list(conf, "grant_types_supported"), any("implicit")) {
			c.Fatalf("grant_types_supported offers implicit, which SMART App Launch 2.0 removed")
		}
	})
	s.check("capabilities/cors", func(c *C) {
		cors, _ := sec["cors"].(bool)
		if !cors {
			c.Skipf("the CapabilityStatement does not claim CORS (rest.security.cors)")
		}
		origin := s.cfg.Origin
		if origin == "" {
			origin = "https://conformance.example"
		}
		e := c.getAs("none", "metadata", "Origin", origin)
		c.wantStatus(e, http.StatusOK)
		if got := e.header.Get("Access-Control-Allow-Origin"); got != origin && got != "*" {
			c.Fatalf("rest.security.cors is true but a request from origin %s gets Access-Control-Allow-Origin %q (is the origin allowed? see --origin)", origin, got)
		}
		// A browser app's first call with a token is preceded by a preflight asking for Authorization.
		e = c.do(request{method: http.MethodOptions, target: "Patient", as: "none", header: []string{
			"Origin", origin, "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "authorization"}})
		c.wantStatus(e, http.StatusOK, http.StatusNoContent)
		if got := e.header.Get("Access-Control-Allow-Origin"); got != origin && got != "*" {
			c.Fatalf("a preflight from %s on a FHIR path gets Access-Control-Allow-Origin %q, want the origin or *", origin, got)
		}
		allowed := strings.ToLower(e.header.Get("Access-Control-Allow-Headers"))
		if allowed != "*" && !strings.Contains(allowed, "authorization") {
			c.Fatalf("a preflight asking for Authorization gets Access-Control-Allow-Headers %q", e.header.Get("Access-Control-Allow-Headers"))
		}
	})
}
