package auth

import (
	"strings"
	"time"
)

// Interaction is a FHIR RESTful interaction, named as in the CapabilityStatement.
type Interaction string

const (
	Read            Interaction = "read"
	VRead           Interaction = "vread"
	Search          Interaction = "search-type"
	Create          Interaction = "create"
	Update          Interaction = "update"
	Patch           Interaction = "patch"
	Delete          Interaction = "delete"
	HistoryInstance Interaction = "history-instance"
	HistoryType     Interaction = "history-type"
	HistorySystem   Interaction = "history-system"
)

// Outcome tags a decision for logs and tests. They carry no patient data.
type Outcome string

const (
	Allowed          Outcome = "allow"
	DenyScope        Outcome = "deny-scope"
	DenyLevel        Outcome = "deny-level"
	DenyNoRecord     Outcome = "deny-no-record"
	DenyCompartment  Outcome = "deny-compartment"
	DenyRole         Outcome = "deny-role"
	DenyUnbound      Outcome = "deny-unbound"
	DenyProxy        Outcome = "deny-proxy"
	DenyUnknownClass Outcome = "deny-unknown-type"
	DenyAccessLevel  Outcome = "deny-access-level"
	DenyRedacted     Outcome = "deny-redacted"
	DenyPatientWrite Outcome = "deny-patient-write"
)

// Decision is the policy's answer. A refusal's Reason is written for the person or app that gets it.
type Decision struct {
	Outcome Outcome
	Reason  string
	// Missing names what would have allowed it: a scope, or "identity_proofing_level P9".
	Missing string
}

// Allow reports whether the decision lets the request through.
func (d Decision) Allow() bool { return d.Outcome == Allowed }

var allow = Decision{Outcome: Allowed}

// Class is how the policy treats a resource type.
type Class int

const (
	// ClassUnknown types are refused to everyone but are never served without a policy entry.
	ClassUnknown Class = iota
	// ClassPatient types belong to one patient's compartment.
	ClassPatient
	// ClassPublic types (practices, clinicians, sites, appointment books) are readable by any
	// authenticated caller with the scope.
	ClassPublic
	// ClassAudit is AuditEvent: auditors only.
	ClassAudit
	// ClassPractice types are kept by one practice about its patients (a Group of them) without being
	// in any one patient's compartment: only the GP systems of the practice that manages them may use
	// them.
	ClassPractice
)

// CompartmentDef says how a patient-compartment type points at its patient.
type CompartmentDef struct {
	// Param is the search parameter whose reference values name the patient ("_id" for Patient itself).
	Param string
	// Paths are the JSON element paths of those references in the resource body.
	Paths []string
}

// The Patient compartment, after the R4 CompartmentDefinition for the types this server knows.
var patientCompartment = map[string]CompartmentDef{
	"Patient":           {Param: "_id"},
	"Immunization":      {Param: "patient", Paths: []string{"patient"}},
	"MedicationRequest": {Param: "patient", Paths: []string{"subject"}},
	"Appointment":       {Param: "patient", Paths: []string{"participant.actor"}},
	"Task":              {Param: "patient", Paths: []string{"for"}},
	"RelatedPerson":     {Param: "patient", Paths: []string{"patient"}},
	"Consent":           {Param: "patient", Paths: []string{"patient"}},
	// The GP record's clinical types (online.RecordLevelOf), each confined by its patient parameter.
	"AllergyIntolerance":  {Param: "patient", Paths: []string{"patient"}},
	"MedicationStatement": {Param: "patient", Paths: []string{"subject"}},
	"Condition":           {Param: "patient", Paths: []string{"subject"}},
	"Observation":         {Param: "patient", Paths: []string{"subject"}},
	"Procedure":           {Param: "patient", Paths: []string{"subject"}},
	"DiagnosticReport":    {Param: "patient", Paths: []string{"subject"}},
	"Encounter":           {Param: "patient", Paths: []string{"subject"}},
	"ServiceRequest":      {Param: "patient", Paths: []string{"subject"}},
	"DocumentReference":   {Param: "patient", Paths: []string{"subject"}},
	"Composition":         {Param: "patient", Paths: []string{"subject"}},
	"Communication":       {Param: "patient", Paths: []string{"subject"}},
}

