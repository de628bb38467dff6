package mongo

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// The benchmarks mirror store/sqlite's (same names, same Patient shape) but run on the embedded FerretDB,
// which scans whole collections, so the dataset is small. Compare them with each other over time, not
// with SQLite: FerretDB stands in for MongoDB only functionally.

var genders = []string{"female", "male", "other"}

// patient returns a create of a typical Patient: about 1 KB of JSON and eight index entries.
func patient(i int) store.Write {
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

func seeded(b *testing.B, n int) *Store {
	b.Helper()
	s := open(b, mongotest.Start(b), Options{})
	for start := 0; start < n; start += 100 {
		var ws []store.Write
		for i := start; i < min(start+100, n); i++ {
			ws = append(ws, patient(i))
		}
		if err := s.Apply(b.Context(), ws); err != nil {
			b.Fatal(err)
		}
	}
	return s
}

func BenchmarkGet(b *testing.B) {
	const n = 300
	s := seeded(b, n)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := s.Get(b.Context(), "Patient", fmt.Sprintf("pat-%06d", i%n)); err != nil {
			b.Fatal(err)
		}
		i += 7
	}
}

// BenchmarkApplyCreate measures one single-resource create (journal mode on FerretDB).
func BenchmarkApplyCreate(b *testing.B) {
	s := seeded(b, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := s.Apply(b.Context(), []store.Write{patient(i)}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
