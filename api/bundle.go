package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// Batch and transaction Bundles at POST [base]. An entry is one create, update or delete and goes
// through the same code as the single interaction: the same validation, reference check, online-services
// rules (prepareVersion) and write guard (checkWrites, run by commit), with the entry's own interaction.
// A transaction commits the writes of every entry as one group, so that it is stored completely or not
// at all; a batch commits each entry as its own group.

// defaultMaxEntries bounds the entries of one bundle when Config.MaxBundleEntries is not set.
const defaultMaxEntries = audit.MaxBundleEntries

// current reads the current version of typ/id, preferring a version the request's transaction staged.
func (s *Server) current(req *request, typ, id string) (store.Resource, error) {
	if r, ok := req.staged[typ+"/"+id]; ok {
		return r, nil
	}
	return s.store.Get(req.ctx(), typ, id)
}

// txEntry is one entry of a batch or transaction, from its request to its outcome.
type txEntry struct {
	index       int
	method      string
	interaction string
	typ         *fhir.TypeInfo
	id          string
	fullURL     string
	raw         json.RawMessage
	res         *fhir.Resource
	ifMatch     int64
	// existing is the match of a POST's ifNoneExist: nothing is written and the entry answers 200.
	existing *store.Resource
	// nothing is set for a conditional delete that matched nothing.
	nothing bool

	status   int
	result   store.Resource
	writes   []store.Write
	conflict error
	touched  []store.Resource
	// audited: the entry's record was stored with its writes (a batch entry).
	audited bool

	// unchanged: a PUT or PATCH whose content is what is stored; nothing is written.
	unchanged bool

	// A GET entry's answer, from the request it ran as (getEntry), which audited it.
	get       bool
	getStatus int
	getBody   []byte
	getHeader http.Header
}

// change is the entry's staged writes as a change: its own write checked under the entry's
// interaction. In a transaction a refusal names the entry; a batch names it for every error.
func (te *txEntry) change(transaction bool) change {
	if len(te.writes) == 0 {
		return change{}
	}
	ck := check{in: auth.Interaction(te.interaction), write: te.writes[0]}
	if transaction {
		ck.txEntry = te.index + 1
	}
	return change{writes: te.writes, checks: []check{ck}, conflict: te.conflict}
}

// entryError names the entry in every issue of err, so that a client knows which entry to fix.
func entryError(i int, err error) *apiError {
	ae := answerOf(err)
	if ae.status() >= 500 {
		return ae
	}
	out := &apiError{kind: ae.kind, header: ae.header, cause: ae.cause}
	prefix := "Bundle.entry[" + strconv.Itoa(i) + "]"
	for _, is := range ae.issues {
		var exprs []string
		for _, e := range is.Expression {
			// "Patient.birthDate" is, inside a bundle, the entry's resource.
			if _, rest, ok := strings.Cut(e, "."); ok && !strings.HasPrefix(e, "Bundle.") {
				exprs = append(exprs, prefix+".resource."+rest)
			} else if !strings.HasPrefix(e, "Bundle.") {
				exprs = append(exprs, prefix+".resource")
			} else {
				exprs = append(exprs, e)
			}
		}
		if len(exprs) == 0 {
			exprs = []string{prefix}
		}
		is.Expression = exprs
		is.Diagnostics = prefix + ": " + is.Diagnostics
		out.issues = append(out.issues, is)
	}
	return out
}

