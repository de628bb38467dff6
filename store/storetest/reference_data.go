package storetest

import (
	"fmt"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// The dataset of the comparison with the reference (reference.go): a few dozen resources of six types
// that between them have what a query can trip on. Tokens with a system, without one, with a display,
// text-only and a system without a code; strings with several values, accents and case; dates of a day,
// a month, a year and with two entries; numbers; references local, absolute, to the wrong type, to
// deleted and to missing resources; parameters present on some resources only; resources updated (so
// that old values must no longer match), deleted, and deleted then created again; a reindex; AuditEvents
// appended through the chain, one of them pruned. Several writes share a millisecond, so that every
// tie-breaker is exercised. Keep it small: FerretDB scans whole collections.

// kind is how the generator builds predicates on a parameter.
type kind int

const (
	kToken kind = iota + 1
	kString
	kDate
	kNumber
	kRef
	kURI
)

// refSchema says, per type, the kind of each parameter the dataset indexes.
var refSchema = map[string]map[string]kind{
	"Organization": {"identifier": kToken, "name": kString},
	"Practitioner": {"identifier": kToken, "name": kString, "organization": kRef},
	"Patient": {"identifier": kToken, "name": kString, "gender": kToken, "birthdate": kDate, "language": kToken,
		"general-practitioner": kRef, "organization": kRef, "marital-status": kToken},
	"Observation":  {"code": kToken, "subject": kRef, "value-quantity": kNumber, "date": kDate, "status": kToken, "performer": kRef},
	"Immunization": {"patient": kRef, "vaccine-code": kToken, "date": kDate, "performer": kRef},
	store.AuditEventType: {"date": kDate, "patient": kRef, "agent": kRef, "entity": kRef, "action": kToken,
		"outcome": kToken, "subtype": kToken, "entity-type": kToken, "altid": kURI, "agent-name": kString},
}

// refTypes lists the types of refSchema in a fixed order.
var refTypes = []string{"Organization", "Practitioner", "Patient", "Observation", "Immunization", store.AuditEventType}

const (
	sysODS    = "urn:ods"
	sysGMC    = "urn:gmc"
	sysNHS    = "urn:nhs"
	sysMRN    = "urn:mrn"
	sysLegacy = "urn:legacy"
	sysGender = "urn:gender"
	sysLang   = "urn:lang"
	sysLOINC  = "http://loinc.org"
	sysSCT    = "http://snomed.info/sct"
	sysStatus = "urn:status"
	sysAction = "http://hl7.org/fhir/audit-event-action"
	sysOutc   = "http://hl7.org/fhir/audit-event-outcome"
	sysRest   = "http://hl7.org/fhir/restful-interaction"
	sysDCM    = "http://dicom.nema.org/resources/ontology/DCM"
)

func dayRange(y int, m time.Month, d int) store.IndexEntry {
	lo := time.Date(y, m, d, 0, 0, 0, 0, time.UTC).UnixMilli()
	return store.IndexEntry{Low: lo, High: lo + day}
}

func monthRange(y int, m time.Month) store.IndexEntry {
	lo := time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
	return store.IndexEntry{Low: lo.UnixMilli(), High: lo.AddDate(0, 1, 0).UnixMilli() - 1}
}

func yearRange(y int) store.IndexEntry {
	lo := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
	return store.IndexEntry{Low: lo.UnixMilli(), High: lo.AddDate(1, 0, 0).UnixMilli() - 1}
}

func dateEntry(param string, r store.IndexEntry) store.IndexEntry {
	r.Param = param
	return r
}

func numberEntry(param string, v int64) store.IndexEntry {
	return store.IndexEntry{Param: param, Low: v, High: v}
}

func nameEntry(param, raw string) store.IndexEntry {
	norm := strings.NewReplacer("É", "e", "é", "e").Replace(raw)
	return str(param, raw, strings.ToLower(norm))
}

// refStep is one change to the dataset, made alike on the reference and on the store under test.
type refStep struct {
	ms    int // epoch+ms
	typ   string
	id    string
	del   bool
	index []store.IndexEntry
	// reindex, when set, is a SetIndex of the current version instead of a new one.
	reindex bool
}

func refPut(ms int, typ, id string, index ...store.IndexEntry) refStep {
	return refStep{ms: ms, typ: typ, id: id, index: index}
}

func refDelete(ms int, typ, id string) refStep { return refStep{ms: ms, typ: typ, id: id, del: true} }

func refReindex(typ, id string, index ...store.IndexEntry) refStep {
	return refStep{typ: typ, id: id, index: index, reindex: true}
}

// refSteps is the dataset, in the order it is written.
func refSteps() []refStep {
	return []refStep{
		refPut(1, "Organization", "org1", token("identifier", sysODS, "A1"), nameEntry("name", "North Surgery")),
		refPut(1, "Organization", "org2", token("identifier", sysODS, "B2"), nameEntry("name", "South Practice")),
		refPut(2, "Organization", "org3", token("identifier", sysODS, "C3"), nameEntry("name", "West Clinic")),
		refPut(3, "Organization", "org4", token("identifier", sysODS, "D4"), nameEntry("name", "Old Name")),

		refPut(4, "Practitioner", "dr1", token("identifier", sysGMC, "G1"), token("identifier", sysNHS, "111"), nameEntry("name", "Ann Lee"), ref("organization", "Organization/org1")),
		refPut(4, "Practitioner", "dr2", token("identifier", sysGMC, "G2"), nameEntry("name", "Bob Stone"), ref("organization", "Organization/org2")),
		refPut(5, "Practitioner", "dr3", nameEntry("name", "Cy Young"), ref("organization", "Organization/org3")),
		refPut(6, "Practitioner", "dr4", token("identifier", sysGMC, "G4"), nameEntry("name", "Di Gone")),

		refPut(10, "Patient", "p1", token("identifier", sysNHS, "111"), nameEntry("name", "Alice Smith"), token("gender", sysGender, "female"),
			dateEntry("birthdate", dayRange(1980, 1, 1)), codingText("language", sysLang, "en-GB", "english (united kingdom)"),
			ref("general-practitioner", "Practitioner/dr1"), ref("organization", "Organization/org1"),
			store.IndexEntry{Param: "marital-status", Text: "married"}),
		refPut(11, "Patient", "p2", token("identifier", sysNHS, "222"), token("identifier", sysMRN, "A1"), nameEntry("name", "Bob Jones"), nameEntry("name", "Robert Jones"),
			token("gender", sysGender, "male"), dateEntry("birthdate", dayRange(1990, 6, 15)), codingText("language", sysLang, "fr", "french"),
			ref("general-practitioner", "Practitioner/dr2"), ref("organization", "Organization/org2")),
		refPut(11, "Patient", "p3", token("identifier", sysMRN, "111"), token("identifier", sysLegacy, ""), nameEntry("name", "Alicia Keys"),
			token("gender", sysGender, "female"), dateEntry("birthdate", yearRange(1980)), codingText("language", sysLang, "en-US", "english (united states)"),
			ref("general-practitioner", "http://example.org/fhir/Practitioner/9"), ref("organization", "Organization/org1"),
			codingText("marital-status", "urn:marital", "M", "married")),
		refPut(12, "Patient", "p4", nameEntry("name", "Zed")),
		refPut(13, "Patient", "p5", token("identifier", sysNHS, "555"), nameEntry("name", "Alice Gone"), token("gender", sysGender, "female")),
		refPut(14, "Patient", "p6", nameEntry("name", "Old"), token("gender", sysGender, "other")),
		refPut(15, "Patient", "p7", nameEntry("name", "Eve")),
		refPut(16, "Patient", "p8", token("identifier", sysNHS, "888"), nameEntry("name", "Émile Zola"), token("gender", sysGender, "male"),
			dateEntry("birthdate", dayRange(1960, 2, 29)), dateEntry("birthdate", dayRange(1970, 12, 31)), ref("general-practitioner", "Practitioner/missing")),
		refPut(16, "Patient", "p9", token("identifier", sysMRN, "999"), token("identifier", sysNHS, "999"), nameEntry("name", "bob"),
			token("gender", sysGender, "male"), ref("organization", "Organization/org2"), dateEntry("birthdate", monthRange(1990, 6))),

		refPut(20, "Observation", "o1", codingText("code", sysLOINC, "1234", "blood pressure"), ref("subject", "Patient/p1"),
			numberEntry("value-quantity", 120), dateEntry("date", dayRange(2020, 1, 1)), token("status", sysStatus, "final")),
		refPut(21, "Observation", "o2", codingText("code", sysLOINC, "5678", "heart rate"), ref("subject", "Patient/p2"),
			numberEntry("value-quantity", 80), dateEntry("date", dayRange(2020, 2, 1)), token("status", sysStatus, "final")),
		refPut(22, "Observation", "o3", codingText("code", sysLOINC, "5678", "heart rate"), ref("subject", "Patient/p1"),
			numberEntry("value-quantity", 95), dateEntry("date", yearRange(2021)), token("status", sysStatus, "amended")),
		refPut(23, "Observation", "o4", token("code", sysLOINC, "1234"), ref("subject", "Patient/p3"), numberEntry("value-quantity", 150)),
		refPut(24, "Observation", "o5", token("code", sysLOINC, "1234"), ref("subject", "Patient/p1"), numberEntry("value-quantity", 130), token("status", sysStatus, "final")),
		refPut(24, "Observation", "o6", token("code", sysLOINC, "1234"), ref("subject", "Group/g1")),
		refPut(25, "Observation", "o7", token("code", "", "9999"), ref("subject", "Patient/p5"), token("status", sysStatus, "preliminary")),
		refPut(26, "Observation", "o8", codingText("code", sysLOINC, "5678", "pulse"), ref("subject", "Patient/p6"), ref("performer", "Practitioner/dr2"),
			numberEntry("value-quantity", 60), dateEntry("date", monthRange(2020, 2))),
		refPut(27, "Observation", "o9", token("code", sysLOINC, "1234"), ref("subject", "Patient/p7"), numberEntry("value-quantity", 100)),

		refPut(30, "Immunization", "i1", ref("patient", "Patient/p1"), token("vaccine-code", sysSCT, "flu"), dateEntry("date", dayRange(2021, 10, 1))),
		refPut(30, "Immunization", "i2", ref("patient", "Patient/p2"), token("vaccine-code", sysSCT, "flu"), dateEntry("date", dayRange(2021, 10, 2))),
		refPut(31, "Immunization", "i3", ref("patient", "Patient/p3"), token("vaccine-code", sysSCT, "mmr"), dateEntry("date", dayRange(2000, 5, 5))),
		refPut(32, "Immunization", "i4", ref("patient", "Patient/p99")),
		refPut(33, "Immunization", "i5", ref("patient", "Patient/p5"), token("vaccine-code", sysSCT, "flu")),
		refPut(34, "Immunization", "i6", ref("patient", "Practitioner/dr1")),
		refPut(35, "Immunization", "i7", ref("patient", "Patient/p6"), token("vaccine-code", sysSCT, "flu"), ref("performer", "Practitioner/dr1"),
			dateEntry("date", dayRange(2021, 10, 1))),

		// Updates, deletes and a re-creation, after everything else exists.
		refPut(40, "Organization", "org4", token("identifier", sysODS, "D4"), nameEntry("name", "East Health")),
		refDelete(41, "Organization", "org3"),
		refDelete(41, "Practitioner", "dr4"),
		refDelete(42, "Patient", "p5"),
		refPut(43, "Patient", "p6", nameEntry("name", "Dana Old"), token("gender", sysGender, "female"), dateEntry("birthdate", monthRange(1975, 3)),
			ref("general-practitioner", "Practitioner/dr3"), ref("general-practitioner", "Practitioner/dr1"), ref("organization", "Organization/org4")),
		refDelete(44, "Patient", "p7"),
		refPut(45, "Patient", "p7", nameEntry("name", "Eve Again"), token("gender", "", "unknown"), ref("general-practitioner", "Practitioner/dr4"),
			dateEntry("birthdate", dayRange(2000, 1, 1))),
		refDelete(46, "Observation", "o4"),
		refPut(47, "Observation", "o9", token("code", sysLOINC, "1234"), ref("subject", "Patient/p7"), numberEntry("value-quantity", 110), token("status", sysStatus, "final")),
		refReindex("Patient", "p4", nameEntry("name", "Zed"), token("identifier", sysNHS, "444")),
	}
}

var clientNames = []string{"GP System", "Patient App", "Émis Web"}

// refAudit is the AuditEvents appended after the resources: each as fhir.AuditEventIndex shapes them
// (a date that is the record's time, references for who and on what, codes). The first is then pruned.
func refAudit() []audit.Record {
	rec := func(n, ms int, action, outcome, subtype, patient, agent string, entities ...string) audit.Record {
		when := at(100 + ms)
		id := fmt.Sprintf("a%d", n)
		idx := []store.IndexEntry{
			{Param: "date", Low: when.UnixMilli(), High: when.UnixMilli()},
			token("action", sysAction, action),
			token("outcome", sysOutc, outcome),
			token("subtype", sysRest, subtype),
			codingText("entity-type", sysDCM, "110180", "participant object id type"),
			ref("agent", agent),
			ref("source", "Device/i-1"),
			{Param: "altid", Value: "sub-" + agent},
			nameEntry("agent-name", clientNames[n%len(clientNames)]),
		}
		if patient != "" {
			idx = append(idx, ref("patient", patient))
		}
		for _, e := range entities {
			idx = append(idx, ref("entity", e))
		}
		return audit.Record{ID: id, Recorded: when,
			Body:  fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1"},"action":%q}`, id, action),
			Index: idx}
	}
	return []audit.Record{
		rec(1, 1, "R", "0", "read", "Patient/p2", "Practitioner/dr2", "Patient/p2"),
		rec(2, 2, "R", "0", "read", "Patient/p1", "Practitioner/dr1", "Patient/p1"),
		rec(3, 3, "C", "0", "create", "Patient/p1", "Practitioner/dr1", "Observation/o5"),
		rec(4, 3, "E", "4", "search-type", "", "Device/client"),
		rec(5, 5, "U", "0", "update", "Patient/p6", "Practitioner/dr2", "Patient/p6", "Observation/o8"),
		rec(6, 5, "R", "8", "read", "Patient/p3", "Patient/p3", "Patient/p3"),
	}
}
