package uptake

import (
	"strings"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/online"
)

// Service is an online service whose use is counted.
type Service int

const (
	NoService Service = iota
	// Appointments: an appointment booked or cancelled online (POMI Pat_Appts_Use).
	Appointments
	// Prescriptions: a repeat prescription requested online (POMI Pat_Presc_Use).
	Prescriptions
	// RecordViews: a request that showed at least one record entry (POMI Pat_DetCodeRec_Use).
	RecordViews
)

// Barrier is why a patient or proxy was refused, or had items withheld: the Healthwatch study's findings,
// counted.
type Barrier string

const (
	// BarrierLevel: the NHS login identity was verified below P9 (auth.DenyLevel).
	BarrierLevel Barrier = "proofing_level"
	// BarrierNoRecord: no GP record here is linked to the NHS number (auth.DenyNoRecord).
	BarrierNoRecord Barrier = "no_record"
	// BarrierSwitchedOff: the practice has not switched the service, or that part of the record, on
	// (auth.DenyAccessLevel).
	BarrierSwitchedOff Barrier = "switched_off"
	// BarrierConfidential: items the practice withholds from online access were left out, by a read
	// answered as not found (auth.DenyRedacted) or a searchset with the confidential-items note.
	BarrierConfidential Barrier = "confidential"
	// BarrierProxy: acting for someone without a proxy grant in force (auth.DenyProxy).
	BarrierProxy Barrier = "proxy_grant"
	// BarrierOther: any other refusal by the access policy (another patient's record, a write patients
	// may not make, a scope the app lacks).
	BarrierOther Barrier = "other"
)

// Barriers lists the barriers in the order they are reported.
var Barriers = []Barrier{BarrierLevel, BarrierNoRecord, BarrierSwitchedOff, BarrierConfidential, BarrierProxy, BarrierOther}

// Label is the barrier in words.
func (b Barrier) Label() string {
	switch b {
	case BarrierLevel:
		return "Identity verified below P9"
	case BarrierNoRecord:
		return "No GP record linked"
	case BarrierSwitchedOff:
		return "Service switched off by the practice"
	case BarrierConfidential:
		return "Items withheld as confidential"
	case BarrierProxy:
		return "Proxy grant missing or ended"
	case BarrierOther:
		return "Other refusals"
	}
	return string(b)
}

// barrierOf maps the access policy's refusal outcomes to barriers.
var barrierOf = map[string]Barrier{
	string(auth.DenyLevel):       BarrierLevel,
	string(auth.DenyNoRecord):    BarrierNoRecord,
	string(auth.DenyAccessLevel): BarrierSwitchedOff,
	string(auth.DenyRedacted):    BarrierConfidential,
	string(auth.DenyProxy):       BarrierProxy,
}

// Effect is what one audited request adds to the figures of the month it was made in.
type Effect struct {
	Period Period
	// Use is the service used, if any; Barrier the refusal or withholding met, if any. A search that
	// showed record entries and withheld others has both.
	Use     Service
	Barrier Barrier
	// Patient is the id of the patient whose record it was (for a proxy, the patient acted for);
	// PatientNHS their NHS number when no Patient id is known (a patient below P9, a proxy without a
	// grant). Both are empty when neither is known (P0, which carries no NHS number).
	Patient, PatientNHS string
	// Proxy is the NHS number of a proxy whose request succeeded, for the count of proxy users.
	Proxy string
}

// Counts reports whether the effect changes any figure.
func (e Effect) Counts() bool { return e.Use != NoService || e.Barrier != "" || e.Proxy != "" }

// Classify says what an audited request adds to the figures. Only patients and proxies count: GP-system,
// auditor and commissioner traffic, and requests without a valid token, add nothing. Each request counts
// once; the record of a batch or transaction Bundle adds nothing, since each of its entries has a record
// of its own.
func Classify(s audit.Summary) Effect {
	e := Effect{Period: PeriodOf(s.Recorded)}
	if s.Role != audit.RolePatient && s.Role != audit.RoleProxy {
		return Effect{}
	}
	switch s.Interaction {
	case "batch", "transaction":
		return Effect{}
	}
	switch {
	case s.Role == audit.RolePatient && s.UserPatient != "":
		e.Patient = s.UserPatient
	case s.Role == audit.RoleProxy && len(s.Patients) > 0:
		e.Patient = s.Patients[0]
	case s.Role == audit.RoleProxy:
		e.PatientNHS = s.PatientNHS
	default:
		e.PatientNHS = s.UserNHS
	}
	if s.Status >= 400 {
		if !strings.HasPrefix(s.Decision, "deny-") || s.Decision == "deny-token" {
			return Effect{} // not a refusal by the policy: a conflict, a bad request, a fault
		}
		e.Barrier = BarrierOther
		if b, ok := barrierOf[s.Decision]; ok {
			e.Barrier = b
		}
		return e
	}
	e.Use = used(s)
	if s.Withheld {
		e.Barrier = BarrierConfidential
	}
	if s.Role == audit.RoleProxy {
		e.Proxy = s.UserNHS
	}
	return e
}

// used is the service a successful request used.
func used(s audit.Summary) Service {
	has := func(typ string) bool {
		for _, en := range s.Entities {
			if en.Type == typ {
				return true
			}
		}
		return false
	}
	switch s.Interaction {
	case "create", "update", "patch":
		switch {
		case has("Appointment") && (s.Status == 201 || s.Interaction != "create"):
			// A booking, or a cancellation: online.CheckAppointmentChange lets a patient or proxy change
			// nothing else about an appointment.
			return Appointments
		case has("Task") && s.Status == 201:
			// A new repeat request: a patient's Task is always one (the write rules make it so).
			return Prescriptions
		}
	case "read", "vread", "search-type", "search-system", "history-instance", "history-type", "history-system":
		for _, en := range s.Entities {
			if _, ok := online.RecordLevelOf(en.Type); ok {
				return RecordViews
			}
		}
	}
	return NoService
}