// bundle handles POST [base].
func (s *Server) bundle(req *request, _ pathParams) error {
	c := req.c
	if err := checkBodyType(c, "application/fhir+json", "application/json", "application/json+fhir"); err != nil {
		return err
	}
	body, aerr := s.readBody(c)
	if aerr != nil {
		return aerr
	}
	var b fhir.Bundle
	if err := json.Unmarshal(body, &b); err != nil {
		return fail(kindMalformed, "the body is not a FHIR JSON Bundle: %v", err)
	}
	if b.ResourceType != "Bundle" {
		return fail(kindInvalid, "POST to the base takes a Bundle, not a %s", b.ResourceType).at("resourceType")
	}
	interaction := ""
	switch b.Type {
	case fhir.BundleTransaction:
		interaction = "transaction"
	case fhir.BundleBatch:
		interaction = "batch"
	default:
		return fail(kindInvalid, "a Bundle posted to the base must be of type transaction or batch, not %q", b.Type).at("Bundle.type")
	}
	// The route registered the request as "transaction"; a batch is audited as what it is.
	req.interaction = interaction
	// The outer request's If-Match means nothing to the entries: each entry's own request.ifMatch counts.
	req.ifMatch = false
	max := s.cfg.MaxBundleEntries
	if max <= 0 {
		max = defaultMaxEntries
	}
	if len(b.Entry) > max {
		return fail(kindTooLarge,
			"the Bundle has %d entries; this server takes at most %d in one %s", len(b.Entry), max, interaction).at("Bundle.entry")
	}
	entries := make([]*txEntry, len(b.Entry))
	for i, e := range b.Entry {
		entries[i] = &txEntry{index: i, fullURL: e.FullURL, raw: e.Resource}
	}
	defer s.auditEntries(req, entries)
	if interaction == "batch" {
		return s.batch(req, b.Entry, entries)
	}
	return s.transaction(req, b.Entry, entries)
}

// resolve reads an entry's request: which interaction, on which resource. It authorises the interaction
// on the type exactly as dispatch does for a single request, and runs conditional criteria.
func (s *Server) resolve(req *request, e fhir.BundleEntry, te *txEntry, transaction bool) error {
	if e.Request == nil || e.Request.Method == "" || e.Request.URL == "" {
		return fail(kindMissing, "the entry has no request method and url").at("Bundle.entry[" + strconv.Itoa(te.index) + "].request")
	}
	te.method = strings.ToUpper(e.Request.Method)
	raw := strings.TrimPrefix(e.Request.URL, s.cfg.BaseURL+"/")
	path, query, _ := strings.Cut(raw, "?")
	sh, typName, id, _, ok := parsePath(path)
	switch te.method {
	case http.MethodGet:
		// Run as a request of its own (getEntry), which routes, authorises and audits it.
		te.get = true
		return nil
	case http.MethodPatch:
		te.interaction = "patch"
		ok = ok && sh == shapeInstance && query == ""
	case http.MethodPost:
		te.interaction = "create"
		ok = ok && sh == shapeType && query == ""
	case http.MethodPut:
		te.interaction = "update"
		ok = ok && (sh == shapeInstance && query == "" || sh == shapeType && query != "")
	case http.MethodDelete:
		te.interaction = "delete"
		ok = ok && (sh == shapeInstance && query == "" || sh == shapeType && query != "")
	default:
		what := "a batch"
		if transaction {
			what = "a transaction"
		}
		return fail(kindUnsupported,
			"request.method %s is not supported in %s; entries may GET, POST, PUT, PATCH or DELETE", e.Request.Method, what).
			at("Bundle.entry[" + strconv.Itoa(te.index) + "].request.method")
	}
	if !ok {
		return fail(kindInvalid, "request.url %q is not a valid URL for %s", e.Request.URL, te.method).
			at("Bundle.entry[" + strconv.Itoa(te.index) + "].request.url")
	}
	ti, known := fhir.LookupType(typName)
	if !known {
		return fail(kindNotServed,
			"resource type %q is not served here; served types are listed at %s/metadata", typName, s.cfg.BaseURL).
			at("Bundle.entry[" + strconv.Itoa(te.index) + "].request.url")
	}
	te.typ = ti
	if !typeAllows(ti, te.interaction) {
		return fail(kindMethodNotAllowed, "%s does not allow %s on this server", ti.Name, te.interaction)
	}
	if id != "" && !validID(id) {
		return fail(kindBadValue,
			"%q is not a valid resource id: ids are 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'", id)
	}
	if d := auth.Authorize(req.caller, auth.Interaction(te.interaction), ti.Name); !d.Allow() {
		return s.refuse(req, d)
	}
	if e.Request.IfMatch != "" {
		v, ok := parseETag(e.Request.IfMatch)
		if !ok {
			return fail(kindBadValue, `ifMatch %q is not a version ETag such as W/"3"`, e.Request.IfMatch)
		}
		te.ifMatch = v
	}
	te.id = id
	switch {
	case te.method == http.MethodPost:
		te.id = uuid.NewString()
		if cond := e.Request.IfNoneExist; cond != "" {
			hits, err := s.conditionalMatches(req, ti, cond, "ifNoneExist")
			if err != nil {
				return err
			}
			switch len(hits) {
			case 0:
			case 1:
				te.existing = &hits[0].Resource
				te.id = hits[0].Resource.ID
			default:
				return fail(kindDuplicate,
					"ifNoneExist matched %d %s resources; the criteria must identify at most one", len(hits), ti.Name)
			}
		}
	case query != "":
		hits, err := s.conditionalMatches(req, ti, query, "the conditional request.url")
		if err != nil {
			return err
		}
		switch len(hits) {
		case 0:
			if te.method == http.MethodDelete {
				te.nothing = true
			} else {
				te.id = uuid.NewString()
			}
		case 1:
			te.id = hits[0].Resource.ID
		default:
			return fail(kindMultipleMatches,
				"the conditional criteria matched %d %s resources; they must identify at most one", len(hits), ti.Name)
		}
	}
	return nil
}

