package storetest

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// RestrictedSearchBenchmark measures searches as the caller asks them (open) and as a GP system's token
// restricts them to its practice (restricted, the clause api/policy.go appends), for practices of the
// given sizes in one store, loaded in atomic groups of batch writes. What it shows is whether the
// restricted/open ratio grows with the practice: it should not, because a backend evaluates the access
// clause on what the candidates reference rather than listing the whole practice. Every backend runs
// this same code, so that their figures compare.
func RestrictedSearchBenchmark(b *testing.B, s audit.Backend, sizes []int, batch int) {
	start := time.Now()
	for _, n := range sizes {
		loadPractice(b, s, n, batch)
	}
	b.Logf("loaded in %s", time.Since(start).Round(time.Millisecond))

	for _, n := range sizes {
		ods := practiceODS(n)
		x := "Patient/" + practicePatient(n, n) // the practice's last patient, with 30 more immunisations
		nhs := func(i int) store.Clause {
			return store.Clause{{Param: "identifier", Match: store.MatchToken, System: fhir.NHSNumberSystem, Value: nhsNumber(n, i)}}
		}
		compartment := store.Clause{{Param: "patient", Match: store.MatchExact, Value: x}}
		paged := func(q store.Query) store.Query { q.Limit = 20; return q }
		sorted := func(q store.Query) store.Query {
			q.Sort, q.Limit = []store.SortKey{{Param: "date", Desc: true}}, 20
			return q
		}
		cases := []struct {
			name       string
			open, rest store.Query
			hits       int
		}{
			{"compartment", paged(store.Query{Type: "Immunization", Clauses: []store.Clause{compartment}}),
				paged(PracticeQuery(ods, "Immunization", compartment)), 20},
			{"compartment-sorted", sorted(store.Query{Type: "Immunization", Clauses: []store.Clause{compartment}}),
				sorted(PracticeQuery(ods, "Immunization", compartment)), 20},
			{"identifier", store.Query{Type: "Patient", Clauses: []store.Clause{nhs(n / 2)}},
				PracticeQuery(ods, "Patient", nhs(n/2)), 1},
			{"chained", paged(store.Query{Type: "Immunization", Clauses: []store.Clause{{{Param: "patient", Match: store.MatchRefIn,
				Sub: &store.Query{Type: "Patient", Clauses: []store.Clause{nhs(n)}}}}}}),
				paged(PracticeQuery(ods, "Immunization", store.Clause{{Param: "patient", Match: store.MatchRefIn, Sub: ptr(PracticeQuery(ods, "Patient", nhs(n)))}})), 20},
			{"revinclude", store.Query{Type: "Immunization", Clauses: []store.Clause{compartment}},
				PracticeQuery(ods, "Immunization", compartment), 33},
		}
		for _, c := range cases {
			for _, v := range []struct {
				name string
				q    store.Query
			}{{"open", c.open}, {"restricted", c.rest}} {
				b.Run(fmt.Sprintf("practice=%d/%s/%s", n, c.name, v.name), func(b *testing.B) {
					b.ReportAllocs()
					for b.Loop() {
						hits, err := s.Search(b.Context(), v.q)
						if err != nil {
							b.Fatal(err)
						}
						if len(hits) != c.hits {
							b.Fatalf("%d hits, want %d", len(hits), c.hits)
						}
					}
				})
			}
		}
		// A patient's own compartment, screened by the labels a patient may not see, with whether the
		// screen withheld anything: one statement where the store is a store.Screener, else the search
		// and the probe, as api does.
		screened := paged(store.Query{Type: "Immunization", Clauses: []store.Clause{compartment,
			{{Param: "_security", Match: store.MatchToken, Not: true, System: "urn:sec", Value: "R"}},
			{{Param: "_security", Match: store.MatchToken, Not: true, System: "urn:sec", Value: "V"}}}})
		screened.Limit = 51
		b.Run(fmt.Sprintf("practice=%d/compartment-screened", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				hits, withheld, err := searchScreened(b.Context(), s, screened, 2)
				if err != nil {
					b.Fatal(err)
				}
				if len(hits) != 33 || withheld {
					b.Fatalf("%d hits, withheld %v; want 33, none withheld", len(hits), withheld)
				}
			}
		})
		for _, v := range []struct {
			name string
			q    store.Query
			want int
		}{
			{"count-compartment/restricted", PracticeQuery(ods, "Immunization", compartment), 33},
			{"count-all/restricted", PracticeQuery(ods, "Immunization"), 3*n + 33},
		} {
			b.Run(fmt.Sprintf("practice=%d/%s", n, v.name), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					got, err := s.Count(b.Context(), v.q)
					if err != nil {
						b.Fatal(err)
					}
					if got != v.want {
						b.Fatalf("count %d, want %d", got, v.want)
					}
				}
			})
		}
	}
}

