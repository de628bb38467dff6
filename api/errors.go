package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// errKind is what went wrong, as far as the answer is concerned. Handlers and the packages below them
// say what went wrong; kinds, below, is the one table that says which status and OperationOutcome code
// each kind is answered with, and answerOf the one function that turns any error into an answer.
type errKind int

const (
	kindInternal             errKind = iota // a fault of the server; the caller sees only "internal error"
	kindMalformed                           // the request cannot be read: not JSON, not a resource
	kindBadValue                            // a parameter, header or id has a value that is not allowed
	kindInvalid                             // the request is well-formed but contradicts itself or the URL
	kindMissing                             // something the request must carry is not there
	kindUnsupported                         // a feature of FHIR this server does not implement
	kindTooCostly                           // a search that would cost too much to run
	kindDuplicateEntry                      // a bundle names one resource twice
	kindUnauthorized                        // no valid bearer token
	kindForbidden                           // the caller may not do this
	kindNoRecord                            // the caller has no record here to do it on
	kindNotFound                            // no such resource, version or cursor
	kindNotServed                           // no such type, operation or path on this server
	kindMethodNotAllowed                    // the path does not allow the method
	kindNotAcceptable                       // no format the client accepts
	kindConflict                            // the state of other resources forbids it (a slot taken)
	kindGone                                // the resource was deleted
	kindVersionMismatch                     // If-Match or ifMatch names another version
	kindMultipleMatches                     // conditional criteria that match more than one resource
	kindDuplicate                           // If-None-Exist criteria that match more than one resource
	kindTooLarge                            // a body or bundle larger than the server takes
	kindUnsupportedMedia                    // a body in a format the server does not read
	kindUnprocessable                       // a resource that breaks a rule of FHIR or of the practice
	kindProcessing                          // a valid request that cannot be carried out as asked
	kindPreconditionRequired                // a change the server only makes under If-Match
	kindUnavailable                         // the store or the token issuer cannot be reached now
	kindRateLimited                         // the caller has sent more requests than it may
)

// kinds is the error map: each kind's status and OperationOutcome issue-type code.
var kinds = [...]struct {
	status int
	code   string
}{
	kindInternal:             {http.StatusInternalServerError, "exception"},
	kindMalformed:            {http.StatusBadRequest, "structure"},
	kindBadValue:             {http.StatusBadRequest, "value"},
	kindInvalid:              {http.StatusBadRequest, "invalid"},
	kindMissing:              {http.StatusBadRequest, "required"},
	kindUnsupported:          {http.StatusBadRequest, "not-supported"},
	kindTooCostly:            {http.StatusBadRequest, "too-costly"},
	kindDuplicateEntry:       {http.StatusBadRequest, "duplicate"},
	kindUnauthorized:         {http.StatusUnauthorized, "login"},
	kindForbidden:            {http.StatusForbidden, "forbidden"},
	kindNoRecord:             {http.StatusForbidden, "not-found"},
	kindNotFound:             {http.StatusNotFound, "not-found"},
	kindNotServed:            {http.StatusNotFound, "not-supported"},
	kindMethodNotAllowed:     {http.StatusMethodNotAllowed, "not-supported"},
	kindNotAcceptable:        {http.StatusNotAcceptable, "not-supported"},
	kindConflict:             {http.StatusConflict, "conflict"},
	kindGone:                 {http.StatusGone, "deleted"},
	kindVersionMismatch:      {http.StatusPreconditionFailed, "conflict"},
	kindMultipleMatches:      {http.StatusPreconditionFailed, "multiple-matches"},
	kindDuplicate:            {http.StatusPreconditionFailed, "duplicate"},
	kindTooLarge:             {http.StatusRequestEntityTooLarge, "too-costly"},
	kindUnsupportedMedia:     {http.StatusUnsupportedMediaType, "not-supported"},
	kindUnprocessable:        {http.StatusUnprocessableEntity, "invalid"},
	kindProcessing:           {http.StatusUnprocessableEntity, "processing"},
	kindPreconditionRequired: {http.StatusPreconditionRequired, "required"},
	kindUnavailable:          {http.StatusServiceUnavailable, "transient"},
	kindRateLimited:          {http.StatusTooManyRequests, "throttled"},
}