// parseEntry validates an entry's resource after its references have been rewritten.
func (te *txEntry) parseEntry() error {
	if te.get || te.method == http.MethodDelete || te.method == http.MethodPatch {
		return nil
	}
	if len(te.raw) == 0 {
		return fail(kindMissing, "a %s entry needs a resource", te.method)
	}
	res, err := fhir.Parse(te.raw)
	if err != nil {
		return fromParseError(err)
	}
	if res.Type() != te.typ.Name {
		return fail(kindInvalid,
			"the resource is a %s but request.url is for %s; resourceType must match", res.Type(), te.typ.Name).at("resourceType")
	}
	if te.method == http.MethodPut && res.ID() != "" && res.ID() != te.id {
		return fail(kindInvalid, "the resource id %q does not match the id the request is for (%s)", res.ID(), te.id).at(te.typ.Name + ".id")
	}
	te.res = res
	return nil
}

// stage prepares an entry's writes, without applying them, under the same rules as the single
// interaction.
func (s *Server) stage(req *request, te *txEntry) error {
	te.writes, te.conflict, te.touched, te.unchanged = nil, nil, nil, false
	ctx := req.ctx()
	self := te.typ.Name + "/" + te.id
	switch {
	case te.nothing:
		te.status = http.StatusNoContent
		return nil
	case te.existing != nil:
		te.status, te.result = http.StatusOK, *te.existing
		te.touched = []store.Resource{*te.existing}
		return nil
	case te.method == http.MethodDelete:
		cur, err := s.store.Get(ctx, te.typ.Name, te.id)
		if errors.Is(err, store.ErrNotFound) {
			return fail(kindNotFound, "%s is not known to this server", self)
		}
		if err != nil {
			return err
		}
		if err := s.guardCurrent(req, auth.Interaction(te.interaction), cur); err != nil {
			return err
		}
		if te.ifMatch != 0 && cur.VersionID != te.ifMatch {
			return versionMismatch(te.typ.Name, te.id, te.ifMatch, cur.VersionID)
		}
		if cur.Deleted {
			te.status, te.result = http.StatusNoContent, cur
			te.touched = []store.Resource{cur}
			return nil
		}
		tomb := store.Resource{Type: te.typ.Name, ID: te.id, VersionID: cur.VersionID + 1, LastUpdated: s.now(), Deleted: true}
		te.writes = []store.Write{{Resource: tomb, ExpectVersion: cur.VersionID}}
		te.status, te.result = http.StatusNoContent, tomb
		te.touched = []store.Resource{tombstoneNaming(tomb, cur)}
	default:
		cur := store.Resource{}
		if te.method == http.MethodPut || te.method == http.MethodPatch {
			r, err := s.store.Get(ctx, te.typ.Name, te.id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			cur = r
			if te.method == http.MethodPatch && (cur.VersionID == 0 || cur.Deleted) {
				return fail(kindNotFound, "%s is not known to this server; a patch needs a current version", self)
			}
			if err := s.guardCurrent(req, auth.Interaction(te.interaction), cur); err != nil {
				return err
			}
			if te.ifMatch != 0 && cur.VersionID != te.ifMatch {
				return versionMismatch(te.typ.Name, te.id, te.ifMatch, cur.VersionID)
			}
			if te.method == http.MethodPatch {
				if err := te.patchEntry(cur); err != nil {
					return err
				}
			}
			if err := s.checkReferences(req, te.res, self); err != nil {
				return err
			}
			if same, err := unchanged(te.res, cur); err != nil {
				return internal(err)
			} else if same {
				// A no-op update, as HAPI makes one: the content is what is stored, so no version is
				// written and the entry answers with the current one. This is what makes a repeated
				// import store nothing.
				te.status, te.result, te.unchanged = http.StatusOK, cur, true
				te.touched = []store.Resource{cur}
				return nil
			}
		} else if err := s.checkReferences(req, te.res, ""); err != nil {
			return err
		}
		// The online rules read the entry's own ifMatch (a cancellation needs one), not the outer
		// request's.
		req.ifMatch = te.ifMatch != 0
		v, err := s.prepareVersion(req, te.res, te.typ.Name, te.id, cur.VersionID)
		if err != nil {
			return err
		}
		te.writes, te.conflict, te.result = v.writes, v.conflict, v.r
		te.status = http.StatusOK
		if cur.VersionID == 0 || cur.Deleted {
			te.status = http.StatusCreated
		}
		te.touched = []store.Resource{v.r}
	}
	return nil
}

// rewriteRefs replaces every reference to a urn:uuid or urn:oid fullUrl of the transaction with the
// Type/id the entry was given.
func rewriteRefs(raw json.RawMessage, ids map[string]string) (json.RawMessage, error) {
	if len(raw) == 0 || len(ids) == 0 || !strings.Contains(string(raw), "urn:") {
		return raw, nil
	}
	return walkRefs(raw, func(ref string) bool { _, ok := ids[ref]; return ok },
		func(ref string) (string, error) { return ids[ref], nil })
}

// transaction processes a transaction Bundle: every entry or none.
func (s *Server) transaction(req *request, reqs []fhir.BundleEntry, entries []*txEntry) error {
	ids := map[string]string{}
	targets := map[string]int{}
	for i, te := range entries {
		if err := s.resolve(req, reqs[i], te, true); err != nil {
			return s.failEntries(entries, entryError(i, err))
		}
		if te.nothing || te.get {
			continue
		}
		key := te.typ.Name + "/" + te.id
		if j, dup := targets[key]; dup {
			return s.failEntries(entries, entryError(i, fail(kindDuplicateEntry,
				"%s is also the subject of entry %d; a transaction may change each resource once", key, j)))
		}
		targets[key] = i
		if strings.HasPrefix(te.fullURL, "urn:uuid:") || strings.HasPrefix(te.fullURL, "urn:oid:") {
			ids[te.fullURL] = key
		}
	}
	// A conditional reference may name a resource the transaction itself creates, by an identifier it
	// carries.
	inBundle := func(typ, query string) (string, bool) {
		for _, te := range entries {
			if te.method == http.MethodPost && te.existing == nil && te.typ.Name == typ && identifierIn(te.raw, query) {
				return typ + "/" + te.id, true
			}
		}
		return "", false
	}
	for i, te := range entries {
		if te.get {
			continue
		}
		raw, err := rewriteRefs(te.raw, ids)
		if err != nil {
			return internal(err)
		}
		te.raw = raw
		if err := s.resolveConditionalRefs(req, te, inBundle); err != nil {
			return s.failEntries(entries, entryError(i, err))
		}
		if err := te.parseEntry(); err != nil {
			return s.failEntries(entries, entryError(i, err))
		}
	}
	order := processingOrder(entries)
	conditional := false
	for _, te := range entries {
		conditional = conditional || te.ifMatch != 0
	}
	defer func() { req.staged, req.pending = nil, nil }()
	for attempt := 0; ; attempt++ {
		// Every entry's outcome is visible to every other from the start, whatever the order of
		// processing: an Immunization may come before the Patient it references. stage replaces each
		// provisional version with the prepared one.
		staged := map[string]store.Resource{}
		for _, te := range entries {
			switch {
			case te.get || te.nothing || te.existing != nil:
			case te.method == http.MethodDelete:
				staged[te.typ.Name+"/"+te.id] = store.Resource{Type: te.typ.Name, ID: te.id, Deleted: true}
			case te.method == http.MethodPatch:
			default:
				staged[te.typ.Name+"/"+te.id] = store.Resource{Type: te.typ.Name, ID: te.id, Body: te.raw}
			}
		}
		req.staged = staged
		// pending is the version each staged write replaces, so that a rule deriving a write from a
		// resource the transaction prepared (a booking of a Slot it creates) replaces that write rather
		// than stacking a second version on it.
		req.pending = map[string]int64{}
		var writes []store.Write
		at := map[string]int{}    // key -> index in writes
		owner := map[string]int{} // key -> entry whose own resource it is
		for _, te := range order {
			if te.get {
				continue
			}
			if err := s.stage(req, te); err != nil {
				return s.failEntries(entries, entryError(te.index, err))
			}
			for wi, w := range te.writes {
				key := w.Resource.Type + "/" + w.Resource.ID
				pos, dup := at[key]
				switch {
				case !dup:
					at[key] = len(writes)
					writes = append(writes, w)
					if wi == 0 {
						owner[key] = te.index
					}
				case wi > 0 && writes[pos].ExpectVersion == w.ExpectVersion && writes[pos].Resource.VersionID == w.Resource.VersionID:
					// A rule's derived write on a resource an earlier entry prepared: it is that
					// entry's resource as the rule leaves it, and the entry answers with it.
					writes[pos] = w
					if j, ok := owner[key]; ok {
						oe := entries[j]
						oe.writes[0], oe.result = w, w.Resource
						oe.touched = []store.Resource{w.Resource}
					}
				default:
					j := owner[key]
					return s.failEntries(entries, entryError(te.index, fail(kindConflict,
						"%s is also changed by entry %d (a slot both book, say); a transaction may change each resource once", key, j)))
				}
				staged[key] = w.Resource
				req.pending[key] = w.ExpectVersion
			}
		}
		if len(writes) == 0 {
			break
		}
		// The group is committed as one: every entry's own write checked under its interaction, then
		// all of them applied atomically with the records of the bundle and of each entry.
		group := change{writes: writes, status: http.StatusOK}
		for _, te := range order {
			group.checks = append(group.checks, te.change(true).checks...)
		}
		group.records = func() ([]audit.Record, error) { return s.transactionRecords(req, entries) }
		err := s.commit(req, group)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrVersionConflict) {
			return s.failEntries(entries, err)
		}
		if conditional {
			return s.failEntries(entries, fail(kindVersionMismatch,
				"another request changed a resource this transaction sent ifMatch for; nothing was stored: read again and retry"))
		}
		if attempt >= casRetries {
			return s.failEntries(entries, err)
		}
	}
	// Reads come last, and see what the transaction wrote.
	for i, te := range entries {
		if te.get {
			s.getEntry(req, reqs[i], te)
		}
	}
	s.respondBundle(req, fhir.BundleTransactionResponse, entries)
	return nil
}

