package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// casRetries bounds how often an unconditional write re-reads and retries after losing a compare-and-swap
// race. Conditional writes (If-Match) never retry: losing the race is their 412.
const casRetries = 8

// retryCAS runs one read-modify-write attempt until it is not beaten by another writer. Under If-Match
// (want != 0) a lost race is at once the 412 the client asked for; otherwise the attempt re-reads and tries
// again, up to casRetries times, after which the conflict surfaces as 409.
func retryCAS(typ, id string, want int64, attempt func() error) error {
	for i := 0; ; i++ {
		err := attempt()
		if !errors.Is(err, store.ErrVersionConflict) {
			return err
		}
		if want != 0 {
			return versionMismatch(typ, id, want, -1)
		}
		if i >= casRetries {
			return err
		}
	}
}

// readBody reads a request body within the configured limit.
func (s *Server) readBody(c *gin.Context) ([]byte, *apiError) {
	if c.Request.ContentLength > s.cfg.MaxBody {
		return nil, tooLarge(s.cfg.MaxBody)
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(s.cfg.MaxBody)
		}
		return nil, fail(kindMalformed, "could not read the request body: %v", err)
	}
	if len(body) == 0 {
		return nil, fail(kindMissing, "the request body is empty; a FHIR JSON resource is required")
	}
	return body, nil
}

func tooLarge(max int64) *apiError {
	return fail(kindTooLarge,
		"the request body is larger than this server accepts (%d bytes)", max)
}

// parseResource reads and validates a resource body for a type-level or instance-level write.
func (s *Server) parseResource(c *gin.Context, typ *fhir.TypeInfo) (*fhir.Resource, *apiError) {
	if err := checkBodyType(c, "application/fhir+json", "application/json", "application/json+fhir"); err != nil {
		return nil, err
	}
	body, aerr := s.readBody(c)
	if aerr != nil {
		return nil, aerr
	}
	// The type is checked before the body is validated: a body of another type is answered as that
	// mistake (400), not with what it lacks as a resource of its own type (422).
	var head struct {
		ResourceType string `json:"resourceType"`
	}
	if json.Unmarshal(body, &head) == nil && head.ResourceType != "" && head.ResourceType != typ.Name {
		return nil, fail(kindInvalid,
			"the body is a %s but the URL is for %s; resourceType must match the URL", head.ResourceType, typ.Name).at("resourceType")
	}
	res, err := fhir.Parse(body)
	if err != nil {
		return nil, fromParseError(err)
	}
	if res.Type() != typ.Name {
		return nil, fail(kindInvalid,
			"the body is a %s but the URL is for %s; resourceType must match the URL", res.Type(), typ.Name).at("resourceType")
	}
	return res, nil
}

// checkReferences makes sure that every literal reference to a served type points at a resource that
// exists and is not deleted, so that the store never holds a dangling link made through this API.
func (s *Server) checkReferences(req *request, res *fhir.Resource, self string) error {
	var issues []fhir.Issue
	seen := map[string]bool{}
	for _, ref := range fhir.References(res, s.cfg.BaseURL) {
		key := ref.Type + "/" + ref.ID
		if _, served := fhir.LookupType(ref.Type); !served || key == self || seen[key] {
			continue
		}
		seen[key] = true
		cur, err := s.current(req, ref.Type, ref.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
		case err != nil:
			return err
		case !cur.Deleted:
			continue
		}
		issues = append(issues, fhir.Issue{
			Severity:    "error",
			Code:        "invalid",
			Diagnostics: "the reference " + key + " does not resolve: no such " + ref.Type + " exists on this server",
			Expression:  []string{ref.Expression},
		})
	}
	if len(issues) > 0 {
		return withIssues(kindUnprocessable, issues...)
	}
	return nil
}

// now is the server clock at the precision that lastUpdated is stored with.
func (s *Server) now() time.Time {
	return s.cfg.Now().UTC().Truncate(time.Millisecond)
}

// prepared is one write made ready but not applied: the new version and the group it needs (the
// resource first, then what the online-services rules derive from it).
type prepared struct {
	r        store.Resource
	writes   []store.Write
	conflict error
}

