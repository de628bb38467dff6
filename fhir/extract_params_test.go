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
