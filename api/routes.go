package api

import (
	"net/http"
	"sort"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/fhir"
)

// shape is the form of a FHIR REST path, independent of the resource type.
type shape int

const (
	shapeRoot              shape = iota + 1 // [base]
	shapeMetadata                           // [base]/metadata
	shapeSystemHistory                      // [base]/_history
	shapeType                               // [base]/[type]
	shapeTypeSearch                         // [base]/[type]/_search
	shapeTypeHistory                        // [base]/[type]/_history
	shapeInstance                           // [base]/[type]/[id]
	shapeInstanceHistory                    // [base]/[type]/[id]/_history
	shapeVersion                            // [base]/[type]/[id]/_history/[vid]
	shapeTypeOperation                      // [base]/[type]/$[name]
	shapeInstanceOperation                  // [base]/[type]/[id]/$[name]
	shapeSystemOperation                    // [base]/$[name]
	shapeExportStatus                       // [base]/$export-poll/[job]
	shapeExportFile                         // [base]/$export-poll/[job]/[file]
)

// pathParams are the parts of a FHIR path.
type pathParams struct {
	typ     *fhir.TypeInfo
	id      string
	version string
	// op is the operation name of a [type]/$[name] path, without the $.
	op string
}

// route is one FHIR interaction. The table below routes requests and is also what the CapabilityStatement
// is generated from, so the statement cannot claim an interaction that is not routed.
type route struct {
	shape       shape
	method      string
	interaction string // FHIR restful interaction code
	typeLevel   bool   // appears under rest.resource.interaction rather than rest.interaction
	handle      func(s *Server, req *request, p pathParams) error
}

var routeTable []route

// The table is filled in init because the capabilities handler reads it.
func init() {
	routeTable = []route{
		{shapeMetadata, http.MethodGet, "capabilities", false, (*Server).capabilities},
		// One route, two interactions: the Bundle's type says which, and bundle records it. batch is
		// listed here so that the CapabilityStatement names both.
		{shapeRoot, http.MethodPost, "transaction", false, (*Server).bundle},
		{shapeRoot, http.MethodPost, "batch", false, (*Server).bundle},
		{shapeSystemHistory, http.MethodGet, "history-system", false, (*Server).history},
		{shapeType, http.MethodGet, "search-type", true, (*Server).search},
		{shapeTypeSearch, http.MethodPost, "search-type", true, (*Server).search},
		{shapeType, http.MethodPost, "create", true, (*Server).create},
		{shapeType, http.MethodPut, "update", true, (*Server).conditionalUpdate},
		{shapeType, http.MethodDelete, "delete", true, (*Server).conditionalDelete},
		{shapeTypeHistory, http.MethodGet, "history-type", true, (*Server).history},
		{shapeInstance, http.MethodGet, "read", true, (*Server).read},
		{shapeInstance, http.MethodPut, "update", true, (*Server).update},
		{shapeInstance, http.MethodPatch, "patch", true, (*Server).patch},
		{shapeInstance, http.MethodDelete, "delete", true, (*Server).delete},
		{shapeInstanceHistory, http.MethodGet, "history-instance", true, (*Server).history},
		{shapeVersion, http.MethodGet, "vread", true, (*Server).vread},
		{shapeTypeOperation, http.MethodGet, "operation", true, (*Server).operation},
		{shapeInstanceOperation, http.MethodGet, "operation", true, (*Server).operation},
		{shapeSystemOperation, http.MethodGet, "operation", false, (*Server).operation},
		{shapeExportStatus, http.MethodGet, "operation", false, (*Server).exportStatus},
		{shapeExportStatus, http.MethodDelete, "operation", false, (*Server).exportStatus},
		{shapeExportFile, http.MethodGet, "operation", false, (*Server).exportFile},
	}
}

// validID is the FHIR id rule [A-Za-z0-9\-.]{1,64}, also applied to ids that clients choose on
// update-as-create. It is a loop rather than a regexp because it runs on every instance request.
func validID(id string) bool {
	// An id of dots alone (".", "..") is a path segment to URL resolvers and proxies, not a name.
	return len(id) >= 1 && len(id) <= 64 && onlyBytes(id, "-.") && strings.Trim(id, ".") != ""
}

