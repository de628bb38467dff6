package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// benchSizes are the store sizes BenchmarkSearch runs at: GPFHIR_BENCH_SIZES, a comma-separated list
// (for the figures in docs/operations.md: 10000,100000,1000000), else 10000 so that a casual -bench run stays
// short. Loading a million resources takes minutes and about 2 GB of disk.
func benchSizes(b *testing.B) []int {
	env := os.Getenv("GPFHIR_BENCH_SIZES")
	if env == "" {
		return []int{10_000}
	}
	var out []int
	for _, f := range strings.Split(env, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1000 {
			b.Fatalf("GPFHIR_BENCH_SIZES=%q: sizes are whole numbers of at least 1000", env)
		}
		out = append(out, n)
	}
	return out
}

const benchBase = "http://127.0.0.1"

// benchPatientsPer10 is the shape of the generated store: each patient comes with 6 immunisations and
// 3 prescriptions, so a tenth of the resources are patients. The patient the benchmark asks about
// (bench-x) has 30 more immunisations, so that its compartment search fills a page of 20.
func benchResources(i int) []store.Resource {
	pid := fmt.Sprintf("p%07d", i)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Second)
	meta := fmt.Sprintf(`"meta":{"versionId":"1","lastUpdated":%q}`, now.Format("2006-01-02T15:04:05.000Z07:00"))
	out := []store.Resource{{Type: "Patient", ID: pid, Body: fmt.Appendf(nil,
		`{"resourceType":"Patient","id":%q,%s,"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"%010d"}],"name":[{"family":"Family%d","given":["Given%d"]}],"gender":"female","birthDate":"19%02d-0%d-1%d","address":[{"postalCode":"LA%d 4AP"}],"managingOrganization":{"reference":"Organization/%s"}}`,
		pid, meta, i, i%997, i, 30+i%70, 1+i%9, i%10, i%9, benchPractice(i))}}
	for j := 0; j < 6; j++ {
		id := fmt.Sprintf("i%07d-%d", i, j)
		out = append(out, store.Resource{Type: "Immunization", ID: id, Body: fmt.Appendf(nil,
			`{"resourceType":"Immunization","id":%q,%s,"status":"completed","vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":"%d","display":"Vaccine %d"}]},"patient":{"reference":"Patient/%s"},"occurrenceDateTime":"202%d-0%d-01","lotNumber":"LOT%d"}`,
			id, meta, 1000+j, j, pid, j%6, 1+j, i)})
	}
	for j := 0; j < 3; j++ {
		id := fmt.Sprintf("m%07d-%d", i, j)
		out = append(out, store.Resource{Type: "MedicationRequest", ID: id, Body: fmt.Appendf(nil,
			`{"resourceType":"MedicationRequest","id":%q,%s,"status":"active","intent":"order","medicationCodeableConcept":{"text":"Medicine %d"},"subject":{"reference":"Patient/%s"},"authoredOn":"2025-0%d-01"}`,
			id, meta, j, pid, 1+j)})
	}
	return out
}

// benchPracticeSize is how many generated patients each practice has. The benchmark's token is the
// GP-system token of the test practice, so it may see the test practice's patients: a fixed number,
// whatever the store's size, as in a real deployment where stores grow by adding practices.
const benchPracticeSize = 1000

func benchPractice(i int) string {
	if i < benchPracticeSize {
		return testPracticeID
	}
	return fmt.Sprintf("practice-%d", i/benchPracticeSize)
}

// loadBenchStore fills a SQLite store with about n resources through store.Apply in large groups, with
// index entries from fhir.ExtractBody, the same extraction the write path uses.
func loadBenchStore(b *testing.B, n int) http.Handler {
	b.Helper()
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	start := time.Now()
	var group []store.Write
	flush := func() {
		if err := st.Apply(context.Background(), group); err != nil {
			b.Fatal(err)
		}
		group = group[:0]
	}
	add := func(r store.Resource) {
		entries, err := fhir.ExtractBody(r.Body, benchBase)
		if err != nil {
			b.Fatal(err)
		}
		r.VersionID, r.LastUpdated = 1, time.Now().UTC().Truncate(time.Millisecond)
		group = append(group, store.Write{Resource: r, Index: entries})
		if len(group) == 5000 {
			flush()
		}
	}
	for i := 0; i < n/10; i++ {
		for _, r := range benchResources(i) {
			add(r)
		}
	}
	// bench-x: the patient the compartment, chained and _revinclude searches are about.
	x := benchResources(n / 10)
	x[0].ID = "bench-x"
	x[0].Body = []byte(strings.Replace(string(x[0].Body), fmt.Sprintf(`"id":"p%07d"`, n/10), `"id":"bench-x"`, 1))
	x[0].Body = []byte(strings.Replace(string(x[0].Body), "Organization/"+benchPractice(n/10), "Organization/"+testPracticeID, 1))
	for j := 0; j < 30; j++ {
		id := fmt.Sprintf("ix-%02d", j)
		x = append(x, store.Resource{Type: "Immunization", ID: id, Body: fmt.Appendf(nil,
			`{"resourceType":"Immunization","id":%q,"status":"completed","vaccineCode":{"text":"flu"},"patient":{"reference":"Patient/bench-x"},"occurrenceDateTime":"2024-01-01"}`, id)})
	}
	for _, r := range x {
		r.Body = []byte(strings.ReplaceAll(string(r.Body), fmt.Sprintf("Patient/p%07d", n/10), "Patient/bench-x"))
		add(r)
	}
	flush()
	b.Logf("loaded %d resources in %s", n/10*10+len(x), time.Since(start).Round(time.Second))
	// Authorisation is on, as in production: the GP-system token of the test practice, where every
	// generated patient is registered, so the figures include verifying it and the compartment clauses
	// restrict adds to every query.
	srv, _, token := startAPI(b, st, io.Discard)
	h := srv.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(w, r)
	})
}

// BenchmarkSearch measures whole search requests through the handler (routing, parsing, the store's
// index queries, bundle rendering) on stores of several sizes. The cost should follow the size of the
// result, not of the store.
func BenchmarkSearch(b *testing.B) {
	nhs := func(i int) string { return fmt.Sprintf("https://fhir.nhs.uk/Id/nhs-number|%010d", i) }
	for _, n := range benchSizes(b) {
		b.Run("store="+strconv.Itoa(n), func(b *testing.B) {
			h := loadBenchStore(b, n)
			cases := []struct {
				name    string
				path    string
				entries int
			}{
				{"compartment", "/Immunization?patient=bench-x", 20},
				{"identifier", "/Patient?identifier=" + nhs(benchPracticeSize/2), 1},
				{"chained", "/Immunization?patient.identifier=" + nhs(n/10), 20},
				{"revinclude", "/Patient?_id=bench-x&_revinclude=Immunization:patient", 37},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					check := httptest.NewRecorder()
					h.ServeHTTP(check, httptest.NewRequest("GET", c.path, nil))
					var bundle struct{ Entry []json.RawMessage }
					if check.Code != http.StatusOK || json.Unmarshal(check.Body.Bytes(), &bundle) != nil || len(bundle.Entry) != c.entries {
						b.Fatalf("%s: status %d, %d entries, want %d: %.300s", c.path, check.Code, len(bundle.Entry), c.entries, check.Body)
					}
					b.ReportAllocs()
					b.ResetTimer()
					for b.Loop() {
						rec := httptest.NewRecorder()
						h.ServeHTTP(rec, httptest.NewRequest("GET", c.path, nil))
						if rec.Code != http.StatusOK {
							b.Fatalf("%s: %d", c.path, rec.Code)
						}
					}
				})
			}
		})
	}
}
