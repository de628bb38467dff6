package fhir

import (
	"reflect"
	"sort"
	"testing"
	"time"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func mustParse(t testing.TB, body string) *Resource {
	t.Helper()
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return r
}

func entriesFor(all []IndexEntry, param string) []IndexEntry {
	var out []IndexEntry
	for _, e := range all {
		if e.Param == param {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.System != b.System {
			return a.System < b.System
		}
		if a.Value != b.Value {
			return a.Value < b.Value
		}
		if a.Text != b.Text {
			return a.Text < b.Text
		}
		return a.Low < b.Low
	})
	return out
}

const testBase = "https://gpfhir.example/fhir"

func TestExtract(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		param string
		want  []IndexEntry
	}{
		// token
		{"identifier keeps system and value",
			`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"},{"value":"local-1"}]}`,
			"identifier", []IndexEntry{
				{Param: "identifier", Value: "local-1"},
				{Param: "identifier", System: NHSNumberSystem, Value: "9000000009"},
			}},
		{"identifier type goes to the :of-type parameter",
			`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical record number"}]},"system":"urn:oid:1.2.36","value":"12345"}]}`,
			"identifier:of-type", []IndexEntry{
				{Param: "identifier:of-type", System: "http://terminology.hl7.org/CodeSystem/v2-0203", Value: "MR|12345"},
			}},
		{"identifier text is the normalised type display",
			`{"resourceType":"Patient","identifier":[{"type":{"coding":[{"system":"s","code":"MR","display":"Medical  Record"}]},"system":"x","value":"1"}]}`,
			"identifier", []IndexEntry{{Param: "identifier", System: "x", Value: "1", Text: "medical record"}}},
		{"code carries its implicit system",
			`{"resourceType":"Patient","gender":"female"}`,
			"gender", []IndexEntry{{Param: "gender", System: "http://hl7.org/fhir/administrative-gender", Value: "female"}}},
		{"boolean is true or false",
			`{"resourceType":"Patient","active":false}`,
			"active", []IndexEntry{{Param: "active", Value: "false"}}},
		{"codeable concept indexes every coding with display text, its text on a coding without one",
			`{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020-01-01",
			  "vaccineCode":{"text":"Flu jab","coding":[{"system":"http://snomed.info/sct","code":"1","display":"Influenza Vaccine"},{"system":"http://hl7.org/fhir/sid/cvx","code":"140"}]}}`,
			"vaccine-code", []IndexEntry{
				{Param: "vaccine-code", System: "http://hl7.org/fhir/sid/cvx", Value: "140", Text: "flu jab"},
				{Param: "vaccine-code", System: "http://snomed.info/sct", Value: "1", Text: "influenza vaccine"},
			}},
		{"codeable concept whose codings all carry other displays has a text-only entry too",
			`{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020-01-01",
			  "vaccineCode":{"text":"Flu jab","coding":[{"system":"http://snomed.info/sct","code":"1","display":"Influenza Vaccine"}]}}`,
			"vaccine-code", []IndexEntry{
				{Param: "vaccine-code", Text: "flu jab"},
				{Param: "vaccine-code", System: "http://snomed.info/sct", Value: "1", Text: "influenza vaccine"},
			}},
		{"codeable concept whose text is a coding's display has no text-only entry",
			`{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020-01-01",
			  "vaccineCode":{"text":"Influenza vaccine","coding":[{"system":"http://snomed.info/sct","code":"1","display":"Influenza Vaccine"}]}}`,
			"vaccine-code", []IndexEntry{
				{Param: "vaccine-code", System: "http://snomed.info/sct", Value: "1", Text: "influenza vaccine"},
			}},
		{"codeable concept with text and no coding has its text-only entry",
			`{"resourceType":"Immunization","status":"completed","patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020-01-01",
			  "vaccineCode":{"text":"Flu jab"}}`,
			"vaccine-code", []IndexEntry{{Param: "vaccine-code", Text: "flu jab"}}},
		{"coding without system is a token without system",
			`{"resourceType":"Patient","meta":{"tag":[{"code":"demo"}]}}`,
			"_tag", []IndexEntry{{Param: "_tag", Value: "demo"}}},
		{"security labels are tokens",
			`{"resourceType":"Patient","meta":{"security":[{"system":"http://terminology.hl7.org/CodeSystem/v3-Confidentiality","code":"R"}]}}`,
			"_security", []IndexEntry{{Param: "_security", System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Value: "R"}}},
		{"telecom indexes every contact point",
			`{"resourceType":"Patient","telecom":[{"system":"phone","value":"01234 567890"},{"system":"email","value":"a@b.uk"}]}`,
			"telecom", []IndexEntry{
				{Param: "telecom", System: "email", Value: "a@b.uk"},
				{Param: "telecom", System: "phone", Value: "01234 567890"},
			}},
		{"phone keeps only phone contact points",
			`{"resourceType":"Patient","telecom":[{"system":"phone","value":"01234 567890"},{"system":"email","value":"a@b.uk"}]}`,
			"phone", []IndexEntry{{Param: "phone", System: "phone", Value: "01234 567890"}}},
		{"email keeps only email contact points",
			`{"resourceType":"Patient","telecom":[{"system":"phone","value":"01234 567890"},{"system":"email","value":"a@b.uk"}]}`,
			"email", []IndexEntry{{Param: "email", System: "email", Value: "a@b.uk"}}},
		// string
		{"name covers text, family, given, prefix and suffix of every name",
			`{"resourceType":"Patient","name":[{"text":"Dr Zoë Ärnström","family":"Ärnström","given":["Zoë","Anne"],"prefix":["Dr"],"suffix":["PhD"]},{"family":"Smith"}]}`,
			"name", []IndexEntry{
				{Param: "name", Value: "Anne", Text: "anne"},
				{Param: "name", Value: "Dr", Text: "dr"},
				{Param: "name", Value: "Dr Zoë Ärnström", Text: "dr zoe arnstrom"},
				{Param: "name", Value: "PhD", Text: "phd"},
				{Param: "name", Value: "Smith", Text: "smith"},
				{Param: "name", Value: "Zoë", Text: "zoe"},
				{Param: "name", Value: "Ärnström", Text: "arnstrom"},
			}},
		{"family is accent-free lower case, raw value kept for :exact",
			`{"resourceType":"Patient","name":[{"family":"  O'Brien-Núñez "}]}`,
			"family", []IndexEntry{{Param: "family", Value: "  O'Brien-Núñez ", Text: "o'brien-nunez"}}},
		{"given is multi-valued and deduplicated",
			`{"resourceType":"Patient","name":[{"given":["Ann","Ann"]},{"given":["Ann","Bo"]}]}`,
			"given", []IndexEntry{{Param: "given", Value: "Ann", Text: "ann"}, {Param: "given", Value: "Bo", Text: "bo"}}},
		{"postal code from every address",
			`{"resourceType":"Patient","address":[{"postalCode":"LS1 4HR"},{"postalCode":"PR1  2HE"}]}`,
			"address-postalcode", []IndexEntry{
				{Param: "address-postalcode", Value: "LS1 4HR", Text: "ls1 4hr"},
				{Param: "address-postalcode", Value: "PR1  2HE", Text: "pr1 2he"},
			}},
		{"organization name includes aliases",
			`{"resourceType":"Organization","name":"Lancaster Medical Practice","alias":["LMP"]}`,
			"name", []IndexEntry{
				{Param: "name", Value: "LMP", Text: "lmp"},
				{Param: "name", Value: "Lancaster Medical Practice", Text: "lancaster medical practice"},
			}},
		// date
		{"birth year covers the whole year",
			`{"resourceType":"Patient","birthDate":"1980"}`,
			"birthdate", []IndexEntry{{Param: "birthdate", Low: ms("1980-01-01T00:00:00Z"), High: ms("1980-12-31T23:59:59.999Z")}}},
		{"birth month covers the whole month, leap year",
			`{"resourceType":"Patient","birthDate":"1980-02"}`,
			"birthdate", []IndexEntry{{Param: "birthdate", Low: ms("1980-02-01T00:00:00Z"), High: ms("1980-02-29T23:59:59.999Z")}}},
		{"birth date covers the whole day in UTC",
			`{"resourceType":"Patient","birthDate":"1980-05-06"}`,
			"birthdate", []IndexEntry{{Param: "birthdate", Low: ms("1980-05-06T00:00:00Z"), High: ms("1980-05-06T23:59:59.999Z")}}},
		{"dateTime with offset is converted to UTC",
			`{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted"}],"start":"2026-06-01T09:30:00+01:00"}`,
			"date", []IndexEntry{{Param: "date", Low: ms("2026-06-01T08:30:00Z"), High: ms("2026-06-01T08:30:00.999Z")}}},
		{"instant with milliseconds is a single millisecond",
			`{"resourceType":"Slot","schedule":{"reference":"Schedule/s1"},"status":"free","start":"2026-06-01T09:30:00.250Z","end":"2026-06-01T09:40:00Z"}`,
			"start", []IndexEntry{{Param: "start", Low: ms("2026-06-01T09:30:00.250Z"), High: ms("2026-06-01T09:30:00.250Z")}}},
		{"occurrence dateTime of an immunization",
			`{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2021-03-04T10:00:00-05:00"}`,
			"date", []IndexEntry{{Param: "date", Low: ms("2021-03-04T15:00:00Z"), High: ms("2021-03-04T15:00:00.999Z")}}},
		{"occurrence string is not a date",
			`{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/p1"},"occurrenceString":"as a child"}`,
			"date", nil},
		{"period without end is open-ended",
			`{"resourceType":"Schedule","actor":[{"reference":"Practitioner/d1"}],"planningHorizon":{"start":"2026-01-01"}}`,
			"date", []IndexEntry{{Param: "date", Low: ms("2026-01-01T00:00:00Z"), High: MaxInstant}}},
		{"period without start is open at the start",
			`{"resourceType":"Schedule","actor":[{"reference":"Practitioner/d1"}],"planningHorizon":{"end":"2026-01-31"}}`,
			"date", []IndexEntry{{Param: "date", Low: MinInstant, High: ms("2026-01-31T23:59:59.999Z")}}},
		{"period end takes the end of its precision",
			`{"resourceType":"Schedule","actor":[{"reference":"Practitioner/d1"}],"planningHorizon":{"start":"2026-01-01T08:00:00Z","end":"2026-03"}}`,
			"date", []IndexEntry{{Param: "date", Low: ms("2026-01-01T08:00:00Z"), High: ms("2026-03-31T23:59:59.999Z")}}},
		{"authoredOn dateTime without seconds precision is the whole second",
			`{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"medicationCodeableConcept":{"text":"x"},"authoredOn":"2026-02-03T04:05:06Z"}`,
			"authoredon", []IndexEntry{{Param: "authoredon", Low: ms("2026-02-03T04:05:06Z"), High: ms("2026-02-03T04:05:06.999Z")}}},
		// reference
		{"relative reference",
			`{"resourceType":"Patient","generalPractitioner":[{"reference":"Organization/o1"},{"reference":"Practitioner/pr1/_history/2"}]}`,
			"general-practitioner", []IndexEntry{
				{Param: "general-practitioner", Value: "Organization/o1"},
				{Param: "general-practitioner", Value: "Practitioner/pr1"},
			}},
		{"absolute reference under base becomes relative, others stay absolute",
			`{"resourceType":"Patient","managingOrganization":{"reference":"https://gpfhir.example/fhir/Organization/o1"},
			  "generalPractitioner":[{"reference":"https://other.example/fhir/Organization/o2"},{"reference":"#c1"},{"identifier":{"value":"x"}}]}`,
			"", []IndexEntry{
				{Param: "general-practitioner", Value: "https://other.example/fhir/Organization/o2"},
				{Param: "organization", Value: "Organization/o1"},
			}},
		{"appointment patient keeps only Patient actors; actor keeps all",
			`{"resourceType":"Appointment","status":"booked","slot":[{"reference":"Slot/s1"}],"participant":[
			  {"status":"accepted","actor":{"reference":"Patient/p1"}},
			  {"status":"accepted","actor":{"reference":"Practitioner/d1"}},
			  {"status":"accepted","actor":{"reference":"Location/l1"}}]}`,
			"", []IndexEntry{
				{Param: "actor", Value: "Location/l1"},
				{Param: "actor", Value: "Patient/p1"},
				{Param: "actor", Value: "Practitioner/d1"},
				{Param: "location", Value: "Location/l1"},
				{Param: "part-status", System: "http://hl7.org/fhir/participationstatus", Value: "accepted"},
				{Param: "patient", Value: "Patient/p1"},
				{Param: "practitioner", Value: "Practitioner/d1"},
				{Param: "slot", Value: "Slot/s1"},
				{Param: "status", System: "http://hl7.org/fhir/appointmentstatus", Value: "booked"},
			}},
		{"medication request: code from medicationCodeableConcept",
			`{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Patient/p1"},"requester":{"reference":"Practitioner/d1"},
			  "medicationCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"322236009","display":"Paracetamol 500mg tablets"}]}}`,
			"", []IndexEntry{
				{Param: "code", System: "http://snomed.info/sct", Value: "322236009", Text: "paracetamol 500mg tablets"},
				{Param: "intent", System: "http://hl7.org/fhir/CodeSystem/medicationrequest-intent", Value: "order"},
				{Param: "patient", Value: "Patient/p1"},
				{Param: "requester", Value: "Practitioner/d1"},
				{Param: "status", System: "http://hl7.org/fhir/CodeSystem/medicationrequest-status", Value: "active"},
				{Param: "subject", Value: "Patient/p1"},
			}},
		{"medication request: medication from medicationReference",
			`{"resourceType":"MedicationRequest","status":"active","intent":"order","subject":{"reference":"Group/g1"},"medicationReference":{"reference":"Medication/m1"}}`,
			"", []IndexEntry{
				{Param: "intent", System: "http://hl7.org/fhir/CodeSystem/medicationrequest-intent", Value: "order"},
				{Param: "medication", Value: "Medication/m1"},
				{Param: "status", System: "http://hl7.org/fhir/CodeSystem/medicationrequest-status", Value: "active"},
				{Param: "subject", Value: "Group/g1"},
			}},
		// uri
		{"profile is a uri",
			`{"resourceType":"Patient","meta":{"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]}}`,
			"_profile", []IndexEntry{{Param: "_profile", Value: "https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"}}},
		{"lot number is a string",
			`{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2020","lotNumber":"AB12"}`,
			"lot-number", []IndexEntry{{Param: "lot-number", Value: "AB12", Text: "ab12"}}},
		{"slot status, service type and schedule",
			`{"resourceType":"Slot","schedule":{"reference":"Schedule/s1"},"status":"free","start":"2026-06-01T09:30:00Z","end":"2026-06-01T09:40:00Z","serviceType":[{"coding":[{"system":"x","code":"gp"}]}]}`,
			"", []IndexEntry{
				{Param: "schedule", Value: "Schedule/s1"},
				{Param: "service-type", System: "x", Value: "gp"},
				{Param: "start", Low: ms("2026-06-01T09:30:00Z"), High: ms("2026-06-01T09:30:00.999Z")},
				{Param: "status", System: "http://hl7.org/fhir/slotstatus", Value: "free"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustParse(t, tt.body)
			all := Extract(r, testBase)
			var got []IndexEntry
			if tt.param == "" {
				got = append([]IndexEntry(nil), all...)
				sort.SliceStable(got, func(i, j int) bool { return got[i].Param < got[j].Param })
				// Group by param, each group sorted like entriesFor.
				var grouped []IndexEntry
				for i := 0; i < len(got); {
					j := i
					for j < len(got) && got[j].Param == got[i].Param {
						j++
					}
					grouped = append(grouped, entriesFor(got[i:j], got[i].Param)...)
					i = j
				}
				got = grouped
			} else {
				got = entriesFor(all, tt.param)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("entries for %q:\n got  %+v\n want %+v", tt.param, got, tt.want)
			}
		})
	}
}

func TestExtractEmitsNoDuplicatesAndNothingForStoreParams(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Patient","id":"p1","meta":{"tag":[{"code":"a"},{"code":"a"}]},
		"telecom":[{"system":"phone","value":"1"},{"system":"phone","value":"1"}]}`)
	seen := map[IndexEntry]bool{}
	for _, e := range Extract(r, testBase) {
		if seen[e] {
			t.Errorf("duplicate entry %+v", e)
		}
		seen[e] = true
		if e.Param == "_id" || e.Param == "_lastUpdated" {
			t.Errorf("entry for store-answered parameter: %+v", e)
		}
	}
}

func TestParseDateRange(t *testing.T) {
	tests := []struct {
		in       string
		low, hgh string // RFC 3339; "" = error expected
	}{
		{"2024", "2024-01-01T00:00:00Z", "2024-12-31T23:59:59.999Z"},
		{"2024-12", "2024-12-01T00:00:00Z", "2024-12-31T23:59:59.999Z"},
		{"2023-02-28", "2023-02-28T00:00:00Z", "2023-02-28T23:59:59.999Z"},
		{"2024-01-01T10:00", "2024-01-01T10:00:00Z", "2024-01-01T10:00:59.999Z"},
		{"2024-01-01T10:00Z", "2024-01-01T10:00:00Z", "2024-01-01T10:00:59.999Z"},
		{"2024-01-01T10:00:05+02:00", "2024-01-01T08:00:05Z", "2024-01-01T08:00:05.999Z"},
		{"2024-01-01T00:30:00-01:00", "2024-01-01T01:30:00Z", "2024-01-01T01:30:00.999Z"},
		{"2024-01-01T10:00:05.1Z", "2024-01-01T10:00:05.100Z", "2024-01-01T10:00:05.199Z"},
		{"2024-01-01T10:00:05.12Z", "2024-01-01T10:00:05.120Z", "2024-01-01T10:00:05.129Z"},
		{"2024-01-01T10:00:05.123456Z", "2024-01-01T10:00:05.123Z", "2024-01-01T10:00:05.123Z"},
		{"1850-06-01", "1850-06-01T00:00:00Z", "1850-06-01T23:59:59.999Z"},
		{"2023-02-29", "", ""},
		{"2024-13", "", ""},
		{"24", "", ""},
		{"2024-1-01", "", ""},
		{"2024-01-01T25:00:00Z", "", ""},
		{"2024-01-01T10:00:00+2:00", "", ""},
		{"2024-01-01T10:00:00.Z", "", ""},
		{"today", "", ""},
	}
	for _, tt := range tests {
		lo, hi, err := ParseDateRange(tt.in)
		if tt.low == "" {
			if err == nil {
				t.Errorf("ParseDateRange(%q) = %d, %d, want error", tt.in, lo, hi)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDateRange(%q): %v", tt.in, err)
			continue
		}
		if lo != ms(tt.low) || hi != ms(tt.hgh) {
			t.Errorf("ParseDateRange(%q) = %s..%s, want %s..%s", tt.in,
				time.UnixMilli(lo).UTC().Format(time.RFC3339Nano), time.UnixMilli(hi).UTC().Format(time.RFC3339Nano), tt.low, tt.hgh)
		}
	}
}

func TestNormalizeString(t *testing.T) {
	tests := map[string]string{
		"Zoë":                "zoe",
		"ÄRNSTRÖM":           "arnstrom",
		"  Jean   Pierre\t ": "jean pierre",
		"Ångström":           "angstrom",
		"ascii only":         "ascii only",
		"":                   "",
		"Łukasz":             "łukasz", // no decomposition exists; kept, lower-cased
		"e\u0301":            "e",      // already decomposed
	}
	for in, want := range tests {
		if got := NormalizeString(in); got != want {
			t.Errorf("NormalizeString(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestReferencesListsLocalLiteralReferences(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Appointment","status":"booked",
		"slot":[{"reference":"Slot/s1/_history/3"}],
		"participant":[
		  {"status":"accepted","actor":{"reference":"Patient/p1"}},
		  {"status":"accepted","actor":{"reference":"https://gpfhir.example/fhir/Practitioner/d1"}},
		  {"status":"accepted","actor":{"reference":"https://elsewhere.example/Practitioner/d2"}},
		  {"status":"accepted","actor":{"reference":"urn:uuid:0b2a7d6e-0000-4000-8000-000000000000"}},
		  {"status":"accepted","actor":{"reference":"#loc"}},
		  {"status":"accepted","actor":{"identifier":{"value":"x"}}}]}`)
	got := References(r, testBase+"/")
	want := []Ref{
		{Expression: "Appointment.participant[0].actor.reference", Type: "Patient", ID: "p1"},
		{Expression: "Appointment.participant[1].actor.reference", Type: "Practitioner", ID: "d1"},
		{Expression: "Appointment.slot[0].reference", Type: "Slot", ID: "s1"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("References:\n got  %+v\n want %+v", got, want)
	}
}

