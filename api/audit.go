package api

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// The audit trail. Every FHIR interaction but capabilities writes one
// AuditEvent, successes, failures and refusals alike, and no response leaves the server before its record
// is durable:
//
//   - the audit middleware holds the handler's response (status and body) in a bufferedWriter;
//   - when the handler is done it builds the AuditEvent (audit.Event, from the request value: the
//     caller, the outcome, the path and the resources the handler touched) and hands it to the committer;
//   - the group committer (audit.Committer) appends every record waiting in one store commit, so the
//     cost per request falls as the load rises;
//   - each request then sends its held response, or, if the batch failed, a 503 instead: a request never
//     succeeds without its record.
//
// A write is the exception: its record goes into the store in the write's own transaction (commit), so
// that a change never stands without its record, and the middleware has nothing left to append.
//
// Several gpfhir processes may share one store: the store chains each batch on the head it finds inside
// the commit, whoever appended last.

// served marks r as touched and returns it as this caller may see it: a patient gets their view of an
// AuditEvent (audit.PatientView: no internal details, no other patients). Handlers call it on every
// resource they return.
func (s *Server) served(req *request, r store.Resource) store.Resource {
	req.touch(r)
	caller := req.caller
	if r.Type != store.AuditEventType || caller == nil || caller.Kind != auth.KindPatient || r.Deleted {
		return r
	}
	view, err := audit.PatientView(r.Body, caller.PatientIDs, s.cfg.ClientNames)
	if err != nil {
		// Never fall back to the full record: an empty body fails the request instead.
		req.logger().Error("patient view of an AuditEvent", "id", r.ID, "error", err)
		view = nil
	}
	r.Body = view
	return r
}

// Close stops the audit retention loop, writes the audit records of requests already answered-in-waiting
// and stops the committer. Call it after the HTTP server has shut down (requests in flight are then
// done); requests that arrive later get 503. The store is not closed.
func (s *Server) Close() error {
	s.stopExports()
	s.stopRetention()
	if s.tally != nil {
		s.tally.Stop()
	}
	if s.audit != nil {
		s.audit.Close()
	}
	return nil
}

// bufferedWriter holds a response until its audit record is durable. Headers go to the real writer's
// header map, which is sent only with the status.
type bufferedWriter struct {
	gin.ResponseWriter
	status int
	wrote  bool
	body   bytes.Buffer
	// handedOver: the request no longer counts as busy for the committer (see audit.Committer.Begin).
	handedOver bool
	// direct: the record is durable already (streamAudited), so the answer goes straight through.
	direct bool
}

func (w *bufferedWriter) WriteHeader(code int) {
	if w.direct {
		w.ResponseWriter.WriteHeader(code)
		return
	}
	if code > 0 && !w.wrote {
		w.status = code
	}
}
func (w *bufferedWriter) WriteHeaderNow() {
	if w.direct {
		w.ResponseWriter.WriteHeaderNow()
		return
	}
	w.wrote = true
}
func (w *bufferedWriter) Write(b []byte) (int, error) {
	if w.direct {
		return w.ResponseWriter.Write(b)
	}
	w.wrote = true
	return w.body.Write(b)
}
func (w *bufferedWriter) WriteString(s string) (int, error) {
	if w.direct {
		return w.ResponseWriter.WriteString(s)
	}
	w.wrote = true
	return w.body.WriteString(s)
}
func (w *bufferedWriter) Status() int {
	if w.direct {
		return w.ResponseWriter.Status()
	}
	return w.status
}
func (w *bufferedWriter) Written() bool {
	if w.direct {
		return w.ResponseWriter.Written()
	}
	return w.wrote
}
func (w *bufferedWriter) Flush() {
	if w.direct {
		w.ResponseWriter.Flush()
	}
}
func (w *bufferedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("api: connections cannot be hijacked")
}
func (w *bufferedWriter) Size() int {
	if w.direct {
		return w.ResponseWriter.Size()
	}
	if !w.wrote {
		return -1
	}
	return w.body.Len()
}

// release sends the held response; a streamed one has been sent already.
func (w *bufferedWriter) release() {
	if w.direct {
		return
	}
	if n := w.body.Len(); n > 0 && w.Header().Get("Content-Length") == "" {
		// The length is known: without it net/http would send any answer past 2 KiB chunked.
		w.Header().Set("Content-Length", strconv.Itoa(n))
	}
	w.ResponseWriter.WriteHeader(w.status)
	if w.body.Len() > 0 {
		_, _ = w.ResponseWriter.Write(w.body.Bytes())
	} else {
		w.ResponseWriter.WriteHeaderNow()
	}
}

