package api

import (
	"context"
	"log/slog"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/store"
)

// request is one HTTP request as the API sees it: who is calling, which FHIR interaction they attempt,
// on what, what the policy decided and what the request touched. The first middleware makes it and
// every later step reads and fills in this one value, which is passed down by hand: nothing of it
// travels in a context.Context, so a function's parameters say what it depends on.
type request struct {
	// c is the HTTP exchange: headers and body to read, the answer to write. It is nil for an
	// in-process loader, whose context is base.
	c    *gin.Context
	base context.Context
	id   string
	// log is the logger that names the request on every line, made from serverLog on first use; set
	// beforehand by a request that is named otherwise (a bulk export's job).
	log       *slog.Logger
	serverLog *slog.Logger

	// caller is nil until identify has verified the token, and stays nil on the public paths.
	caller *auth.Caller
	// verified: the limit middleware has already verified the bearer token, with this result, which
	// identify takes rather than verifying again.
	verified       bool
	verifiedCaller *auth.Caller
	verifyErr      error
	// internal marks an in-process loader (Import): trusted code with no caller, which the write guard
	// lets through.
	internal bool

	// interaction is the FHIR restful interaction attempted ("" for a path that is not FHIR REST); op
	// the operation name with its $ for an operation.
	interaction string
	op          string
	// path is the FHIR path read from the URL; nil when it has no type (the base) or was refused.
	path *pathParams
	// ifMatch: the request carried If-Match, which makes a booking of a slot taken meanwhile a 412
	// rather than a 409.
	ifMatch bool

	// decision is the policy's last word on the request, for the authorisation log line and the audit
	// record; nil when none was made.
	decision *auth.Decision
	// held is the audit middleware's hold on the answer, which streamAudited lets go of.
	held *bufferedWriter
	// touched lists what the request read, listed or wrote, for its audit record's entities.
	touched []store.Resource
	// screens are the queries restrict confined by the redaction clauses, each to be asked what it
	// withheld (see withheldNotes).
	screens []screened
	// query, when set, is the query an operation's audit record names (a bulk export's types and
	// counts).
	query string
	// dashboard marks a view of the uptake dashboard, whose audit record names the query it asked.
	dashboard bool
	// withheld: a searchset left out redacted items and said so (confidential-items), for the audit
	// record, which the uptake figures count barriers from.
	withheld bool
	// own are the Patient resources identify found for a P9 patient's caller (the person acted for), as
	// current as a read of them in the same request would be: a patient app reads its own Patient on
	// every launch, and reading it again would be a second look-up of what identify just read.
	own []store.Resource
	// staged holds the versions a transaction has prepared but not applied, so that a later entry's
	// reference check and access facts see the Patient an earlier entry creates.
	staged map[string]store.Resource
	// pending is, for each write a transaction has staged, the version it replaces (booking reads it).
	pending map[string]int64
	// practices memoises, for this request only, the ODS codes of the practices each patient is
	// registered at (practicesOf).
	practices map[string][]string
	// checkedPractices is practices for a transaction's writes while commit checks them: everything
	// they read is staged by then, and stays as it is until they are applied.
	checkedPractices map[string][]string
	// patientsOfVersion keeps, for this request only, the patients the policy found each version it
	// decided on belongs to, so that the audit record names them without decoding the body again.
	patientsOfVersion map[versionKey][]string
	// readCurrent is the version a read by id just fetched as the current one: its own security labels
	// are then the newest, and the policy need not fetch the resource again to look for a redaction.
	readCurrent versionKey
	// entries are the audit inputs of a batch's or transaction's entries, each recorded as an
	// interaction of its own.
	entries []entryAudit
	// audited: the request's record has been stored (with its writes); the audit middleware has
	// nothing left to append.
	audited bool
	// auditedStatus is the answer the stored record names.
	auditedStatus int
}

// requestKey is the one gin key: the middlewares that run around dispatch read the request from it.
const requestKey = "gpfhir.request"

// requestOf returns the request value of c, making an empty one for a path the first middleware has not
// seen (gin's own 404s).
func requestOf(c *gin.Context) *request {
	if v, ok := c.Get(requestKey); ok {
		return v.(*request)
	}
	req := &request{c: c}
	c.Set(requestKey, req)
	return req
}

// logger returns the request's logger. It is made only when wanted: most requests write just the
// access and authorisation lines, which name the request themselves, and a logger With the id costs
// eight allocations of every request. A request without an id (an in-process import's) logs with the
// server's logger as it is.
func (r *request) logger() *slog.Logger {
	switch {
	case r.log != nil:
	case r.serverLog == nil:
		return slog.Default() // a request built without the server's logger: logged, not a nil panic
	case r.id == "":
		r.log = r.serverLog
	default:
		r.log = r.serverLog.With("request_id", r.id)
	}
	return r.log
}

// ctx is the request's context: cancelled when the client goes away.
func (r *request) ctx() context.Context {
	if r.c != nil {
		return r.c.Request.Context()
	}
	if r.base != nil {
		return r.base
	}
	return context.Background()
}

// decide records the policy's decision for the authorisation log and the audit record.
func (r *request) decide(d auth.Decision) { r.decision = &d }

// touch marks res as touched by the request, for its audit record. Handlers call it for every resource
// they return or write.
func (r *request) touch(res ...store.Resource) { r.touched = append(r.touched, res...) }

// ownPatient is the caller's own Patient typ/id as identify read it, if it is one (see request.own).
func (req *request) ownPatient(typ, id string) (store.Resource, bool) {
	if typ != "Patient" {
		return store.Resource{}, false
	}
	for _, r := range req.own {
		if r.ID == id && !r.Deleted {
			return r, true
		}
	}
	return store.Resource{}, false
}