// prepareVersion finalises res as the version after cur, with compare-and-swap on cur, without applying
// it: the online-services rules (api/online_rules.go) may replace res and add derived writes to the same
// atomic group (a booking claims its slot there), and a transaction bundle puts the writes of every
// entry into one group.
func (s *Server) prepareVersion(req *request, res *fhir.Resource, typ, id string, cur int64) (prepared, error) {
	now := s.now()
	eff, err := s.writeRules(req, res, typ, id, cur, now)
	if err != nil {
		return prepared{}, err
	}
	if eff.replace != nil {
		res = eff.replace
	}
	body, err := res.Finalize(id, cur+1, now)
	if err != nil {
		return prepared{}, internal(err)
	}
	r := store.Resource{Type: typ, ID: id, VersionID: cur + 1, LastUpdated: now, Body: body}
	writes := append([]store.Write{{Resource: r, ExpectVersion: cur, Index: fhir.Extract(res, s.cfg.BaseURL)}}, eff.extra...)
	return prepared{r: r, writes: writes, conflict: eff.conflict}, nil
}

func (s *Server) create(req *request, p pathParams) error {
	c := req.c
	res, aerr := s.parseResource(c, p.typ)
	if aerr != nil {
		return aerr
	}
	if cond := c.GetHeader("If-None-Exist"); cond != "" {
		hits, err := s.conditionalMatches(req, p.typ, cond, "If-None-Exist")
		if err != nil {
			return err
		}
		switch len(hits) {
		case 0:
		case 1:
			// The spec's answer to a create that already happened: 200 with the existing resource.
			req.touch(hits[0].Resource)
			s.respondResource(c, http.StatusOK, hits[0].Resource, false)
			return nil
		default:
			return fail(kindDuplicate,
				"If-None-Exist matched %d %s resources; the criteria must identify at most one", len(hits), p.typ.Name)
		}
	}
	if err := s.checkReferences(req, res, ""); err != nil {
		return err
	}
	// A new id cannot collide, but the writes the online-services rules add to the group (a repeat
	// request's marker on its plan) can lose a race: the retry re-reads and re-applies the rules, which
	// then see what the winner wrote.
	id := uuid.NewString()
	return retryCAS(p.typ.Name, id, 0, func() error {
		v, err := s.prepareVersion(req, res, p.typ.Name, id, 0)
		if err != nil {
			return err
		}
		return s.commit(req, v.change(req.interaction, http.StatusCreated, func() {
			s.respondResource(c, http.StatusCreated, v.r, true)
		}))
	})
}

// ifMatch parses If-Match. It returns 0 when the header is absent.
func ifMatch(c *gin.Context) (int64, *apiError) {
	h := c.GetHeader("If-Match")
	if h == "" {
		return 0, nil
	}
	v, ok := parseETag(h)
	if !ok {
		return 0, fail(kindBadValue, `If-Match %q is not a version ETag such as W/"3"`, h)
	}
	return v, nil
}

func parseETag(h string) (int64, bool) {
	h = strings.TrimSpace(h)
	h = strings.TrimPrefix(h, "W/")
	h = strings.Trim(h, `"`)
	v, err := strconv.ParseInt(h, 10, 64)
	return v, err == nil && v > 0
}

func versionMismatch(typ, id string, want, have int64) *apiError {
	switch {
	case have == 0:
		return fail(kindVersionMismatch, "If-Match asked for version %d of %s/%s, which does not exist", want, typ, id)
	case have < 0:
		return fail(kindVersionMismatch,
			"If-Match asked for version %d of %s/%s but another request changed it first; read it again and retry", want, typ, id)
	}
	return fail(kindVersionMismatch,
		"If-Match asked for version %d of %s/%s but the current version is %d; read it again and retry", want, typ, id, have)
}

func (s *Server) update(req *request, p pathParams) error {
	c := req.c
	res, aerr := s.parseResource(c, p.typ)
	if aerr != nil {
		return aerr
	}
	switch {
	case res.ID() == "":
		return fail(kindMissing, "the body has no id; an update must carry the id from the URL (%s)", p.id).at(p.typ.Name + ".id")
	case res.ID() != p.id:
		return fail(kindInvalid, "the body id %q does not match the URL id %q", res.ID(), p.id).at(p.typ.Name + ".id")
	}
	return s.updateTo(req, p.typ, p.id, res)
}

