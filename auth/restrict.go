package auth

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// Restriction is what letting a caller use a type implies for the resources of that type, as data. The
// API turns it into store clauses for every query (searches, counts, includes, chains, conditional
// matches), and CanAccess checks the same data against one resource's facts (reads, history entries,
// writes), so that what a caller can read and what their searches return are one statement.
type Restriction struct {
	// Nothing: no resource of the type at all.
	Nothing bool
	// PatientParam is the search parameter that names a resource's patient: "_id" for Patient itself,
	// "patient" for the compartment types and AuditEvent. Empty when resources are not confined to
	// patients.
	PatientParam string
	// Patients, when PatientParam is set for a patient or proxy, are the only patients whose resources
	// may be seen.
	Patients []string
	// Practices, when PatientParam is set for a GP system, are the ODS codes of the practices whose
	// registered patients' resources may be seen; when PracticeParam is set, of the practices whose
	// resources may be seen.
	Practices []string
	// PracticeParam, for a practice-owned type (Group), is the reference parameter naming the
	// Organization that manages a resource; only resources managed by an Organization with one of
	// Practices' ODS codes may be seen.
	PracticeParam string
	// PublishedOnly: only Schedules and Slots the practice publishes for online booking.
	PublishedOnly bool
	// DateParam and From: only record entries whose clinical date (DateParam) is on or after From
	// (prospective record access).
	DateParam string
	From      time.Time
	// Withheld are the security labels, as "system|code", whose resources are hidden (redaction).
	Withheld []string
}

// OnlineBookableParam is the search parameter that says whether a Schedule or Slot is published for
// online booking.
const OnlineBookableParam = "online-bookable"

// withheldLabels are the redaction labels as "system|code", the form of index entries.
var withheldLabels = func() []string {
	out := make([]string, len(online.RedactionLabels))
	for i, l := range online.RedactionLabels {
		out[i] = l[0] + "|" + l[1]
	}
	return out
}()

// Restrict says what the caller may see of typ. A type the caller may neither read nor search gets
// Nothing, so that a chain, _has or include through it reveals nothing rather than failing the search.
func (c *Caller) Restrict(typ string) Restriction {
	if !Authorize(c, Search, typ).Allow() && !Authorize(c, Read, typ).Allow() {
		return Restriction{Nothing: true}
	}
	return c.restriction(typ)
}

// restriction is Restrict without the scope check: CanAccess applies it to writes too.
func (c *Caller) restriction(typ string) Restriction {
	var r Restriction
	if c.RedactionApplies() {
		r.Withheld = withheldLabels
	}
	switch ClassOf(typ) {
	case ClassAudit:
		// Auditors see every event; a patient (or proxy) the events about their own record.
		switch c.Kind {
		case KindAuditor:
			return r
		case KindPatient:
			if len(c.PatientIDs) > 0 {
				r.PatientParam, r.Patients = "patient", c.PatientIDs
				return r
			}
		}
		return Restriction{Nothing: true}
	case ClassPublic:
		if c.Kind == KindPatient && (typ == "Slot" || typ == "Schedule") {
			r.PublishedOnly = true
		}
		return r
	case ClassPractice:
		if c.Kind != KindSystem || len(c.ODS) == 0 {
			return Restriction{Nothing: true}
		}
		r.PracticeParam, r.Practices = practiceTypes[typ].Param, c.ODS
		return r
	case ClassPatient:
	default:
		return Restriction{Nothing: true}
	}
	def := patientCompartment[typ]
	switch c.Kind {
	case KindPatient:
		if len(c.PatientIDs) == 0 {
			return Restriction{Nothing: true}
		}
		r.PatientParam, r.Patients = def.Param, c.PatientIDs
		r.DateParam, r.From, _ = c.RecordFrom(typ)
		return r
	case KindSystem:
		if len(c.ODS) == 0 {
			return Restriction{Nothing: true}
		}
		r.PatientParam, r.Practices = def.Param, c.ODS
		return r
	}
	return Restriction{Nothing: true}
}

// FactParams are the search parameters of typ whose index entries FactsOf reads, so that a caller can
// extract only those. The slice is shared, made once for each type: the policy asks on every request.
// Its capacity is its length, so an append copies it.
func FactParams(typ string) []string {
	if p, ok := factParams.Load(typ); ok {
		return p.([]string)
	}
	p, _ := factParams.LoadOrStore(typ, slices.Clip(factParamsOf(typ)))
	return p.([]string)
}

// factParams holds FactParams by type; there are as many as the registry has types.
var factParams sync.Map

func factParamsOf(typ string) []string {
	params := []string{"_security", OnlineBookableParam}
	switch ClassOf(typ) {
	case ClassPatient:
		if p := patientCompartment[typ].Param; p != "_id" {
			params = append(params, p)
		}
	case ClassAudit:
		params = append(params, "patient")
	case ClassPractice:
		params = append(params, practiceTypes[typ].Param)
	}
	if p, _, ok := online.RecordDate(typ); ok {
		params = append(params, p)
	}
	return params
}

// FactsOf reads what the policy needs to know about one resource from its search-index entries (the ones
// fhir.Extract computes and the store keeps), so that a read is decided on exactly the values a search is
// matched on: the patients it names, its security labels, whether it is published for online booking,
// and its clinical date. PracticeODS, which needs other resources, is for the caller to fill in.
func FactsOf(typ, id string, entries []fhir.IndexEntry) Facts {
	f := Facts{Type: typ}
	param := ""
	switch ClassOf(typ) {
	case ClassPatient:
		param = patientCompartment[typ].Param
	case ClassAudit:
		param = "patient"
	}
	if param == "_id" {
		f.PatientIDs = []string{id}
	}
	owner := practiceTypes[typ].Param
	dateParam, _, _ := online.RecordDate(typ)
	published := false
	for _, e := range entries {
		switch {
		case owner != "" && e.Param == owner && strings.HasPrefix(e.Value, "Organization/"):
			f.Organizations = append(f.Organizations, strings.TrimPrefix(e.Value, "Organization/"))
		case e.Param == param && strings.HasPrefix(e.Value, "Patient/"):
			f.PatientIDs = append(f.PatientIDs, strings.TrimPrefix(e.Value, "Patient/"))
		case e.Param == "_security" && contains(withheldLabels, e.System+"|"+e.Value):
			f.Redacted = true
		case e.Param == OnlineBookableParam && e.Value == "true":
			published = true
		case e.Param == dateParam && dateParam != "" && (f.EntryDate.IsZero() || e.Low < f.EntryDate.UnixMilli()):
			f.EntryDate = time.UnixMilli(e.Low).UTC()
		}
	}
	f.Unpublished = (typ == "Slot" || typ == "Schedule") && !published
	return f
}
