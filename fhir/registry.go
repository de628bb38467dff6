package fhir

import (
	"sort"
	"strings"
)

// ParamType is a FHIR search parameter type.
type ParamType string

// The search parameter types. Number and quantity are defined for completeness; no served parameter uses
// them yet.
const (
	ParamToken     ParamType = "token"
	ParamString    ParamType = "string"
	ParamDate      ParamType = "date"
	ParamReference ParamType = "reference"
	ParamURI       ParamType = "uri"
	ParamNumber    ParamType = "number"
	ParamQuantity  ParamType = "quantity"
)

// Element datatypes a Path can end at. The extractor reads the JSON tree, where a ContactPoint and an
// Identifier look alike, so every path says what it walks to.
const (
	TypeIdentifier      = "Identifier"
	TypeCodeableConcept = "CodeableConcept"
	TypeCoding          = "Coding"
	TypeCode            = "code"
	TypeBoolean         = "boolean"
	TypeContactPoint    = "ContactPoint"
	TypeString          = "string"
	TypeHumanName       = "HumanName"
	TypeAddress         = "Address"
	TypeDate            = "date" // date, dateTime and instant
	TypePeriod          = "Period"
	TypeReference       = "Reference"
	TypeURI             = "uri"
)

// Path is one route the extractor walks from the resource root to the values of a parameter.
type Path struct {
	// Elements are JSON element names separated by dots, without the resource type: "name.family",
	// "participant.actor". A choice element is named with its type suffix ("medicationCodeableConcept").
	// Arrays are flattened at every step.
	Elements string
	// DataType is the FHIR datatype at the end of the path (one of the Type* constants).
	DataType string
	// WhereField and WhereValue keep only values whose child WhereField equals WhereValue, as in
	// telecom.where(system='phone').
	WhereField, WhereValue string
	// RefType keeps only references to this resource type, as in actor.where(resolve() is Patient).
	RefType string
	// CodeSystem is the implicit system of a code element (its required value set's code system), stored
	// as the token's System so that "gender=http://hl7.org/fhir/administrative-gender|male" matches.
	CodeSystem string
	// CodeSystems, for a value set that draws on several code systems, give each code's system.
	CodeSystems map[string]string
	// Child, after the WhereField filter, steps to this child element, whose datatype is DataType: an
	// extension's value, as in extension.where(url='...').valueBoolean.
	Child string
	// anyType marks, during translation, a path into one type of an uncast choice element.
	anyType bool
}

// SearchParam is one search parameter of a resource type.
type SearchParam struct {
	Code string
	Type ParamType
	// Expression is the FHIRPath expression of the R4 definition, published in the CapabilityStatement.
	Expression string
	// Paths are what Extract walks; together they implement Expression.
	Paths []Path
	// Targets are the resource types a reference parameter may point at.
	Targets []string
	// Description is the R4 description, for the CapabilityStatement.
	Description string
	// Definition is the canonical URL of the R4 SearchParameter.
	Definition string
	// FromStore marks _id and _lastUpdated: the store answers them from its own columns, and Extract
	// emits no entries for them.
	FromStore bool
}

// OfTypeSuffix names the internal index parameter that supports the :of-type modifier on an Identifier
// token parameter. For a parameter "identifier", Extract emits entries with Param "identifier:of-type",
// System = the identifier type's coding system, Value = the type code + "|" + the identifier value.
const OfTypeSuffix = ":of-type"

// TypeInfo describes one served resource type.
type TypeInfo struct {
	Name string
	// Profile is the base StructureDefinition of the type.
	Profile string
	// Params are the type's search parameters, including the common ones (_id, _lastUpdated, _tag,
	// _profile, _security), in table order.
	Params []*SearchParam
	// Interactions are the restful interactions the type allows (the CapabilityStatement codes: read,
	// vread, search-type, create, update, patch, delete, history-instance, history-type); nil allows every
	// one. AuditEvent allows only reading and searching: the trail is append-only through every path.
	Interactions []string
	// Unsupported are the type's R4 search parameters this server does not support.
	Unsupported []Unsupported
	byCode      map[string]*SearchParam
}

// UnsupportedParam returns the R4 parameter code that this server does not support, with the reason.
func (t *TypeInfo) UnsupportedParam(code string) (Unsupported, bool) {
	for _, u := range t.Unsupported {
		if u.Code == code {
			return u, true
		}
	}
	return Unsupported{}, false
}

