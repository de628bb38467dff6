package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// Bulk Data Access v2 ($export): [base]/$export, [base]/Patient/$export and [base]/Group/[id]/$export
// (when Group is a served type). A kick-off records a job (see bulkjobs.go: in the store when it keeps
// jobs, as MongoDB does for every process on the database, else in Config.ExportDir) and answers 202 with
// its status URL, [base]/$export-poll/[job]; a bounded pool of workers writes each type's resources as an
// ndjson file of the job, reading the store in keyset pages (so memory does not grow with the export)
// under the same restrict as a search by the kick-off's caller, so a file holds exactly what that client
// may read. A job is persisted before the 202 and after every page: a job whose run was interrupted (a
// restart, a process that died) is run again from the start (the files are rewritten), and finished ones
// stay until they expire.

// Job states, as job.json holds them.
const (
	jobRunning  = "in-progress"
	jobComplete = "complete"
	jobFailed   = "failed"
)

// exportJob is a job as persisted.
type exportJob struct {
	ID              string            `json:"id"`
	Status          string            `json:"status"`
	Request         string            `json:"request"`
	TransactionTime time.Time         `json:"transactionTime"`
	Level           string            `json:"level"` // system, patient or group
	Group           string            `json:"group,omitempty"`
	Types           []string          `json:"types"`
	Since           time.Time         `json:"since,omitzero"`
	Filters         exportTypeFilters `json:"filters,omitempty"`
	Caller          exportCaller      `json:"caller"`
	Output          []exportOutput    `json:"output,omitempty"`
	Done            int64             `json:"done"`
	Error           string            `json:"error,omitempty"`
	Finished        time.Time         `json:"finished,omitzero"`
}

type exportOutput struct {
	Type  string `json:"type"`
	File  string `json:"file"`
	Count int64  `json:"count"`
}

// exportCaller is what of the kick-off's caller the job needs to read as them later: a GP system's
// client, practices and scopes.
type exportCaller struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	ClientID string   `json:"client_id"`
	JTI      string   `json:"jti"`
	ODS      []string `json:"ods"`
	Scopes   string   `json:"scope"`
}

func (ec exportCaller) caller() *auth.Caller {
	scopes, other := auth.ParseScopes(ec.Scopes)
	return &auth.Caller{Kind: auth.KindSystem, Issuer: ec.Issuer, Subject: ec.Subject, ClientID: ec.ClientID,
		JTI: ec.JTI, ODS: ec.ODS, Scopes: scopes, Other: other}
}

