package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Benchmark is the one read/write benchmark every backend runs, so that their figures come from the same
// code: Get of a stored Patient, a durable single-resource create, and token searches. size is how many
// Patients are loaded first; keep it small for FerretDB, which scans.
func Benchmark(b *testing.B, size int, newStore func(b *testing.B) audit.Backend) {
	b.Run("Get", func(b *testing.B) {
		s := seeded(b, newStore(b), size)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.Get(b.Context(), "Patient", fmt.Sprintf("pat-%06d", i%size)); err != nil {
				b.Fatal(err)
			}
			i += 7
		}
	})
	b.Run("ApplyCreate", func(b *testing.B) {
		s := newStore(b)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.Apply(b.Context(), []store.Write{benchPatient(i)}); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	s := seeded(b, newStore(b), size)
	gender := func(v string) store.Clause {
		return store.Clause{{Param: "gender", Match: store.MatchToken, System: "http://hl7.org/fhir/administrative-gender", Value: v}}
	}
	cases := []struct {
		name string
		q    store.Query
		hits int
	}{
		{"SearchIdentifier", store.Query{Type: "Patient", Clauses: []store.Clause{{{
			Param: "identifier", Match: store.MatchToken, System: "https://fhir.nhs.uk/Id/nhs-number", Value: fmt.Sprintf("%010d", size/2)}}}}, 1},
		// As the API asks: a page (a patient's look-up by NHS number takes 10).
		{"SearchIdentifierPage10", store.Query{Type: "Patient", Limit: 10, Clauses: []store.Clause{{{
			Param: "identifier", Match: store.MatchToken, System: "https://fhir.nhs.uk/Id/nhs-number", Value: fmt.Sprintf("%010d", size/2)}}}}, 1},
		{"SearchGenderPage20", store.Query{Type: "Patient", Limit: 20, Clauses: []store.Clause{gender("female")}}, 20},
		{"SearchGenderSortedByBirthdatePage20", store.Query{Type: "Patient", Limit: 20,
			Sort: []store.SortKey{{Param: "birthdate", Desc: true}}, Clauses: []store.Clause{gender("female")}}, 20},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				hits, err := s.Search(b.Context(), tc.q)
				if err != nil {
					b.Fatal(err)
				}
				if len(hits) != tc.hits {
					b.Fatalf("%d hits, want %d", len(hits), tc.hits)
				}
			}
		})
	}
}

var genders = []string{"female", "male", "other"}

// benchPatient is a create of a typical Patient: about 1 KB of JSON and eight index entries.
func benchPatient(i int) store.Write {
	id := fmt.Sprintf("pat-%06d", i)
	body := fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"versionId":"1"},"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"%010d"}],"name":[{"family":"Family%d","given":["Given%d"]}],"gender":%q,"birthDate":"1980-01-01","address":[{"line":["%d Some Street"],"city":"Leeds","postalCode":"LS1 4AP"}]%0700d}`,
		id, i, i%97, i, genders[i%3], i, 0)
	born := time.Date(1950, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, i%20000).UnixMilli()
	return store.Write{
		Resource: store.Resource{Type: "Patient", ID: id, VersionID: 1, LastUpdated: time.UnixMilli(1_700_000_000_000 + int64(i)).UTC(), Body: body},
		Index: []store.IndexEntry{
			{Param: "identifier", System: "https://fhir.nhs.uk/Id/nhs-number", Value: fmt.Sprintf("%010d", i)},
			{Param: "family", Value: fmt.Sprintf("Family%d", i%97), Text: fmt.Sprintf("family%d", i%97)},
			{Param: "given", Value: fmt.Sprintf("Given%d", i), Text: fmt.Sprintf("given%d", i)},
			{Param: "name", Value: fmt.Sprintf("Family%d", i%97), Text: fmt.Sprintf("family%d", i%97)},
			{Param: "name", Value: fmt.Sprintf("Given%d", i), Text: fmt.Sprintf("given%d", i)},
			{Param: "gender", System: "http://hl7.org/fhir/administrative-gender", Value: genders[i%3]},
			{Param: "birthdate", Low: born, High: born + 86_399_999},
			{Param: "address-city", Value: "Leeds", Text: "leeds"},
		},
	}
}

// seeded loads n Patients in groups of 100, which every backend accepts as one atomic group.
func seeded(b *testing.B, s audit.Backend, n int) audit.Backend {
	b.Helper()
	for start := 0; start < n; start += 100 {
		var ws []store.Write
		for i := start; i < min(start+100, n); i++ {
			ws = append(ws, benchPatient(i))
		}
		if err := s.Apply(b.Context(), ws); err != nil {
			b.Fatal(err)
		}
	}
	return s
}