// PracticeDef says how a practice-owned type names the practice that keeps it.
type PracticeDef struct {
	// Param is the reference search parameter naming the practice's Organization.
	Param string
}

// practiceTypes are the practice-owned types. A Group lists patients, so it is not public; it belongs to
// no patient's compartment here either (R4 puts it in the compartment of each member, which would let
// a patient see who else is on a practice's list), so its managingEntity confines it.
var practiceTypes = map[string]PracticeDef{
	"Group": {Param: "managing-entity"},
}

var publicTypes = map[string]bool{
	"Organization": true, "Practitioner": true, "PractitionerRole": true, "Location": true,
	"Schedule": true, "Slot": true, "HealthcareService": true,
}

// ClassOf says how typ is treated.
func ClassOf(typ string) Class {
	switch {
	case typ == auditEventType:
		return ClassAudit
	case publicTypes[typ]:
		return ClassPublic
	}
	if _, ok := practiceTypes[typ]; ok {
		return ClassPractice
	}
	if _, ok := patientCompartment[typ]; ok {
		return ClassPatient
	}
	return ClassUnknown
}

// PatientCompartment returns how a patient-compartment type names its patient.
func PatientCompartment(typ string) (CompartmentDef, bool) {
	d, ok := patientCompartment[typ]
	return d, ok
}

// scopeContexts are the scope contexts a caller may use.
func (c *Caller) scopeContexts() []string {
	switch c.Kind {
	case KindPatient:
		return []string{"patient", "user"}
	case KindSystem:
		return []string{"system"}
	case KindAuditor:
		return []string{"user", "system"}
	}
	return nil
}

// neededScope is the narrowest scope that would grant perm on typ.
func (c *Caller) neededScope(typ string, perm byte) string {
	ctx := "patient"
	switch c.Kind {
	case KindSystem:
		ctx = "system"
	case KindAuditor, KindCommissioner:
		ctx = "user"
	}
	return ctx + "/" + typ + "." + string(perm)
}

// HasScope reports whether the caller's scopes grant the permission that in needs on typ.
func (c *Caller) HasScope(in Interaction, typ string) bool {
	return grants(c.Scopes, c.scopeContexts(), typ, Permission(in))
}

// Authorize decides, before any data is read, whether the caller may perform in on resources of typ. typ
// is empty for system-level history, which is then confined entry by entry.
func Authorize(c *Caller, in Interaction, typ string) Decision {
	perm := Permission(in)
	if typ == "" {
		// System history: allowed if some type may be listed; CanAccess then filters each entry.
		for _, s := range c.Scopes {
			if strings.IndexByte(s.Perms, perm) >= 0 && contains(c.scopeContexts(), s.Context) {
				return c.roleGate(in, "")
			}
		}
		return Decision{Outcome: DenyScope, Missing: c.neededScope("*", perm),
			Reason: "the token has no scope that allows listing history; " + c.neededScope("*", perm) + " would"}
	}
	if c.Kind == KindCommissioner {
		return Decision{Outcome: DenyRole, Missing: "a clinical or audit scope",
			Reason: "a commissioner token gives aggregate uptake figures only, not FHIR resources"}
	}
	if !grants(c.Scopes, c.scopeContexts(), typ, perm) {
		need := c.neededScope(typ, perm)
		return Decision{Outcome: DenyScope, Missing: need,
			Reason: "the token's scopes do not allow " + string(in) + " on " + typ + "; it needs the scope " + need}
	}
	return c.roleGate(in, typ)
}

