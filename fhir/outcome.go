package fhir

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// OperationOutcome issue severities.
const (
	SeverityFatal       = "fatal"
	SeverityError       = "error"
	SeverityWarning     = "warning"
	SeverityInformation = "information"
)

// OperationOutcome issue-type codes (http://hl7.org/fhir/issue-type) that gpfhir uses.
const (
	IssueInvalid       = "invalid"
	IssueStructure     = "structure"
	IssueRequired      = "required"
	IssueValue         = "value"
	IssueInvariant     = "invariant"
	IssueSecurity      = "security"
	IssueLogin         = "login"
	IssueForbidden     = "forbidden"
	IssueProcessing    = "processing"
	IssueNotSupported  = "not-supported"
	IssueDuplicate     = "duplicate"
	IssueMultiple      = "multiple-matches"
	IssueNotFound      = "not-found"
	IssueDeleted       = "deleted"
	IssueTooLong       = "too-long"
	IssueCodeInvalid   = "code-invalid"
	IssueExtension     = "extension"
	IssueTooCostly     = "too-costly"
	IssueBusinessRule  = "business-rule"
	IssueConflict      = "conflict"
	IssueTransient     = "transient"
	IssueException     = "exception"
	IssueTimeout       = "timeout"
	IssueIncomplete    = "incomplete"
	IssueThrottled     = "throttled"
	IssueInformational = "informational"
)

// Issue is one OperationOutcome issue.
type Issue struct {
	Severity string `json:"severity"`
	// Code is an issue-type code (Issue* constants).
	Code string `json:"code"`
	// Details is a coded detail of the issue, such as GP Connect's confidential-items warning code.
	Details *IssueDetails `json:"details,omitempty"`
	// Diagnostics is plain English for the caller: which element, and what is wrong with it. It may quote
	// the submitted value, so it belongs in responses, never in logs.
	Diagnostics string `json:"diagnostics,omitempty"`
	// Expression holds FHIRPath locations such as "Patient.identifier[0].value".
	Expression []string `json:"expression,omitempty"`
}

// IssueDetails is the CodeableConcept of Issue.details.
type IssueDetails struct {
	Coding []IssueCoding `json:"coding,omitempty"`
	Text   string        `json:"text,omitempty"`
}

// IssueCoding is one Coding of IssueDetails.
type IssueCoding struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// NewIssue returns an error-severity issue.
func NewIssue(code, diagnostics string, expression ...string) Issue {
	return Issue{Severity: SeverityError, Code: code, Diagnostics: diagnostics, Expression: expression}
}

// Warning returns a warning-severity issue.
func Warning(code, diagnostics string, expression ...string) Issue {
	return Issue{Severity: SeverityWarning, Code: code, Diagnostics: diagnostics, Expression: expression}
}

// Information returns an information-severity issue of type informational, for success outcomes.
func Information(diagnostics string) Issue {
	return Issue{Severity: SeverityInformation, Code: IssueInformational, Diagnostics: diagnostics}
}

// ErrorKind says how the API answers an *Error.
type ErrorKind int

const (
	// Malformed: the body is not a FHIR resource at all (not JSON, not an object, no or unknown
	// resourceType). The API answers 400.
	Malformed ErrorKind = iota + 1
	// Invalid: the body is a resource of a known type that breaks R4 or a project rule. The API
	// answers 422.
	Invalid
)

func (k ErrorKind) String() string {
	switch k {
	case Malformed:
		return "malformed"
	case Invalid:
		return "invalid"
	}
	return "ErrorKind(" + strconv.Itoa(int(k)) + ")"
}

// Error is a rejected resource, with every issue found.
type Error struct {
	Kind   ErrorKind
	Issues []Issue
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("fhir: ")
	b.WriteString(e.Kind.String())
	b.WriteString(" resource")
	if len(e.Issues) > 0 {
		b.WriteString(": ")
		b.WriteString(e.Issues[0].Diagnostics)
		if n := len(e.Issues) - 1; n > 0 {
			b.WriteString(" (and " + strconv.Itoa(n) + " more)")
		}
	}
	return b.String()
}

// OperationOutcome renders issues as an OperationOutcome resource, resourceType first. With no issues it
// renders a single informational issue, because R4 requires at least one.
func OperationOutcome(issues ...Issue) []byte {
	if len(issues) == 0 {
		issues = []Issue{Information("All OK")}
	}
	v := struct {
		ResourceType string  `json:"resourceType"`
		Issue        []Issue `json:"issue"`
	}{"OperationOutcome", issues}
	return MarshalNoEscape(v)
}

// MarshalNoEscape is json.Marshal without HTML escaping, for values that cannot fail to marshal.
func MarshalNoEscape(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("fhir: marshal: " + err.Error())
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