// auditMiddleware records every FHIR interaction, and every view of the uptake dashboard, and holds its
// response until the record is durable. Other routes of their own (health, metrics, SMART configuration,
// the dev identity provider, signing in to the dashboard) are not interactions and pass straight through.
func (s *Server) auditMiddleware(c *gin.Context) {
	if _, view := dashboardOps[c.FullPath()]; s.audit == nil || c.FullPath() != "" && !view {
		c.Next()
		return
	}
	real := c.Writer
	bw := &bufferedWriter{ResponseWriter: real, status: http.StatusOK}
	c.Writer = bw
	defer func() { c.Writer = real }()
	req := requestOf(c)
	req.held = bw
	s.audit.Begin()
	defer func() {
		if !bw.handedOver {
			s.audit.End()
		}
	}()
	c.Next()
	in := req.interaction
	if in == "" || in == "capabilities" {
		// Not an interaction (a path that is not FHIR REST), or the public CapabilityStatement.
		bw.hand(s.audit)
		c.Writer = real
		bw.release()
		return
	}
	if req.audited {
		// The record went into the store with the writes, or before a streamed answer.
		bw.hand(s.audit)
		c.Writer = real
		if bw.status != req.auditedStatus {
			req.logger().Error("the answer differs from the one audited with the write", "interaction", in, "audited", req.auditedStatus, "status", bw.status)
		}
		bw.release()
		return
	}
	rec, err := s.auditRecordOf(req, in, bw.status, req.touched, req.path)
	recs := []audit.Record{rec}
	// A batch or transaction: one record for the bundle and one for each entry, as if each had been a
	// request of its own by the same caller.
	for _, e := range req.entries {
		if err != nil {
			break
		}
		var r audit.Record
		if r, err = s.entryRecord(req, e); err == nil {
			recs = append(recs, r)
		}
	}
	bw.hand(s.audit) // before the hand-over, so the committer never waits for a request that is waiting for it
	if err == nil {
		err = s.audit.AppendAll(recs)
	}
	c.Writer = real
	if err != nil {
		req.logger().Error("no audit record, so the answer is withheld", "interaction", in, "status", bw.status, "error", err)
		h := real.Header()
		for k := range h {
			if k != "X-Request-Id" && k != "X-Correlation-Id" {
				delete(h, k)
			}
		}
		h.Set("Content-Type", fhirJSON)
		h.Set("Retry-After", "1")
		real.WriteHeader(http.StatusServiceUnavailable)
		advice := "try again shortly"
		if m := c.Request.Method; m != http.MethodGet && m != http.MethodHead && bw.status < 400 {
			// The store committed the change before its record failed; a blind retry of a create would
			// make it twice.
			advice = "the change may have been made all the same, so read it back before trying again"
		}
		_, _ = real.Write(fhir.OperationOutcome(fhir.Issue{Severity: "error", Code: "transient",
			Diagnostics: "the audit trail could not be written, so this request cannot be answered; " + advice + " (request id " + req.id + ")"}))
		return
	}
	bw.release()
}

// hand marks the request as no longer busy for the committer, once.
func (w *bufferedWriter) hand(c *audit.Committer) {
	if !w.handedOver {
		w.handedOver = true
		c.End()
	}
}

// unaudited lets an answer that gets no audit record (the public CapabilityStatement) go straight to
// the client: holding it would only copy it, and 118 KB copied is most of what /metadata costs beyond
// the bytes themselves.
func (s *Server) unaudited(req *request) {
	if bw := req.held; bw != nil && s.audit != nil {
		bw.hand(s.audit)
		bw.direct = true
	}
}

// streamAudited makes the request's audit record durable now, for an answer of status, and from then on
// lets the answer go straight to the client instead of being held: for a body too large to hold in
// memory (a bulk export file, which can be gigabytes). The record says what the answer will be, so it is
// written only once nothing is left to refuse; if the body then breaks off (the client went away, the
// file could not be read), the record still stands, as it does for a held answer the client stops
// reading. When the record cannot be written, nothing has been sent and the error says why.
func (s *Server) streamAudited(req *request, status int) error {
	bw := req.held
	if s.audit == nil || bw == nil {
		return nil // no audit trail, or not through the middleware: nothing holds the answer
	}
	rec, err := s.auditRecordOf(req, req.interaction, status, req.touched, req.path)
	bw.hand(s.audit)
	if err == nil {
		err = s.audit.AppendAll([]audit.Record{rec})
	}
	if err != nil {
		req.logger().Error("no audit record, so the streamed answer is withheld", "interaction", req.interaction, "status", status, "error", err)
		return fail(kindUnavailable, "the audit trail could not be written, so this answer cannot be sent; try again shortly (request id %s)", req.id)
	}
	req.audited, req.auditedStatus = true, status
	bw.status = status
	bw.direct = true
	return nil
}

