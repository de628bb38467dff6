package fhir

// The GP record's clinical types, with their R4 4.0.1 search parameters: code, type, expression and
// description as the R4 SearchParameter definitions give them. The index paths and reference targets are
// derived from the expressions (Translate). Parameters whose values the index does not hold yet (quantity,
// number and composite parameters, references held as canonical URLs) are listed in unsupported with the
// reason, so that the CapabilityStatement and searches say so rather than ignore them.

// clinicalParam is one supported parameter; the definition is spBase+Type-code unless shared names it.
func sp(code string, t ParamType, expr, desc string) *SearchParam {
	return &SearchParam{Code: code, Type: t, Expression: expr, Description: desc}
}

func patientOf(typ, elem, desc string) *SearchParam {
	return sp("patient", ParamReference, typ+"."+elem+".where(resolve() is Patient)", desc)
}

// Reasons a parameter of a served type is not supported.
const (
	whyQuantity  = "quantity parameters are not supported: the index does not hold quantities with units"
	whyNumber    = "number parameters are not supported: the index does not hold numbers"
	whyComposite = "composite parameters are not supported"
	whyCanonical = "the element is a canonical URL, not a reference the index resolves; search the instantiates-uri parameter instead"
)

var recordTable = []typeEntry{
	{"AllergyIntolerance", []*SearchParam{
		sp("patient", ParamReference, "AllergyIntolerance.patient", "Who the sensitivity is for"),
		sp("asserter", ParamReference, "AllergyIntolerance.asserter", "Source of the information about the allergy"),
		sp("category", ParamToken, "AllergyIntolerance.category", "food | medication | environment | biologic"),
		sp("clinical-status", ParamToken, "AllergyIntolerance.clinicalStatus", "active | inactive | resolved"),
		sp("code", ParamToken, "AllergyIntolerance.code | AllergyIntolerance.reaction.substance", "Code that identifies the allergy or intolerance"),
		sp("criticality", ParamToken, "AllergyIntolerance.criticality", "low | high | unable-to-assess"),
		sp("date", ParamDate, "AllergyIntolerance.recordedDate", "Date first version of the resource instance was recorded"),
		sp("identifier", ParamToken, "AllergyIntolerance.identifier", "External ids for this item"),
		sp("last-date", ParamDate, "AllergyIntolerance.lastOccurrence", "Date(/time) of last known occurrence of a reaction"),
		sp("manifestation", ParamToken, "AllergyIntolerance.reaction.manifestation", "Clinical symptoms/signs associated with the Event"),
		sp("onset", ParamDate, "AllergyIntolerance.reaction.onset", "Date(/time) when manifestations showed"),
		sp("recorder", ParamReference, "AllergyIntolerance.recorder", "Who recorded the sensitivity"),
		sp("route", ParamToken, "AllergyIntolerance.reaction.exposureRoute", "How the subject was exposed to the substance"),
		sp("severity", ParamToken, "AllergyIntolerance.reaction.severity", "mild | moderate | severe (of event as a whole)"),
		sp("type", ParamToken, "AllergyIntolerance.type", "allergy | intolerance - Underlying mechanism (if known)"),
		sp("verification-status", ParamToken, "AllergyIntolerance.verificationStatus", "unconfirmed | confirmed | refuted | entered-in-error"),
	}, nil},
	{"MedicationStatement", []*SearchParam{
		patientOf("MedicationStatement", "subject", "Returns statements for a specific patient."),
		sp("subject", ParamReference, "MedicationStatement.subject", "The identity of a patient, animal or group to list statements for"),
		sp("category", ParamToken, "MedicationStatement.category", "Returns statements of this category of medicationstatement"),
		sp("code", ParamToken, "(MedicationStatement.medication as CodeableConcept)", "Return statements of this medication code"),
		sp("context", ParamReference, "MedicationStatement.context", "Returns statements for a specific context (episode or episode of Care)."),
		sp("effective", ParamDate, "MedicationStatement.effective", "Date when patient was taking (or not taking) the medication"),
		sp("identifier", ParamToken, "MedicationStatement.identifier", "Return statements with this external identifier"),
		sp("medication", ParamReference, "(MedicationStatement.medication as Reference)", "Return statements of this medication reference"),
		sp("part-of", ParamReference, "MedicationStatement.partOf", "Returns statements that are part of another event."),
		sp("source", ParamReference, "MedicationStatement.informationSource", "Who or where the information in the statement came from"),
		sp("status", ParamToken, "MedicationStatement.status", "Return statements that match the given status"),
	}, nil},
	{"Condition", []*SearchParam{
		patientOf("Condition", "subject", "Who has the condition?"),
		sp("subject", ParamReference, "Condition.subject", "Who has the condition?"),
		sp("abatement-date", ParamDate, "Condition.abatement.as(dateTime) | Condition.abatement.as(Period)", "Date-related abatements (dateTime and period)"),
		sp("abatement-string", ParamString, "Condition.abatement.as(string)", "Abatement as a string"),
		sp("asserter", ParamReference, "Condition.asserter", "Person who asserts this condition"),
		sp("body-site", ParamToken, "Condition.bodySite", "Anatomical location, if relevant"),
		sp("category", ParamToken, "Condition.category", "The category of the condition"),
		sp("clinical-status", ParamToken, "Condition.clinicalStatus", "The clinical status of the condition"),
		sp("code", ParamToken, "Condition.code", "Code for the condition"),
		sp("encounter", ParamReference, "Condition.encounter", "Encounter created as part of"),
		sp("evidence", ParamToken, "Condition.evidence.code", "Manifestation/symptom"),
		sp("evidence-detail", ParamReference, "Condition.evidence.detail", "Supporting information found elsewhere"),
		sp("identifier", ParamToken, "Condition.identifier", "A unique identifier of the condition record"),
		sp("onset-date", ParamDate, "Condition.onset.as(dateTime) | Condition.onset.as(Period)", "Date related onsets (dateTime and Period)"),
		sp("onset-info", ParamString, "Condition.onset.as(string)", "Onsets as a string"),
		sp("recorded-date", ParamDate, "Condition.recordedDate", "Date record was first recorded"),
		sp("severity", ParamToken, "Condition.severity", "The severity of the condition"),
		sp("stage", ParamToken, "Condition.stage.summary", "Simple summary (disease specific)"),
		sp("verification-status", ParamToken, "Condition.verificationStatus", "unconfirmed | provisional | differential | confirmed | refuted | entered-in-error"),
	}, []Unsupported{
		{"abatement-age", ParamQuantity, "Condition.abatement.as(Age) | Condition.abatement.as(Range)", whyQuantity},
		{"onset-age", ParamQuantity, "Condition.onset.as(Age) | Condition.onset.as(Range)", whyQuantity},
	}},
	{"Observation", []*SearchParam{
		patientOf("Observation", "subject", "The subject that the observation is about (if patient)"),
		sp("subject", ParamReference, "Observation.subject", "The subject that the observation is about"),
		sp("based-on", ParamReference, "Observation.basedOn", "Reference to the service request."),
		sp("category", ParamToken, "Observation.category", "The classification of the type of observation"),
		sp("code", ParamToken, "Observation.code", "The code of the observation type"),
		sp("combo-code", ParamToken, "Observation.code | Observation.component.code", "The code of the observation type or component type"),
		sp("combo-data-absent-reason", ParamToken, "Observation.dataAbsentReason | Observation.component.dataAbsentReason", "The reason why the expected value in the element Observation.value[x] or Observation.component.value[x] is missing."),
		sp("combo-value-concept", ParamToken, "(Observation.value as CodeableConcept) | (Observation.component.value as CodeableConcept)", "The value or component value of the observation, if the value is a CodeableConcept"),
		sp("component-code", ParamToken, "Observation.component.code", "The component code of the observation type"),
		sp("component-data-absent-reason", ParamToken, "Observation.component.dataAbsentReason", "The reason why the expected value in the element Observation.component.value[x] is missing."),
		sp("component-value-concept", ParamToken, "(Observation.component.value as CodeableConcept)", "The value of the component observation, if the value is a CodeableConcept"),
		sp("data-absent-reason", ParamToken, "Observation.dataAbsentReason", "The reason why the expected value in the element Observation.value[x] is missing."),
		sp("date", ParamDate, "Observation.effective", "Obtained date/time. If the obtained element is a period, a date that falls in the period"),
		sp("derived-from", ParamReference, "Observation.derivedFrom", "Related measurements the observation is made from"),
		sp("device", ParamReference, "Observation.device", "The Device that generated the observation data."),
		sp("encounter", ParamReference, "Observation.encounter", "Encounter related to the observation"),
		sp("focus", ParamReference, "Observation.focus", "The focus of an observation when the focus is not the patient of record."),
		sp("has-member", ParamReference, "Observation.hasMember", "Related resource that belongs to the Observation group"),
		sp("identifier", ParamToken, "Observation.identifier", "The unique id for a particular observation"),
		sp("method", ParamToken, "Observation.method", "The method used for the observation"),
		sp("part-of", ParamReference, "Observation.partOf", "Part of referenced event"),
		sp("performer", ParamReference, "Observation.performer", "Who performed the observation"),
		sp("specimen", ParamReference, "Observation.specimen", "Specimen used for this observation"),
		sp("status", ParamToken, "Observation.status", "The status of the observation"),
		sp("value-concept", ParamToken, "(Observation.value as CodeableConcept)", "The value of the observation, if the value is a CodeableConcept"),
		sp("value-date", ParamDate, "(Observation.value as dateTime) | (Observation.value as Period)", "The value of the observation, if the value is a date or period of time"),
		sp("value-string", ParamString, "(Observation.value as string)", "The value of the observation, if the value is a string, and also searches in CodeableConcept.text"),
	}, []Unsupported{
		{"value-quantity", ParamQuantity, "(Observation.value as Quantity) | (Observation.value as SampledData)", whyQuantity},
		{"combo-value-quantity", ParamQuantity, "(Observation.value as Quantity) | (Observation.value as SampledData) | (Observation.component.value as Quantity) | (Observation.component.value as SampledData)", whyQuantity},
		{"component-value-quantity", ParamQuantity, "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)", whyQuantity},
		{"code-value-concept", "composite", "Observation", whyComposite},
		{"code-value-date", "composite", "Observation", whyComposite},
		{"code-value-quantity", "composite", "Observation", whyComposite},
		{"code-value-string", "composite", "Observation", whyComposite},
		{"combo-code-value-concept", "composite", "Observation | Observation.component", whyComposite},
		{"combo-code-value-quantity", "composite", "Observation | Observation.component", whyComposite},
		{"component-code-value-concept", "composite", "Observation.component", whyComposite},
		{"component-code-value-quantity", "composite", "Observation.component", whyComposite},
	}},
	{"Procedure", []*SearchParam{
		patientOf("Procedure", "subject", "Search by subject - a patient"),
		sp("subject", ParamReference, "Procedure.subject", "Search by subject"),
		sp("based-on", ParamReference, "Procedure.basedOn", "A request for this procedure"),
		sp("category", ParamToken, "Procedure.category", "Classification of the procedure"),
		sp("code", ParamToken, "Procedure.code", "A code to identify a  procedure"),
		sp("date", ParamDate, "Procedure.performed", "When the procedure was performed"),
		sp("encounter", ParamReference, "Procedure.encounter", "Encounter created as part of"),
		sp("identifier", ParamToken, "Procedure.identifier", "A unique identifier for a procedure"),
		sp("instantiates-uri", ParamURI, "Procedure.instantiatesUri", "Instantiates external protocol or definition"),
		sp("location", ParamReference, "Procedure.location", "Where the procedure happened"),
		sp("part-of", ParamReference, "Procedure.partOf", "Part of referenced event"),
		sp("performer", ParamReference, "Procedure.performer.actor", "The reference to the practitioner"),
		sp("reason-code", ParamToken, "Procedure.reasonCode", "Coded reason procedure performed"),
		sp("reason-reference", ParamReference, "Procedure.reasonReference", "The justification that the procedure was performed"),
		sp("status", ParamToken, "Procedure.status", "preparation | in-progress | not-done | on-hold | stopped | completed | entered-in-error | unknown"),
	}, []Unsupported{
		{"instantiates-canonical", ParamReference, "Procedure.instantiatesCanonical", whyCanonical},
	}},
	{"DiagnosticReport", []*SearchParam{
		patientOf("DiagnosticReport", "subject", "The subject of the report if a patient"),
		sp("subject", ParamReference, "DiagnosticReport.subject", "The subject of the report"),
		sp("based-on", ParamReference, "DiagnosticReport.basedOn", "Reference to the service request."),
		sp("category", ParamToken, "DiagnosticReport.category", "Which diagnostic discipline/department created the report"),
		sp("code", ParamToken, "DiagnosticReport.code", "The code for the report, as opposed to codes for the atomic results, which are the names on the observation resource referred to from the result"),
		sp("conclusion", ParamToken, "DiagnosticReport.conclusionCode", "A coded conclusion (interpretation/impression) on the report"),
		sp("date", ParamDate, "DiagnosticReport.effective", "The clinically relevant time of the report"),
		sp("encounter", ParamReference, "DiagnosticReport.encounter", "The Encounter when the order was made"),
		sp("identifier", ParamToken, "DiagnosticReport.identifier", "An identifier for the report"),
		sp("issued", ParamDate, "DiagnosticReport.issued", "When the report was issued"),
		sp("media", ParamReference, "DiagnosticReport.media.link", "A reference to the image source."),
		sp("performer", ParamReference, "DiagnosticReport.performer", "Who is responsible for the report"),
		sp("result", ParamReference, "DiagnosticReport.result", "Link to an atomic result (observation resource)"),
		sp("results-interpreter", ParamReference, "DiagnosticReport.resultsInterpreter", "Who was the source of the report"),
		sp("specimen", ParamReference, "DiagnosticReport.specimen", "The specimen details"),
		sp("status", ParamToken, "DiagnosticReport.status", "The status of the report"),
	}, nil},
	{"Encounter", []*SearchParam{
		patientOf("Encounter", "subject", "The patient or group present at the encounter"),
		sp("subject", ParamReference, "Encounter.subject", "The patient or group present at the encounter"),
		sp("account", ParamReference, "Encounter.account", "The set of accounts that may be used for billing for this Encounter"),
		sp("appointment", ParamReference, "Encounter.appointment", "The appointment that scheduled this encounter"),
		sp("based-on", ParamReference, "Encounter.basedOn", "The ServiceRequest that initiated this encounter"),
		sp("class", ParamToken, "Encounter.class", "Classification of patient encounter"),
		sp("date", ParamDate, "Encounter.period", "A date within the period the Encounter lasted"),
		sp("diagnosis", ParamReference, "Encounter.diagnosis.condition", "The diagnosis or procedure relevant to the encounter"),
		sp("episode-of-care", ParamReference, "Encounter.episodeOfCare", "Episode(s) of care that this encounter should be recorded against"),
		sp("identifier", ParamToken, "Encounter.identifier", "Identifier(s) by which this encounter is known"),
		sp("location", ParamReference, "Encounter.location.location", "Location the encounter takes place"),
		sp("location-period", ParamDate, "Encounter.location.period", "Time period during which the patient was present at the location"),
		sp("part-of", ParamReference, "Encounter.partOf", "Another Encounter this encounter is part of"),
		sp("participant", ParamReference, "Encounter.participant.individual", "Persons involved in the encounter other than the patient"),
		sp("participant-type", ParamToken, "Encounter.participant.type", "Role of participant in encounter"),
		sp("practitioner", ParamReference, "Encounter.participant.individual.where(resolve() is Practitioner)", "Persons involved in the encounter other than the patient"),
		sp("reason-code", ParamToken, "Encounter.reasonCode", "Coded reason the encounter takes place"),
		sp("reason-reference", ParamReference, "Encounter.reasonReference", "Reason the encounter takes place (reference)"),
		sp("service-provider", ParamReference, "Encounter.serviceProvider", "The organization (facility) responsible for this encounter"),
		sp("special-arrangement", ParamToken, "Encounter.hospitalization.specialArrangement", "Wheelchair, translator, stretcher, etc."),
		sp("status", ParamToken, "Encounter.status", "planned | arrived | triaged | in-progress | onleave | finished | cancelled +"),
		sp("type", ParamToken, "Encounter.type", "Specific type of encounter"),
	}, []Unsupported{
		{"length", ParamQuantity, "Encounter.length", whyQuantity},
	}},
	{"ServiceRequest", []*SearchParam{
		patientOf("ServiceRequest", "subject", "Search by subject - a patient"),
		sp("subject", ParamReference, "ServiceRequest.subject", "Search by subject"),
		sp("authored", ParamDate, "ServiceRequest.authoredOn", "Date request signed"),
		sp("based-on", ParamReference, "ServiceRequest.basedOn", "What request fulfills"),
		sp("body-site", ParamToken, "ServiceRequest.bodySite", "Where procedure is going to be done"),
		sp("category", ParamToken, "ServiceRequest.category", "Classification of service"),
		sp("code", ParamToken, "ServiceRequest.code", "What is being requested/ordered"),
		sp("encounter", ParamReference, "ServiceRequest.encounter", "An encounter in which this request is made"),
		sp("identifier", ParamToken, "ServiceRequest.identifier", "Identifiers assigned to this order"),
		sp("instantiates-uri", ParamURI, "ServiceRequest.instantiatesUri", "Instantiates external protocol or definition"),
		sp("intent", ParamToken, "ServiceRequest.intent", "proposal | plan | directive | order | original-order | reflex-order | filler-order | instance-order | option"),
		sp("occurrence", ParamDate, "ServiceRequest.occurrence", "When service should occur"),
		sp("performer", ParamReference, "ServiceRequest.performer", "Requested performer"),
		sp("performer-type", ParamToken, "ServiceRequest.performerType", "Performer role"),
		sp("priority", ParamToken, "ServiceRequest.priority", "routine | urgent | asap | stat"),
		sp("replaces", ParamReference, "ServiceRequest.replaces", "What request replaces"),
		sp("requester", ParamReference, "ServiceRequest.requester", "Who/what is requesting service"),
		sp("requisition", ParamToken, "ServiceRequest.requisition", "Composite Request ID"),
		sp("specimen", ParamReference, "ServiceRequest.specimen", "Specimen to be tested"),
		sp("status", ParamToken, "ServiceRequest.status", "draft | active | on-hold | revoked | completed | entered-in-error | unknown"),
	}, []Unsupported{
		{"instantiates-canonical", ParamReference, "ServiceRequest.instantiatesCanonical", whyCanonical},
	}},
	{"DocumentReference", []*SearchParam{
		patientOf("DocumentReference", "subject", "Who/what is the subject of the document"),
		sp("subject", ParamReference, "DocumentReference.subject", "Who/what is the subject of the document"),
		sp("authenticator", ParamReference, "DocumentReference.authenticator", "Who/what authenticated the document"),
		sp("author", ParamReference, "DocumentReference.author", "Who and/or what authored the document"),
		sp("category", ParamToken, "DocumentReference.category", "Categorization of document"),
		sp("contenttype", ParamToken, "DocumentReference.content.attachment.contentType", "Mime type of the content, with charset etc."),
		sp("custodian", ParamReference, "DocumentReference.custodian", "Organization which maintains the document"),
		sp("date", ParamDate, "DocumentReference.date", "When this document reference was created"),
		sp("description", ParamString, "DocumentReference.description", "Human-readable description"),
		sp("encounter", ParamReference, "DocumentReference.context.encounter", "Context of the document  content"),
		sp("event", ParamToken, "DocumentReference.context.event", "Main clinical acts documented"),
		sp("facility", ParamToken, "DocumentReference.context.facilityType", "Kind of facility where patient was seen"),
		sp("format", ParamToken, "DocumentReference.content.format", "Format/content rules for the document"),
		sp("identifier", ParamToken, "DocumentReference.masterIdentifier | DocumentReference.identifier", "Master Version Specific Identifier"),
		sp("language", ParamToken, "DocumentReference.content.attachment.language", "Human language of the content (BCP-47)"),
		sp("location", ParamURI, "DocumentReference.content.attachment.url", "Uri where the data can be found"),
		sp("period", ParamDate, "DocumentReference.context.period", "Time of service that is being documented"),
		sp("related", ParamReference, "DocumentReference.context.related", "Related identifiers or resources"),
		sp("relatesto", ParamReference, "DocumentReference.relatesTo.target", "Target of the relationship"),
		sp("relation", ParamToken, "DocumentReference.relatesTo.code", "replaces | transforms | signs | appends"),
		sp("security-label", ParamToken, "DocumentReference.securityLabel", "Document security-tags"),
		sp("setting", ParamToken, "DocumentReference.context.practiceSetting", "Additional details about where the content was created (e.g. clinical specialty)"),
		sp("status", ParamToken, "DocumentReference.status", "current | superseded | entered-in-error"),
		sp("type", ParamToken, "DocumentReference.type", "Kind of document (LOINC if possible)"),
	}, []Unsupported{
		{"relationship", "composite", "DocumentReference.relatesTo", whyComposite},
	}},
	{"Composition", []*SearchParam{
		patientOf("Composition", "subject", "Who and/or what the composition is about"),
		sp("subject", ParamReference, "Composition.subject", "Who and/or what the composition is about"),
		sp("attester", ParamReference, "Composition.attester.party", "Who attested the composition"),
		sp("author", ParamReference, "Composition.author", "Who and/or what authored the composition"),
		sp("category", ParamToken, "Composition.category", "Categorization of Composition"),
		sp("confidentiality", ParamToken, "Composition.confidentiality", "As defined by affinity domain"),
		sp("context", ParamToken, "Composition.event.code", "Code(s) that apply to the event being documented"),
		sp("date", ParamDate, "Composition.date", "Composition editing time"),
		sp("encounter", ParamReference, "Composition.encounter", "Context of the Composition"),
		sp("entry", ParamReference, "Composition.section.entry", "A reference to data that supports this section"),
		sp("identifier", ParamToken, "Composition.identifier", "Version-independent identifier for the Composition"),
		sp("period", ParamDate, "Composition.event.period", "The period covered by the documentation"),
		sp("related-id", ParamToken, "(Composition.relatesTo.target as Identifier)", "Target of the relationship"),
		sp("related-ref", ParamReference, "(Composition.relatesTo.target as Reference)", "Target of the relationship"),
		sp("section", ParamToken, "Composition.section.code", "Classification of section (recommended)"),
		sp("status", ParamToken, "Composition.status", "preliminary | final | amended | entered-in-error"),
		sp("title", ParamString, "Composition.title", "Human Readable name/title"),
		sp("type", ParamToken, "Composition.type", "Kind of composition (LOINC if possible)"),
	}, nil},
	{"Communication", []*SearchParam{
		patientOf("Communication", "subject", "Focus of message"),
		sp("subject", ParamReference, "Communication.subject", "Focus of message"),
		sp("based-on", ParamReference, "Communication.basedOn", "Request fulfilled by this communication"),
		sp("category", ParamToken, "Communication.category", "Message category"),
		sp("encounter", ParamReference, "Communication.encounter", "Encounter created as part of"),
		sp("identifier", ParamToken, "Communication.identifier", "Unique identifier"),
		sp("instantiates-uri", ParamURI, "Communication.instantiatesUri", "Instantiates external protocol or definition"),
		sp("medium", ParamToken, "Communication.medium", "A channel of communication"),
		sp("part-of", ParamReference, "Communication.partOf", "Part of this action"),
		sp("received", ParamDate, "Communication.received", "When received"),
		sp("recipient", ParamReference, "Communication.recipient", "Message recipient"),
		sp("sender", ParamReference, "Communication.sender", "Message sender"),
		sp("sent", ParamDate, "Communication.sent", "When sent"),
		sp("status", ParamToken, "Communication.status", "preparation | in-progress | not-done | on-hold | stopped | completed | entered-in-error | unknown"),
	}, []Unsupported{
		{"instantiates-canonical", ParamReference, "Communication.instantiatesCanonical", whyCanonical},
	}},
}