// roleGate applies what the caller's role allows regardless of scopes.
func (c *Caller) roleGate(in Interaction, typ string) Decision {
	class := ClassOf(typ)
	if typ != "" && class == ClassUnknown {
		return Decision{Outcome: DenyUnknownClass, Reason: typ + " has no access rule on this server, so no one may use it"}
	}
	switch c.Kind {
	case KindAuditor:
		if typ != "" && class != ClassAudit {
			// Practice-owned lists (Groups) name patients, so they are clinical data too.
			return Decision{Outcome: DenyRole, Missing: "a clinical scope",
				Reason: "an auditor token reads AuditEvents only, not clinical or practice data"}
		}
		if Permission(in) != 'r' && Permission(in) != 's' {
			return Decision{Outcome: DenyRole, Reason: "AuditEvents are written by the server only"}
		}
		return allow
	case KindSystem:
		if class == ClassAudit {
			return Decision{Outcome: DenyRole, Reason: "AuditEvents are for auditors; a GP system token cannot read them"}
		}
		if class == ClassPatient && len(c.ODS) == 0 {
			return Decision{Outcome: DenyUnbound, Missing: "a practice binding",
				Reason: "client " + c.ClientID + " is not bound to any practice ODS code (token claim ods_codes or the " +
					"server's --client-ods setting), so it may not see any patient's record"}
		}
		if class == ClassPractice && len(c.ODS) == 0 {
			return Decision{Outcome: DenyUnbound, Missing: "a practice binding",
				Reason: "client " + c.ClientID + " is not bound to any practice ODS code (token claim ods_codes or the " +
					"server's --client-ods setting), so it may not use any practice's " + typ + " resources"}
		}
		return allow
	case KindPatient:
		if class == ClassAudit && in != Read && in != VRead && in != Search {
			return Decision{Outcome: DenyRole, Reason: "a patient may list who accessed their record (read and search " +
				"AuditEvent); the audit trail itself is kept by the server, and checking it is for auditors"}
		}
		if class == ClassPractice {
			// Before the proofing level and proxy checks: no level or grant would change the answer.
			return Decision{Outcome: DenyRole, Reason: typ + " resources are lists a practice keeps about its patients, " +
				"for its GP system; a patient app cannot see or change them, whatever the access level"}
		}
		if class == ClassPublic {
			if isWrite(in) {
				return Decision{Outcome: DenyPatientWrite, Reason: typ + " resources are managed by the practice's GP system; " +
					"a patient app can read them but not change them"}
			}
			return allow
		}
		// Record data, or system history, which may list record data.
		if c.Level != identityLevelNeeded {
			return levelRefusal(c)
		}
		if c.ProxyFor != "" && c.ProxyGrant == "" {
			return proxyRefusal(c)
		}
		if c.NHSNumber == "" {
			return Decision{Outcome: DenyNoRecord, Reason: "the token carries no NHS number, so no GP record can be found for it"}
		}
		if c.Resolved && len(c.PatientIDs) == 0 {
			return Decision{Outcome: DenyNoRecord,
				Reason: NotLinkedReason}
		}
		if class == ClassAudit {
			// Who accessed the record is not one of the online services: every patient with record
			// access may see it. CanAccess confines it to their own record.
			return allow
		}
		return c.serviceGate(in, typ)
	}
	return Decision{Outcome: DenyRole, Reason: "the token names no role this server knows"}
}

func levelRefusal(c *Caller) Decision {
	level := c.Level
	if level == "" {
		level = "unknown"
	}
	return Decision{Outcome: DenyLevel, Missing: "identity_proofing_level P9",
		Reason: "your NHS login identity is verified to level " + level + ", but seeing GP record data needs level P9 " +
			"(identity fully verified). You can reach P9 in the NHS login settings by proving who you are online " +
			"with photo ID and a face scan, or with the registration details your GP practice gives you for online services"}
}

// Facts are what the API found out about one resource, for CanAccess.
type Facts struct {
	Type string
	// PatientIDs are the patients the resource belongs to (for a Patient, its own id).
	PatientIDs []string
	// PracticeODS are the ODS codes of the practices those patients are registered at; for a
	// practice-owned type, of the Organizations that manage it.
	PracticeODS []string
	// Organizations, for a practice-owned type, are the ids of the Organizations its practice parameter
	// names, whose ODS codes the caller fills PracticeODS with.
	Organizations []string
	// Unpublished is set for a Schedule or Slot the practice does not publish for online booking.
	Unpublished bool
	// Redacted is set when the resource (or its current version) carries a redaction security label.
	Redacted bool
	// EntryDate is a record entry's clinical date (online.RecordDate), for prospective access; zero when
	// it has none.
	EntryDate time.Time
}

