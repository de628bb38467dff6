package online

import (
	"slices"
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
)

// A patient's online services are those of the practice they are registered with: its appointment book
// and its prescription desk. A booking, cancellation or repeat request at another practice would land in
// a book or queue that practice's own GP system cannot see (it sees only its registered patients'
// records), so it is refused. A proxy acts within the practices of the patient acted for, since the
// practice that manages the grant is the patient's.

// PracticeAction names what a patient tries to do at a practice, for the refusal's wording.
type PracticeAction int

const (
	ActBook PracticeAction = iota + 1
	ActCancel
	ActRepeat
)

var practiceActions = map[PracticeAction]struct{ doing, where, none, expr string }{
	ActBook: {"book appointments", "this slot belongs to",
		"this slot's schedule names no practice (a Location or Organization of one)", "Appointment.slot"},
	ActCancel: {"cancel appointments", "this appointment is in the book of",
		"this appointment's slots name no practice (their schedule has no Location or Organization of one)", "Appointment.slot"},
	ActRepeat: {"request repeat prescriptions", "this request is addressed to",
		"Task.owner names no practice (an Organization with an ODS code)", "Task.owner"},
}

// CheckPractice applies the rule: at, the ODS codes of the practice (or practices) the action is at, must
// share one with registered, the ODS codes of the practices the patient is registered with. An empty at
// is a slot or request that names no practice, which no practice could answer for.
func CheckPractice(act PracticeAction, registered, at []string) *RuleError {
	a := practiceActions[act]
	if len(registered) == 0 {
		return &RuleError{Kind: RuleForbidden, Code: fhir.IssueForbidden, Expression: a.expr,
			Message: "the patient is not registered with a GP practice on this server, so online they cannot " + a.doing +
				"; ask the practice to complete the registration"}
	}
	if len(at) == 0 {
		return RuleViolation(fhir.IssueBusinessRule, a.expr, a.none+", so online it cannot be used; ask your practice")
	}
	for _, code := range at {
		if slices.Contains(registered, code) {
			return nil
		}
	}
	return &RuleError{Kind: RuleForbidden, Code: fhir.IssueForbidden, Expression: a.expr,
		Message: "online, patients can " + a.doing + " only at the practice they are registered with (" +
			strings.Join(registered, ", ") + "); " + a.where + " practice " + strings.Join(at, ", ")}
}
