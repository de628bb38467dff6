package fhir

import (
	"testing"
	"time"
)

// benchPatient is a realistic UK Core-style Patient as a GP system would send it.
const benchPatient = `{
  "resourceType": "Patient",
  "meta": {"profile": ["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"], "tag": [{"system": "https://gpfhir.example/tags", "code": "synced"}]},
  "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory",
    "valueCodeableConcept": {"coding": [{"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", "code": "A", "display": "White - British"}]}}],
  "identifier": [
    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009",
     "extension": [{"url": "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-NHSNumberVerificationStatus",
       "valueCodeableConcept": {"coding": [{"system": "https://fhir.hl7.org.uk/CodeSystem/UKCore-NHSNumberVerificationStatusEngland", "code": "01", "display": "Number present and verified"}]}}]},
    {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR", "display": "Medical record number"}]}, "system": "https://lancaster-mp.example/mrn", "value": "MRN-001234"}
  ],
  "active": true,
  "name": [{"use": "official", "family": "Ärnström", "given": ["Zoë", "Anne"], "prefix": ["Mrs"], "period": {"start": "2001-05-01"}},
           {"use": "maiden", "family": "Smith"}],
  "telecom": [{"system": "phone", "value": "01524 000000", "use": "home"}, {"system": "phone", "value": "07700 900000", "use": "mobile"},
              {"system": "email", "value": "zoe@example.org"}],
  "gender": "female",
  "birthDate": "1968-03-14",
  "address": [{"use": "home", "line": ["1 Market Street", "Flat 2"], "city": "Lancaster", "district": "Lancashire", "postalCode": "LA1 1AA", "country": "GB"}],
  "generalPractitioner": [{"reference": "Organization/lancaster-mp", "display": "Lancaster Medical Practice"}],
  "managingOrganization": {"reference": "Organization/lancaster-mp"},
  "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "en-GB"}]}, "preferred": true}]
}`

func BenchmarkParseFinalizeExtract(b *testing.B) {
	body := []byte(benchPatient)
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		r, err := Parse(body)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := r.Finalize("p1", 2, at); err != nil {
			b.Fatal(err)
		}
		if len(Extract(r, testBase)) == 0 {
			b.Fatal("no entries")
		}
	}
}

func BenchmarkParse(b *testing.B) {
	body := []byte(benchPatient)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkExtract(b *testing.B) {
	r, err := Parse([]byte(benchPatient))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		Extract(r, testBase)
	}
}
