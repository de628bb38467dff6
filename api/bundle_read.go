package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// GET entries, PATCH entries, conditional references and the order of entries in batches and
// transactions.

// getEntry runs a GET entry (read, vread, search, history) as a request of its own through the whole
// router, with the caller's own token: the same authorisation, filtering, paging and audit record as the
// single request, rather than a second copy of those rules. In a transaction it runs after the writes
// are committed, so it sees them, as FHIR orders reads last.
func (s *Server) getEntry(req *request, e fhir.BundleEntry, te *txEntry) {
	target := "/" + strings.TrimLeft(strings.TrimPrefix(e.Request.URL, s.cfg.BaseURL), "/")
	path, _, _ := strings.Cut(target, "?")
	sh, typName, _, _, ok := parsePath(path)
	if _, served := fhir.LookupType(typName); typName != "" && !served {
		ok = false
	}
	switch sh {
	case shapeMetadata, shapeSystemHistory, shapeType, shapeTypeHistory, shapeInstance, shapeInstanceHistory,
		shapeVersion, shapeTypeOperation, shapeInstanceOperation:
	default:
		// Only FHIR reads, searches and read-only operations: an entry is not a way to reach the
		// server's other paths with the caller's token.
		ok = false
	}
	hr, err := http.NewRequestWithContext(req.ctx(), http.MethodGet, target, nil)
	if !ok || strings.Contains(path, "..") {
		err = errors.New("not a FHIR read or search")
	}
	if err != nil {
		te.getStatus = http.StatusBadRequest
		te.getBody = fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "invalid",
			Diagnostics: "Bundle.entry[" + strconv.Itoa(te.index) + "]: request.url " + strconv.Quote(e.Request.URL) + " is not a read, search, history or read-only operation on a type this server serves",
			Expression:  []string{"Bundle.entry[" + strconv.Itoa(te.index) + "].request.url"}})
		return
	}
	if req.c != nil {
		hr.RemoteAddr = req.c.Request.RemoteAddr
		hr.Header.Set("Authorization", req.c.GetHeader("Authorization"))
	}
	hr.Header.Set("Accept", fhirJSON)
	hr.Header.Set("X-Request-ID", req.id+"-entry-"+strconv.Itoa(te.index))
	if e.Request.IfNoneMatch != "" {
		hr.Header.Set("If-None-Match", e.Request.IfNoneMatch)
	}
	if e.Request.IfModifiedSince != "" {
		if t, err := time.Parse(time.RFC3339Nano, e.Request.IfModifiedSince); err == nil {
			hr.Header.Set("If-Modified-Since", t.UTC().Format(http.TimeFormat))
		}
	}
	rec := httptest.NewRecorder()
	s.engine.ServeHTTP(rec, hr)
	te.getStatus, te.getBody, te.getHeader = rec.Code, rec.Body.Bytes(), rec.Header()
}

// getResponse is the response entry of a GET entry.
func (te *txEntry) getResponse() fhir.BundleEntry {
	resp := &fhir.EntryResponse{Status: statusLine(te.getStatus)}
	e := fhir.BundleEntry{Response: resp}
	if te.getHeader != nil {
		resp.Etag = te.getHeader.Get("ETag")
		resp.Location = te.getHeader.Get("Content-Location")
		if lm := te.getHeader.Get("Last-Modified"); lm != "" {
			if t, err := http.ParseTime(lm); err == nil {
				resp.LastModified = fhir.FormatInstant(t)
			}
		}
	}
	if len(te.getBody) == 0 || !json.Valid(te.getBody) {
		return e
	}
	if te.getStatus >= 400 {
		resp.Outcome = te.getBody
	} else {
		e.Resource = te.getBody
	}
	return e
}