// updateTo writes res as the next version of typ/id, creating it if absent (update-as-create).
func (s *Server) updateTo(req *request, typ *fhir.TypeInfo, id string, res *fhir.Resource) error {
	c := req.c
	want, aerr := ifMatch(c)
	if aerr != nil {
		return aerr
	}
	ctx := c.Request.Context()
	if err := s.checkReferences(req, res, typ.Name+"/"+id); err != nil {
		return err
	}
	return retryCAS(typ.Name, id, want, func() error {
		cur, err := s.store.Get(ctx, typ.Name, id)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		if err := s.guardCurrent(req, auth.Interaction(req.interaction), cur); err != nil {
			return err
		}
		if want != 0 && cur.VersionID != want {
			return versionMismatch(typ.Name, id, want, cur.VersionID)
		}
		status := http.StatusOK
		if cur.VersionID == 0 || cur.Deleted {
			status = http.StatusCreated
		}
		v, err := s.prepareVersion(req, res, typ.Name, id, cur.VersionID)
		if err != nil {
			return err
		}
		return s.commit(req, v.change(req.interaction, status, func() {
			s.respondResource(c, status, v.r, status == http.StatusCreated)
		}))
	})
}

func (s *Server) patch(req *request, p pathParams) error {
	c := req.c
	if err := checkBodyType(c, jsonPatchType); err != nil {
		err.issues[0].Diagnostics += " (this server supports JSON Patch only, not FHIRPath Patch)"
		return err
	}
	raw, aerr := s.readBody(c)
	if aerr != nil {
		return aerr
	}
	ops, perr := decodePatch(raw)
	if perr != nil {
		return perr
	}
	want, aerr := ifMatch(c)
	if aerr != nil {
		return aerr
	}
	ctx := c.Request.Context()
	return retryCAS(p.typ.Name, p.id, want, func() error {
		cur, err := s.store.Get(ctx, p.typ.Name, p.id)
		if errors.Is(err, store.ErrNotFound) {
			return fail(kindNotFound, "%s/%s is not known to this server", p.typ.Name, p.id)
		}
		if err != nil {
			return err
		}
		if err := s.guardCurrent(req, auth.Interaction(req.interaction), cur); err != nil {
			return err
		}
		if cur.Deleted {
			return gone(cur)
		}
		if want != 0 && cur.VersionID != want {
			return versionMismatch(p.typ.Name, p.id, want, cur.VersionID)
		}
		patched, perr := applyPatch(ops, cur.Body)
		if perr != nil {
			return perr
		}
		res, err := fhir.Parse(patched)
		if err != nil {
			return fromParseError(err)
		}
		if res.Type() != p.typ.Name || res.ID() != p.id {
			return fail(kindUnprocessable, "a patch may not change resourceType or id")
		}
		if err := s.checkReferences(req, res, p.typ.Name+"/"+p.id); err != nil {
			return err
		}
		v, err := s.prepareVersion(req, res, p.typ.Name, p.id, cur.VersionID)
		if err != nil {
			return err
		}
		return s.commit(req, v.change(req.interaction, http.StatusOK, func() {
			s.respondResource(c, http.StatusOK, v.r, false)
		}))
	})
}

// currentOrGone reads the current version, answering 404 and 410 the FHIR way.
func (s *Server) currentOrGone(ctx context.Context, typ, id string) (store.Resource, error) {
	cur, err := s.store.Get(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return cur, fail(kindNotFound, "%s/%s is not known to this server", typ, id)
	}
	if err != nil {
		return cur, err
	}
	if cur.Deleted {
		return cur, gone(cur)
	}
	return cur, nil
}