// searchScreened is SearchScreened where s is a store.Screener, and otherwise the search and the probe.
func searchScreened(ctx context.Context, s store.Store, q store.Query, screen int) ([]store.Hit, bool, error) {
	if sc, ok := s.(store.Screener); ok {
		return sc.SearchScreened(ctx, q, screen)
	}
	return store.SearchThenProbe(ctx, s, q, screen)
}

// PracticeQuery is q over typ restricted as api/policy.go restricts a GP system's queries: the resource is,
// or belongs to, a Patient whose organization or general-practitioner is an Organization with the ODS
// code.
func PracticeQuery(ods, typ string, clauses ...store.Clause) store.Query {
	orgs := &store.Query{Type: "Organization", Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: fhir.ODSOrganizationSystem, Value: ods}}}}
	registered := store.Clause{
		{Param: "organization", Match: store.MatchRefIn, Sub: orgs},
		{Param: "general-practitioner", Match: store.MatchRefIn, Sub: orgs},
	}
	if typ == "Patient" {
		return store.Query{Type: typ, Clauses: append(clauses, registered)}
	}
	return store.Query{Type: typ, Clauses: append(clauses, store.Clause{{Param: "patient", Match: store.MatchRefIn,
		Sub: &store.Query{Type: "Patient", Clauses: []store.Clause{registered}}}})}
}

func ptr[T any](v T) *T { return &v }

func practiceODS(n int) string { return "P" + strconv.Itoa(n) }

func practicePatient(n, i int) string { return fmt.Sprintf("p%d-%06d", n, i) }

func nhsNumber(n, i int) string { return fmt.Sprintf("%03d%07d", n%1000+n/1000, i) }

// loadPractice writes a practice's Organization, n+1 Patients registered there (through
// managingOrganization), three Immunizations each and 30 more for the last.
func loadPractice(b *testing.B, s audit.Backend, n, batch int) {
	b.Helper()
	org := "org-" + strconv.Itoa(n)
	lu := time.UnixMilli(1_700_000_000_000).UTC()
	put := func(typ, id string, index ...store.IndexEntry) store.Write {
		return store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: lu, Body: []byte(`{}`)}, Index: index}
	}
	imm := func(id, pid string, j int) store.Write {
		return put("Immunization", id,
			store.IndexEntry{Param: "patient", Value: "Patient/" + pid},
			store.IndexEntry{Param: "vaccine-code", System: "http://snomed.info/sct", Value: strconv.Itoa(1000 + j%6)},
			store.IndexEntry{Param: "date", Low: int64(j) * 86_400_000, High: int64(j+1)*86_400_000 - 1})
	}
	ws := []store.Write{put("Organization", org, store.IndexEntry{Param: "identifier", System: fhir.ODSOrganizationSystem, Value: practiceODS(n)})}
	flush := func() {
		if err := s.Apply(b.Context(), ws); err != nil {
			b.Fatal(err)
		}
		ws = ws[:0]
	}
	for i := 0; i <= n; i++ {
		pid := practicePatient(n, i)
		ws = append(ws, put("Patient", pid,
			store.IndexEntry{Param: "identifier", System: fhir.NHSNumberSystem, Value: nhsNumber(n, i)},
			store.IndexEntry{Param: "organization", Value: "Organization/" + org},
			store.IndexEntry{Param: "gender", System: "http://hl7.org/fhir/administrative-gender", Value: "female"}))
		imms := 3
		if i == n {
			imms = 33
		}
		for j := range imms {
			ws = append(ws, imm(fmt.Sprintf("i%s-%02d", pid, j), pid, j))
		}
		if len(ws) >= batch {
			flush()
		}
	}
	flush()
}