// exportKickoff answers a kick-off: [base]/$export, Patient/$export or Group/[id]/$export.
func (s *Server) exportKickoff(req *request, p pathParams) error {
	c := req.c
	req.op = "$export"
	if s.exports == nil {
		return fail(kindNotServed, "bulk export is not configured on this server")
	}
	caller := req.caller
	if caller.Kind != auth.KindSystem {
		return s.refuse(req, auth.Decision{Outcome: auth.DenyRole, Missing: "a system/ scope",
			Reason: "bulk export is for GP systems (client credentials with system/ scopes); a patient app reads the record with Patient/$everything"})
	}
	if !strings.Contains(c.GetHeader("Prefer"), "respond-async") {
		return fail(kindMissing, "a bulk export kick-off needs the header Prefer: respond-async")
	}
	values, aerr := parseQuery(c.Request.URL.RawQuery, "the query string")
	if aerr != nil {
		return aerr
	}
	job := &exportJob{ID: uuid.NewString(), Status: jobRunning, TransactionTime: s.now(),
		Request: s.cfg.BaseURL + c.Request.URL.RequestURI(), Level: "system"}
	if p.typ != nil {
		job.Level = "patient"
		if p.id != "" {
			job.Level, job.Group = "group", p.id
		}
	}
	for key, vals := range values {
		v := strings.Join(vals, ",")
		switch key {
		case "_outputFormat":
			switch v {
			case "application/fhir+ndjson", "application/ndjson", "ndjson":
			default:
				return fail(kindBadValue, "_outputFormat=%s: this server writes application/fhir+ndjson only", v).at("_outputFormat")
			}
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return fail(kindBadValue, "_since=%s is not an instant such as 2024-01-01T00:00:00Z", v).at("_since")
			}
			job.Since = t
		case "_type":
			for _, t := range strings.Split(v, ",") {
				if _, ok := fhir.LookupType(strings.TrimSpace(t)); !ok {
					return fail(kindBadValue, "_type: %q is not a resource type served here", t).at("_type")
				}
				job.Types = append(job.Types, strings.TrimSpace(t))
			}
		case "_typeFilter":
			job.Filters = exportTypeFilters{}
			for _, f := range vals {
				typ, q, ok := strings.Cut(f, "?")
				ti, known := fhir.LookupType(typ)
				if !ok || !known {
					return fail(kindBadValue, "_typeFilter=%s is not Type?search", f).at("_typeFilter")
				}
				if _, aerr := s.filterClauses(ti, q); aerr != nil {
					return aboutFilter(aerr, f)
				}
				job.Filters[ti.Name] = append(job.Filters[ti.Name], q)
			}
			for typ, fs := range job.Filters {
				if _, aerr := s.unionOfFilters(typ, fs); aerr != nil {
					return aerr
				}
			}
		case "_format", "_pretty":
		default:
			return fail(kindUnsupported, "%s is not a $export parameter this server supports (_outputFormat, _since, _type, _typeFilter)", key).at(key)
		}
	}
	if job.Types == nil {
		for _, t := range fhir.Types() {
			if t.Name == store.AuditEventType {
				continue
			}
			if _, inCompartment := auth.PatientCompartment(t.Name); job.Level != "system" && !inCompartment {
				continue
			}
			if auth.Authorize(caller, auth.Search, t.Name).Allow() {
				job.Types = append(job.Types, t.Name)
			}
		}
	} else {
		for _, t := range job.Types {
			if d := auth.Authorize(caller, auth.Search, t); !d.Allow() {
				return s.refuse(req, d)
			}
		}
	}
	if job.Level == "group" {
		if _, err := s.groupMembers(req, job.Group); err != nil {
			return err
		}
	}
	job.Caller = exportCaller{Issuer: caller.Issuer, Subject: caller.Subject, ClientID: caller.ClientID, JTI: caller.JTI,
		ODS: caller.ODS, Scopes: scopeString(caller)}
	if err := s.exports.jobs.create(req.ctx(), job); err != nil {
		if errors.Is(err, errQueueFull) {
			return fail(kindUnavailable, "too many bulk exports are waiting; try again later").withHeader("Retry-After", "60")
		}
		return err
	}
	s.exports.poke()
	c.Header("Content-Location", s.cfg.BaseURL+"/$export-poll/"+job.ID)
	c.Header("Content-Type", fhirJSON)
	c.Status(http.StatusAccepted)
	_, _ = c.Writer.Write(fhir.OperationOutcome(fhir.Issue{Severity: "information", Code: "informational",
		Diagnostics: "the export has started; poll " + s.cfg.BaseURL + "/$export-poll/" + job.ID}))
	return nil
}

func scopeString(c *auth.Caller) string {
	var parts []string
	for _, sc := range c.Scopes {
		parts = append(parts, sc.String())
	}
	return strings.Join(append(parts, c.Other...), " ")
}

// exportTypeFilters are a job's _typeFilter searches by type, as query strings. Bulk Data v2 exports a
// resource of a filtered type when it matches any of the type's filters.
type exportTypeFilters map[string][]string

// UnmarshalJSON also reads the one-filter-per-type form (a query string per type) of jobs written
// before a type could have several, so that such a job left by a restart still runs.
func (f *exportTypeFilters) UnmarshalJSON(raw []byte) error {
	var many map[string][]string
	if err := json.Unmarshal(raw, &many); err == nil {
		*f = many
		return nil
	}
	var one map[string]string
	if err := json.Unmarshal(raw, &one); err != nil {
		return err
	}
	*f = make(exportTypeFilters, len(one))
	for typ, q := range one {
		(*f)[typ] = []string{q}
	}
	return nil
}

// filterClauses parses one _typeFilter search of ti.
func (s *Server) filterClauses(ti *fhir.TypeInfo, query string) ([]store.Clause, *apiError) {
	fv, aerr := parseQuery(query, "_typeFilter")
	if aerr != nil {
		return nil, aerr
	}
	sq, aerr := s.parseSearch(ti, fv, true)
	if aerr != nil {
		return nil, aerr
	}
	return sq.store.Clauses, nil
}

