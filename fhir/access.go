package fhir

import (
	"strings"
	"time"
)

// Online access levels set by the practice, proxy grants and redaction labels: how they are written in
// FHIR and the pure rules about them. The policy that applies them to a caller is in package auth.

// Extension URLs and code systems of this project.
const (
	// OnlineAccessExtension on a Patient holds the online access levels its practice has switched on; on
	// a RelatedPerson (a proxy grant) it holds the services the proxy may use. Sub-extensions:
	// "record" (valueCode none|summary|detailed|full), "recordFrom" (valueDate: record entries dated
	// before it are not shown), "prescriptions" and "appointments" (valueCode none|view|manage).
	OnlineAccessExtension = "https://gpfhir.example/StructureDefinition/online-access"
	// CancellationCutoffExtension on a practice Organization is how many hours before an appointment's
	// start patients may still cancel it online (valueUnsignedInt).
	CancellationCutoffExtension = "https://gpfhir.example/StructureDefinition/cancellation-cutoff-hours"
	// ConfidentialitySystem is HL7 v3 Confidentiality; R (restricted) and V (very restricted) redact.
	ConfidentialitySystem = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
	// SecurityLabelSystem is this project's security label code system; redacted-online redacts.
	SecurityLabelSystem = "https://gpfhir.example/CodeSystem/security-label"
	// RedactedOnlineCode is the practice's "hide from online access" label (NHS England's redaction).
	RedactedOnlineCode = "redacted-online"
	// WarningCodeSystem holds GP Connect's list warning codes, of which confidential-items says that
	// some items were withheld.
	WarningCodeSystem      = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListWarningCode-1"
	ConfidentialItemsCode  = "confidential-items"
	ConfidentialItemsText  = "Items excluded due to confidentiality and/or patient preferences."
	DefaultCancellationCut = 24 * time.Hour
)

// RedactionLabels are the meta.security codings that hide a resource from patients and proxies, as
// system|code. Any one of them is enough.
var RedactionLabels = [][2]string{
	{ConfidentialitySystem, "R"},
	{ConfidentialitySystem, "V"},
	{SecurityLabelSystem, RedactedOnlineCode},
}

// IsRedacted reports whether a resource tree carries a redaction label.
func IsRedacted(tree map[string]any) bool {
	meta, _ := tree["meta"].(map[string]any)
	labels, _ := meta["security"].([]any)
	for _, l := range labels {
		m, _ := l.(map[string]any)
		for _, r := range RedactionLabels {
			if str(m, "system") == r[0] && str(m, "code") == r[1] {
				return true
			}
		}
	}
	return false
}

// RecordLevel is how much of the GP record is shown online, in increasing order.
type RecordLevel int

const (
	RecordNone RecordLevel = iota
	RecordSummary
	RecordDetailed
	RecordFull
)

var recordLevelNames = []string{"none", "summary", "detailed", "full"}

func (l RecordLevel) String() string { return recordLevelNames[l] }

// ServiceLevel is what a patient may do with a service (prescriptions, appointments), in increasing order.
type ServiceLevel int

const (
	ServiceNone ServiceLevel = iota
	ServiceView
	ServiceManage
)

var serviceLevelNames = []string{"none", "view", "manage"}

func (l ServiceLevel) String() string { return serviceLevelNames[l] }

// OnlineAccess is what the practice has switched on for one patient, or what a proxy grant allows.
type OnlineAccess struct {
	Record RecordLevel
	// RecordFrom is the date from which record entries are shown (prospective access); zero shows the
	// whole record at Record's level.
	RecordFrom    time.Time
	Prescriptions ServiceLevel
	Appointments  ServiceLevel
}

// DefaultOnlineAccess is what a patient whose Patient resource carries no online-access extension gets:
// the summary record (what GP contracts have required since 2015) and booking and repeats, which every
// practice offers. Detailed and full record access wait until the practice switches them on, because
// NHS England asks practices to review a record for harmful or third-party information first.
var DefaultOnlineAccess = OnlineAccess{Record: RecordSummary, Prescriptions: ServiceManage, Appointments: ServiceManage}