func gone(r store.Resource) *apiError {
	return fail(kindGone, "%s/%s was deleted (version %d)", r.Type, r.ID, r.VersionID).
		withHeader("ETag", etag(r.VersionID)).
		withHeader("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
}

func (s *Server) delete(req *request, p pathParams) error {
	c := req.c
	want, aerr := ifMatch(c)
	if aerr != nil {
		return aerr
	}
	ctx := c.Request.Context()
	return retryCAS(p.typ.Name, p.id, want, func() error {
		cur, err := s.store.Get(ctx, p.typ.Name, p.id)
		if errors.Is(err, store.ErrNotFound) {
			return fail(kindNotFound, "%s/%s is not known to this server", p.typ.Name, p.id)
		}
		if err != nil {
			return err
		}
		if err := s.guardCurrent(req, auth.Interaction(req.interaction), cur); err != nil {
			return err
		}
		if want != 0 && cur.VersionID != want {
			return versionMismatch(p.typ.Name, p.id, want, cur.VersionID)
		}
		if cur.Deleted {
			// Deleting again changes nothing and makes no new version.
			req.touch(cur)
			s.respondDeleted(c, cur, "was already deleted")
			return nil
		}
		w := store.Write{Resource: store.Resource{Type: p.typ.Name, ID: p.id, VersionID: cur.VersionID + 1, LastUpdated: s.now(), Deleted: true},
			ExpectVersion: cur.VersionID}
		return s.commit(req, change{
			writes:  []store.Write{w},
			checks:  []check{{in: auth.Interaction(req.interaction), write: w}},
			status:  deletedStatus(c),
			touched: []store.Resource{tombstoneNaming(w.Resource, cur)},
			respond: func() { s.respondDeleted(c, w.Resource, "was deleted") },
		})
	})
}

// tombstoneNaming is a tombstone as the audit record names it: with the body it replaces, which names
// the patient.
func tombstoneNaming(tomb, cur store.Resource) store.Resource {
	return store.Resource{Type: tomb.Type, ID: tomb.ID, VersionID: tomb.VersionID, Body: cur.Body}
}

// deletedStatus is what respondDeleted answers.
func deletedStatus(c *gin.Context) int {
	if preferReturn(c) == "OperationOutcome" {
		return http.StatusOK
	}
	return http.StatusNoContent
}

func (s *Server) respondDeleted(c *gin.Context, tomb store.Resource, what string) {
	c.Header("ETag", etag(tomb.VersionID))
	if deletedStatus(c) == http.StatusOK {
		writeFHIR(c, http.StatusOK, fhir.OperationOutcome(fhir.Issue{
			Severity: "information", Code: "informational",
			Diagnostics: tomb.Type + "/" + tomb.ID + " " + what,
		}))
		return
	}
	c.Status(http.StatusNoContent)
}

// conditionalMatches runs the search in a conditional header or URL. Criteria must be present: an empty
// query would match everything.
func (s *Server) conditionalMatches(req *request, typ *fhir.TypeInfo, rawQuery, where string) ([]store.Hit, error) {
	values, aerr := parseQuery(rawQuery, where)
	if aerr != nil {
		return nil, aerr
	}
	if len(values) == 0 {
		return nil, fail(kindMissing, "%s has no search criteria", where)
	}
	q, aerr := s.parseSearch(typ, values, true)
	if aerr != nil {
		return nil, aerr
	}
	if err := s.restrict(req, &q.store); err != nil {
		return nil, err
	}
	q.store.Limit = 2
	return s.store.Search(req.ctx(), q.store)
}

func (s *Server) conditionalUpdate(req *request, p pathParams) error {
	c := req.c
	res, aerr := s.parseResource(c, p.typ)
	if aerr != nil {
		return aerr
	}
	hits, err := s.conditionalMatches(req, p.typ, c.Request.URL.RawQuery, "the conditional update URL")
	if err != nil {
		return err
	}
	switch len(hits) {
	case 0:
		id := res.ID()
		if id == "" {
			id = uuid.NewString()
		}
		return s.updateTo(req, p.typ, id, res)
	case 1:
		id := hits[0].Resource.ID
		if res.ID() != "" && res.ID() != id {
			return fail(kindInvalid,
				"the body id %q differs from the id of the resource the criteria matched (%s)", res.ID(), id).at(p.typ.Name + ".id")
		}
		return s.updateTo(req, p.typ, id, res)
	}
	return fail(kindMultipleMatches,
		"the conditional update criteria matched %d %s resources; they must identify at most one", len(hits), p.typ.Name)
}

func (s *Server) conditionalDelete(req *request, p pathParams) error {
	c := req.c
	hits, err := s.conditionalMatches(req, p.typ, c.Request.URL.RawQuery, "the conditional delete URL")
	if err != nil {
		return err
	}
	switch len(hits) {
	case 0:
		writeFHIR(c, http.StatusOK, fhir.OperationOutcome(fhir.Issue{
			Severity: "information", Code: "not-found",
			Diagnostics: "no " + p.typ.Name + " matched the criteria; nothing was deleted",
		}))
		return nil
	case 1:
		p.id = hits[0].Resource.ID
		return s.delete(req, p)
	}
	return fail(kindMultipleMatches,
		"the conditional delete criteria matched %d %s resources; this server deletes one at a time", len(hits), p.typ.Name)
}

func (s *Server) read(req *request, p pathParams) error {
	c := req.c
	r, ok := req.ownPatient(p.typ.Name, p.id)
	if !ok {
		var err error
		if r, err = s.currentOrGone(c.Request.Context(), p.typ.Name, p.id); err != nil {
			return err
		}
	}
	// Only for this decision: a later entry of a batch may read after the resource has changed.
	req.readCurrent = versionKey{r.Type, r.ID, r.VersionID}
	err := s.canRead(req, r)
	req.readCurrent = versionKey{}
	if err != nil {
		return err
	}
	return s.serveRead(req, r)
}

// serveRead answers a read or vread of a version the caller may see: 304 when the client's copy is
// current, otherwise the version as this caller is shown it.
func (s *Server) serveRead(req *request, r store.Resource) error {
	c := req.c
	r = s.served(req, r)
	if notModified(c, r) {
		c.Header("ETag", etag(r.VersionID))
		c.Status(http.StatusNotModified)
		return nil
	}
	s.respondResource(c, http.StatusOK, r, false)
	return nil
}

func (s *Server) vread(req *request, p pathParams) error {
	c := req.c
	v, err := strconv.ParseInt(p.version, 10, 64)
	if err != nil || v < 1 {
		return fail(kindNotFound, "%q is not a version of %s/%s: versions are whole numbers from 1", p.version, p.typ.Name, p.id)
	}
	r, err := s.store.GetVersion(c.Request.Context(), p.typ.Name, p.id, v)
	if errors.Is(err, store.ErrNotFound) {
		return fail(kindNotFound, "%s/%s has no version %d", p.typ.Name, p.id, v)
	}
	if err != nil {
		return err
	}
	if err := s.canRead(req, r); err != nil {
		return err
	}
	if r.Deleted {
		return gone(r)
	}
	return s.serveRead(req, r)
}

// notModified applies If-None-Match and If-Modified-Since. If-None-Match wins when both are sent, as
// RFC 9110 says.
func notModified(c *gin.Context, r store.Resource) bool {
	if inm := c.GetHeader("If-None-Match"); inm != "" {
		for _, tag := range strings.Split(inm, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" {
				return true
			}
			if v, ok := parseETag(tag); ok && v == r.VersionID {
				return true
			}
		}
		return false
	}
	if ims := c.GetHeader("If-Modified-Since"); ims != "" {
		t, err := http.ParseTime(ims)
		if err != nil {
			return false
		}
		// HTTP dates have whole seconds; lastUpdated has milliseconds.
		return !r.LastUpdated.Truncate(time.Second).After(t)
	}
	return false
}