// CanAccess decides on one resource the caller wants to use through in: read it, see it in a history or
// an include, or write it. Authorize must have allowed in on f.Type first. It checks f against the
// caller's Restriction, the same data every query of the caller is confined by, and says which part of
// it refused.
func CanAccess(c *Caller, in Interaction, f Facts) Decision {
	if d := c.roleGate(in, f.Type); !d.Allow() {
		return d
	}
	r := c.restriction(f.Type)
	if r.Nothing {
		return Decision{Outcome: DenyRole, Reason: "this token may not see patient records"}
	}
	if r.PublishedOnly && f.Unpublished {
		return Decision{Outcome: DenyRedacted, Reason: "this " + f.Type + " is not published for online booking"}
	}
	if len(r.Withheld) > 0 && f.Redacted {
		return Decision{Outcome: DenyRedacted, Reason: "this " + f.Type + " is not shown online"}
	}
	switch {
	case r.PracticeParam != "":
		if !containsAny(r.Practices, f.PracticeODS) {
			return Decision{Outcome: DenyCompartment,
				Reason: "this " + f.Type + " is not managed by a practice that client " + c.ClientID + " serves (" +
					strings.Join(c.ODS, ", ") + "): its managingEntity must reference the Organization of one of them"}
		}
	case r.PatientParam == "":
		return allow
	case ClassOf(f.Type) == ClassAudit:
		if !containsAny(r.Patients, f.PatientIDs) {
			return Decision{Outcome: DenyCompartment, Reason: "this AuditEvent is not about your own GP record"}
		}
	case len(r.Practices) > 0:
		if !containsAny(r.Practices, f.PracticeODS) {
			return Decision{Outcome: DenyCompartment,
				Reason: "this " + f.Type + " belongs to a patient who is not registered at a practice that client " + c.ClientID +
					" serves (" + strings.Join(c.ODS, ", ") + ")"}
		}
	default:
		if !containsAny(r.Patients, f.PatientIDs) {
			return Decision{Outcome: DenyCompartment,
				Reason: "this " + f.Type + " is not part of your own GP record, so you may not see or change it"}
		}
	}
	if r.DateParam != "" && (f.EntryDate.IsZero() || f.EntryDate.Before(r.From)) {
		return Decision{Outcome: DenyAccessLevel, Missing: "historical record access",
			Reason: "this entry is from before " + r.From.Format("2 January 2006") + ", the date from which the practice has " +
				"switched on online access to the record; ask the practice for access to older entries"}
	}
	return allow
}

func containsAny(list, vals []string) bool {
	for _, v := range vals {
		if contains(list, v) {
			return true
		}
	}
	return false
}

// CanRegister decides whether a GP system may store a Patient version registered where f says (f.Type
// Patient, f.PracticeODS the practices its managingOrganization and generalPractitioner name). Every
// practice that places the patient must be one of the caller's: a version that is registered partly
// elsewhere hands the patient to another practice's view, whichever field does it. Reading stays allowed
// when any one practice is the caller's (CanAccess); a registration move between practices is not made
// through this API by either practice's system. Other callers and types are not concerned.
func CanRegister(c *Caller, f Facts) Decision {
	if c.Kind != KindSystem || f.Type != "Patient" {
		return allow
	}
	for _, code := range f.PracticeODS {
		if !contains(c.ODS, code) {
			return Decision{Outcome: DenyCompartment,
				Reason: "this Patient version would register the patient at practice " + code + ", which client " + c.ClientID +
					" does not serve (" + strings.Join(c.ODS, ", ") + "); managingOrganization and generalPractitioner may name " +
					"only the client's own practices, and a registration moves between practices outside this API"}
		}
	}
	return allow
}

// AuthorizeDashboard decides whether the caller may see the commissioners' uptake dashboard: aggregate
// figures, for commissioners only. Everyone else is told what the dashboard needs.
func AuthorizeDashboard(c *Caller) Decision {
	if c.Kind == KindCommissioner {
		return allow
	}
	var who string
	switch c.Kind {
	case KindPatient:
		who = "a patient's sign-in gives access to their own GP record, not to the uptake figures of practices"
	case KindSystem:
		who = "a GP system token (client " + c.ClientID + ") gives access to its practices' records, not to the uptake dashboard"
	case KindAuditor:
		who = "an auditor token reads AuditEvents only, not the uptake dashboard"
	default:
		who = "this token names no commissioner"
	}
	return Decision{Outcome: DenyRole, Missing: DashboardScope,
		Reason: who + "; the dashboard is for commissioners, whose token carries the scope " + DashboardScope}
}