func TestExtractBodyMatchesExtractOfTheParsedResource(t *testing.T) {
	body := `{"resourceType":"Patient","id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],
		"name":[{"family":"Ärnström","given":["Zoë"]}],"birthDate":"1980-05","managingOrganization":{"reference":"` + testBase + `/Organization/o1"}}`
	want := Extract(mustParse(t, body), testBase)
	got, err := ExtractBody([]byte(body), testBase)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ExtractBody %+v\nExtract     %+v", got, want)
	}
	if _, err := ExtractBody([]byte(`{"id":"x"}`), testBase); err == nil {
		t.Error("a body without resourceType must fail")
	}
}

func TestLocalRefReadsTypeAndIDOfLocalReferencesOnly(t *testing.T) {
	for _, tc := range []struct {
		ref, base, typ, id string
	}{
		{"Patient/p1", "", "Patient", "p1"},
		{"Patient/p1/_history/2", "", "Patient", "p1"},
		{"https://fhir.example/Patient/p1", "https://fhir.example", "Patient", "p1"},
		{"https://fhir.example/Patient/p1/_history/3", "https://fhir.example", "Patient", "p1"},
		{"https://other.example/Patient/p1", "https://fhir.example", "", ""},
		{"Patient", "", "", ""},
		{"Patient/", "", "", ""},
		{"Patient/p1/", "", "", ""},
		{"Patient/p1/_history", "", "", ""},
		{"Patient/p1/_history/", "", "", ""},
		{"Patient/p1/_history/2/x", "", "", ""},
		{"Patient/p1/history/2", "", "", ""},
		{"Patient/p1/x", "", "", ""},
		{"patient/p1", "", "", ""},
		{"Patient/p 1", "", "", ""},
		{"#contained", "", "", ""},
		{"urn:uuid:0d7b2c1a-1111-4c2b-9a55-2f0b1c7b9e10", "", "", ""},
	} {
		typ, id, ok := LocalRef(tc.ref, tc.base)
		if typ != tc.typ || id != tc.id || ok != (tc.typ != "") {
			t.Errorf("LocalRef(%q, %q) = %q, %q, %v; want %q, %q", tc.ref, tc.base, typ, id, ok, tc.typ, tc.id)
		}
	}
}
