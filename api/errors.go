package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// apiError is an answer other than success: an HTTP status and the OperationOutcome issues that explain
// it. Handlers return it instead of writing responses themselves, so that every error body has one shape.
type apiError struct {
	status int
	issues []fhir.Issue
	header map[string]string
	// cause is logged, never shown: it may hold driver detail.
	cause error
}

func (e *apiError) Error() string {
	if len(e.issues) > 0 {
		return fmt.Sprintf("%d %s", e.status, e.issues[0].Diagnostics)
	}
	return fmt.Sprintf("%d", e.status)
}

// fail builds an apiError with one error issue.
func fail(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, issues: []fhir.Issue{{
		Severity:    "error",
		Code:        code,
		Diagnostics: fmt.Sprintf(format, args...),
	}}}
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

// fromParseError maps a validation failure from package fhir: malformed JSON is the client's syntax (400),
// anything that parsed but breaks a rule is an unprocessable resource (422).
func fromParseError(err error) *apiError {
	var fe *fhir.Error
	if errors.As(err, &fe) {
		status := http.StatusUnprocessableEntity
		if fe.Kind == fhir.Malformed {
			status = http.StatusBadRequest
		}
		return &apiError{status: status, issues: fe.Issues}
	}
	return fail(http.StatusBadRequest, "structure", "the body is not a valid FHIR R4 JSON resource: %v", err)
}

// fromStoreError maps store sentinels. Anything unexpected becomes a 500 whose detail is logged only.
func fromStoreError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, store.ErrUnavailable):
		e := fail(http.StatusServiceUnavailable, "transient", "the data store is unavailable; try again shortly")
		e.cause = err
		return e
	case errors.Is(err, store.ErrVersionConflict):
		e := fail(http.StatusConflict, "conflict", "the resource was changed by another request at the same time; read it again and retry")
		e.cause = err
		return e
	}
	return internal(err)
}

func internal(err error) *apiError {
	e := fail(http.StatusInternalServerError, "exception", "internal error")
	e.cause = err
	return e
}