// apiError is an answer other than success: its kind and the OperationOutcome issues that explain it.
// Handlers return it instead of writing responses themselves, so that every error body has one shape.
type apiError struct {
	kind   errKind
	issues []fhir.Issue
	header map[string]string
	// cause is logged, never shown: it may hold driver detail.
	cause error
}

func (e *apiError) status() int { return kinds[e.kind].status }

func (e *apiError) Error() string {
	if len(e.issues) > 0 {
		return fmt.Sprintf("%d %s", e.status(), e.issues[0].Diagnostics)
	}
	return fmt.Sprintf("%d", e.status())
}

// fail builds an apiError with one error issue, coded as its kind says.
func fail(kind errKind, format string, args ...any) *apiError {
	return withIssues(kind, fhir.Issue{Severity: "error", Code: kinds[kind].code, Diagnostics: fmt.Sprintf(format, args...)})
}

// withIssues builds an apiError from issues that carry codes of their own (a validator's, a rule's).
func withIssues(kind errKind, issues ...fhir.Issue) *apiError {
	return &apiError{kind: kind, issues: issues}
}

// at sets the FHIRPath expression of the first issue.
func (e *apiError) at(expr ...string) *apiError {
	if len(e.issues) > 0 {
		e.issues[0].Expression = expr
	}
	return e
}

func (e *apiError) withHeader(k, v string) *apiError {
	if e.header == nil {
		e.header = map[string]string{}
	}
	e.header[k] = v
	return e
}

func (e *apiError) because(cause error) *apiError {
	e.cause = cause
	return e
}

// answerOf is the one translation of an error into an answer: errors of this package as they are, and
// the errors of the packages below (validation, the online-services rules, tokens, store sentinels) by
// their kind. Anything unexpected becomes a 500 whose detail is logged only.
func answerOf(err error) *apiError {
	var (
		ae  *apiError
		fe  *fhir.Error
		re  *online.RuleError
		te  *auth.TokenError
		ref *auth.Refusal
	)
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.As(err, &fe):
		// Malformed JSON is the client's syntax (400); anything that parsed but breaks a rule is an
		// unprocessable resource (422).
		if fe.Kind == fhir.Malformed {
			return withIssues(kindMalformed, fe.Issues...)
		}
		return withIssues(kindUnprocessable, fe.Issues...)
	case errors.As(err, &re):
		out := withIssues(ruleKinds[re.Kind], fhir.Issue{Severity: "error", Code: re.Code, Diagnostics: re.Message})
		if re.Expression != "" {
			out.at(re.Expression)
		}
		return out
	case errors.As(err, &te):
		return unauthorized(te.Description)
	case errors.As(err, &ref):
		return fail(kindForbidden, "%s", ref.Reason)
	case errors.Is(err, auth.ErrIssuerUnavailable):
		return fail(kindUnavailable, "the token issuer cannot be reached to check the token; try again shortly").because(err)
	case errors.Is(err, store.ErrUnavailable):
		return fail(kindUnavailable, "the data store is unavailable; try again shortly").because(err)
	case errors.Is(err, store.ErrVersionConflict):
		return fail(kindConflict, "the resource was changed by another request at the same time; read it again and retry").because(err)
	case errors.Is(err, store.ErrNotFound):
		return fail(kindNotFound, "the resource is not known to this server").because(err)
	case errors.Is(err, context.DeadlineExceeded):
		return timedOut().because(err)
	case errors.Is(err, store.ErrInvalidQuery):
		return fail(kindInvalid, "the request cannot be carried out as asked: %v", err).because(err)
	}
	return internal(err)
}

// ruleKinds is how the online-services rules' kinds are answered.
var ruleKinds = map[online.RuleKind]errKind{
	online.RuleInvalid:      kindUnprocessable,
	online.RuleConflict:     kindConflict,
	online.RuleBadRequest:   kindInvalid,
	online.RulePrecondition: kindPreconditionRequired,
	online.RuleForbidden:    kindForbidden,
}

// fromParseError maps a validation failure from package fhir; an error of another kind is a body
// that is not FHIR JSON at all.
func fromParseError(err error) *apiError {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		return answerOf(err)
	}
	return fail(kindMalformed, "the body is not a valid FHIR R4 JSON resource: %v", err)
}

func internal(err error) *apiError {
	return fail(kindInternal, "internal error").because(err)
}