// clinicalShared are the R4 SearchParameters that several clinical types share under one canonical URL
// (clinical-patient, clinical-code, ...), by code and the types that use it.
var clinicalShared = map[string][]string{
	"patient": {"AllergyIntolerance", "Composition", "Condition", "DiagnosticReport", "DocumentReference", "Encounter",
		"MedicationStatement", "Observation", "Procedure", "ServiceRequest"},
	"code":       {"AllergyIntolerance", "Condition", "DiagnosticReport", "Observation", "Procedure", "ServiceRequest"},
	"date":       {"AllergyIntolerance", "Composition", "DiagnosticReport", "Encounter", "Observation", "Procedure"},
	"identifier": {"AllergyIntolerance", "Composition", "Condition", "DiagnosticReport", "DocumentReference", "Encounter", "Observation", "Procedure", "ServiceRequest"},
	"encounter":  {"Composition", "DiagnosticReport", "DocumentReference", "Observation", "Procedure", "ServiceRequest"},
	"type":       {"AllergyIntolerance", "Composition", "DocumentReference", "Encounter"},
}

// clinicalDefinition names the shared R4 definition of typ's parameter code, if it has one.
func clinicalDefinition(typ, code string) (string, bool) {
	if typ == "MedicationStatement" {
		switch code {
		case "patient", "identifier":
			return "clinical-" + code, true
		case "code", "medication", "status":
			return "medications-" + code, true
		}
	}
	for _, t := range clinicalShared[code] {
		if t == typ {
			return "clinical-" + code, true
		}
	}
	return "", false
}
