package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// BenchmarkAppendAudit appends batches of AuditEvents shaped as the API writes them for a GP system's
// read of a patient, durably (synchronous=FULL), as the group committer does: the cost of one append
// of a batch, and per record.
func BenchmarkAppendAudit(b *testing.B) {
	for _, batch := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			s, err := Open(b.Context(), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			const base = "http://127.0.0.1:8080"
			n := 0
			recs := make([]audit.Record, batch)
			b.ReportAllocs()
			for b.Loop() {
				for i := range recs {
					n++
					in := audit.Input{ID: fmt.Sprintf("0190-%012d", n), Recorded: time.UnixMilli(int64(n)).UTC(),
						Interaction: "read", Status: 200, RequestID: fmt.Sprintf("req-%d", n),
						User: &audit.User{Kind: "system", Issuer: base + "/dev-idp", Subject: "gp-a12345",
							JTI: fmt.Sprintf("jti-%d", n), ClientID: "gp-a12345", ClientName: "GP system"},
						ClientAddress: "127.0.0.1", Site: base, Instance: "i-1", Patients: []string{fmt.Sprintf("p%d", n%64)},
						Entities: []audit.Entity{{Type: "Patient", ID: fmt.Sprintf("p%d", n%64), Version: 1, PatientIDs: []string{fmt.Sprintf("p%d", n%64)}}}}
					recs[i] = audit.Record{ID: in.ID, Recorded: in.Recorded, Body: audit.Event(in), Index: audit.EventIndex(in, base)}
				}
				if err := audit.AppendChained(b.Context(), s, recs, 1); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(n), "µs/record")
		})
	}
}

var benchInteractions = []string{"read", "read", "search-type", "update", "read", "create", "read", "vread"}

const auditBenchBase = "http://127.0.0.1:8080"

// benchAuditRecord is the n-th AuditEvent as the API writes it for a GP system's access to one of 64
// patients: mostly reads, with searches, updates and creates mixed in.
func benchAuditRecord(n int) audit.Record {
	interaction := benchInteractions[n%len(benchInteractions)]
	in := audit.Input{ID: fmt.Sprintf("0190-%012d", n), Recorded: time.UnixMilli(int64(n)).UTC(),
		Interaction: interaction, Status: 200, RequestID: fmt.Sprintf("req-%d", n),
		User: &audit.User{Kind: "system", Issuer: auditBenchBase + "/dev-idp", Subject: "gp-a12345",
			JTI: fmt.Sprintf("jti-%d", n), ClientID: "gp-a12345", ClientName: "GP system"},
		ClientAddress: "127.0.0.1", Site: auditBenchBase, Instance: "i-1", Patients: []string{fmt.Sprintf("p%d", n%64)},
		Entities: []audit.Entity{{Type: "Patient", ID: fmt.Sprintf("p%d", n%64), Version: 1, PatientIDs: []string{fmt.Sprintf("p%d", n%64)}}}}
	return audit.Record{ID: in.ID, Recorded: in.Recorded, Body: audit.Event(in), Index: audit.EventIndex(in, auditBenchBase)}
}

// BenchmarkAuditSearch measures the searches that test a record's codes on its own entries
// (auditfuncs.go) rather than through an index: a patient's records of one action, newest first; the
// same sorted by a code; and a count by a code alone, which tests every record of the trail.
func BenchmarkAuditSearch(b *testing.B) {
	const records = 4096
	s, err := Open(b.Context(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for start := 1; start <= records; start += audit.MaxBatch {
		var recs []audit.Record
		for n := start; n < min(start+audit.MaxBatch, records+1); n++ {
			recs = append(recs, benchAuditRecord(n))
		}
		if err := audit.AppendChained(b.Context(), s, recs, 1); err != nil {
			b.Fatal(err)
		}
	}
	patient := store.Clause{{Param: "patient", Match: store.MatchExact, Value: "Patient/p7"}}
	read := store.Clause{{Param: "action", Match: store.MatchToken, AnySystem: true, Value: "R"}}
	notCreate := store.Clause{{Param: "subtype", Match: store.MatchToken, System: "http://hl7.org/fhir/restful-interaction", Value: "create", Not: true}}
	cases := []struct {
		name  string
		q     store.Query
		count bool
		want  int
	}{
		{"patient-action-by-date", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{patient, read},
			Sort: []store.SortKey{{Param: "date", Desc: true}}, Limit: 20}, false, 20},
		{"patient-by-subtype", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{patient, notCreate},
			Sort: []store.SortKey{{Param: "subtype"}}, Limit: 20}, false, 20},
		{"count-action", store.Query{Type: store.AuditEventType, Clauses: []store.Clause{read}}, true, records * 5 / 8},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				n, err := results(b, s, tc.q, tc.count)
				if err != nil {
					b.Fatal(err)
				}
				if n != tc.want {
					b.Fatalf("%d results, want %d", n, tc.want)
				}
			}
		})
	}
}

// results is how many resources q finds: Count's answer, or the length of Search's.
func results(b *testing.B, s *Store, q store.Query, count bool) (int, error) {
	if count {
		return s.Count(b.Context(), q)
	}
	hits, err := s.Search(b.Context(), q)
	return len(hits), err
}