// aboutFilter says which filter an error is about, since a kick-off may carry several.
func aboutFilter(aerr *apiError, filter string) *apiError {
	for i := range aerr.issues {
		aerr.issues[i].Diagnostics = "_typeFilter=" + filter + ": " + aerr.issues[i].Diagnostics
	}
	return aerr.at("_typeFilter")
}

// maxFilterUnion bounds the predicates of the one query that the filters of a type become.
const maxFilterUnion = 400

// unionOfFilters turns a type's filters into clauses that match what any of them matches, each
// resource once. A query is an AND of clauses that are each an OR of predicates, and the OR of two
// such queries is again one: every clause of the first ORed with every clause of the second
// ((a AND b) OR c = (a OR c) AND (b OR c)). The union is thus one store query, read in keyset pages
// like any other, so the export needs no set of the ids already written and no second pass, and its
// memory does not grow with the export. The price is the size of that query, the product of the
// filters' clause counts, which maxFilterUnion bounds: a kick-off whose filters exceed it is refused.
func (s *Server) unionOfFilters(typ string, filters []string) ([]store.Clause, *apiError) {
	ti, ok := fhir.LookupType(typ)
	if !ok {
		return nil, fail(kindBadValue, "_typeFilter: %s is not a resource type served here", typ).at("_typeFilter")
	}
	var union []store.Clause
	predicates := 0
	for i, f := range filters {
		clauses, aerr := s.filterClauses(ti, f)
		if aerr != nil {
			return nil, aboutFilter(aerr, typ+"?"+f)
		}
		if len(clauses) == 0 {
			return nil, nil // a filter without criteria matches every resource, and so does the union
		}
		if i == 0 {
			union = clauses
			continue
		}
		var next []store.Clause
		predicates = 0
		for _, a := range union {
			for _, b := range clauses {
				// Each clause gets its own copy of the predicates' sub-queries: restrict appends the
				// caller's restriction to every sub-query it meets, once per meeting.
				c := append(cloneClause(a), cloneClause(b)...)
				predicates += len(c)
				next = append(next, c)
			}
		}
		if predicates > maxFilterUnion {
			return nil, fail(kindTooCostly, "_typeFilter: the %d filters for %s combine into a query of %d conditions; this server "+
				"takes at most %d (each filter's conditions are combined with every other's); use fewer or simpler filters",
				len(filters), typ, predicates, maxFilterUnion).at("_typeFilter")
		}
		union = next
	}
	return union, nil
}

// cloneClause copies a clause with its sub-queries, to any depth.
func cloneClause(cl store.Clause) store.Clause {
	out := make(store.Clause, len(cl))
	for i, p := range cl {
		out[i] = p
		if p.Sub != nil {
			sub := *p.Sub
			sub.Clauses = make([]store.Clause, len(p.Sub.Clauses))
			for j, c := range p.Sub.Clauses {
				sub.Clauses[j] = cloneClause(c)
			}
			out[i].Sub = &sub
		}
	}
	return out
}

// groupMembers reads the Patient members of a Group the caller may read.
func (s *Server) groupMembers(req *request, id string) ([]string, error) {
	r, err := s.currentOrGone(req.ctx(), "Group", id)
	if err != nil {
		return nil, err
	}
	if err := s.canRead(req, r); err != nil {
		return nil, err
	}
	var g struct {
		Member []struct {
			Entity struct {
				Reference string `json:"reference"`
			} `json:"entity"`
		} `json:"member"`
	}
	if err := json.Unmarshal(r.Body, &g); err != nil {
		return nil, internal(err)
	}
	var out []string
	for _, m := range g.Member {
		if typ, pid, ok := fhir.LocalRef(m.Entity.Reference, s.cfg.BaseURL); ok && typ == "Patient" {
			out = append(out, pid)
		}
	}
	return out, nil
}

