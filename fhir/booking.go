package fhir

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"time"
)

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
	// RulePrecondition: a required precondition header is missing (428 would be the HTTP answer; the
	// API uses 412, the FHIR versioning status).
	RulePrecondition
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

// SlotTakenMessage is what every losing booking of a slot is told.
const SlotTakenMessage = "this slot is no longer available"

// MaxSlotSearchRange is the longest start range a patient may search for free slots (GP Connect's two
// weeks).
const MaxSlotSearchRange = 14 * 24 * time.Hour

// SlotInfo is what the booking rules need to know about one Slot.
type SlotInfo struct {
	ID             string
	Status         string
	Schedule       string // "Schedule/id"
	Start, End     time.Time
	OnlineBookable bool
}

// ParseSlot reads a Slot tree.
func ParseSlot(id string, tree map[string]any) SlotInfo {
	s := SlotInfo{ID: id, Status: str(tree, "status")}
	if sc, ok := tree["schedule"].(map[string]any); ok {
		s.Schedule = str(sc, "reference")
	}
	s.Start, _ = instant(str(tree, "start"))
	s.End, _ = instant(str(tree, "end"))
	if v, ok := ExtensionValue(tree, OnlineBookableExtension, "valueBoolean"); ok {
		s.OnlineBookable, _ = v.(bool)
	}
	return s
}