// NoAccess is the starting point of a proxy grant: a service the grant does not name is not granted.
var NoAccess = OnlineAccess{}

// Min is what both a and b allow: a proxy gets no more than the grant says and no more than the
// practice has switched on for the patient.
func (a OnlineAccess) Min(b OnlineAccess) OnlineAccess {
	out := OnlineAccess{Record: min(a.Record, b.Record), Prescriptions: min(a.Prescriptions, b.Prescriptions),
		Appointments: min(a.Appointments, b.Appointments), RecordFrom: a.RecordFrom}
	if b.RecordFrom.After(out.RecordFrom) {
		out.RecordFrom = b.RecordFrom
	}
	return out
}

// ParseOnlineAccess reads the online-access extension of a Patient or RelatedPerson tree. Services the
// extension does not name keep their value in def. It returns a RuleError for an unknown level.
func ParseOnlineAccess(tree map[string]any, def OnlineAccess) (OnlineAccess, *RuleError) {
	out := def
	for i, e := range Extensions(tree, OnlineAccessExtension) {
		at := "extension[" + itoa(i) + "]"
		for _, sub := range Walk(e, "extension") {
			m, _ := sub.(map[string]any)
			name, code := str(m, "url"), str(m, "valueCode")
			bad := func(allowed []string) *RuleError {
				return RuleViolation(IssueValue, at+"."+name, "online access "+name+" must be one of "+strings.Join(allowed, ", ")+", not "+quote(code))
			}
			switch name {
			case "record":
				l := index(recordLevelNames, code)
				if l < 0 {
					return out, bad(recordLevelNames)
				}
				out.Record = RecordLevel(l)
			case "recordFrom":
				d, err := time.Parse("2006-01-02", str(m, "valueDate"))
				if err != nil {
					return out, RuleViolation(IssueValue, at+".recordFrom", "online access recordFrom must be a valueDate such as 2024-04-01")
				}
				out.RecordFrom = d
			case "prescriptions", "appointments":
				l := index(serviceLevelNames, code)
				if l < 0 {
					return out, bad(serviceLevelNames)
				}
				if name == "prescriptions" {
					out.Prescriptions = ServiceLevel(l)
				} else {
					out.Appointments = ServiceLevel(l)
				}
			default:
				return out, RuleViolation(IssueExtension, at, "online access has no part "+quote(name)+"; parts are record, recordFrom, prescriptions and appointments")
			}
		}
	}
	return out, nil
}

// recordTypes says the record level at which each type of record entry is shown. Summary is the
// medication, allergy and immunisation record (the Summary Care Record content); detailed adds the
// coded record (problems, results, procedures, consultations as coded entries, referrals); full adds
// free-text consultation notes, letters and documents. Types outside the table are not record entries:
// Patient (demographics) is always shown to a linked patient, and appointments and repeat requests
// follow their own services.
var recordTypes = map[string]RecordLevel{
	"Immunization":        RecordSummary,
	"MedicationRequest":   RecordSummary,
	"MedicationStatement": RecordSummary,
	"AllergyIntolerance":  RecordSummary,
	"Condition":           RecordDetailed,
	"Observation":         RecordDetailed,
	"Procedure":           RecordDetailed,
	"DiagnosticReport":    RecordDetailed,
	"Encounter":           RecordDetailed,
	"ServiceRequest":      RecordDetailed,
	"DocumentReference":   RecordFull,
	"Composition":         RecordFull,
	"Communication":       RecordFull,
}

// RecordLevelOf returns the record level that shows entries of typ; ok is false when typ is not a
// record entry type.
func RecordLevelOf(typ string) (RecordLevel, bool) {
	l, ok := recordTypes[typ]
	return l, ok
}