func etag(v int64) string { return `W/"` + strconv.FormatInt(v, 10) + `"` }

// preferReturn reads the return preference of the Prefer header.
func preferReturn(c *gin.Context) string {
	for _, part := range strings.Split(c.GetHeader("Prefer"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.TrimSpace(k) == "return" {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return "representation"
}

// respondResource answers with one stored version: headers always, the body as Prefer asks. created
// adds Location (the versioned URL), as create and update-as-create must.
func (s *Server) respondResource(c *gin.Context, status int, r store.Resource, created bool) {
	c.Header("ETag", etag(r.VersionID))
	c.Header("Last-Modified", r.LastUpdated.UTC().Format(http.TimeFormat))
	// The versioned URL is made for writes only: a read, the most common answer, names none.
	versioned := func() string {
		return s.cfg.BaseURL + "/" + r.Type + "/" + r.ID + "/_history/" + strconv.FormatInt(r.VersionID, 10)
	}
	if created {
		c.Header("Location", versioned())
	}
	if m := c.Request.Method; m == http.MethodPost || m == http.MethodPut || m == http.MethodPatch {
		c.Header("Content-Location", versioned())
		switch preferReturn(c) {
		case "minimal":
			c.Status(status)
			return
		case "OperationOutcome":
			writeFHIR(c, status, fhir.OperationOutcome(fhir.Issue{
				Severity: "information", Code: "informational",
				Diagnostics: r.Type + "/" + r.ID + " is now at version " + strconv.FormatInt(r.VersionID, 10),
			}))
			return
		}
	}
	writeFHIR(c, status, r.Body)
}