// failEntries marks every entry of a failed transaction with its status, for the audit, and returns err.
func (s *Server) failEntries(entries []*txEntry, err error) error {
	status := answerOf(err).status()
	for _, te := range entries {
		te.status, te.touched = status, nil
	}
	return err
}

// batch processes a batch Bundle: each entry on its own, as if it were a request of its own.
func (s *Server) batch(req *request, reqs []fhir.BundleEntry, entries []*txEntry) error {
	outcomes := make([]*apiError, len(entries))
	for i, te := range entries {
		err := s.batchEntry(req, reqs[i], te)
		if err != nil {
			ae := entryError(i, err)
			if ae.kind == kindInternal {
				req.logger().Error("batch entry failed", "entry", i, "error", ae.cause)
				ae = fail(kindInternal, "internal error (request id %s)", req.id)
			}
			outcomes[i] = ae
			te.status, te.touched = ae.status(), nil
		}
	}
	s.respondBundleWith(req, fhir.BundleBatchResponse, entries, outcomes)
	return nil
}

func (s *Server) batchEntry(req *request, e fhir.BundleEntry, te *txEntry) error {
	if err := s.resolve(req, e, te, false); err != nil {
		return err
	}
	if te.get {
		s.getEntry(req, e, te)
		return nil
	}
	if err := s.resolveConditionalRefs(req, te, func(string, string) (string, bool) { return "", false }); err != nil {
		return err
	}
	if err := te.parseEntry(); err != nil {
		return err
	}
	return retryCAS(te.typ.Name, te.id, te.ifMatch, func() error {
		if err := s.stage(req, te); err != nil {
			return err
		}
		if len(te.writes) == 0 {
			return nil
		}
		ch := te.change(false)
		if te.ifMatch != 0 {
			// Under ifMatch a lost race is the 412 retryCAS answers, not the rules' own conflict.
			ch.conflict = nil
		}
		ch.entry = true
		ch.records = func() ([]audit.Record, error) {
			rec, err := s.entryRecord(req, entryAuditOf(te))
			return []audit.Record{rec}, err
		}
		ch.respond = func() { te.audited = true }
		return s.commit(req, ch)
	})
}