// Allows reports whether the type supports the restful interaction.
func (t *TypeInfo) Allows(interaction string) bool {
	if t.Interactions == nil {
		return true
	}
	for _, in := range t.Interactions {
		if in == interaction {
			return true
		}
	}
	return false
}

// Param returns the search parameter with the given code.
func (t *TypeInfo) Param(code string) (*SearchParam, bool) {
	p, ok := t.byCode[code]
	return p, ok
}

// LookupType returns a served resource type by name (case-sensitive, "Patient").
func LookupType(name string) (*TypeInfo, bool) {
	t, ok := registry[name]
	return t, ok
}

// Types returns every served type, sorted by name. The slice is fresh; the TypeInfos are shared and must
// not be modified.
func Types() []*TypeInfo {
	out := make([]*TypeInfo, 0, len(registry))
	for _, t := range registry {
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

const (
	spBase           = "http://hl7.org/fhir/SearchParameter/"
	sdBase           = "http://hl7.org/fhir/StructureDefinition/"
	actorTargetsDesc = "Practitioner, Device, Patient, HealthcareService, PractitionerRole, RelatedPerson, Location"
)

// onlineBookableParam indexes the online-bookable extension of Schedules and Slots, so that a patient's
// search can be confined to what the practice publishes for online booking.
func onlineBookableParam(typ string) *SearchParam {
	return &SearchParam{Code: "online-bookable", Type: ParamToken,
		Expression: typ + ".extension('" + OnlineBookableExtension + "').value",
		Paths: []Path{{Elements: "extension", DataType: TypeBoolean, WhereField: "url", WhereValue: OnlineBookableExtension,
			Child: "valueBoolean"}},
		Description: "Whether the practice publishes this for online booking by patients (gpfhir extension)",
		Definition:  "https://gpfhir.example/SearchParameter/" + typ + "-online-bookable"}
}

func identifierParam(typ, desc string) *SearchParam {
	return &SearchParam{Code: "identifier", Type: ParamToken, Expression: typ + ".identifier",
		Description: desc}
}

// commonParams are the parameters every resource has. _id and _lastUpdated come from the store's columns.
func commonParams(typ string) []*SearchParam {
	return []*SearchParam{
		{Code: "_id", Type: ParamToken, Expression: typ + ".id", FromStore: true,
			Description: "Logical id of this artifact", Definition: spBase + "Resource-id"},
		{Code: "_lastUpdated", Type: ParamDate, Expression: typ + ".meta.lastUpdated", FromStore: true,
			Description: "When the resource version last changed", Definition: spBase + "Resource-lastUpdated"},
		{Code: "_tag", Type: ParamToken, Expression: typ + ".meta.tag",

			Description: "Tags applied to this resource", Definition: spBase + "Resource-tag"},
		{Code: "_profile", Type: ParamURI, Expression: typ + ".meta.profile",

			Description: "Profiles this resource claims to conform to", Definition: spBase + "Resource-profile"},
		{Code: "_security", Type: ParamToken, Expression: typ + ".meta.security",

			Description: "Security Labels applied to this resource", Definition: spBase + "Resource-security"},
	}
}

var actorTargets = strings.Split(actorTargetsDesc, ", ")

// auditEntityTargets are the served types an AuditEvent entity may name (R4 says Any).
var auditEntityTargets = append([]string{"Patient", "Appointment", "MedicationRequest", "Immunization", "Organization",
	"Practitioner", "Schedule", "Slot", "Location", "AuditEvent", "Task", "RelatedPerson", "Group"}, recordTypeNames()...)

func recordTypeNames() []string {
	var out []string
	for _, e := range recordTable {
		out = append(out, e.name)
	}
	return out
}

// typeTable is the served types and their own search parameters (R4 4.0.1 definitions). Adding a type is
// one entry here.
var typeTable = []typeEntry{
	{"Patient", []*SearchParam{
		identifierParam("Patient", "A patient identifier"),
		{Code: "name", Type: ParamString, Expression: "Patient.name",

			Description: "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text"},
		{Code: "family", Type: ParamString, Expression: "Patient.name.family",
			Description: "A portion of the family name of the patient"},
		{Code: "given", Type: ParamString, Expression: "Patient.name.given",
			Description: "A portion of the given name of the patient"},
		{Code: "birthdate", Type: ParamDate, Expression: "Patient.birthDate",
			Description: "The patient's date of birth"},
		{Code: "gender", Type: ParamToken, Expression: "Patient.gender",
			Description: "Gender of the patient"},
		{Code: "address-postalcode", Type: ParamString, Expression: "Patient.address.postalCode",
			Description: "A postalCode specified in an address"},
		{Code: "telecom", Type: ParamToken, Expression: "Patient.telecom",
			Description: "The value in any kind of telecom details of the patient"},
		{Code: "phone", Type: ParamToken, Expression: "Patient.telecom.where(system='phone')",

			Description: "A value in a phone contact"},
		{Code: "email", Type: ParamToken, Expression: "Patient.telecom.where(system='email')",

			Description: "A value in an email contact"},
		{Code: "general-practitioner", Type: ParamReference, Expression: "Patient.generalPractitioner",

			Targets:     []string{"Organization", "Practitioner", "PractitionerRole"},
			Description: "Patient's nominated general practitioner, not the organization that manages the record"},
		{Code: "organization", Type: ParamReference, Expression: "Patient.managingOrganization",
			Targets:     []string{"Organization"},
			Description: "The organization that is the custodian of the patient record"},
		{Code: "active", Type: ParamToken, Expression: "Patient.active",
			Description: "Whether the patient record is active"},
	}, nil},
	{"Appointment", []*SearchParam{
		{Code: "patient", Type: ParamReference, Expression: "Appointment.participant.actor.where(resolve() is Patient)",
			Targets:     []string{"Patient"},
			Description: "One of the individuals of the appointment is this patient"},
		{Code: "actor", Type: ParamReference, Expression: "Appointment.participant.actor",
			Targets:     actorTargets,
			Description: "Any one of the individuals participating in the appointment"},
		{Code: "practitioner", Type: ParamReference, Expression: "Appointment.participant.actor.where(resolve() is Practitioner)",
			Targets:     []string{"Practitioner"},
			Description: "One of the individuals of the appointment is this practitioner"},
		{Code: "location", Type: ParamReference, Expression: "Appointment.participant.actor.where(resolve() is Location)",
			Targets:     []string{"Location"},
			Description: "This location is listed in the participants of the appointment"},
		{Code: "date", Type: ParamDate, Expression: "Appointment.start",
			Description: "Appointment date/time."},
		{Code: "status", Type: ParamToken, Expression: "Appointment.status",
			Description: "The overall status of the appointment"},
		{Code: "slot", Type: ParamReference, Expression: "Appointment.slot",
			Targets:     []string{"Slot"},
			Description: "The slots that this appointment is filling"},
		identifierParam("Appointment", "An Identifier of the Appointment"),
		{Code: "service-type", Type: ParamToken, Expression: "Appointment.serviceType",

			Description: "The specific service that is to be performed during this appointment"},
		{Code: "appointment-type", Type: ParamToken, Expression: "Appointment.appointmentType",

			Description: "The style of appointment or patient that has been booked in the slot (not service type)"},
	}, nil},
	{"MedicationRequest", []*SearchParam{
		{Code: "patient", Type: ParamReference, Expression: "MedicationRequest.subject.where(resolve() is Patient)",
			Targets:     []string{"Patient"},
			Description: "Returns prescriptions for a specific patient"},
		{Code: "subject", Type: ParamReference, Expression: "MedicationRequest.subject",
			Targets:     []string{"Group", "Patient"},
			Description: "The identity of a patient to list orders  for"},
		{Code: "status", Type: ParamToken, Expression: "MedicationRequest.status",
			Description: "Status of the prescription"},
		{Code: "intent", Type: ParamToken, Expression: "MedicationRequest.intent",
			Description: "Returns prescriptions with different intents"},
		{Code: "authoredon", Type: ParamDate, Expression: "MedicationRequest.authoredOn",
			Description: "Return prescriptions written on this date"},
		{Code: "code", Type: ParamToken, Expression: "(MedicationRequest.medication as CodeableConcept)",

			Description: "Return prescriptions of this medication code"},
		{Code: "medication", Type: ParamReference, Expression: "(MedicationRequest.medication as Reference)",
			Targets:     []string{"Medication"},
			Description: "Return prescriptions for this medication reference"},
		{Code: "requester", Type: ParamReference, Expression: "MedicationRequest.requester",

			Targets:     []string{"Practitioner", "Organization", "Patient", "PractitionerRole", "Device", "RelatedPerson"},
			Description: "Returns prescriptions prescribed by this prescriber"},
		identifierParam("MedicationRequest", "Return prescriptions with this external identifier"),
	}, nil},
	{"Immunization", []*SearchParam{
		{Code: "patient", Type: ParamReference, Expression: "Immunization.patient",
			Targets:     []string{"Patient"},
			Description: "The patient for the vaccination record"},
		{Code: "date", Type: ParamDate, Expression: "Immunization.occurrence",

			Description: "Vaccination  (non)-Administration Date"},
		{Code: "status", Type: ParamToken, Expression: "Immunization.status",
			Description: "Immunization event status"},
		{Code: "vaccine-code", Type: ParamToken, Expression: "Immunization.vaccineCode",
			Description: "Vaccine Product Administered"},
		identifierParam("Immunization", "Business identifier"),
		{Code: "lot-number", Type: ParamString, Expression: "Immunization.lotNumber",
			Description: "Vaccine Lot Number"},
	}, nil},
	{"Organization", []*SearchParam{
		identifierParam("Organization", "Any identifier for the organization (not the accreditation issuer's identifier)"),
		{Code: "name", Type: ParamString, Expression: "Organization.name | Organization.alias",

			Description: "A portion of the organization's name or alias"},
	}, nil},
	{"Practitioner", []*SearchParam{
		identifierParam("Practitioner", "A practitioner's Identifier"),
		{Code: "name", Type: ParamString, Expression: "Practitioner.name",

			Description: "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text"},
		{Code: "family", Type: ParamString, Expression: "Practitioner.name.family",
			Description: "A portion of the family name"},
	}, nil},
	{"Schedule", []*SearchParam{
		{Code: "actor", Type: ParamReference, Expression: "Schedule.actor",
			Targets:     actorTargets,
			Description: "The individual(HealthcareService, Practitioner, Location, ...) to find a Schedule for"},
		{Code: "date", Type: ParamDate, Expression: "Schedule.planningHorizon",

			Description: "Search for Schedule resources that have a period that contains this date specified"},
		{Code: "active", Type: ParamToken, Expression: "Schedule.active",
			Description: "Is the schedule in active use"},
		identifierParam("Schedule", "A Schedule Identifier"),
		onlineBookableParam("Schedule"),
	}, nil},
	{"Slot", []*SearchParam{
		{Code: "schedule", Type: ParamReference, Expression: "Slot.schedule",
			Targets:     []string{"Schedule"},
			Description: "The Schedule Resource that we are seeking a slot within"},
		{Code: "start", Type: ParamDate, Expression: "Slot.start",
			Description: "Appointment date/time."},
		{Code: "status", Type: ParamToken, Expression: "Slot.status",
			Description: "The free/busy status of the appointment"},
		{Code: "service-type", Type: ParamToken, Expression: "Slot.serviceType",

			Description: "The type of appointments that can be booked into the slot"},
		identifierParam("Slot", "A Slot Identifier"),
		onlineBookableParam("Slot"),
	}, nil},
	// Task carries patients' repeat-prescription requests (GP Connect Patient Facing Prescriptions).
	{"Task", []*SearchParam{
		identifierParam("Task", "Search for a task instance by its business identifier"),
		{Code: "status", Type: ParamToken, Expression: "Task.status",
			Description: "Search by task status"},
		{Code: "intent", Type: ParamToken, Expression: "Task.intent",
			Description: "Search by task intent"},
		{Code: "code", Type: ParamToken, Expression: "Task.code",
			Description: "Search by task code"},
		{Code: "focus", Type: ParamReference, Expression: "Task.focus",
			Targets:     []string{"MedicationRequest"},
			Description: "Search by task focus"},
		{Code: "patient", Type: ParamReference, Expression: "Task.for.where(resolve() is Patient)",
			Targets:     []string{"Patient"},
			Description: "Search by patient"},
		{Code: "subject", Type: ParamReference, Expression: "Task.for",
			Targets:     []string{"Patient"},
			Description: "Search by subject"},
		{Code: "owner", Type: ParamReference, Expression: "Task.owner",
			Targets:     []string{"Organization", "Practitioner"},
			Description: "Search by task owner"},
		{Code: "requester", Type: ParamReference, Expression: "Task.requester",
			Targets:     []string{"Patient", "RelatedPerson", "Practitioner", "Organization"},
			Description: "Search by task requester"},
		{Code: "authored-on", Type: ParamDate, Expression: "Task.authoredOn",
			Description: "Search by creation date"},
		{Code: "modified", Type: ParamDate, Expression: "Task.lastModified",
			Description: "Search by last modification date"},
	}, nil},
	// RelatedPerson holds practice-managed proxy grants: the proxy's NHS number, the patient, the period
	// and the services allowed (docs/online-services.md, "Proxy access").
	{"RelatedPerson", []*SearchParam{
		identifierParam("RelatedPerson", "An Identifier of the RelatedPerson"),
		{Code: "patient", Type: ParamReference, Expression: "RelatedPerson.patient",
			Targets:     []string{"Patient"},
			Description: "The patient this related person is related to"},
		{Code: "active", Type: ParamToken, Expression: "RelatedPerson.active",
			Description: "Indicates if the related person record is active"},
		{Code: "name", Type: ParamString, Expression: "RelatedPerson.name",

			Description: "A server defined search that may match any of the string fields in the HumanName, including family, give, prefix, suffix, suffix, and/or text"},
	}, nil},
	// Location is served because GP Connect schedules and appointments name the practice site, and R4
	// does not allow an Organization as Schedule.actor.
	{"Location", []*SearchParam{
		identifierParam("Location", "An identifier for the location"),
		{Code: "name", Type: ParamString, Expression: "Location.name | Location.alias",

			Description: "A portion of the location's name or alias"},
		{Code: "organization", Type: ParamReference, Expression: "Location.managingOrganization",
			Targets:     []string{"Organization"},
			Description: "Searches for locations that are managed by the provided organization"},
		{Code: "address-postalcode", Type: ParamString, Expression: "Location.address.postalCode",
			Description: "A postal code specified in an address"},
	}, nil},
	// Group lists a practice's patients (a recall list, a cohort for Bulk Data export); its
	// managingEntity names the practice that keeps it, which the access policy confines it by.
	{"Group", []*SearchParam{
		sp("actual", ParamToken, "Group.actual", "Descriptive or actual"),
		sp("characteristic", ParamToken, "Group.characteristic.code", "Kind of characteristic"),
		sp("code", ParamToken, "Group.code", "The kind of resources contained"),
		sp("exclude", ParamToken, "Group.characteristic.exclude", "Group includes or excludes"),
		identifierParam("Group", "Unique id"),
		sp("managing-entity", ParamReference, "Group.managingEntity", "Entity that is the custodian of the Group's definition"),
		sp("member", ParamReference, "Group.member.entity", "Reference to the group member"),
		sp("type", ParamToken, "Group.type", "The type of resources the group contains"),
		sp("value", ParamToken, "(Group.characteristic.value as CodeableConcept) | (Group.characteristic.value as boolean)",
			"Value held by characteristic"),
	}, []Unsupported{
		{"characteristic-value", "composite", "Group.characteristic", whyComposite},
	}},
	// AuditEvent is written by the server only (package audit) and read by auditors and, for
	// their own record, patients. The parameters are R4's, for the questions auditors ask: who (agent,
	// patient), what (entity, entity-type, action, subtype), when (date), how it ended (outcome), where
	// (source).
	{"AuditEvent", []*SearchParam{
		{Code: "date", Type: ParamDate, Expression: "AuditEvent.recorded",
			Description: "Time when the event was recorded"},
		{Code: "patient", Type: ParamReference,
			Expression:  "AuditEvent.agent.who.where(resolve() is Patient) | AuditEvent.entity.what.where(resolve() is Patient)",
			Targets:     []string{"Patient"},
			Description: "Identifier of who"},
		{Code: "agent", Type: ParamReference, Expression: "AuditEvent.agent.who",

			Targets:     []string{"Practitioner", "Organization", "Device", "Patient", "PractitionerRole", "RelatedPerson"},
			Description: "Identifier of who"},
		{Code: "entity", Type: ParamReference, Expression: "AuditEvent.entity.what",
			Targets:     auditEntityTargets,
			Description: "Specific instance of resource"},
		{Code: "entity-type", Type: ParamToken, Expression: "AuditEvent.entity.type",
			Description: "Type of entity involved"},
		{Code: "action", Type: ParamToken, Expression: "AuditEvent.action",
			Description: "Type of action performed during the event"},
		{Code: "outcome", Type: ParamToken, Expression: "AuditEvent.outcome",
			Description: "Whether the event succeeded or failed"},
		{Code: "type", Type: ParamToken, Expression: "AuditEvent.type",
			Description: "Type/identifier of event"},
		{Code: "subtype", Type: ParamToken, Expression: "AuditEvent.subtype",
			Description: "More specific type/id for the event"},
		{Code: "source", Type: ParamReference, Expression: "AuditEvent.source.observer",

			Targets:     []string{"Practitioner", "Organization", "Device", "Patient", "PractitionerRole", "RelatedPerson"},
			Description: "The identity of source detecting the event"},
		// Who, when the user is not a Patient here: a GP system's or auditor's subject at its identity
		// provider (agent.altId), and the app a request came through (the client agent's name).
		{Code: "altid", Type: ParamToken, Expression: "AuditEvent.agent.altId",
			Description: "Alternative User identity"},
		{Code: "agent-name", Type: ParamString, Expression: "AuditEvent.agent.name",
			Description: "Human friendly name for the agent"},
	}, nil},
}

// typeEntry is one served type: its own supported search parameters, and the R4 parameters it does not
// support, with the reason.
type typeEntry struct {
	name        string
	params      []*SearchParam
	unsupported []Unsupported
}

// Unsupported is an R4 search parameter of a served type that this server does not support: the
// CapabilityStatement lists it with Reason, and a search that uses it is told Reason (or refused, under
// handling=strict).
type Unsupported struct {
	Code       string
	Type       ParamType
	Expression string
	Reason     string
}

// typeInteractions limits the interactions of some types; the others allow every interaction. AuditEvent,
// written by the server only, may be read and searched, and has the $verify operation; it has no history
// interactions either, since each record has exactly one version.
var typeInteractions = map[string][]string{
	"AuditEvent": {"read", "vread", "search-type", "operation"},
}

// sharedDefinitions are the R4 SearchParameters that serve several types under one canonical URL; every
// other parameter is spBase + Type + "-" + code.
var sharedDefinitions = map[string]string{
	"Patient.family":               "individual-family",
	"Patient.given":                "individual-given",
	"Patient.birthdate":            "individual-birthdate",
	"Patient.gender":               "individual-gender",
	"Patient.address-postalcode":   "individual-address-postalcode",
	"Patient.telecom":              "individual-telecom",
	"Patient.phone":                "individual-phone",
	"Patient.email":                "individual-email",
	"Practitioner.family":          "individual-family",
	"MedicationRequest.patient":    "clinical-patient",
	"MedicationRequest.identifier": "clinical-identifier",
	"MedicationRequest.code":       "medications-code",
	"MedicationRequest.medication": "medications-medication",
	"MedicationRequest.status":     "medications-status",
	"Immunization.patient":         "clinical-patient",
}

var registry = buildRegistry()

func buildRegistry() map[string]*TypeInfo {
	reg := make(map[string]*TypeInfo, len(typeTable)+len(recordTable))
	for _, e := range append(append([]typeEntry(nil), typeTable...), recordTable...) {
		if more, ok := r4Additions[e.name]; ok {
			e.params = append(append([]*SearchParam(nil), e.params...), more.params...)
			e.unsupported = append(append([]Unsupported(nil), e.unsupported...), more.unsupported...)
		}
		t := &TypeInfo{Name: e.name, Profile: sdBase + e.name, Interactions: typeInteractions[e.name],
			Unsupported: e.unsupported, byCode: map[string]*SearchParam{}}
		for _, p := range append(commonParams(e.name), e.params...) {
			if p.Definition == "" {
				if shared, ok := sharedDefinitions[e.name+"."+p.Code]; ok {
					p.Definition = spBase + shared
				} else if shared, ok := clinicalDefinition(e.name, p.Code); ok {
					p.Definition = spBase + shared
				} else {
					p.Definition = spBase + e.name + "-" + p.Code
				}
			}
			if p.Paths == nil && !p.FromStore {
				tr, err := Translate(e.name, p.Type, p.Expression)
				if err != nil {
					panic("fhir: search parameter " + e.name + "." + p.Code + ": " + err.Error())
				}
				p.Paths = tr.Paths
				if p.Targets == nil {
					p.Targets = tr.Targets
				}
			}
			if _, dup := t.byCode[p.Code]; dup {
				panic("fhir: duplicate search parameter " + e.name + "." + p.Code)
			}
			t.byCode[p.Code] = p
			t.Params = append(t.Params, p)
		}
		reg[e.name] = t
	}
	return reg
}