// ownJob loads the job of a status or file request, which only the client that started it may see.
func (s *Server) ownJob(req *request, id string) (*exportJob, error) {
	if s.exports == nil {
		return nil, fail(kindNotServed, "bulk export is not configured on this server")
	}
	var job *exportJob
	err := errNoJob
	if validID(id) {
		job, err = s.exports.jobs.load(req.ctx(), id)
	}
	if err != nil && !errors.Is(err, errNoJob) {
		return nil, err
	}
	if err != nil || req.caller.Kind != auth.KindSystem || job.Caller.ClientID != req.caller.ClientID {
		// Another client's job is answered as no job at all.
		return nil, fail(kindNotFound, "there is no bulk export %s (it may have expired or been cancelled)", id)
	}
	return job, nil
}

// exportStatus answers GET (status or manifest) and DELETE (cancel) on [base]/$export-poll/[job].
func (s *Server) exportStatus(req *request, p pathParams) error {
	c := req.c
	req.op = "$export-poll"
	job, err := s.ownJob(req, p.id)
	if err != nil {
		return err
	}
	if c.Request.Method == http.MethodDelete {
		// A run here stops at once; a run on another process stops at its next save or lease renewal,
		// which find the job gone.
		s.exports.mu.Lock()
		if r, ok := s.exports.running[job.ID]; ok {
			r.cancel()
		}
		s.exports.mu.Unlock()
		if err := s.exports.jobs.remove(req.ctx(), job.ID); err != nil {
			return err
		}
		c.Status(http.StatusAccepted)
		return nil
	}
	switch job.Status {
	case jobRunning:
		c.Header("X-Progress", fmt.Sprintf("%d resources written", job.Done))
		c.Header("Retry-After", "2")
		c.Status(http.StatusAccepted)
		return nil
	case jobFailed:
		return fail(kindInternal, "the export failed: %s", job.Error)
	}
	type manifestFile struct {
		Type  string `json:"type"`
		URL   string `json:"url"`
		Count int64  `json:"count"`
	}
	m := struct {
		TransactionTime     string         `json:"transactionTime"`
		Request             string         `json:"request"`
		RequiresAccessToken bool           `json:"requiresAccessToken"`
		Output              []manifestFile `json:"output"`
		Error               []manifestFile `json:"error"`
	}{TransactionTime: fhir.FormatInstant(job.TransactionTime), Request: job.Request, RequiresAccessToken: true,
		Output: []manifestFile{}, Error: []manifestFile{}}
	for _, o := range job.Output {
		m.Output = append(m.Output, manifestFile{Type: o.Type, URL: s.cfg.BaseURL + "/$export-poll/" + job.ID + "/" + o.File, Count: o.Count})
	}
	body, err := json.Marshal(m)
	if err != nil {
		return internal(err)
	}
	c.Header("Expires", job.Finished.Add(s.exports.ttl).UTC().Format(http.TimeFormat))
	c.Data(http.StatusOK, "application/json", body)
	return nil
}

// exportFile serves one ndjson file of a finished job to the client that started it.
func (s *Server) exportFile(req *request, p pathParams) error {
	c := req.c
	req.op = "$export-file"
	job, err := s.ownJob(req, p.id)
	if err != nil {
		return err
	}
	for _, o := range job.Output {
		if o.File == p.version {
			f, err := s.exports.jobs.openFile(req.ctx(), job.ID, o.File)
			if errors.Is(err, errNoJob) {
				return fail(kindNotFound, "the file %s has expired", o.File)
			}
			if err != nil {
				return err
			}
			defer f.Close()
			// A file can be far larger than memory: its record is made durable first, and the file then
			// streamed rather than held until the record is.
			if err := s.streamAudited(req, http.StatusOK); err != nil {
				return err
			}
			c.Header("Content-Type", "application/fhir+ndjson")
			c.Status(http.StatusOK)
			if _, err = io.Copy(c.Writer, f); err != nil {
				// The status has gone out; all that is left is to cut the body short, which the client
				// sees as a broken download, and to say so in the log.
				req.logger().Warn("an export file download broke off", "job", job.ID, "file", o.File, "error", err)
			}
			return nil
		}
	}
	return fail(kindNotFound, "bulk export %s has no file %s", job.ID, p.version)
}

