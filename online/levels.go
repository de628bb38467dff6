package online

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// Access levels: what the practice has switched on for a patient, and what a proxy grant allows, as the
// online-access extension writes them. The policy that applies them to a caller is in package auth.

// AccessExtension on a Patient holds the online access levels its practice has switched on; on a
// RelatedPerson (a proxy grant) it holds the services the proxy may use. Sub-extensions: "record"
// (valueCode none|summary|detailed|full), "recordFrom" (valueDate: record entries dated before it are
// not shown), "prescriptions" and "appointments" (valueCode none|view|manage).
const AccessExtension = "https://gpfhir.example/StructureDefinition/online-access"

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

// Access is what the practice has switched on for one patient, or what a proxy grant allows.
type Access struct {
	Record RecordLevel
	// RecordFrom is the date from which record entries are shown (prospective access); zero shows the
	// whole record at Record's level.
	RecordFrom    time.Time
	Prescriptions ServiceLevel
	Appointments  ServiceLevel
}

// DefaultAccess is what a patient whose Patient resource carries no online-access extension gets:
// the summary record (what GP contracts have required since 2015) and booking and repeats, which every
// practice offers. Detailed and full record access wait until the practice switches them on, because
// NHS England asks practices to review a record for harmful or third-party information first.
var DefaultAccess = Access{Record: RecordSummary, Prescriptions: ServiceManage, Appointments: ServiceManage}

// NoAccess is the starting point of a proxy grant: a service the grant does not name is not granted.
var NoAccess = Access{}

// Min is what both a and b allow: a proxy gets no more than the grant says and no more than the
// practice has switched on for the patient.
func (a Access) Min(b Access) Access {
	out := Access{Record: min(a.Record, b.Record), Prescriptions: min(a.Prescriptions, b.Prescriptions),
		Appointments: min(a.Appointments, b.Appointments), RecordFrom: a.RecordFrom}
	if b.RecordFrom.After(out.RecordFrom) {
		out.RecordFrom = b.RecordFrom
	}
	return out
}

// ParseAccess reads the online-access extension of a Patient or RelatedPerson tree. Services the
// extension does not name keep their value in def. It returns a RuleError for an unknown level.
func ParseAccess(tree map[string]any, def Access) (Access, *RuleError) {
	out := def
	for i, e := range fhir.Extensions(tree, AccessExtension) {
		at := "extension[" + strconv.Itoa(i) + "]"
		for _, sub := range fhir.Walk(e, "extension") {
			m, _ := sub.(map[string]any)
			name, code := str(m, "url"), str(m, "valueCode")
			bad := func(allowed []string) *RuleError {
				return RuleViolation(fhir.IssueValue, at+"."+name, "online access "+name+" must be one of "+strings.Join(allowed, ", ")+", not "+strconv.Quote(code))
			}
			switch name {
			case "record":
				l := slices.Index(recordLevelNames, code)
				if l < 0 {
					return out, bad(recordLevelNames)
				}
				out.Record = RecordLevel(l)
			case "recordFrom":
				d, err := time.Parse("2006-01-02", str(m, "valueDate"))
				if err != nil {
					return out, RuleViolation(fhir.IssueValue, at+".recordFrom", "online access recordFrom must be a valueDate such as 2024-04-01")
				}
				out.RecordFrom = d
			case "prescriptions", "appointments":
				l := slices.Index(serviceLevelNames, code)
				if l < 0 {
					return out, bad(serviceLevelNames)
				}
				if name == "prescriptions" {
					out.Prescriptions = ServiceLevel(l)
				} else {
					out.Appointments = ServiceLevel(l)
				}
			default:
				return out, RuleViolation(fhir.IssueExtension, at, "online access has no part "+strconv.Quote(name)+"; parts are record, recordFrom, prescriptions and appointments")
			}
		}
	}
	return out, nil
}

// PracticeAccess reads the levels a practice set on a Patient tree: DefaultAccess where it sets none.
// Written levels are validated, so one that cannot be read grants nothing (NoAccess) rather than the
// defaults.
func PracticeAccess(patient map[string]any) Access {
	a, rerr := ParseAccess(patient, DefaultAccess)
	if rerr != nil {
		return NoAccess
	}
	return a
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

// recordDates are, for each record entry type, the search parameter and the element that hold its
// clinical date: when it was recorded, given or done, as the record shows it.
var recordDates = map[string][2]string{
	"Immunization":        {"date", "occurrenceDateTime"},
	"MedicationRequest":   {"authoredon", "authoredOn"},
	"MedicationStatement": {"effective", "effectiveDateTime"},
	"AllergyIntolerance":  {"date", "recordedDate"},
	"Condition":           {"recorded-date", "recordedDate"},
	"Observation":         {"date", "effectiveDateTime"},
	"Procedure":           {"date", "performedDateTime"},
	"DiagnosticReport":    {"date", "effectiveDateTime"},
	"Encounter":           {"date", "period.start"},
	"ServiceRequest":      {"authored", "authoredOn"},
	"DocumentReference":   {"date", "date"},
	"Composition":         {"date", "date"},
	"Communication":       {"sent", "sent"},
}

// RecordDate names, for record entry types with a clinical date, the search parameter and the element
// (its dateTime form) that prospective access (RecordFrom) compares with. An entry without that date
// counts as historical.
func RecordDate(typ string) (param, element string, ok bool) {
	d, ok := recordDates[typ]
	return d[0], d[1], ok
}

// EntryDate reads the clinical date of a record entry tree (see RecordDate); zero when absent.
func EntryDate(typ string, tree map[string]any) time.Time {
	_, el, ok := RecordDate(typ)
	if !ok {
		return time.Time{}
	}
	for _, v := range fhir.Walk(tree, el) {
		s, _ := v.(string)
		if lo, _, err := fhir.ParseDateRange(s); err == nil {
			return time.UnixMilli(lo).UTC()
		}
	}
	return time.Time{}
}

// CheckAccessResource checks the project rules of a Patient or RelatedPerson write: valid levels,
// and for a RelatedPerson used as a proxy grant, a valid proxy NHS number.
func CheckAccessResource(typ string, tree map[string]any) *RuleError {
	switch typ {
	case "Patient":
		_, err := ParseAccess(tree, DefaultAccess)
		return err
	case "RelatedPerson":
		g, err := ParseProxyGrant("", tree)
		if err != nil {
			return err
		}
		if len(fhir.Extensions(tree, AccessExtension)) > 0 && g.ProxyNHS == "" {
			return RuleViolation(fhir.IssueRequired, "RelatedPerson.identifier",
				"a proxy grant (a RelatedPerson with online-access) needs the proxy's NHS number as an identifier")
		}
	}
	return nil
}

// RecordTypesAt splits the record entry types into those shown at level l and those withheld, each sorted
// by name.
func RecordTypesAt(l RecordLevel) (shown, withheld []string) {
	for typ, need := range recordTypes {
		if l >= need {
			shown = append(shown, typ)
		} else {
			withheld = append(withheld, typ)
		}
	}
	slices.Sort(shown)
	slices.Sort(withheld)
	return shown, withheld
}
