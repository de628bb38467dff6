package api_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// obj and arr keep the fixtures below readable.
type obj = map[string]any
type arr = []any

func ref(typ, id string) obj { return obj{"reference": typ + "/" + id} }

func coding(system, code, display string) obj {
	c := obj{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return c
}

const (
	sct     = "http://snomed.info/sct"
	v20203  = "http://terminology.hl7.org/CodeSystem/v2-0203"
	nhsSys  = "https://fhir.nhs.uk/Id/nhs-number"
	flu     = "39114911000001105"
	profile = "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"
)

// searchWorld is a small practice: an organisation, a GP, a site, three patients and their immunisations,
// prescriptions, schedules, slots and an appointment, with the edge cases of the spec in their values
// (accents, partial dates, timezones, an open Period, identifiers without a system, several values).
type searchWorld struct {
	org, prac, loc           string
	pA, pB, pC               string
	iA1, iA2, iB1            string
	mA, mB                   string
	sch1, sch2, slot1, slot2 string
	appt                     string
}

func newSearchWorld(t *testing.T, ts *testServer) *searchWorld {
	t.Helper()
	w := &searchWorld{}
	w.org = ts.create("Organization", obj{"resourceType": "Organization", "name": "Lancaster Medical Practice",
		"identifier": arr{obj{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "A81001"}}})
	w.prac = ts.create("Practitioner", obj{"resourceType": "Practitioner",
		"identifier": arr{obj{"system": "https://fhir.hl7.org.uk/Id/gmc-number", "value": "G1234567"}},
		"name":       arr{obj{"family": "Ärnström", "given": arr{"Zoë"}, "prefix": arr{"Dr"}}}})
	w.loc = ts.create("Location", obj{"resourceType": "Location", "name": "Main surgery", "managingOrganization": ref("Organization", w.org)})

	a := patient("Smith", "9000000009")
	a["name"] = arr{obj{"family": "Smith", "given": arr{"Zoë", "Ann"}}}
	a["identifier"] = arr{
		obj{"system": nhsSys, "value": "9000000009"},
		obj{"type": obj{"coding": arr{coding(v20203, "MR", "")}}, "system": "urn:example:mrn", "value": "MRN1"},
	}
	a["telecom"] = arr{obj{"system": "phone", "value": "01524 000001"}, obj{"system": "email", "value": "ann@example.org"}}
	a["address"] = arr{obj{"line": arr{"1 Dalton Square"}, "postalCode": "LA1 4AP"}}
	a["generalPractitioner"] = arr{ref("Practitioner", w.prac)}
	a["managingOrganization"] = ref("Organization", w.org)
	a["active"] = true
	a["text"] = obj{"status": "generated", "div": `<div xmlns="http://www.w3.org/1999/xhtml">Ann Smith</div>`}
	a["meta"] = obj{"tag": arr{coding("urn:example:tags", "vip", "")}, "profile": arr{profile},
		"security": arr{coding("http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "R", "")}}
	w.pA = ts.create("Patient", a)

	b := patient("Smythe", "9912003071")
	b["gender"], b["birthDate"], b["active"] = "male", "1990", false
	b["address"] = arr{obj{"postalCode": "LA2 6XY"}}
	w.pB = ts.create("Patient", b)

	c := patient("Ångström", "")
	c["birthDate"] = "1980-12"
	c["identifier"] = arr{obj{"value": "LOCAL1"}}
	w.pC = ts.create("Patient", c)

	imm := func(pat, code, display, when, status, lot string) string {
		vc := obj{"coding": arr{coding(sct, code, display)}}
		if display != "" {
			vc["text"] = "Flu vaccine"
		}
		return ts.create("Immunization", obj{"resourceType": "Immunization", "status": status, "vaccineCode": vc,
			"patient": ref("Patient", pat), "occurrenceDateTime": when, "lotNumber": lot,
			"identifier": arr{obj{"system": "urn:example:imm", "value": lot}}})
	}
	w.iA1 = imm(w.pA, flu, "Fluenz Tetra", "2024-03-01T10:00:00+01:00", "completed", "AB123")
	w.iA2 = imm(w.pA, "1324681000000101", "", "2023-10-15", "completed", "CV-9")
	w.iB1 = imm(w.pB, flu, "", "2024-03-02T23:30:00-05:00", "not-done", "AB999")

	w.mA = ts.create("MedicationRequest", obj{"resourceType": "MedicationRequest", "status": "active", "intent": "order",
		"medicationCodeableConcept": obj{"coding": arr{coding(sct, "319283006", "Amlodipine 5mg tablets")}},
		"subject":                   ref("Patient", w.pA), "authoredOn": "2024-01-10", "requester": ref("Practitioner", w.prac),
		"identifier": arr{obj{"system": "urn:example:rx", "value": "RX1"}}})
	w.mB = ts.create("MedicationRequest", obj{"resourceType": "MedicationRequest", "status": "stopped", "intent": "plan",
		"medicationCodeableConcept": obj{"text": "Ramipril 2.5mg capsules"},
		"subject":                   ref("Patient", w.pB), "authoredOn": "2023-06"})

	w.sch1 = ts.create("Schedule", obj{"resourceType": "Schedule", "active": true,
		"actor": arr{ref("Practitioner", w.prac), ref("Location", w.loc)}, "planningHorizon": obj{"start": "2024-03-01"},
		"identifier": arr{obj{"system": "urn:example:sch", "value": "S1"}}})
	w.sch2 = ts.create("Schedule", obj{"resourceType": "Schedule", "active": false,
		"actor": arr{ref("Location", w.loc)}, "planningHorizon": obj{"start": "2024-01-01", "end": "2024-01-31"}})
	slot := func(status, start, end string) string {
		return ts.create("Slot", obj{"resourceType": "Slot", "schedule": ref("Schedule", w.sch1), "status": status,
			"start": start, "end": end, "serviceType": arr{obj{"coding": arr{coding("urn:example:service", "gp", "GP consultation")}}}})
	}
	w.slot1 = slot("free", "2024-03-04T09:00:00Z", "2024-03-04T09:10:00Z")
	w.slot2 = slot("busy", "2024-03-04T09:10:00Z", "2024-03-04T09:20:00Z")
	w.appt = ts.create("Appointment", obj{"resourceType": "Appointment", "status": "booked",
		"start": "2024-03-04T09:10:00Z", "end": "2024-03-04T09:20:00Z", "slot": arr{ref("Slot", w.slot2)},
		"serviceType":     arr{obj{"coding": arr{coding("urn:example:service", "gp", "GP consultation")}}},
		"appointmentType": obj{"coding": arr{coding("http://terminology.hl7.org/CodeSystem/v2-0276", "ROUTINE", "")}},
		"participant": arr{
			obj{"actor": ref("Patient", w.pA), "status": "accepted"},
			obj{"actor": ref("Practitioner", w.prac), "status": "accepted"},
			obj{"actor": ref("Location", w.loc), "status": "accepted"},
		}})
	return w
}

func TestSearchParameterTypesAndModifiers(t *testing.T) {
	ts := newTestServer(t)
	w := newSearchWorld(t, ts)
	q := url.QueryEscape
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		// string
		{"string matches the start of a name ignoring case", "/Patient?family=SMI", []string{w.pA}},
		{"string prefix matches several names", "/Patient?family=sm", sorted(w.pA, w.pB)},
		{"string ignores accents in the stored name", "/Patient?family=angstrom", []string{w.pC}},
		{"string ignores accents in the search value", "/Patient?family=" + q("ÅNGST"), []string{w.pC}},
		{"string does not match the middle of a name", "/Patient?family=mith", nil},
		{"string :exact matches the whole name with its case", "/Patient?family:exact=Smith", []string{w.pA}},
		{"string :exact is case-sensitive", "/Patient?family:exact=smith", nil},
		{"string :exact keeps accents", "/Patient?family:exact=" + q("Ångström"), []string{w.pC}},
		{"string :contains matches the middle", "/Patient?family:contains=NGSTR", []string{w.pC}},
		{"name covers given names, and any of several", "/Patient?name=zoe", []string{w.pA}},
		{"given matches a second given name", "/Patient?given=ann", sorted(w.pA, w.pB, w.pC)},
		{"address-postalcode", "/Patient?address-postalcode=la1", []string{w.pA}},
		{"practitioner name with accents and prefix", "/Practitioner?name=dr", []string{w.prac}},
		{"practitioner family", "/Practitioner?family=arn", []string{w.prac}},
		{"organization name", "/Organization?name=lancaster%20med", []string{w.org}},
		{"lot-number", "/Immunization?lot-number=ab", sorted(w.iA1, w.iB1)},

		// token
		{"identifier system|value", "/Patient?identifier=" + nhsSys + "|9000000009", []string{w.pA}},
		{"identifier value in any system", "/Patient?identifier=9912003071", []string{w.pB}},
		{"identifier |value matches only identifiers without a system", "/Patient?identifier=|LOCAL1", []string{w.pC}},
		{"identifier |value does not match one with a system", "/Patient?identifier=|9000000009", nil},
		{"identifier system| matches every value in the system", "/Patient?identifier=" + nhsSys + "|", sorted(w.pA, w.pB)},
		{"identifier :not", "/Patient?identifier:not=" + nhsSys + "|9000000009", sorted(w.pB, w.pC)},
		{"identifier :of-type", "/Patient?identifier:of-type=" + v20203 + "|MR|MRN1", []string{w.pA}},
		{"identifier :of-type with another value", "/Patient?identifier:of-type=" + v20203 + "|MR|9000000009", nil},
		{"code with its implicit system", "/Patient?gender=http://hl7.org/fhir/administrative-gender|male", []string{w.pB}},
		{"code without system", "/Patient?gender=female", sorted(w.pA, w.pC)},
		{"code :not", "/Patient?gender:not=female", []string{w.pB}},
		{"boolean", "/Patient?active=false", []string{w.pB}},
		{"phone is the contact value", "/Patient?phone=" + q("01524 000001"), []string{w.pA}},
		{"email", "/Patient?email=ann@example.org", []string{w.pA}},
		{"telecom covers every contact point", "/Patient?telecom=ann@example.org", []string{w.pA}},
		{"telecom system|value: the system is ContactPoint.system", "/Patient?telecom=phone|" + q("01524 000001"), []string{w.pA}},
		{"telecom with another system does not match", "/Patient?telecom=email|" + q("01524 000001"), nil},
		{"phone with its system", "/Patient?phone=phone|" + q("01524 000001"), []string{w.pA}},
		{"email with its system", "/Patient?email=email|ann@example.org", []string{w.pA}},
		{"telecom system| matches every value of that system", "/Patient?telecom=email|", []string{w.pA}},
		{"_tag", "/Patient?_tag=urn:example:tags|vip", []string{w.pA}},
		{"_security", "/Patient?_security=R", []string{w.pA}},
		{"_profile", "/Patient?_profile=" + q(profile), []string{w.pA}},
		{"CodeableConcept system|code", "/Immunization?vaccine-code=" + sct + "|" + flu, sorted(w.iA1, w.iB1)},
		{"CodeableConcept :text matches the display", "/Immunization?vaccine-code:text=fluenz", []string{w.iA1}},
		{"CodeableConcept :text matches the concept text", "/Immunization?vaccine-code:text=" + q("flu vacc"), []string{w.iA1}},
		{"CodeableConcept :text on a text-only concept", "/MedicationRequest?code:text=ramipril", []string{w.mB}},
		{"status", "/Immunization?status=not-done", []string{w.iB1}},
		{"status :not", "/Immunization?status:not=not-done", sorted(w.iA1, w.iA2)},
		{"MedicationRequest code", "/MedicationRequest?code=319283006", []string{w.mA}},
		{"MedicationRequest identifier", "/MedicationRequest?identifier=urn:example:rx|RX1", []string{w.mA}},
		{"Appointment service-type", "/Appointment?service-type=urn:example:service|gp", []string{w.appt}},
		{"Appointment appointment-type", "/Appointment?appointment-type=ROUTINE", []string{w.appt}},
		{"Slot status", "/Slot?status=free", []string{w.slot1}},
		{"Slot service-type :text", "/Slot?service-type:text=gp", sorted(w.slot1, w.slot2)},
		{"Schedule active", "/Schedule?active=true", []string{w.sch1}},
		{"Schedule identifier", "/Schedule?identifier=S1", []string{w.sch1}},

		// date
		{"a year matches dates within it", "/Patient?birthdate=1980", sorted(w.pA, w.pC)},
		{"a month matches dates within it", "/Patient?birthdate=1980-05", []string{w.pA}},
		{"a day does not match a stored year that is wider", "/Patient?birthdate=1990-06-01", nil},
		{"a stored year matches the same year", "/Patient?birthdate=1990", []string{w.pB}},
		{"ne", "/Patient?birthdate=ne1980", []string{w.pB}},
		{"lt", "/Patient?birthdate=lt1985", sorted(w.pA, w.pC)},
		{"gt", "/Patient?birthdate=gt1985", []string{w.pB}},
		{"ge includes the value itself", "/Patient?birthdate=ge1980-12", sorted(w.pB, w.pC)},
		{"le includes the value itself", "/Patient?birthdate=le1980-05-17", []string{w.pA}},
		{"sa", "/Patient?birthdate=sa1980-06", sorted(w.pB, w.pC)},
		{"eb", "/Patient?birthdate=eb1985", sorted(w.pA, w.pC)},
		{"ap", "/Immunization?date=ap2024-03-01", sorted(w.iA1, w.iB1)},
		{"an offset is honoured: 10:00+01:00 is 09:00Z on the 1st", "/Immunization?date=2024-03-01", []string{w.iA1}},
		{"an offset moves a time to the next UTC day", "/Immunization?date=2024-03-03", []string{w.iB1}},
		{"the local day of a time with an offset is not its UTC day", "/Immunization?date=2024-03-02", nil},
		{"a search value with an offset", "/Immunization?date=ge2024-03-01T10:00:00" + q("+01:00"), sorted(w.iA1, w.iB1)},
		{"an unencoded + in an offset", "/Immunization?date=gt2024-03-01T10:00:00+01:00", []string{w.iB1}},
		{"a date without time matches a dateTime within it", "/Immunization?date=2023-10", []string{w.iA2}},
		{"a Period without end continues for ever", "/Schedule?date=gt2030", []string{w.sch1}},
		{"a Period without end starts at its start", "/Schedule?date=lt2024-02-01", []string{w.sch2}},
		{"sa on Periods", "/Schedule?date=sa2024-02-01", []string{w.sch1}},
		{"eb on Periods", "/Schedule?date=eb2024-02-01", []string{w.sch2}},
		{"eq does not match a Period wider than the value", "/Schedule?date=2024-03-05", nil},
		{"eq matches a Period within the value", "/Schedule?date=2024-01", []string{w.sch2}},
		{"authoredon month within a year", "/MedicationRequest?authoredon=2023", []string{w.mB}},
		{"Appointment date", "/Appointment?date=2024-03-04", []string{w.appt}},
		{"Slot start to the second", "/Slot?start=2024-03-04T09:00:00Z", []string{w.slot1}},

		// reference
		{"reference :Type modifier with an id", "/MedicationRequest?subject:Patient=" + w.pA, []string{w.mA}},
		{"reference with several targets by bare id", "/MedicationRequest?requester=" + w.prac, []string{w.mA}},
		{"Appointment actor Location", "/Appointment?actor=Location/" + w.loc, []string{w.appt}},
		{"Appointment practitioner", "/Appointment?practitioner=" + w.prac, []string{w.appt}},
		{"Appointment patient", "/Appointment?patient=" + w.pA, []string{w.appt}},
		{"Appointment patient ignores other actors", "/Appointment?patient=" + w.prac, nil},
		{"Appointment location", "/Appointment?location=" + w.loc, []string{w.appt}},
		{"Appointment slot", "/Appointment?slot=Slot/" + w.slot2, []string{w.appt}},
		{"Schedule actor", "/Schedule?actor=Practitioner/" + w.prac, []string{w.sch1}},
		{"Slot schedule", "/Slot?schedule=" + w.sch1, sorted(w.slot1, w.slot2)},
		{"general-practitioner", "/Patient?general-practitioner=Practitioner/" + w.prac, []string{w.pA}},
		{"absolute reference under this server's base", "/Patient?organization=" + q(ts.URL+"/Organization/"+w.org), []string{w.pA}},

		// chains
		{"chain with a type", "/MedicationRequest?subject:Patient.identifier=" + nhsSys + "|9000000009", []string{w.mA}},
		{"chain without a type", "/Immunization?patient.name=smyth", []string{w.iB1}},
		{"chain value with OR", "/Immunization?patient.identifier=9000000009,9912003071", sorted(w.iA1, w.iA2, w.iB1)},
		{"chain two levels", "/Immunization?patient.organization.name=lancaster", sorted(w.iA1, w.iA2)},
		{"chain with a modifier at the end", "/Immunization?patient.family:exact=Smythe", []string{w.iB1}},
		{"chain through a reference with several targets", "/Appointment?actor.name=" + q("ärn"), []string{w.appt}},
		{"chain into a date", "/MedicationRequest?subject.birthdate=1990", []string{w.mB}},

		// _has
		{"_has", "/Patient?_has:Immunization:patient:vaccine-code=" + sct + "|" + flu, sorted(w.pA, w.pB)},
		{"_has on status", "/Patient?_has:Immunization:patient:status=not-done", []string{w.pB}},
		{"_has through another reference", "/Patient?_has:MedicationRequest:subject:intent=plan", []string{w.pB}},
		{"_has nested", "/Practitioner?_has:Patient:general-practitioner:_has:Immunization:patient:lot-number=cv", []string{w.prac}},
		{"_has with a chain inside", "/Organization?_has:Patient:organization:_has:MedicationRequest:subject:code:text=amlo", []string{w.org}},

		// :missing on every type of parameter
		{":missing=true on a reference", "/Patient?general-practitioner:missing=true", sorted(w.pB, w.pC)},
		{":missing=false on a reference", "/MedicationRequest?requester:missing=false", []string{w.mA}},
		{":missing=true on a token", "/Patient?_tag:missing=true", sorted(w.pB, w.pC)},
		{":missing on a string", "/Patient?address-postalcode:missing=true", []string{w.pC}},
		{":missing on a date", "/Patient?birthdate:missing=false", sorted(w.pA, w.pB, w.pC)},
		{":missing on a uri", "/Patient?_profile:missing=false", []string{w.pA}},

		// OR and AND
		{"comma is OR", "/Patient?family=smith,ångström", sorted(w.pA, w.pC)},
		{"different parameters are ANDed", "/Patient?family=sm&gender=male", []string{w.pB}},
		{"a repeated parameter is ANDed", "/Patient?family=sm&family=smy", []string{w.pB}},
		{"an escaped comma is part of the value", "/Patient?family=smith\\,x", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK)
			b := r.JSON(t)
			got := entryIDs(t, b)
			if strings.Join(sortedSlice(got), ",") != strings.Join(tt.want, ",") {
				t.Errorf("%s: got %v, want %v", tt.query, got, tt.want)
			}
			if oo := outcomeEntry(b); oo != nil {
				t.Errorf("%s: unexpected outcome entry %v", tt.query, oo)
			}
		})
	}
}

func TestSearchMalformedValuesAre400NamingParameterAndValue(t *testing.T) {
	ts := newTestServer(t)
	tests := []struct {
		name, query, mention string
	}{
		{"a date that is not a date", "/Patient?birthdate=foo", `not a FHIR date, dateTime or instant: "foo"`},
		{"an unknown date prefix", "/Patient?birthdate=xx1980", "xx"},
		{"an impossible day", "/Patient?birthdate=1980-02-30", "birthdate=1980-02-30"},
		{"a modifier strings do not have", "/Patient?family:fuzzy=x", "fuzzy"},
		{"a modifier dates do not have", "/Patient?birthdate:exact=1980", "birthdate"},
		{":of-type on a parameter that is not an identifier", "/Patient?gender:of-type=a|b|c", "gender"},
		{":of-type without three parts", "/Patient?identifier:of-type=MR|1", "identifier:of-type=MR|1"},
		{"a boolean that is neither", "/Patient?active=maybe", "active=maybe"},
		{":missing with another value", "/Patient?family:missing=perhaps", "perhaps"},
		{"a token with a bar only", "/Patient?identifier=|", "identifier"},
		{"a reference to a type that is not a target", "/Immunization?patient=Organization/1", "Organization"},
		{"a :Type modifier that is not a target", "/Immunization?patient:Organization=1", "Organization"},
		{"a chain on a token parameter", "/Immunization?status.name=x", "status"},
		{"a chain into a type that is not a target", "/MedicationRequest?subject:Organization.name=x", "Organization"},
		{"a chain too deep", "/Patient?_has:Immunization:patient:patient._has:Immunization:patient:patient._has:Immunization:patient:patient.name=x", "deep"},
		{"_has with too few parts", "/Patient?_has:Immunization:patient=x", "_has"},
		{"_has through a parameter that is not a reference", "/Patient?_has:Immunization:status:lot-number=x", "status"},
		{"_has through a reference that cannot point at the type", "/Organization?_has:Immunization:patient:status=x", "patient"},
		{"_has with a bad inner value", "/Patient?_has:Immunization:patient:date=soon", "soon"},
		{"_count below zero", "/Patient?_count=-1", "_count"},
		{"_sort on an unknown parameter", "/Patient?_sort=shoe-size", "shoe-size"},
		{"_sort naming a key twice", "/Patient?_sort=family,-family", "family"},
		{"_summary with an unknown value", "/Patient?_summary=short", "short"},
		{"_elements with a bad name", "/Patient?_elements=9x", "9x"},
		{"_summary and _elements together", "/Patient?_summary=true&_elements=name", "_elements"},
		{"_include without a parameter", "/Immunization?_include=Immunization", "_include=Immunization"},
		{"_include of a parameter that is not a reference", "/Immunization?_include=Immunization:status", "status"},
		{"_include with a target the reference cannot have", "/Immunization?_include=Immunization:patient:Organization", "Organization"},
		{"_include with an unknown modifier", "/Immunization?_include:deep=Immunization:patient", "deep"},
		{"_revinclude of a parameter that is not a reference", "/Patient?_revinclude=Immunization:lot-number", "lot-number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.query, nil), http.StatusBadRequest)
			iss := r.issue(t)
			if iss["code"] != "value" && iss["code"] != "not-supported" && iss["code"] != "invalid" && iss["code"] != "too-costly" {
				t.Errorf("issue code %v", iss["code"])
			}
			if d, _ := iss["diagnostics"].(string); !strings.Contains(d, tt.mention) {
				t.Errorf("diagnostics %q do not mention %q", d, tt.mention)
			}
		})
	}
}

