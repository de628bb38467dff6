package fhir_test

import (
	"slices"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/seed"
)

// ExtractBodyParams decodes only the elements its parameters read; for every demo resource and every one
// of its type's parameters it must find exactly what full extraction finds for that parameter.
func TestExtractBodyParamsAgreesWithFullExtraction(t *testing.T) {
	const base = "https://gpfhir.example/fhir"
	for _, r := range seed.Generate(seed.Options{Seed: 1, Patients: 8}) {
		all, err := fhir.ExtractBody(r.Body, base)
		if err != nil {
			t.Fatal(err)
		}
		ti, _ := fhir.LookupType(r.Type)
		for _, p := range ti.Params {
			got, err := fhir.ExtractBodyParams(r.Body, base, p.Code)
			if err != nil {
				t.Fatalf("%s/%s %s: %v", r.Type, r.ID, p.Code, err)
			}
			var want []fhir.IndexEntry
			for _, e := range all {
				if e.Param == p.Code {
					want = append(want, e)
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("%s/%s %s: got %v, want %v", r.Type, r.ID, p.Code, got, want)
			}
		}
	}
}

// The body is walked at its top level without being copied; resourceType need not come first, and a
// malformed body is an error that says so, never entries made up from part of it.
func TestExtractBodyParamsWalksTheTopLevelOnly(t *testing.T) {
	const base = "https://gpfhir.example/fhir"
	last := []byte(`{"id":"p1","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9434765919"}],` +
		`"name":[{"family":"O\"Brien","given":["A}"]}],"extension":[{"url":"x","valueString":"{[\""}],"resourceType":"Patient"}`)
	got, err := fhir.ExtractBodyParams(last, base, "identifier", "family")
	if err != nil {
		t.Fatal(err)
	}
	want := []fhir.IndexEntry{{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Value: "9434765919"}}
	if len(got) != 2 || got[0] != want[0] || got[1].Param != "family" || got[1].Value != `O"Brien` {
		t.Errorf("resourceType last: got %+v", got)
	}
	for _, bad := range []string{
		``, `[]`, `"Patient"`, `{"resourceType":"Patient","identifier":[{"value":"1"}`,
		`{"identifier":[]}`, `{"resourceType":7,"identifier":[]}`, `{"resourceType":"","identifier":[]}`,
		`{"resourceType":"Patient","identifier":[{"value":}]}`,
	} {
		if got, err := fhir.ExtractBodyParams([]byte(bad), base, "identifier"); err == nil {
			t.Errorf("%q: no error, entries %v", bad, got)
		}
	}
}

func TestTopLevelElement(t *testing.T) {
	body := []byte(`{"resourceType":"Patient","name":[{"family":"extension"}],"extension":[{"url":"u","valueString":"}"}],"id":"x"}`)
	raw, err := fhir.TopLevelElement(body, "extension")
	if err != nil || string(raw) != `[{"url":"u","valueString":"}"}]` {
		t.Errorf("extension: %s, %v", raw, err)
	}
	if raw, err := fhir.TopLevelElement(body, "gender"); err != nil || raw != nil {
		t.Errorf("absent element: %s, %v", raw, err)
	}
	for _, bad := range []string{``, `[1]`, `{"extension":[}`, `{"id":"x",`} {
		if raw, err := fhir.TopLevelElement([]byte(bad), "extension"); err == nil {
			t.Errorf("%q: no error (%s)", bad, raw)
		}
	}
}