// onlyBytes reports whether s holds only ASCII letters, digits and the bytes in extra.
func onlyBytes(s, extra string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || strings.IndexByte(extra, c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// parsePath works out the shape of a path relative to the base. ok is false for paths that are not FHIR
// REST paths at all.
func parsePath(path string) (sh shape, typ, id, vid string, ok bool) {
	path = strings.Trim(path, "/")
	if path == "" {
		return shapeRoot, "", "", "", true
	}
	// Split into a buffer on the stack: no FHIR REST path has more than four segments, and a longer one
	// only grows the slice.
	var buf [5]string
	seg := buf[:0]
	for rest := path; ; {
		s, more, found := strings.Cut(rest, "/")
		seg = append(seg, s)
		if !found {
			break
		}
		rest = more
	}
	if seg[0] == "$export-poll" {
		switch len(seg) {
		case 2:
			return shapeExportStatus, "", seg[1], "", true
		case 3:
			return shapeExportFile, "", seg[1], seg[2], true
		}
		return 0, "", "", "", false
	}
	switch {
	case len(seg) == 1 && len(seg[0]) > 1 && seg[0][0] == '$':
		return shapeSystemOperation, "", "", seg[0][1:], true
	case len(seg) == 1 && seg[0] == "metadata":
		return shapeMetadata, "", "", "", true
	case len(seg) == 1 && seg[0] == "_history":
		return shapeSystemHistory, "", "", "", true
	case len(seg) == 1:
		return shapeType, seg[0], "", "", true
	case len(seg) == 2 && seg[1] == "_search":
		return shapeTypeSearch, seg[0], "", "", true
	case len(seg) == 2 && seg[1] == "_history":
		return shapeTypeHistory, seg[0], "", "", true
	case len(seg) == 2 && len(seg[1]) > 1 && seg[1][0] == '$':
		return shapeTypeOperation, seg[0], "", seg[1][1:], true
	case len(seg) == 2:
		return shapeInstance, seg[0], seg[1], "", true
	case len(seg) == 3 && len(seg[2]) > 1 && seg[2][0] == '$':
		return shapeInstanceOperation, seg[0], seg[1], seg[2][1:], true
	case len(seg) == 3 && seg[2] == "_history":
		return shapeInstanceHistory, seg[0], seg[1], "", true
	case len(seg) == 4 && seg[2] == "_history":
		return shapeVersion, seg[0], seg[1], seg[3], true
	}
	return 0, "", "", "", false
}

// dispatch routes every FHIR REST request through routeTable.
//
// The caller is identified before anything else is checked, so that every answer, a refusal by routing
// (405 for a method the path does not allow, 404 for a type not served here, 400 for a malformed id, 406)
// included, is audited with the user, client and token id who made the attempt: an attempt to change
// the audit trail is the one auditors most want attributed. A missing or invalid token therefore gets 401
// on every FHIR path, whatever routing would have answered, as on a server with authentication in front
// of it (Medplum authenticates its whole FHIR router before routing; HAPI behind a bearer-token
// interceptor or gateway does too), and RFC 9110 leaves the order to the server. Nothing is given away
// either way: the allowed methods are public in the CapabilityStatement.
func (s *Server) dispatch(c *gin.Context) {
	sh, typName, id, vid, ok := parsePath(c.Request.URL.Path)
	if !ok {
		// Not a FHIR REST path, so no interaction was attempted: not audited, and nothing to authorise.
		s.respondError(c, fail(kindNotFound, "%s is not a FHIR REST path on this server", c.Request.URL.Path))
		return
	}
	method := c.Request.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	req := requestOf(c)
	in := attempted(sh, method)
	if in == "" {
		// A method with no meaning in FHIR REST (OPTIONS, TRACE, ...) attempts no interaction: it is
		// answered 405 without a token (a browser's CORS preflight sends none) and not audited.
		s.refuseMethod(c, sh, nil)
		return
	}
	req.interaction = in
	// The path is read first, so that the audit record names its target even when the answer is a 401,
	// but what is wrong with it is only answered once the caller is known.
	var p pathParams
	var refusal *apiError
	if typName != "" {
		ti, known := fhir.LookupType(typName)
		if !known {
			refusal = fail(kindNotServed,
				"resource type %q is not served here; served types are listed at %s/metadata", typName, s.cfg.BaseURL)
		}
		p.typ = ti
	}
	if refusal == nil && id != "" && !validID(id) {
		refusal = fail(kindBadValue,
			"%q is not a valid resource id: ids are 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'", id)
	}
	if refusal == nil {
		p.id, p.version = id, vid
		if sh == shapeTypeOperation || sh == shapeInstanceOperation || sh == shapeSystemOperation {
			p.version, p.op = "", vid
		}
		pp := p
		req.path = &pp
	}
	if in != "capabilities" {
		if err := s.identify(req); err != nil {
			s.respondError(c, err)
			return
		}
	}
	if refusal != nil {
		s.respondError(c, refusal)
		return
	}

	for i := range routeTable {
		r := &routeTable[i]
		if r.shape != sh || r.method != method || (p.typ != nil && r.typeLevel && !typeAllows(p.typ, r.interaction)) {
			continue
		}
		req.interaction = r.interaction
		if err := negotiate(c); err != nil {
			s.respondError(c, err)
			return
		}
		if r.interaction != "capabilities" {
			if err := s.authorize(req, r.interaction, p); err != nil {
				s.respondError(c, err)
				return
			}
		}
		if err := r.handle(s, req, p); err != nil {
			s.respondError(c, err)
		}
		return
	}
	// A refused interaction (an update of an AuditEvent) is still an attempt, audited as the interaction
	// attempted, with the caller identified above.
	s.refuseMethod(c, sh, p.typ)
}

// refuseMethod answers a request whose method the path does not allow: 405 with the allowed methods, or
// 404 when the path allows none (an operation on a type without operations).
func (s *Server) refuseMethod(c *gin.Context, sh shape, typ *fhir.TypeInfo) {
	var allowed []string
	for i := range routeTable {
		r := &routeTable[i]
		if r.shape == sh && !(typ != nil && r.typeLevel && !typeAllows(typ, r.interaction)) && !contains(allowed, r.method) {
			allowed = append(allowed, r.method)
		}
	}
	if len(allowed) == 0 {
		s.respondError(c, fail(kindNotServed, "%s is not a FHIR REST path on this server", c.Request.URL.Path))
		return
	}
	sort.Strings(allowed)
	if contains(allowed, http.MethodGet) {
		allowed = append(allowed, http.MethodHead)
	}
	s.respondError(c, fail(kindMethodNotAllowed,
		"%s is not allowed on %s; allowed: %s", c.Request.Method, c.Request.URL.Path, strings.Join(allowed, ", ")).
		withHeader("Allow", strings.Join(allowed, ", ")))
}

// attempted is the interaction a request tries, known from its shape and method alone, before the type,
// the id or the caller's permissions are checked: the route of that shape and method whether or not the
// type allows it (a PUT of an AuditEvent is an attempted update), or, for a method the shape has no route
// for, what the method means in FHIR REST (a POST to an instance is an attempted create, a PATCH of
// /metadata an attempted patch), so that the audit record's action (C, R, U, D, E) says what was tried.
// It is "" for methods with no FHIR meaning.
func attempted(sh shape, method string) string {
	for i := range routeTable {
		if r := &routeTable[i]; r.shape == sh && r.method == method {
			return r.interaction
		}
	}
	if _, ok := methodInteraction[method]; !ok {
		return ""
	}
	switch {
	case sh == shapeTypeOperation || sh == shapeInstanceOperation || sh == shapeSystemOperation ||
		sh == shapeExportStatus || sh == shapeExportFile:
		return "operation"
	case sh == shapeRoot && method == http.MethodGet:
		return "search-system"
	case sh == shapeTypeSearch && method == http.MethodGet:
		return "search-type"
	}
	return methodInteraction[method]
}

// methodInteraction is what an HTTP method attempts on a path that has no route for it.
var methodInteraction = map[string]string{
	http.MethodGet:    "read",
	http.MethodPost:   "create",
	http.MethodPut:    "update",
	http.MethodPatch:  "patch",
	http.MethodDelete: "delete",
}

// typeAllows says whether a resource type supports an interaction, from the fhir registry: AuditEvent
// allows read, vread and search only, so that the routing (405 for anything else) and the
// CapabilityStatement say the same.
func typeAllows(t *fhir.TypeInfo, interaction string) bool {
	return t.Allows(interaction)
}

// operation routes [type]/$[name]. The operations are few, so they are a switch; the CapabilityStatement
// lists them from typeOperations.
func (s *Server) operation(req *request, p pathParams) error {
	req.op = "$" + p.op
	switch {
	case p.op == "export" && (p.typ == nil || p.typ.Name == "Patient" && p.id == "" || p.typ.Name == "Group" && p.id != ""):
		return s.exportKickoff(req, p)
	case p.typ == nil:
		return fail(kindNotServed, "this server has no system operation $%s", p.op)
	case p.id != "" && !(p.typ.Name == "Patient" && p.op == "everything"):
		return fail(kindNotServed, "%s/%s has no operation $%s on this server", p.typ.Name, p.id, p.op)
	}
	if p.typ.Name == "AuditEvent" && p.op == "verify" {
		return s.verifyAudit(req)
	}
	if isMe(p) {
		return s.me(req)
	}
	if p.typ.Name == "Patient" && p.op == "everything" {
		return s.everything(req, p)
	}
	return fail(kindNotServed, "%s has no operation $%s on this server", p.typ.Name, p.op)
}

// typeOperations are the type-level operations, for the CapabilityStatement.
var typeOperations = map[string][]capOperation{
	"Patient": {{Name: "me", Definition: "urn:gpfhir:OperationDefinition/Patient-me",
		Documentation: "Any signed-in person. Their linked patient record, the patients they may act for as a proxy, each " +
			"online service's access level, and for anything unavailable the reason in plain words."},
		{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
			Documentation: "Bulk Data v2, GP systems only: the patient compartment of every patient the client may read."},
		{Name: "everything", Definition: "http://hl7.org/fhir/OperationDefinition/Patient-everything",
			Documentation: "GET Patient/[id]/$everything, or Patient/$everything for a patient's own record: the patient " +
				"compartment and the resources it references, filtered exactly as a search by the same caller, with _since, " +
				"_type, _count and signed next links."}},
	"Group": {{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
		Documentation: "Bulk Data v2, GP systems only: GET Group/[id]/$export, the patient compartment of the Group's Patient " +
			"members that the client may read; the Group must be managed by one of the client's practices."}},
	"AuditEvent": {{Name: "verify", Definition: "urn:gpfhir:OperationDefinition/AuditEvent-verify",
		Documentation: "Auditors only. Verifies the audit hash chain from the first record to the head and answers " +
			"\"intact, N records\" or the first broken link, with the head hash for anchoring."}},
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
