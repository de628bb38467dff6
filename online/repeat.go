package online

import (
	"slices"
	"strconv"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// Repeat prescriptions, after GP Connect Patient Facing Prescriptions: the authorisation is a
// MedicationRequest with intent plan, a patient's request for a reissue is a Task, and each issue is a
// MedicationRequest with intent order basedOn the plan.
const (
	// RepeatInformationExtension is UK Core's MedicationRepeatInformation on the plan:
	// numberOfPrescriptionsIssued (valueUnsignedInt) and authorisationExpiryDate (valueDateTime).
	RepeatInformationExtension = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
	// RenewalCode is SNOMED CT 103742009 "Renewal of prescription", the Task.code of a repeat request.
	RenewalCode  = "103742009"
	SNOMEDSystem = "http://snomed.info/sct"
	// PrescriptionOrderingSystem types Task.input preferred-performer (a nominated pharmacy).
	PrescriptionOrderingSystem = "https://fhir.nhs.uk/England/CodeSystem/England-PFSPrescriptionOrderingParameter"
	// OutstandingRequestExtension marks a repeat authorisation with the request for it that is waiting for
	// the practice: valueReference Task/id, and nothing else (no display: the Task's note is the
	// patient's free text, and whoever reads the plan need not see it). A new request writes it on the
	// plan in the same atomic group as the Task, with compare-and-swap on the plan version its rules
	// read, so of two requests for one plan made at the same instant only one can be written; the
	// request's completion, rejection or cancellation removes it the same way.
	OutstandingRequestExtension = "https://gpfhir.example/StructureDefinition/outstanding-repeat-request"
)

// OutstandingRequestMessage begins every refusal of a request for a plan that already has one outstanding,
// whether the rules found it or it won a race with this one.
const OutstandingRequestMessage = "a request for this prescription is already outstanding"

// Plan is what the repeat rules need from a repeat authorisation.
type Plan struct {
	ID      string
	Intent  string
	Status  string
	Patient string // "Patient/id"
	// Issued counts the prescriptions issued so far; Allowed is how many may be issued in all:
	// dispenseRequest.numberOfRepeatsAllowed + 1 (R4 counts repeats after the first issue). Allowed is
	// -1 when the plan sets no limit.
	Issued, Allowed int
	Expiry          time.Time // zero: none
	// Outstanding is the id of the Task the plan's OutstandingRequestExtension names, or "". The marker
	// may be stale (its Task deleted, or finished by a write that predates the marker), so the Task's
	// own status decides.
	Outstanding string
}

// ParsePlan reads a MedicationRequest tree.
func ParsePlan(id string, tree map[string]any) Plan {
	p := Plan{ID: id, Intent: str(tree, "intent"), Status: str(tree, "status"), Allowed: -1}
	if s, ok := tree["subject"].(map[string]any); ok {
		p.Patient = str(s, "reference")
	}
	for _, e := range fhir.Extensions(tree, RepeatInformationExtension) {
		for _, sub := range fhir.Walk(e, "extension") {
			m, _ := sub.(map[string]any)
			switch str(m, "url") {
			case "numberOfPrescriptionsIssued":
				if n, ok := number(m["valueUnsignedInt"]); ok {
					p.Issued = n
				}
			case "authorisationExpiryDate":
				if _, hi, err := fhir.ParseDateRange(str(m, "valueDateTime")); err == nil {
					p.Expiry = time.UnixMilli(hi).UTC()
				}
			}
		}
	}
	for _, e := range fhir.Extensions(tree, OutstandingRequestExtension) {
		if r, ok := e["valueReference"].(map[string]any); ok {
			if typ, id, ok := fhir.LocalRef(str(r, "reference"), ""); ok && typ == "Task" {
				p.Outstanding = id
			}
		}
	}
	if p.Expiry.IsZero() {
		for _, v := range fhir.Walk(tree, "dispenseRequest.validityPeriod.end") {
			if s, ok := v.(string); ok {
				if _, hi, err := fhir.ParseDateRange(s); err == nil {
					p.Expiry = time.UnixMilli(hi).UTC()
				}
			}
		}
	}
	for _, v := range fhir.Walk(tree, "dispenseRequest.numberOfRepeatsAllowed") {
		if n, ok := number(v); ok {
			p.Allowed = n + 1
		}
	}
	return p
}

// CheckPlanOrderable says why a plan cannot be reissued now, or nil. The message speaks to the patient.
func CheckPlanOrderable(p Plan, now time.Time) *RuleError {
	const at = "Task.focus"
	switch {
	case p.Intent != "plan":
		return RuleViolation(fhir.IssueBusinessRule, at, "Task.focus must be a repeat authorisation (a MedicationRequest with intent plan), not a single prescription")
	case p.Status != "active":
		return RuleViolation(fhir.IssueBusinessRule, at, "this repeat medication is no longer active (its status is "+p.Status+"); contact your practice if you still need it")
	case !p.Expiry.IsZero() && now.After(p.Expiry):
		return RuleViolation(fhir.IssueBusinessRule, at, "this repeat authorisation expired on "+p.Expiry.Format("2 January 2006")+"; ask your practice for a medication review")
	case p.Allowed >= 0 && p.Issued >= p.Allowed:
		return RuleViolation(fhir.IssueBusinessRule, at, "all "+strconv.Itoa(p.Allowed)+" issues of this repeat authorisation have been used; ask your practice for a medication review")
	}
	return nil
}

// TaskFocus returns the "MedicationRequest/id" a Task focuses on, or "".
func TaskFocus(tree map[string]any) string {
	if f, ok := tree["focus"].(map[string]any); ok {
		if typ, id, ok := fhir.LocalRef(str(f, "reference"), ""); ok && typ == "MedicationRequest" {
			return id
		}
	}
	return ""
}

// TaskFor returns Task.for's reference.
func TaskFor(tree map[string]any) string {
	if f, ok := tree["for"].(map[string]any); ok {
		return str(f, "reference")
	}
	return ""
}

// IsRepeatRequest reports whether a Task tree is a repeat request: its code is the renewal code.
func IsRepeatRequest(tree map[string]any) bool {
	for _, c := range fhir.Walk(tree, "code.coding") {
		m, _ := c.(map[string]any)
		if str(m, "system") == SNOMEDSystem && str(m, "code") == RenewalCode {
			return true
		}
	}
	return false
}

// CheckRepeatRequest applies the rules to a new repeat request Task against its plan.
func CheckRepeatRequest(task map[string]any, plan Plan, now time.Time) *RuleError {
	switch {
	case str(task, "status") != "requested":
		return RuleViolation(fhir.IssueBusinessRule, "Task.status", "a new repeat request must have status requested")
	case str(task, "intent") != "order":
		return RuleViolation(fhir.IssueBusinessRule, "Task.intent", "a repeat request must have intent order")
	case !IsRepeatRequest(task):
		return RuleViolation(fhir.IssueBusinessRule, "Task.code", "a repeat request must have code "+SNOMEDSystem+"|"+RenewalCode+" (Renewal of prescription)")
	case TaskFocus(task) == "":
		return RuleViolation(fhir.IssueRequired, "Task.focus", "a repeat request must name the repeat authorisation in Task.focus (MedicationRequest/id)")
	case TaskFor(task) == "":
		return RuleViolation(fhir.IssueRequired, "Task.for", "a repeat request must name the patient in Task.for")
	case plan.Patient != TaskFor(task):
		return RuleViolation(fhir.IssueBusinessRule, "Task.focus", "this repeat authorisation is not for the patient in Task.for")
	}
	for i, in := range fhir.Walk(task, "input") {
		m, _ := in.(map[string]any)
		ok := false
		for _, c := range fhir.Walk(m, "type.coding") {
			cm, _ := c.(map[string]any)
			ok = ok || str(cm, "code") == "preferred-performer"
		}
		id, _ := m["valueIdentifier"].(map[string]any)
		if !ok || str(id, "system") != fhir.ODSOrganizationSystem || str(id, "value") == "" {
			return RuleViolation(fhir.IssueBusinessRule, "Task.input["+strconv.Itoa(i)+"]",
				"the only input a repeat request takes is a nominated pharmacy: type preferred-performer with a valueIdentifier in the ODS system")
		}
	}
	return CheckPlanOrderable(plan, now)
}

// OutstandingTaskStatuses are the statuses of a repeat request still waiting for the practice.
var OutstandingTaskStatuses = []string{"draft", "requested", "received", "accepted", "ready", "in-progress", "on-hold"}

// CheckNoOutstandingRequest refuses a new request for a plan while another is outstanding. taskID is the
// request that the plan's marker names or a search found ("" for none) and status its current status
// ("" when it no longer exists): a marker left by a deleted or finished request does not block.
func CheckNoOutstandingRequest(taskID, status string) *RuleError {
	if taskID == "" || !slices.Contains(OutstandingTaskStatuses, status) {
		return nil
	}
	return &RuleError{Kind: RuleConflict, Code: fhir.IssueDuplicate, Expression: "Task.focus",
		Message: OutstandingRequestMessage + " (Task/" + taskID + "): it is already with the practice; wait for it to be processed, or cancel it first"}
}

// MarkOutstanding returns a copy of a plan tree whose OutstandingRequestExtension names Task/taskID,
// replacing any earlier (stale) marker.
func MarkOutstanding(plan map[string]any, taskID string) map[string]any {
	c, exts := withoutExtension(plan, OutstandingRequestExtension)
	c["extension"] = append(exts, map[string]any{"url": OutstandingRequestExtension,
		"valueReference": map[string]any{"reference": "Task/" + taskID}})
	return c
}

// ClearOutstanding returns a copy of a plan tree without its OutstandingRequestExtension when that names
// Task/taskID, and whether it did. A marker naming another request is left alone: that request is the
// one still waiting.
func ClearOutstanding(plan map[string]any, taskID string) (map[string]any, bool) {
	if taskID == "" || ParsePlan("", plan).Outstanding != taskID {
		return plan, false
	}
	c, exts := withoutExtension(plan, OutstandingRequestExtension)
	if len(exts) == 0 {
		delete(c, "extension") // FHIR JSON has no empty arrays
	} else {
		c["extension"] = exts
	}
	return c, true
}

// withoutExtension returns a shallow copy of tree and its extensions other than url.
func withoutExtension(tree map[string]any, url string) (map[string]any, []any) {
	c := make(map[string]any, len(tree)+1)
	for k, v := range tree {
		c[k] = v
	}
	var exts []any
	for _, e := range fhir.Walk(tree, "extension") {
		if m, ok := e.(map[string]any); ok && str(m, "url") == url {
			continue
		}
		exts = append(exts, e)
	}
	return c, exts
}

// TaskTransition is what an update of a repeat request does.
type TaskTransition int

const (
	TaskNoChange TaskTransition = iota
	TaskProgress
	TaskComplete
	TaskReject
	TaskCancel
)

// CheckTaskChange applies the rules to an update of a repeat request from old to next. Patients may
// only cancel a request the practice has not started on; GP systems move it to in-progress, completed
// or rejected (a rejection needs a statusReason, which the patient sees). What the request is for
// (focus, for, code, intent) never changes.
func CheckTaskChange(old, next map[string]any, byPatient bool) (TaskTransition, *RuleError) {
	for _, k := range []string{"focus", "for", "code", "intent"} {
		if !sameExcept(pick(old, k), pick(next, k)) {
			return 0, RuleViolation(fhir.IssueBusinessRule, "Task."+k, "Task."+k+" of a repeat request cannot change")
		}
	}
	from, to := str(old, "status"), str(next, "status")
	if from == to {
		if byPatient {
			return 0, RuleViolation(fhir.IssueBusinessRule, "Task.status", "online, a repeat request can only be cancelled (status cancelled)")
		}
		return TaskNoChange, nil
	}
	if slices.Contains([]string{"completed", "rejected", "cancelled", "failed"}, from) {
		return 0, RuleViolation(fhir.IssueBusinessRule, "Task.status", "this repeat request is already "+from+" and cannot change")
	}
	if byPatient {
		if to != "cancelled" || from != "requested" {
			return 0, RuleViolation(fhir.IssueBusinessRule, "Task.status",
				"online, a repeat request can only be cancelled, and only before the practice starts on it")
		}
		if !sameExcept(old, next, "meta", "text", "status", "statusReason", "note", "lastModified") {
			return 0, RuleViolation(fhir.IssueBusinessRule, "Task", "a cancellation may change only status, statusReason and note")
		}
		return TaskCancel, nil
	}
	switch to {
	case "in-progress", "received", "accepted":
		return TaskProgress, nil
	case "completed":
		return TaskComplete, nil
	case "rejected":
		if _, ok := next["statusReason"].(map[string]any); !ok {
			return 0, RuleViolation(fhir.IssueRequired, "Task.statusReason", "a rejected repeat request needs a statusReason: the patient is shown it")
		}
		return TaskReject, nil
	case "cancelled":
		return TaskCancel, nil
	}
	return 0, RuleViolation(fhir.IssueBusinessRule, "Task.status", "a repeat request moves to in-progress, completed or rejected, not "+to)
}

// IssueFromPlan builds the MedicationRequest (intent order, basedOn the plan) that completing a repeat
// request issues: medication, patient, prescriber, dosage and supply from the plan.
func IssueFromPlan(planID string, plan map[string]any, now time.Time) map[string]any {
	out := map[string]any{
		"resourceType": "MedicationRequest",
		"status":       "active",
		"intent":       "order",
		"authoredOn":   now.UTC().Format(time.RFC3339),
		"basedOn":      []any{map[string]any{"reference": "MedicationRequest/" + planID}},
	}
	for _, k := range []string{"medicationCodeableConcept", "medicationReference", "subject", "requester", "category",
		"courseOfTherapyType", "dosageInstruction", "substitution"} {
		if v, ok := plan[k]; ok {
			out[k] = v
		}
	}
	if dr, ok := plan["dispenseRequest"].(map[string]any); ok {
		d := map[string]any{}
		for _, k := range []string{"quantity", "expectedSupplyDuration"} {
			if v, ok := dr[k]; ok {
				d[k] = v
			}
		}
		if len(d) > 0 {
			out["dispenseRequest"] = d
		}
	}
	return out
}

// CountIssue returns a copy of a plan tree with numberOfPrescriptionsIssued one higher.
func CountIssue(plan map[string]any, issuedBefore int) map[string]any {
	c := make(map[string]any, len(plan))
	for k, v := range plan {
		c[k] = v
	}
	var exts []any
	found := false
	for _, e := range fhir.Walk(plan, "extension") {
		m, _ := e.(map[string]any)
		if str(m, "url") != RepeatInformationExtension {
			exts = append(exts, e)
			continue
		}
		found = true
		var subs []any
		counted := false
		for _, s := range fhir.Walk(m, "extension") {
			sm, _ := s.(map[string]any)
			if str(sm, "url") == "numberOfPrescriptionsIssued" {
				subs = append(subs, map[string]any{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issuedBefore + 1})
				counted = true
				continue
			}
			subs = append(subs, s)
		}
		if !counted {
			subs = append(subs, map[string]any{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issuedBefore + 1})
		}
		exts = append(exts, map[string]any{"url": RepeatInformationExtension, "extension": subs})
	}
	if !found {
		exts = append(exts, map[string]any{"url": RepeatInformationExtension, "extension": []any{
			map[string]any{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issuedBefore + 1}}})
	}
	c["extension"] = exts
	return c
}