func TestSearchUnsupportedParametersLenientOrStrict(t *testing.T) {
	ts := newTestServer(t)
	pat := ts.create("Patient", patient("Lenient", ""))
	tests := []struct {
		name, query, ignored string
	}{
		{"an unknown parameter", "/Patient?shoe-size=9&family=lenient", "shoe-size"},
		{"an unknown chained parameter", "/Patient?organization.shoe-size=9&family=lenient", "organization.shoe-size"},
		{"_has from a type not served", "/Patient?_has:Claim:patient:use=claim&family=lenient", "_has:Claim"},
		{"_include from a type not served", "/Patient?_include=Claim:patient&family=lenient", "_include"},
		{"the _include wildcard", "/Patient?_include=Patient:*&family=lenient", "_include"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK)
			b := r.JSON(t)
			if ids := entryIDs(t, b); len(ids) != 1 || ids[0] != pat {
				t.Errorf("lenient search found %v, want only the applied criteria's %s", ids, pat)
			}
			oo := outcomeEntry(b)
			if oo == nil || !strings.Contains(string(r.Body), tt.ignored) {
				t.Fatalf("no outcome entry naming %s: %s", tt.ignored, r.Body)
			}
			if self := link(b, "self"); strings.Contains(self, "shoe") || strings.Contains(self, "Claim") || strings.Contains(self, "_include") || !strings.Contains(self, "family=lenient") {
				t.Errorf("self link %q must show only the applied parameters", self)
			}
			r = ts.mustStatus(ts.get(tt.query, header{"Prefer": "handling=strict"}), http.StatusBadRequest)
			if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, tt.ignored) {
				t.Errorf("strict diagnostics %q do not name %s", d, tt.ignored)
			}
		})
	}
}