// runExport runs one claimed job to the end, as its caller.
func (s *Server) runExport(parent context.Context, job *exportJob, run *jobRun) {
	ex := s.exports
	id := job.ID
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	ex.mu.Lock()
	ex.running[id] = &runningJob{cancel: cancel, run: run}
	ex.mu.Unlock()
	defer func() {
		ex.mu.Lock()
		delete(ex.running, id)
		ex.mu.Unlock()
	}()
	req := &request{base: ctx, caller: job.Caller.caller(), id: "export-" + id, log: s.log.With("job", id), interaction: "operation", op: "$export"}
	if ex.jobs.shared() {
		lctx, stopLease := context.WithCancel(ctx)
		leaseDone := make(chan struct{})
		go func() {
			defer close(leaseDone)
			ex.keepLease(lctx, id, run, cancel, req.logger())
		}()
		defer func() { stopLease(); <-leaseDone }()
	}
	var patients []store.Resource
	var err error
	interrupted := run.claims > maxClaims
	if !interrupted {
		patients, err = s.exportAll(req, ex, job)
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) {
		// Cancelled (the job is gone), lost to another runner, or shutting down. A shared job is
		// released then, so that another process runs it now rather than once the lease has passed;
		// a directory's job runs again at the next start.
		if parent.Err() != nil && ex.jobs.shared() {
			rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = ex.jobs.renew(rctx, id, run, time.Time{})
			rcancel()
		}
		return
	}
	job.Finished = s.now()
	switch {
	case interrupted:
		req.logger().Error("bulk export failed: its runs were interrupted", "claims", run.claims-1)
		job.Status, job.Error = jobFailed, fmt.Sprintf("the export was interrupted %d times (the server running it stopped); start a new one", run.claims-1)
	case err != nil:
		req.logger().Error("bulk export failed", "error", err)
		job.Status, job.Error = jobFailed, "internal error (job "+id+")"
	default:
		job.Status = jobComplete
	}
	if err := ex.jobs.save(ctx, job, run, time.Time{}); err != nil {
		if errors.Is(err, errJobLost) {
			return // the runner that holds it now finishes it, and audits it
		}
		if !errors.Is(err, errNoJob) {
			req.logger().Error("bulk export state", "error", err)
		}
	}
	s.auditExport(req, job, patients)
}

// exportAll writes every type of the job and returns the patients it covered.
func (s *Server) exportAll(req *request, ex *exports, job *exportJob) ([]store.Resource, error) {
	var members []string
	if job.Level == "group" {
		var err error
		if members, err = s.groupMembers(req, job.Group); err != nil {
			return nil, err
		}
		if len(members) == 0 {
			members = []string{""} // a Group of no patients exports nothing
		}
	}
	job.Output, job.Done = nil, 0
	var patients []store.Resource
	for _, typ := range job.Types {
		q := store.Query{Type: typ}
		if !job.Since.IsZero() {
			q.Clauses = append(q.Clauses, store.Clause{{Param: store.ParamLastUpdated, Match: store.MatchRange,
				Bounds: []store.Bound{{Field: store.Low, Cmp: store.GT, Value: job.Since.UnixMilli()}}}})
		}
		if members != nil {
			def, _ := auth.PatientCompartment(typ)
			var cl store.Clause
			for _, pid := range members {
				if def.Param == store.ParamID {
					cl = append(cl, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: pid})
				} else {
					cl = append(cl, store.Predicate{Param: def.Param, Match: store.MatchExact, Value: "Patient/" + pid})
				}
			}
			q.Clauses = append(q.Clauses, cl)
		}
		if fs := job.Filters[typ]; len(fs) > 0 {
			union, aerr := s.unionOfFilters(typ, fs)
			if aerr != nil {
				return nil, aerr
			}
			q.Clauses = append(q.Clauses, union...)
		}
		if err := s.restrict(req, &q); err != nil {
			return nil, err
		}
		q.Scan = s.exportScans(req, q, ex.page)
		n, pts, err := s.exportType(req, ex, job, q)
		if err != nil {
			return nil, err
		}
		patients = append(patients, pts...)
		if n > 0 {
			job.Output = append(job.Output, exportOutput{Type: typ, File: typ + ".ndjson", Count: n})
		}
	}
	sort.Slice(job.Output, func(i, j int) bool { return job.Output[i].Type < job.Output[j].Type })
	return patients, nil
}