// respondBundle answers a transaction or batch with one response entry per request entry, in order.
func (s *Server) respondBundle(req *request, typ string, entries []*txEntry) {
	s.respondBundleWith(req, typ, entries, nil)
}

func (s *Server) respondBundleWith(req *request, typ string, entries []*txEntry, outcomes []*apiError) {
	c := req.c
	out := fhir.NewBundle(typ)
	out.ID = uuid.NewString()
	prefer := preferReturn(c)
	for i, te := range entries {
		for _, r := range te.touched {
			req.touch(r)
		}
		if te.get && (outcomes == nil || outcomes[i] == nil) {
			out.Entry = append(out.Entry, te.getResponse())
			continue
		}
		if outcomes != nil && outcomes[i] != nil {
			out.Entry = append(out.Entry, fhir.BundleEntry{Response: &fhir.EntryResponse{
				Status:  statusLine(outcomes[i].status()),
				Outcome: fhir.OperationOutcome(outcomes[i].issues...),
			}})
			continue
		}
		resp := &fhir.EntryResponse{Status: statusLine(te.status)}
		e := fhir.BundleEntry{Response: resp}
		if te.result.ID != "" {
			r := te.result
			loc := r.Type + "/" + r.ID + "/_history/" + strconv.FormatInt(r.VersionID, 10)
			resp.Etag = etag(r.VersionID)
			resp.LastModified = fhir.FormatInstant(r.LastUpdated)
			if te.status == http.StatusCreated || te.status == http.StatusOK {
				resp.Location = loc
			}
			if !r.Deleted && len(r.Body) > 0 {
				e.FullURL = s.cfg.BaseURL + "/" + r.Type + "/" + r.ID
				if te.unchanged {
					resp.Outcome = fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational",
						Details:     &fhir.IssueDetails{Coding: []fhir.IssueCoding{{System: OutcomeCodeSystem, Code: OutcomeUnchanged}}},
						Diagnostics: r.Type + "/" + r.ID + " already has this content; no new version was stored"})
				}
				switch {
				case prefer == "minimal":
				case prefer == "OperationOutcome":
					resp.Outcome = fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational",
						Diagnostics: r.Type + "/" + r.ID + " is now at version " + strconv.FormatInt(r.VersionID, 10)})
				default:
					e.Resource = r.Body
				}
			}
		}
		out.Entry = append(out.Entry, e)
	}
	body, err := out.Marshal()
	if err != nil {
		s.respondError(c, internal(err))
		return
	}
	writeFHIR(c, http.StatusOK, body)
}

func statusLine(code int) string {
	return fmt.Sprintf("%d %s", code, http.StatusText(code))
}
