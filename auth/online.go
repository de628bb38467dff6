package auth

import (
	"time"

	"github.com/gpfhir/gpfhir/online"
)

// The online-services policy: what a linked P9 patient, or a proxy acting for one, may do with each
// type of their record, given the access levels the practice has switched on (online.Access) and,
// for a proxy, the services the grant allows. Refusals say which access is missing and who can switch
// it on, because "I could only see my immunisations" without a reason is what this exists to fix.

func isWrite(in Interaction) bool {
	p := Permission(in)
	return p == 'c' || p == 'u' || p == 'd'
}

// serviceGate decides a linked patient's (or proxy's) interaction on a patient-compartment type.
func (c *Caller) serviceGate(in Interaction, typ string) Decision {
	if typ == "" {
		// System history: every entry is checked on its own.
		return allow
	}
	write := isWrite(in)
	acc := c.Access()
	switch typ {
	case "Patient":
		if write {
			return Decision{Outcome: DenyPatientWrite, Reason: "your details and your online access settings are kept by " +
				"your GP practice; ask the practice to change them"}
		}
		return allow
	case "Appointment":
		return c.serviceLevel("appointments", "see your appointments", "book or cancel appointments", in,
			acc.Appointments, c.practiceLevel(func(a online.Access) online.ServiceLevel { return a.Appointments }))
	case "Task":
		return c.serviceLevel("prescriptions", "see your repeat prescription requests", "order repeat prescriptions", in,
			acc.Prescriptions, c.practiceLevel(func(a online.Access) online.ServiceLevel { return a.Prescriptions }))
	case "RelatedPerson":
		if c.IsProxy() {
			return Decision{Outcome: DenyAccessLevel, Missing: "the patient's own sign-in",
				Reason: "who may act for a patient is shown to the patient only, not to their proxies"}
		}
		if write {
			return Decision{Outcome: DenyPatientWrite, Reason: "proxy access is set up by your GP practice; ask the practice to change it"}
		}
		return allow
	}
	need, isRecord := online.RecordLevelOf(typ)
	if !isRecord {
		return Decision{Outcome: DenyRole, Reason: typ + " is not available to patient apps"}
	}
	if write {
		return Decision{Outcome: DenyPatientWrite, Reason: "your GP record is written by your practice; a patient app can read it but not change it"}
	}
	if typ == "MedicationRequest" && acc.Prescriptions >= online.ServiceView {
		return allow
	}
	if acc.Record >= need {
		return allow
	}
	what := "your GP record"
	if c.IsProxy() {
		what = "this patient's GP record"
	}
	practice := c.practiceRecord()
	if practice < need {
		return Decision{Outcome: DenyAccessLevel, Missing: "record access " + need.String(),
			Reason: "the practice has not switched on online access to " + typ + " entries of " + what +
				" (record access is " + practice.String() + "; these entries need " + need.String() +
				"). Ask the practice to switch on " + need.String() + " record access"}
	}
	return Decision{Outcome: DenyAccessLevel, Missing: "proxy record access " + need.String(),
		Reason: "your proxy access does not include " + typ + " entries of this patient's record (it allows record access " +
			acc.Record.String() + "); ask the patient's practice to extend it"}
}

// practiceLevel reads one service's level as the practice set it.
func (c *Caller) practiceLevel(get func(online.Access) online.ServiceLevel) online.ServiceLevel {
	if c.PracticeAccess == nil {
		return get(online.DefaultAccess)
	}
	return get(*c.PracticeAccess)
}

func (c *Caller) practiceRecord() online.RecordLevel {
	if c.PracticeAccess == nil {
		return online.DefaultAccess.Record
	}
	return c.PracticeAccess.Record
}

// serviceLevel decides an interaction on a service (appointments, prescriptions) whose effective level
// is have and whose practice level is practice: reads need view, creating and changing need manage, and
// deleting is never done online (cancelling is an update).
func (c *Caller) serviceLevel(service, view, manage string, in Interaction, have, practice online.ServiceLevel) Decision {
	need, doing := online.ServiceView, view
	switch Permission(in) {
	case 'd':
		return Decision{Outcome: DenyPatientWrite, Reason: "online, " + service + " are cancelled rather than deleted: " +
			"update the status to cancelled"}
	case 'c', 'u':
		need, doing = online.ServiceManage, manage
	}
	if have >= need {
		return allow
	}
	if practice < need {
		return Decision{Outcome: DenyAccessLevel, Missing: service + " access " + need.String(),
			Reason: "the practice has not switched on online access to " + doing + " (" + service + " access is " +
				practice.String() + "; this needs " + need.String() + "). Ask the practice to switch it on"}
	}
	return Decision{Outcome: DenyAccessLevel, Missing: "proxy " + service + " access " + need.String(),
		Reason: "your proxy access for this patient does not allow you to " + doing + " (it allows " + service + " " +
			have.String() + "); ask the patient's practice to extend it"}
}