// RecordDate names, for record entry types with a clinical date, the search parameter and the element
// that prospective access (RecordFrom) compares with. An entry without that date counts as historical.
func RecordDate(typ string) (param, element string, ok bool) {
	switch typ {
	case "Immunization":
		return "date", "occurrenceDateTime", true
	case "MedicationRequest":
		return "authoredon", "authoredOn", true
	}
	return "", "", false
}

// EntryDate reads the clinical date of a record entry tree (see RecordDate); zero when absent.
func EntryDate(typ string, tree map[string]any) time.Time {
	_, el, ok := RecordDate(typ)
	if !ok {
		return time.Time{}
	}
	lo, _, err := ParseDateRange(str(tree, el))
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(lo).UTC()
}

// ProxyGrant is a practice-managed grant, held as a RelatedPerson: patient is who is acted for,
// identifier (NHS number system) is the proxy's NHS number, period is when it applies, active turns it
// off, and the online-access extension names the services it allows (a service it does not name is not
// granted).
type ProxyGrant struct {
	ID         string
	PatientRef string // "Patient/id"
	ProxyNHS   string
	Active     bool
	Start, End time.Time // zero: open
	Services   OnlineAccess
}

// ParseProxyGrant reads a RelatedPerson tree.
func ParseProxyGrant(id string, tree map[string]any) (ProxyGrant, *RuleError) {
	g := ProxyGrant{ID: id, Active: true}
	if pt, ok := tree["patient"].(map[string]any); ok {
		g.PatientRef = str(pt, "reference")
	}
	if a, ok := tree["active"].(bool); ok {
		g.Active = a
	}
	for _, v := range Walk(tree, "identifier") {
		m, _ := v.(map[string]any)
		if str(m, "system") == NHSNumberSystem {
			g.ProxyNHS = str(m, "value")
		}
	}
	if p, ok := tree["period"].(map[string]any); ok {
		if s := str(p, "start"); s != "" {
			if lo, _, err := ParseDateRange(s); err == nil {
				g.Start = time.UnixMilli(lo).UTC()
			}
		}
		if s := str(p, "end"); s != "" {
			if _, hi, err := ParseDateRange(s); err == nil {
				g.End = time.UnixMilli(hi).UTC()
			}
		}
	}
	var rerr *RuleError
	g.Services, rerr = ParseOnlineAccess(tree, NoAccess)
	return g, rerr
}

// InForce says whether the grant lets its proxy act at now; if not, why, in words for the proxy.
func (g ProxyGrant) InForce(now time.Time) (bool, string) {
	switch {
	case !g.Active:
		return false, "the practice has withdrawn your proxy access for this patient"
	case !g.Start.IsZero() && now.Before(g.Start):
		return false, "your proxy access for this patient starts on " + g.Start.Format("2 January 2006")
	case !g.End.IsZero() && now.After(g.End):
		return false, "your proxy access for this patient ended on " + g.End.Format("2 January 2006") +
			"; ask the patient's GP practice to renew it"
	}
	return true, ""
}

// CheckOnlineAccessResource checks the project rules of a Patient or RelatedPerson write: valid levels,
// and for a RelatedPerson used as a proxy grant, a valid proxy NHS number.
func CheckOnlineAccessResource(typ string, tree map[string]any) *RuleError {
	switch typ {
	case "Patient":
		_, err := ParseOnlineAccess(tree, DefaultOnlineAccess)
		return err
	case "RelatedPerson":
		g, err := ParseProxyGrant("", tree)
		if err != nil {
			return err
		}
		if len(Extensions(tree, OnlineAccessExtension)) > 0 && g.ProxyNHS == "" {
			return RuleViolation(IssueRequired, "RelatedPerson.identifier",
				"a proxy grant (a RelatedPerson with online-access) needs the proxy's NHS number as an identifier")
		}
	}
	return nil
}

func index(list []string, s string) int {
	for i, v := range list {
		if v == s {
			return i
		}
	}
	return -1
}