// patchEntry applies a PATCH entry's JSON Patch, carried as FHIR says in a Binary resource
// (contentType application/json-patch+json, the patch base64 in data), to the current version.
func (te *txEntry) patchEntry(cur store.Resource) error {
	var bin struct {
		ResourceType string `json:"resourceType"`
		ContentType  string `json:"contentType"`
		Data         string `json:"data"`
	}
	if err := json.Unmarshal(te.raw, &bin); err != nil || bin.ResourceType != "Binary" {
		return fail(kindUnsupported,
			"a PATCH entry takes a Binary resource with contentType application/json-patch+json (FHIRPath Patch is not supported)").at("Bundle.entry[" + strconv.Itoa(te.index) + "].resource")
	}
	if ct, _, _ := strings.Cut(bin.ContentType, ";"); strings.TrimSpace(ct) != "application/json-patch+json" {
		return fail(kindUnsupported, "the PATCH entry's Binary has contentType %q; this server takes application/json-patch+json", bin.ContentType).
			at("Bundle.entry[" + strconv.Itoa(te.index) + "].resource.contentType")
	}
	raw, err := base64.StdEncoding.DecodeString(bin.Data)
	if err != nil {
		return fail(kindMalformed, "the PATCH entry's Binary.data is not base64: %v", err).at("Bundle.entry[" + strconv.Itoa(te.index) + "].resource.data")
	}
	ops, aerr := decodePatch(raw)
	if aerr != nil {
		return aerr
	}
	body, aerr := applyPatch(ops, cur.Body)
	if aerr != nil {
		return aerr
	}
	res, err := fhir.Parse(body)
	if err != nil {
		return fromParseError(err)
	}
	if res.Type() != te.typ.Name || res.ID() != te.id {
		return fail(kindInvalid, "the patch may not change resourceType or id").at(te.typ.Name)
	}
	te.res = res
	return nil
}

