package fhir

// The remaining R4 4.0.1 search parameters of the types served since before the clinical record
// (registry.go's typeTable holds the ones their features were built on), so that every R4 parameter of a
// served type is either supported or listed as unsupported with the reason.

const (
	whyPhonetic = "phonetic matching is not supported"
	whyExists   = "the expression tests for existence (deceased.exists() and deceased != false), which the index does not hold"
	whyNear     = "geographic search (near) is not supported"
	whyAudit    = "the audit trail indexes only the parameters auditors query (who, what, when, outcome, source); this one is not indexed"
)

func addressParams(typ, desc string) []*SearchParam {
	return []*SearchParam{
		sp("address", ParamString, typ+".address", "A server defined search that may match any of the string fields in the Address, including line, city, district, state, country, postalCode, and/or text"),
		sp("address-city", ParamString, typ+".address.city", "A city specified in an address"),
		sp("address-country", ParamString, typ+".address.country", "A country specified in an address"),
		sp("address-state", ParamString, typ+".address.state", "A state specified in an address"),
		sp("address-use", ParamToken, typ+".address.use", "A use code specified in an address"),
	}
}

var r4Additions = map[string]typeEntry{
	"Patient": {params: append(addressParams("Patient", ""),
		sp("death-date", ParamDate, "(Patient.deceased as dateTime)", "The date of death has been provided and satisfies this search value"),
		sp("language", ParamToken, "Patient.communication.language", "Language code (irrespective of use value)"),
		sp("link", ParamReference, "Patient.link.other", "All patients linked to the given patient"),
	), unsupported: []Unsupported{
		{"deceased", ParamToken, "Patient.deceased.exists() and Patient.deceased != false", whyExists},
		{"phonetic", ParamString, "Patient.name", whyPhonetic},
	}},
	"Appointment": {params: []*SearchParam{
		sp("based-on", ParamReference, "Appointment.basedOn", "The service request this appointment is allocated to assess"),
		sp("part-status", ParamToken, "Appointment.participant.status", "The Participation status of the subject, or other participant on the appointment."),
		sp("reason-code", ParamToken, "Appointment.reasonCode", "Coded reason this appointment is scheduled"),
		sp("reason-reference", ParamReference, "Appointment.reasonReference", "Reason the appointment is to take place (resource)"),
		sp("service-category", ParamToken, "Appointment.serviceCategory", "A broad categorization of the service that is to be performed during this appointment"),
		sp("specialty", ParamToken, "Appointment.specialty", "The specialty of a practitioner that would be required to perform the service requested in this appointment"),
		sp("supporting-info", ParamReference, "Appointment.supportingInformation", "Additional information to support the appointment"),
	}},
	"MedicationRequest": {params: []*SearchParam{
		sp("category", ParamToken, "MedicationRequest.category", "Returns prescriptions with different categories"),
		sp("date", ParamDate, "MedicationRequest.dosageInstruction.timing.event", "Returns medication request to be administered on a specific date"),
		sp("encounter", ParamReference, "MedicationRequest.encounter", "Return prescriptions with this encounter identifier"),
		sp("intended-dispenser", ParamReference, "MedicationRequest.dispenseRequest.performer", "Returns prescriptions intended to be dispensed by this Organization"),
		sp("intended-performer", ParamReference, "MedicationRequest.performer", "Returns the intended performer of the administration of the medication request"),
		sp("intended-performertype", ParamToken, "MedicationRequest.performerType", "Returns requests for a specific type of performer"),
		sp("priority", ParamToken, "MedicationRequest.priority", "Returns prescriptions with different priorities"),
	}},
	"Immunization": {params: []*SearchParam{
		sp("location", ParamReference, "Immunization.location", "The service delivery location or facility in which the vaccine was / was to be administered"),
		sp("manufacturer", ParamReference, "Immunization.manufacturer", "Vaccine Manufacturer"),
		sp("performer", ParamReference, "Immunization.performer.actor", "The practitioner or organization who played a role in the vaccination"),
		sp("reaction", ParamReference, "Immunization.reaction.detail", "Additional information on reaction"),
		sp("reaction-date", ParamDate, "Immunization.reaction.date", "When reaction started"),
		sp("reason-code", ParamToken, "Immunization.reasonCode", "Reason why the vaccine was administered"),
		sp("reason-reference", ParamReference, "Immunization.reasonReference", "Why immunization occurred"),
		sp("series", ParamString, "Immunization.protocolApplied.series", "The series being followed by the provider"),
		sp("status-reason", ParamToken, "Immunization.statusReason", "Reason why the vaccine was not administered"),
		sp("target-disease", ParamToken, "Immunization.protocolApplied.targetDisease", "The target disease the dose is being administered against"),
	}},
	"Organization": {params: append(addressParams("Organization", ""),
		sp("active", ParamToken, "Organization.active", "Is the Organization record active"),
		sp("endpoint", ParamReference, "Organization.endpoint", "Technical endpoints providing access to services operated for the organization"),
		sp("partof", ParamReference, "Organization.partOf", "An organization of which this organization forms a part"),
		sp("type", ParamToken, "Organization.type", "A code for the type of organization"),
	), unsupported: []Unsupported{
		{"phonetic", ParamString, "Organization.name", whyPhonetic},
	}},
	"Practitioner": {params: append(addressParams("Practitioner", ""),
		sp("active", ParamToken, "Practitioner.active", "Whether the practitioner record is active"),
		sp("communication", ParamToken, "Practitioner.communication", "One of the languages that the practitioner can communicate with"),
		sp("email", ParamToken, "Practitioner.telecom.where(system='email')", "A value in an email contact"),
		sp("gender", ParamToken, "Practitioner.gender", "Gender of the practitioner"),
		sp("given", ParamString, "Practitioner.name.given", "A portion of the given name"),
		sp("phone", ParamToken, "Practitioner.telecom.where(system='phone')", "A value in a phone contact"),
		sp("telecom", ParamToken, "Practitioner.telecom", "The value in any kind of contact"),
	), unsupported: []Unsupported{
		{"phonetic", ParamString, "Practitioner.name", whyPhonetic},
	}},
	"Schedule": {params: []*SearchParam{
		sp("service-category", ParamToken, "Schedule.serviceCategory", "High-level category"),
		sp("service-type", ParamToken, "Schedule.serviceType", "The type of appointments that can be booked into associated slot(s)"),
		sp("specialty", ParamToken, "Schedule.specialty", "Type of specialty needed"),
	}},
	"Slot": {params: []*SearchParam{
		sp("appointment-type", ParamToken, "Slot.appointmentType", "The style of appointment or patient that may be booked in the slot (not service type)"),
		sp("service-category", ParamToken, "Slot.serviceCategory", "A broad categorization of the service that is to be performed during this appointment"),
		sp("specialty", ParamToken, "Slot.specialty", "The specialty of a practitioner that would be required to perform the service requested in this appointment"),
	}},
	"Task": {params: []*SearchParam{
		sp("based-on", ParamReference, "Task.basedOn", "Search by requests this task is based on"),
		sp("business-status", ParamToken, "Task.businessStatus", "Search by business status"),
		sp("encounter", ParamReference, "Task.encounter", "Search by encounter"),
		sp("group-identifier", ParamToken, "Task.groupIdentifier", "Search by group identifier"),
		sp("part-of", ParamReference, "Task.partOf", "Search by task this task is part of"),
		sp("performer", ParamToken, "Task.performerType", "Search by recommended type of performer (e.g., Requester, Performer, Scheduler)."),
		sp("period", ParamDate, "Task.executionPeriod", "Search by period Task is/was underway"),
		sp("priority", ParamToken, "Task.priority", "Search by task priority"),
	}},
	"RelatedPerson": {params: append(addressParams("RelatedPerson", ""),
		sp("birthdate", ParamDate, "RelatedPerson.birthDate", "The Related Person's date of birth"),
		sp("email", ParamToken, "RelatedPerson.telecom.where(system='email')", "A value in an email contact"),
		sp("gender", ParamToken, "RelatedPerson.gender", "Gender of the related person"),
		sp("phone", ParamToken, "RelatedPerson.telecom.where(system='phone')", "A value in a phone contact"),
		sp("relationship", ParamToken, "RelatedPerson.relationship", "The relationship between the patient and the relatedperson"),
		sp("telecom", ParamToken, "RelatedPerson.telecom", "The value in any kind of contact"),
	), unsupported: []Unsupported{
		{"phonetic", ParamString, "RelatedPerson.name", whyPhonetic},
	}},
	"Location": {params: []*SearchParam{
		sp("address", ParamString, "Location.address", "A (part of the) address of the location"),
		sp("address-city", ParamString, "Location.address.city", "A city specified in an address"),
		sp("address-country", ParamString, "Location.address.country", "A country specified in an address"),
		sp("address-state", ParamString, "Location.address.state", "A state specified in an address"),
		sp("address-use", ParamToken, "Location.address.use", "A use code specified in an address"),
		sp("endpoint", ParamReference, "Location.endpoint", "Technical endpoints providing access to services operated for the location"),
		sp("operational-status", ParamToken, "Location.operationalStatus", "Searches for locations (typically bed/room) that have an operational status (e.g. contaminated, housekeeping)"),
		sp("partof", ParamReference, "Location.partOf", "A location of which this location is a part"),
		sp("status", ParamToken, "Location.status", "Searches for locations with a specific kind of status"),
		sp("type", ParamToken, "Location.type", "A code for the type of location"),
	}, unsupported: []Unsupported{
		{"near", ParamToken, "Location.position", whyNear},
	}},
	// The audit trail's index is built by audit.EventIndex, which mirrors the parameters auditors query
	// (docs/audit.md) on every request's hot path; these are not among them.
	"AuditEvent": {unsupported: []Unsupported{
		{"address", ParamString, "AuditEvent.agent.network.address", whyAudit},
		{"agent-role", ParamToken, "AuditEvent.agent.role", whyAudit},
		{"entity-name", ParamString, "AuditEvent.entity.name", whyAudit},
		{"entity-role", ParamToken, "AuditEvent.entity.role", whyAudit},
		{"policy", ParamURI, "AuditEvent.agent.policy", whyAudit},
		{"site", ParamToken, "AuditEvent.source.site", whyAudit},
	}},
}
