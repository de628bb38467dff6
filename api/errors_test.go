package api

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// TestAnswerOfMapsEveryErrorKindToOneStatusAndCode pins the error map: errors from every package below
// api, wrapped as they reach a handler, become the status and OperationOutcome code a FHIR client expects,
// and nothing the store says unexpectedly becomes a 500 by accident.
func TestAnswerOfMapsEveryErrorKindToOneStatusAndCode(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("reading Patient/x: %w", err) }
	tests := []struct {
		name   string
		err    error
		status int
		code   string
	}{
		{"store not found", wrap(store.ErrNotFound), http.StatusNotFound, "not-found"},
		{"store invalid query", wrap(store.ErrInvalidQuery), http.StatusBadRequest, "invalid"},
		{"store version conflict", wrap(store.ErrVersionConflict), http.StatusConflict, "conflict"},
		{"store unavailable", wrap(store.ErrUnavailable), http.StatusServiceUnavailable, "transient"},
		{"malformed body", &fhir.Error{Kind: fhir.Malformed, Issues: []fhir.Issue{{Severity: "error", Code: "structure"}}}, http.StatusBadRequest, "structure"},
		{"invalid resource keeps the validator's code", &fhir.Error{Kind: fhir.Invalid, Issues: []fhir.Issue{{Severity: "error", Code: "code-invalid"}}}, http.StatusUnprocessableEntity, "code-invalid"},
		{"rule conflict keeps the rule's code", &online.RuleError{Kind: online.RuleConflict, Code: "conflict", Message: online.SlotTakenMessage}, http.StatusConflict, "conflict"},
		{"rule violation", online.RuleViolation("business-rule", "Task.focus", "no"), http.StatusUnprocessableEntity, "business-rule"},
		{"rule precondition", &online.RuleError{Kind: online.RulePrecondition, Code: "required", Message: "If-Match"}, http.StatusPreconditionRequired, "required"},
		{"bad token", &auth.TokenError{Description: "expired"}, http.StatusUnauthorized, "login"},
		{"issuer down", wrap(auth.ErrIssuerUnavailable), http.StatusServiceUnavailable, "transient"},
		{"unexpected", errors.New("disk on fire"), http.StatusInternalServerError, "exception"},
		{"api error as it is", fail(kindGone, "deleted"), http.StatusGone, "deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := answerOf(tt.err)
			if ae.status() != tt.status || len(ae.issues) == 0 || ae.issues[0].Code != tt.code {
				t.Fatalf("answerOf(%v) = %d %+v, want %d %q", tt.err, ae.status(), ae.issues, tt.status, tt.code)
			}
		})
	}
}

// TestEveryErrorKindHasAnAnswer guards the table: a kind added without a row would answer 0.
func TestEveryErrorKindHasAnAnswer(t *testing.T) {
	for k := kindInternal; k <= kindUnavailable; k++ {
		if kinds[k].status < 400 || kinds[k].code == "" {
			t.Errorf("kind %d has no status and code in the error map", k)
		}
	}
}
