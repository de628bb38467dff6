package online

// RuleKind says which kind of business rule a request broke; the API maps each kind to one status.
type RuleKind int

const (
	// RuleInvalid: the resource or change breaks a rule (422).
	RuleInvalid RuleKind = iota + 1
	// RuleConflict: the current state of other resources forbids it (409): a slot taken, a request
	// already outstanding.
	RuleConflict
	// RuleBadRequest: the request itself is malformed or out of bounds (400).
	RuleBadRequest
	// RulePrecondition: a required precondition header is missing (428).
	RulePrecondition
	// RuleForbidden: the patient may not do this where they ask to (403): at a practice they are not
	// registered with.
	RuleForbidden
)

// RuleError is a broken business rule, with a message for the person using the app.
type RuleError struct {
	Kind RuleKind
	// Code is an OperationOutcome issue-type code.
	Code    string
	Message string
	// Expression is the FHIRPath of the offending element, if one.
	Expression string
}

func (e *RuleError) Error() string { return e.Message }

// RuleViolation returns a RuleInvalid error.
func RuleViolation(code, expr, msg string) *RuleError {
	return &RuleError{Kind: RuleInvalid, Code: code, Message: msg, Expression: expr}
}
