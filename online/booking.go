package online

import (
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

const (
	// CancellationCutoffExtension on a practice Organization is how many hours before an appointment's
	// start patients may still cancel it online (valueUnsignedInt).
	CancellationCutoffExtension = "https://gpfhir.example/StructureDefinition/cancellation-cutoff-hours"
	// DefaultCancellationCut is the cut-off of a practice that sets none.
	DefaultCancellationCut = 24 * time.Hour
)

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
	s.OnlineBookable = Bookable(tree)
	return s
}

// Bookable reports whether a Schedule or Slot tree is published for online booking by patients: its
// fhir.OnlineBookableExtension is valueBoolean true. Anything else, the extension absent included, is
// for the practice to book.
func Bookable(tree map[string]any) bool {
	v, _ := fhir.ExtensionValue(tree, fhir.OnlineBookableExtension, "valueBoolean")
	return v == true
}

// AppointmentSlots returns the ids of the Slots an Appointment tree references ("Slot/id").
func AppointmentSlots(tree map[string]any) []string {
	var out []string
	for _, v := range fhir.Walk(tree, "slot") {
		m, _ := v.(map[string]any)
		if typ, id, ok := fhir.LocalRef(str(m, "reference"), ""); ok && typ == "Slot" {
			out = append(out, id)
		}
	}
	return out
}

// AppointmentPatients returns the "Patient/id" participants of an Appointment tree.
func AppointmentPatients(tree map[string]any) []string {
	var out []string
	for _, v := range fhir.Walk(tree, "participant.actor") {
		m, _ := v.(map[string]any)
		if typ, _, ok := fhir.LocalRef(str(m, "reference"), ""); ok && typ == "Patient" {
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
		return RuleViolation(fhir.IssueBusinessRule, "Appointment.status", "a new appointment must have status booked, not "+strconv.Quote(st))
	}
	if len(slots) == 0 {
		return RuleViolation(fhir.IssueRequired, "Appointment.slot", "a booking must name the slot it books in Appointment.slot")
	}
	if n := len(AppointmentPatients(appt)); n != 1 {
		return RuleViolation(fhir.IssueBusinessRule, "Appointment.participant",
			"a booking must have exactly one patient among its participants, not "+strconv.Itoa(n))
	}
	sorted := append([]SlotInfo(nil), slots...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Start.Before(sorted[j].Start) })
	for i, s := range sorted {
		if s.Status != "free" {
			return &RuleError{Kind: RuleConflict, Code: fhir.IssueConflict, Message: SlotTakenMessage, Expression: "Appointment.slot"}
		}
		if byPatient && !s.OnlineBookable {
			return RuleViolation(fhir.IssueBusinessRule, "Appointment.slot",
				"this slot is not published for online booking; ask the practice to book it for you")
		}
		if !s.Start.After(now) {
			return RuleViolation(fhir.IssueBusinessRule, "Appointment.slot", "this slot has already started; only future slots can be booked")
		}
		if i > 0 {
			prev := sorted[i-1]
			if s.Schedule != prev.Schedule || !s.Start.Equal(prev.End) {
				return RuleViolation(fhir.IssueBusinessRule, "Appointment.slot",
					"slots booked together must be adjacent and in the same schedule")
			}
		}
	}
	start, okS := instant(str(appt, "start"))
	end, okE := instant(str(appt, "end"))
	if !okS || !okE || !start.Equal(sorted[0].Start) || !end.Equal(sorted[len(sorted)-1].End) {
		return RuleViolation(fhir.IssueBusinessRule, "Appointment.start",
			"the appointment's start and end must be those of its slots ("+sorted[0].Start.Format(time.RFC3339)+
				" to "+sorted[len(sorted)-1].End.Format(time.RFC3339)+")")
	}
	return nil
}

// CancellationCutoff reads a practice Organization's cancellation cut-off; DefaultCancellationCut when
// it sets none.
func CancellationCutoff(org map[string]any) time.Duration {
	if v, ok := fhir.ExtensionValue(org, CancellationCutoffExtension, "valueUnsignedInt"); ok {
		if n, ok := number(v); ok && n >= 0 {
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
		return false, RuleViolation(fhir.IssueBusinessRule, "Appointment.status", "this appointment is already cancelled")
	}
	if newStatus != "cancelled" {
		return false, RuleViolation(fhir.IssueBusinessRule, "Appointment.status",
			"online, an appointment can only be cancelled (status cancelled with a cancelationReason); to change it, cancel it and book again")
	}
	if !sameExcept(old, next, "meta", "text", "status", "cancelationReason") {
		return false, RuleViolation(fhir.IssueBusinessRule, "Appointment",
			"a cancellation may change only status and cancelationReason; everything else must stay as it is")
	}
	if _, ok := next["cancelationReason"].(map[string]any); !ok {
		return false, RuleViolation(fhir.IssueRequired, "Appointment.cancelationReason", "a cancellation needs a cancelationReason")
	}
	start, ok := instant(str(old, "start"))
	if ok && !start.After(now) {
		return false, RuleViolation(fhir.IssueBusinessRule, "Appointment.start", "this appointment has already started, so it cannot be cancelled online")
	}
	if ok && start.Sub(now) < cutoff {
		return false, RuleViolation(fhir.IssueBusinessRule, "Appointment.start",
			"your practice does not accept online cancellations less than "+strconv.Itoa(int(cutoff/time.Hour))+
				" hours before the appointment; please phone the practice to cancel")
	}
	return frees, nil
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

// SlotSearchRange reads the start range a free-slot search asks for from the values of its start
// parameter, each of which may hold comma-separated values: the latest lower bound (ge, gt, sa) and the
// earliest upper bound (le, lt, eb), or both from an eq or unprefixed date. A bound not given is zero, and
// a malformed date is skipped, since the search itself reports it. Each bound is the start of its date,
// so that ge a date and le the date 14 days later is a 14-day range, as people count it.
func SlotSearchRange(starts []string) (low, high time.Time) {
	for _, v := range starts {
		for _, one := range strings.Split(v, ",") {
			prefix, date := "eq", one
			if len(one) > 2 && one[0] >= 'a' && one[0] <= 'z' {
				prefix, date = one[:2], one[2:]
			}
			lo, _, err := fhir.ParseDateRange(date)
			if err != nil {
				continue
			}
			l := time.UnixMilli(lo).UTC()
			switch prefix {
			case "ge", "gt", "sa":
				if low.IsZero() || l.After(low) {
					low = l
				}
			case "le", "lt", "eb":
				if high.IsZero() || l.Before(high) {
					high = l
				}
			case "eq":
				low, high = l, l
			}
		}
	}
	return low, high
}

// CheckSlotSearchRange checks the start range of a patient's free-slot search: both a lower (ge/gt) and
// an upper (le/lt) bound, at most MaxSlotSearchRange apart. low and high are the bounds as instants;
// zero means absent.
func CheckSlotSearchRange(low, high time.Time) *RuleError {
	if low.IsZero() || high.IsZero() {
		return &RuleError{Kind: RuleBadRequest, Code: fhir.IssueRequired, Expression: "start",
			Message: "a search for free slots needs a date range: start=geYYYY-MM-DD&start=leYYYY-MM-DD, at most 14 days long"}
	}
	if high.Sub(low) > MaxSlotSearchRange {
		return &RuleError{Kind: RuleBadRequest, Code: fhir.IssueTooCostly, Expression: "start",
			Message: "the date range of a free-slot search may be at most 14 days; search a shorter range and page through the weeks"}
	}
	return nil
}