// walkRefs calls fn with every Reference.reference string in raw that want accepts and replaces it with
// what fn answers, keeping the rest of raw byte for byte (fhir.RewriteReferences: a decimal keeps its
// precision). Where raw is not JSON, fhir.Parse reports it later.
func walkRefs(raw json.RawMessage, want func(string) bool, fn func(string) (string, error)) (json.RawMessage, error) {
	out, _, err := fhir.RewriteReferences(raw, func(ref string) (string, error) {
		if !want(ref) {
			return ref, nil
		}
		return fn(ref)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// conditionalRef reports whether a reference is a conditional one, Type?criteria.
func conditionalRef(ref string) bool {
	typ, q, ok := strings.Cut(ref, "?")
	return ok && q != "" && typ != "" && !strings.Contains(typ, "/") && !strings.Contains(typ, ":")
}

// resolveConditionalRefs replaces every conditional reference (Patient?identifier=...) in an entry's
// resource with the Type/id of the one resource its criteria match, searched with the caller's access
// as a conditional create is, or among the resources the transaction itself creates when the criteria
// name an identifier one of them carries. No match or several are the client's mistake: 422 and 412.
func (s *Server) resolveConditionalRefs(req *request, te *txEntry, inBundle func(typ, query string) (string, bool)) error {
	if !mayHoldConditionalRef(te.raw) {
		return nil
	}
	memo := map[string]string{}
	raw, err := walkRefs(te.raw, conditionalRef, func(ref string) (string, error) {
		if to, ok := memo[ref]; ok {
			return to, nil
		}
		typName, query, _ := strings.Cut(ref, "?")
		ti, ok := fhir.LookupType(typName)
		if !ok {
			return "", fail(kindUnprocessable, "the conditional reference %q names a type this server does not serve", ref)
		}
		if to, ok := inBundle(ti.Name, query); ok {
			memo[ref] = to
			return to, nil
		}
		hits, err := s.conditionalMatches(req, ti, query, "the conditional reference "+ref)
		if err != nil {
			return "", err
		}
		switch len(hits) {
		case 0:
			return "", fail(kindUnprocessable, "the conditional reference %q matches no %s this server holds", ref, ti.Name)
		case 1:
			to := ti.Name + "/" + hits[0].Resource.ID
			memo[ref] = to
			return to, nil
		}
		return "", fail(kindMultipleMatches, "the conditional reference %q matches several %s resources; it must identify one", ref, ti.Name)
	})
	if err != nil {
		return err
	}
	te.raw = raw
	return nil
}

// mayHoldConditionalRef is false when raw cannot hold a conditional reference: it has no "?", written
// or escaped. Most entries have none, and a search for that one byte passes them over before walkRefs
// reads every string in them.
func mayHoldConditionalRef(raw json.RawMessage) bool {
	return bytes.IndexByte(raw, '?') >= 0 || bytes.Contains(raw, []byte(`\u`))
}

// identifierIn reports whether an entry's resource carries the identifier that criteria of the form
// identifier=system|value (the only criteria a not-yet-stored resource can be matched by without
// indexing it) ask for.
func identifierIn(raw json.RawMessage, query string) bool {
	key, val, ok := strings.Cut(query, "=")
	if !ok || key != "identifier" || strings.Contains(val, "&") {
		return false
	}
	sys, code, hasSys := strings.Cut(val, "|")
	if !hasSys {
		sys, code = "", val
	}
	var r struct {
		Identifier []struct {
			System string `json:"system"`
			Value  string `json:"value"`
		} `json:"identifier"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return false
	}
	for _, id := range r.Identifier {
		if id.Value == code && (!hasSys || id.System == sys) {
			return true
		}
	}
	return false
}

// processingOrder is the order FHIR gives for a transaction: DELETE, then POST, then PUT and PATCH, then
// GET. Within one method an entry comes after the entries its resource references, so that a rule
// reading what an earlier entry prepared (an Appointment booking a Slot the transaction creates) finds it
// staged; a cycle keeps the request order.
func processingOrder(entries []*txEntry) []*txEntry {
	rank := map[string]int{http.MethodDelete: 0, http.MethodPost: 1, http.MethodPut: 2, http.MethodPatch: 2, http.MethodGet: 3}
	byKey := map[string]*txEntry{}
	for _, te := range entries {
		if te.typ != nil && te.id != "" {
			byKey[te.typ.Name+"/"+te.id] = te
		}
	}
	var out []*txEntry
	done := map[*txEntry]bool{}
	visiting := map[*txEntry]bool{}
	var visit func(te *txEntry)
	visit = func(te *txEntry) {
		if done[te] || visiting[te] {
			return
		}
		visiting[te] = true
		if te.res != nil {
			for _, ref := range fhir.References(te.res, "") {
				if dep, ok := byKey[ref.Type+"/"+ref.ID]; ok && dep != te && rank[dep.method] == rank[te.method] {
					visit(dep)
				}
			}
		}
		visiting[te] = false
		done[te] = true
		out = append(out, te)
	}
	for r := 0; r <= 3; r++ {
		for _, te := range entries {
			if rank[te.method] == r {
				visit(te)
			}
		}
	}
	return out
}

// OutcomeCodeSystem and OutcomeUnchanged mark the response entry of a no-op update in a batch or
// transaction (the content sent is what is stored), so that a loader can count it as unchanged.
const (
	OutcomeCodeSystem = "urn:gpfhir:outcome"
	OutcomeUnchanged  = "unchanged"
)

// unchanged reports whether res, stamped as the current version, is byte for byte the stored body: the
// canonical JSON both came from makes equal content equal bytes.
func unchanged(res *fhir.Resource, cur store.Resource) (bool, error) {
	if cur.VersionID == 0 || cur.Deleted || len(cur.Body) == 0 {
		return false, nil
	}
	b, err := res.Finalize(cur.ID, cur.VersionID, cur.LastUpdated)
	if err != nil {
		return false, err
	}
	return bytes.Equal(b, cur.Body), nil
}