func instant(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// AppointmentSlots returns the ids of the Slots an Appointment tree references ("Slot/id").
func AppointmentSlots(tree map[string]any) []string {
	var out []string
	for _, v := range Walk(tree, "slot") {
		m, _ := v.(map[string]any)
		if typ, id, ok := LocalRef(str(m, "reference"), ""); ok && typ == "Slot" {
			out = append(out, id)
		}
	}
	return out
}

// AppointmentPatients returns the "Patient/id" participants of an Appointment tree.
func AppointmentPatients(tree map[string]any) []string {
	var out []string
	for _, v := range Walk(tree, "participant.actor") {
		m, _ := v.(map[string]any)
		if typ, _, ok := LocalRef(str(m, "reference"), ""); ok && typ == "Patient" {
			out = append(out, str(m, "reference"))
		}
	}
	return out
}

// CheckBooking applies the booking rules to a new Appointment: it books (status booked) one or more
// free, future, adjacent slots of one schedule, for exactly one patient, and its start and end are those
// of the slots. byPatient adds the patient-facing rule that the slots are published for online booking.
// slots are the referenced slots, as currently stored.
func CheckBooking(appt map[string]any, slots []SlotInfo, byPatient bool, now time.Time) *RuleError {
	if st := str(appt, "status"); st != "booked" {
		return RuleViolation(IssueBusinessRule, "Appointment.status", "a new appointment must have status booked, not "+quote(st))
	}
	if len(slots) == 0 {
		return RuleViolation(IssueRequired, "Appointment.slot", "a booking must name the slot it books in Appointment.slot")
	}
	if n := len(AppointmentPatients(appt)); n != 1 {
		return RuleViolation(IssueBusinessRule, "Appointment.participant",
			"a booking must have exactly one patient among its participants, not "+strconv.Itoa(n))
	}
	sorted := append([]SlotInfo(nil), slots...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	for i, s := range sorted {
		if s.Status != "free" {
			return &RuleError{Kind: RuleConflict, Code: IssueConflict, Message: SlotTakenMessage, Expression: "Appointment.slot"}
		}
		if byPatient && !s.OnlineBookable {
			return RuleViolation(IssueBusinessRule, "Appointment.slot",
				"this slot is not published for online booking; ask the practice to book it for you")
		}
		if !s.Start.After(now) {
			return RuleViolation(IssueBusinessRule, "Appointment.slot", "this slot has already started; only future slots can be booked")
		}
		if i > 0 {
			prev := sorted[i-1]
			if s.Schedule != prev.Schedule || !s.Start.Equal(prev.End) {
				return RuleViolation(IssueBusinessRule, "Appointment.slot",
					"slots booked together must be adjacent and in the same schedule")
			}
		}
	}
	start, okS := instant(str(appt, "start"))
	end, okE := instant(str(appt, "end"))
	if !okS || !okE || !start.Equal(sorted[0].Start) || !end.Equal(sorted[len(sorted)-1].End) {
		return RuleViolation(IssueBusinessRule, "Appointment.start",
			"the appointment's start and end must be those of its slots ("+sorted[0].Start.Format(time.RFC3339)+
				" to "+sorted[len(sorted)-1].End.Format(time.RFC3339)+")")
	}
	return nil
}

// CancellationCutoff reads a practice Organization's cancellation cut-off; DefaultCancellationCut when
// it sets none.
func CancellationCutoff(org map[string]any) time.Duration {
	if v, ok := ExtensionValue(org, CancellationCutoffExtension, "valueUnsignedInt"); ok {
		if n, ok := v.(float64); ok && n >= 0 {
			return time.Duration(n) * time.Hour
		}
	}
	return DefaultCancellationCut
}

// CheckAppointmentChange applies the rules to an update of an Appointment from old to next. A change
// into status cancelled frees the slots (frees is true). Patients and proxies (byPatient) may only
// cancel: status to cancelled and cancelationReason, nothing else, before the practice's cut-off.
func CheckAppointmentChange(old, next map[string]any, byPatient bool, cutoff time.Duration, now time.Time) (frees bool, rerr *RuleError) {
	oldStatus, newStatus := str(old, "status"), str(next, "status")
	frees = newStatus == "cancelled" && oldStatus != "cancelled"
	if !byPatient {
		return frees, nil
	}
	if oldStatus == "cancelled" {
		return false, RuleViolation(IssueBusinessRule, "Appointment.status", "this appointment is already cancelled")
	}
	if newStatus != "cancelled" {
		return false, RuleViolation(IssueBusinessRule, "Appointment.status",
			"online, an appointment can only be cancelled (status cancelled with a cancelationReason); to change it, cancel it and book again")
	}
	if !sameExcept(old, next, "meta", "text", "status", "cancelationReason") {
		return false, RuleViolation(IssueBusinessRule, "Appointment",
			"a cancellation may change only status and cancelationReason; everything else must stay as it is")
	}
	if _, ok := next["cancelationReason"].(map[string]any); !ok {
		return false, RuleViolation(IssueRequired, "Appointment.cancelationReason", "a cancellation needs a cancelationReason")
	}
	start, ok := instant(str(old, "start"))
	if ok && !start.After(now) {
		return false, RuleViolation(IssueBusinessRule, "Appointment.start", "this appointment has already started, so it cannot be cancelled online")
	}
	if ok && start.Sub(now) < cutoff {
		return false, RuleViolation(IssueBusinessRule, "Appointment.start",
			"your practice does not accept online cancellations less than "+strconv.Itoa(int(cutoff/time.Hour))+
				" hours before the appointment; please phone the practice to cancel")
	}
	return frees, nil
}

// sameExcept reports whether two trees are equal apart from the named top-level elements. Both are
// compared as JSON values, so number forms do not matter.
func sameExcept(a, b map[string]any, skip ...string) bool {
	norm := func(m map[string]any) any {
		c := make(map[string]any, len(m))
		for k, v := range m {
			if index(skip, k) < 0 {
				c[k] = v
			}
		}
		raw, _ := json.Marshal(c)
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

// SetSlotStatus returns a copy of a Slot tree with a new status, for the slot write of a booking or a
// cancellation.
func SetSlotStatus(tree map[string]any, status string) map[string]any {
	c := make(map[string]any, len(tree))
	for k, v := range tree {
		c[k] = v
	}
	c["status"] = status
	return c
}

// CheckSlotSearchRange checks the start range of a patient's free-slot search: both a lower (ge/gt) and
// an upper (le/lt) bound, at most MaxSlotSearchRange apart. low and high are the bounds as instants;
// zero means absent.
func CheckSlotSearchRange(low, high time.Time) *RuleError {
	if low.IsZero() || high.IsZero() {
		return &RuleError{Kind: RuleBadRequest, Code: IssueRequired, Expression: "start",
			Message: "a search for free slots needs a date range: start=geYYYY-MM-DD&start=leYYYY-MM-DD, at most 14 days long"}
	}
	if high.Sub(low) > MaxSlotSearchRange {
		return &RuleError{Kind: RuleBadRequest, Code: IssueTooCostly, Expression: "start",
			Message: "the date range of a free-slot search may be at most 14 days; search a shorter range and page through the weeks"}
	}
	return nil
}

func quote(s string) string { return strconv.Quote(s) }

func itoa(i int) string { return strconv.Itoa(i) }