// RecordFrom says, for a patient or proxy, whether entries of typ are shown only from a date on
// (prospective access), and the search parameter that holds their date. A MedicationRequest shown
// through prescriptions access is not limited by the record date.
func (c *Caller) RecordFrom(typ string) (param string, from time.Time, ok bool) {
	if c.Kind != KindPatient {
		return "", time.Time{}, false
	}
	acc := c.Access()
	if acc.RecordFrom.IsZero() {
		return "", time.Time{}, false
	}
	param, _, ok = online.RecordDate(typ)
	if !ok || typ == "MedicationRequest" && acc.Prescriptions >= online.ServiceView {
		return "", time.Time{}, false
	}
	return param, acc.RecordFrom, true
}

// RedactionApplies reports whether redacted resources must be hidden from the caller: from patients
// and proxies always, from GP systems never.
func (c *Caller) RedactionApplies() bool { return c.Kind == KindPatient }

func proxyRefusal(c *Caller) Decision {
	reason := c.ProxyRefusal
	if reason == "" {
		reason = "you have no proxy access for this patient: acting for someone else needs a proxy grant that " +
			"their GP practice sets up. Sign in as yourself to see your own record"
	}
	return Decision{Outcome: DenyProxy, Missing: "a proxy grant", Reason: reason}
}

// ServiceStatus is one online service as $me explains it.
type ServiceStatus struct {
	// Name is record, prescriptions or appointments.
	Name string
	// Level is the effective level (none, summary, detailed, full; none, view, manage).
	Level string
	// From is the record's prospective-access date, if any.
	From time.Time
	// Reason says, when the level is none, who has not switched it on, in plain words.
	Reason string
	// For the record: the entry types shown, and those withheld at this level with the reason.
	Shows     []string
	Withholds []WithheldType
}

// WithheldType is a type of record entry that the effective record level does not show.
type WithheldType struct {
	Type string
	// Needs is the record level that would show it.
	Needs  string
	Reason string
}

// ExplainServices describes each service for a patient acting for themselves (grant nil) or a proxy.
func ExplainServices(practice online.Access, grant *online.Access) []ServiceStatus {
	eff := practice
	if grant != nil {
		eff = practice.Min(*grant)
	}
	why := func(what string, practiceOff bool) string {
		if practiceOff {
			return "the practice has not switched on online access to " + what + "; ask the practice to switch it on"
		}
		return "your proxy access for this patient does not include " + what + "; ask the patient's practice to extend it"
	}
	out := []ServiceStatus{
		{Name: "record", Level: eff.Record.String(), From: eff.RecordFrom},
		{Name: "prescriptions", Level: eff.Prescriptions.String()},
		{Name: "appointments", Level: eff.Appointments.String()},
	}
	if eff.Record == online.RecordNone {
		out[0].Reason = why("the GP record", practice.Record == online.RecordNone)
	}
	var withheld []string
	out[0].Shows, withheld = online.RecordTypesAt(eff.Record)
	for _, typ := range withheld {
		need, _ := online.RecordLevelOf(typ)
		w := WithheldType{Type: typ, Needs: need.String()}
		if practice.Record < need {
			w.Reason = "the practice has switched on " + practice.Record.String() + " record access; " + typ +
				" entries need " + need.String() + ". Ask the practice to switch on " + need.String() + " record access"
		} else {
			w.Reason = "your proxy access for this patient allows " + eff.Record.String() + " record access; " + typ +
				" entries need " + need.String() + ". Ask the patient's practice to extend it"
		}
		out[0].Withholds = append(out[0].Withholds, w)
	}
	if eff.Prescriptions == online.ServiceNone {
		out[1].Reason = why("repeat prescriptions", practice.Prescriptions == online.ServiceNone)
	}
	if eff.Appointments == online.ServiceNone {
		out[2].Reason = why("appointments", practice.Appointments == online.ServiceNone)
	}
	return out
}

// LevelRefusal is the plain-words reason a patient below P9 sees no record data.
func LevelRefusal(c *Caller) string { return levelRefusal(c).Reason }

// NotLinkedReason is what a P9 patient whose NHS number is on no Patient here is told.
const NotLinkedReason = "no GP record at this service is linked to this NHS number. If you are registered with a GP " +
	"practice, ask the practice to check that your NHS number is on your record and that the practice " +
	"offers online access through this service"
