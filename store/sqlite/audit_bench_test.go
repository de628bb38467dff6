package sqlite

import (
	"fmt"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
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