// entryAudit is what the audit record of one bundle entry needs.
type entryAudit struct {
	interaction string
	status      int
	touched     []store.Resource
	path        *pathParams
}

// auditEntries hands the entries of a batch or transaction, once processed, to the audit middleware.
// An entry whose request could not even be read (no method) has no interaction to record; the bundle's
// own record covers it.
func (s *Server) auditEntries(req *request, entries []*txEntry) {
	if s.audit == nil || req.audited {
		return
	}
	for _, te := range entries {
		if te.interaction == "" || te.audited {
			continue
		}
		req.entries = append(req.entries, entryAuditOf(te))
	}
}

func entryAuditOf(te *txEntry) entryAudit {
	e := entryAudit{interaction: te.interaction, status: te.status, touched: te.touched}
	if te.typ != nil {
		e.path = &pathParams{typ: te.typ, id: te.id}
	}
	return e
}

// transactionRecords are the records a transaction's group is committed with, as the audit middleware
// would have built them from the answer: the bundle answers 200 and names what every entry touched, and
// each entry has a record of its own.
func (s *Server) transactionRecords(req *request, entries []*txEntry) ([]audit.Record, error) {
	list := req.touched[:len(req.touched):len(req.touched)]
	for _, te := range entries {
		list = append(list, te.touched...)
	}
	rec, err := s.auditRecordOf(req, req.interaction, http.StatusOK, list, nil)
	if err != nil {
		return nil, err
	}
	recs := []audit.Record{rec}
	for _, te := range entries {
		if te.interaction == "" {
			continue
		}
		r, err := s.entryRecord(req, entryAuditOf(te))
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}

// entryRecord is the record of one bundle entry, as if it had been a request of its own by the same
// caller.
func (s *Server) entryRecord(req *request, e entryAudit) (audit.Record, error) {
	return s.auditRecordOf(req, e.interaction, e.status, e.touched, e.path)
}

// clientAddress is the network address the request came from; none for an in-process loader.
func clientAddress(req *request) string {
	if req.c == nil {
		return ""
	}
	return req.c.RemoteIP()
}

// auditRecordOf builds one AuditEvent of the request: the request's own, or one entry's of a bundle.
func (s *Server) auditRecordOf(req *request, interaction string, status int, list []store.Resource, path *pathParams) (audit.Record, error) {
	now := s.now()
	// A time-ordered id (UUIDv7): the store indexes every AuditEvent by id in several b-trees, and ids
	// that follow the order of appends are inserted at the right-hand edge of each, in pages already
	// cached, where random (v4) ids would touch a different page per index and per record.
	id, err := uuid.NewV7()
	if err != nil {
		return audit.Record{}, err
	}
	in := audit.Input{
		ID:            id.String(),
		Recorded:      now,
		Interaction:   interaction,
		Operation:     req.op,
		Status:        status,
		RequestID:     req.id,
		ClientAddress: clientAddress(req),
		Site:          s.cfg.BaseURL,
		Instance:      s.cfg.InstanceID,
		Withheld:      req.withheld,
	}
	if req.decision != nil {
		in.Decision = string(req.decision.Outcome)
	}
	if caller := req.caller; caller != nil {
		kind, sub, client := caller.Describe()
		u := &audit.User{Kind: kind, Issuer: caller.Issuer, Subject: sub, NHSNumber: caller.NHSNumber,
			ProxyFor: caller.ProxyFor, JTI: caller.JTI, ClientID: client, ClientName: s.cfg.ClientNames[client]}
		if caller.Kind == auth.KindPatient && len(caller.PatientIDs) > 0 {
			u.PatientID = caller.PatientIDs[0]
		}
		in.User = u
	}
	patients := map[string]bool{}
	// seen holds each entity by its version, and by the resource (version 0), so that the path's resource
	// is not named again. Keys of parts, not of the joined reference, which would be made for each.
	type entityKey struct {
		typ, id string
		version int64
	}
	seen := map[entityKey]bool{}
	{
		for _, r := range list {
			e := audit.Entity{Type: r.Type, ID: r.ID, Version: r.VersionID, PatientIDs: s.patientsOf(req, r)}
			if seen[entityKey{e.Type, e.ID, e.Version}] {
				continue
			}
			seen[entityKey{e.Type, e.ID, e.Version}], seen[entityKey{e.Type, e.ID, 0}] = true, true
			for _, p := range e.PatientIDs {
				patients[p] = true
			}
			in.Entities = append(in.Entities, e)
		}
	}
	// The resource named in the path is recorded even when it was not reached (a refusal, a 404), so
	// that auditors see what was attempted.
	if path != nil {
		p := *path
		if p.typ != nil && p.id != "" && !seen[entityKey{p.typ.Name, p.id, 0}] {
			e := audit.Entity{Type: p.typ.Name, ID: p.id}
			e.Version, _ = strconv.ParseInt(p.version, 10, 64)
			if p.typ.Name == "Patient" {
				e.PatientIDs = []string{p.id}
				patients[p.id] = true
			}
			in.Entities = append(in.Entities, e)
		}
	}
	for p := range patients {
		in.Patients = append(in.Patients, p)
	}
	switch interaction {
	case "search-type", "search-system", "history-type", "history-system", "history-instance":
		hr := req.c.Request
		in.Query = hr.URL.RawQuery
		if hr.Method == http.MethodPost && len(hr.PostForm) > 0 {
			if in.Query != "" {
				in.Query += "&"
			}
			in.Query += hr.PostForm.Encode()
		}
		in.HasQuery = interaction == "search-type"
	case "operation":
		if req.query != "" {
			in.Query, in.HasQuery = req.query, true
		} else if req.dashboard {
			// Which month and practice a commissioner looked at: aggregate figures, no patient data.
			in.Query, in.HasQuery = req.c.Request.URL.RawQuery, true
		}
	}
	return audit.NewRecord(in, s.cfg.BaseURL), nil
}

// patientsOf names the patients whose record r is part of, as the policy reads them (auth.FactsOf): a
// Patient itself, or the patient references of a compartment type. AuditEvents are not attributed:
// reading the trail is not reading a record.
//
// What the policy already found for this version in this request is used as it is: the same parameters
// of the same body, so decoding it again would only cost time.
func (s *Server) patientsOf(req *request, r store.Resource) []string {
	if r.Type == "Patient" {
		return []string{r.ID}
	}
	if auth.ClassOf(r.Type) != auth.ClassPatient || len(r.Body) == 0 {
		return nil
	}
	if ids, ok := req.patientsOfVersion[versionKey{r.Type, r.ID, r.VersionID}]; ok {
		return ids
	}
	entries, err := s.entriesOf(r.Body, auth.FactParams(r.Type)...)
	if err != nil {
		return nil
	}
	return auth.FactsOf(r.Type, r.ID, entries).PatientIDs
}

// verifyAudit is GET [base]/AuditEvent/$verify: the chain checked from the first record to the head, as
// gpfhir audit verify does offline. It answers 200 with a Parameters resource either way: a broken chain
// is a finding, not a failure of the operation.
func (s *Server) verifyAudit(req *request) error {
	res, err := audit.Verify(req.ctx(), s.cfg.Store)
	if err != nil {
		return err
	}
	intact, records := res.Intact, res.Records
	params := []param{
		{Name: "result", ValueString: res.String()},
		{Name: "intact", ValueBoolean: &intact},
		{Name: "records", ValueInteger: &records},
	}
	if !res.Intact {
		at := res.BrokenAt
		params = append(params, param{Name: "brokenAt", ValueInteger: &at}, param{Name: "reason", ValueString: res.Reason})
	}
	if len(res.Head) > 0 {
		params = append(params, param{Name: "head", ValueString: hex.EncodeToString(res.Head)})
	}
	return s.writeParameters(req.c, params)
}

// auditFacts are the facts of an AuditEvent for canRead: the patients it concerns, the same ones its
// patient search parameter indexes, so that reading and searching agree.
func auditFacts(r store.Resource) (auth.Facts, error) {
	f := auth.Facts{Type: r.Type}
	if len(r.Body) == 0 {
		return f, nil
	}
	ids, err := audit.Patients(r.Body)
	if err != nil {
		return f, internal(err)
	}
	f.PatientIDs = ids
	return f, nil
}

// versionKey names one version of a resource.
type versionKey struct {
	typ, id string
	version int64
}