// exportScans decides how a type is read in pages: driven by its clauses (the store selects every
// match, then takes the page after the cursor) or scanned (the store walks the type in id order from the
// cursor, testing the clauses on each resource: store.Query.Scan). Driven, each page selects all m
// matches again, so a GP system's export of a large practice costs m²/page (200,000 resources took
// 163 s); scanned, the pages together walk the type's n resources once, each tested with a few index
// look-ups, weighed here as four selections. A narrow export (a Group of a few patients, a recent
// _since) stays driven, since walking the whole type for it would cost more. Two counts decide it;
// if either fails, the export is driven, as before.
func (s *Server) exportScans(req *request, q store.Query, page int) bool {
	m, err := s.store.Count(req.ctx(), q)
	if err != nil || m <= page {
		return false
	}
	n, err := s.store.Count(req.ctx(), store.Query{Type: q.Type})
	if err != nil {
		return false
	}
	pages := (m + page - 1) / page
	return pages*m > 4*n
}

// exportType streams one type's query into the job's file Type.ndjson, a page at a time, saving the
// job (and so renewing its claim) after every page. A save that finds the job removed (cancelled on any
// process) or held by another runner ends the run as cancelled.
func (s *Server) exportType(req *request, ex *exports, job *exportJob, q store.Query) (n int64, patients []store.Resource, err error) {
	ctx := req.ctx()
	run := ex.runOf(job.ID)
	f, err := ex.jobs.createFile(ctx, job.ID, run, q.Type+".ndjson")
	if err != nil {
		if errors.Is(err, errNoJob) {
			return 0, nil, context.Canceled
		}
		return 0, nil, err
	}
	closed := false
	defer func() {
		if !closed {
			_ = f.Abort()
		}
	}()
	stopped := func(err error) error {
		if errors.Is(err, errNoJob) || errors.Is(err, errJobLost) {
			return context.Canceled
		}
		return err
	}
	w := bufio.NewWriterSize(f, 1<<16)
	page := ex.page
	for {
		if err := ctx.Err(); err != nil {
			return n, nil, err
		}
		q.Limit = page + 1
		hits, err := s.store.Search(ctx, q)
		if err != nil {
			return n, nil, err
		}
		more := len(hits) > page
		if more {
			hits = hits[:page]
		}
		for _, h := range hits {
			w.Write(h.Resource.Body)
			w.WriteByte('\n')
			if h.Resource.Type == "Patient" {
				patients = append(patients, store.Resource{Type: "Patient", ID: h.Resource.ID, VersionID: h.Resource.VersionID})
			}
		}
		n += int64(len(hits))
		job.Done += int64(len(hits))
		if !more {
			break
		}
		q.After = hits[len(hits)-1].SortValues
		if err := ex.jobs.save(ctx, job, run, time.Now().Add(ex.lease)); err != nil {
			return n, nil, stopped(err)
		}
		if ex.afterPage != nil {
			ex.afterPage(ctx, job.ID)
		}
	}
	if err := w.Flush(); err != nil {
		return n, nil, stopped(err)
	}
	if n == 0 {
		return 0, patients, nil // no file: the deferred Abort removes it
	}
	closed = true
	if err := f.Close(); err != nil {
		return n, nil, stopped(err)
	}
	return n, patients, nil
}

// auditExport records the export as a whole: one AuditEvent naming the client, the kick-off request
// and the patients whose records it covered.
func (s *Server) auditExport(req *request, job *exportJob, patients []store.Resource) {
	if s.audit == nil {
		return
	}
	status := http.StatusOK
	if job.Status == jobFailed {
		status = http.StatusInternalServerError
	}
	q := url.Values{"job": {job.ID}, "types": {strings.Join(job.Types, ",")}}
	for _, o := range job.Output {
		q.Set("count."+o.Type, strconv.FormatInt(o.Count, 10))
	}
	req.query = q.Encode()
	rec, err := s.auditRecordOf(req, "operation", status, patients, nil)
	if err == nil {
		err = s.audit.Append(rec)
	}
	if err != nil {
		req.logger().Error("bulk export audit record", "error", err)
	}
}
