package fhir

import "testing"

// The two benchmarks index the same record (auditFixture: a system's search touching two patients'
// records), the first from its input, the second by decoding the rendered event, as the audit
// middleware did before AuditEventIndex. Rendering the body is left out of both: the record stores it
// either way.

func BenchmarkAuditEventIndex(b *testing.B) {
	in := auditFixture()
	b.ReportAllocs()
	for b.Loop() {
		if len(AuditEventIndex(in, testBase)) == 0 {
			b.Fatal("no entries")
		}
	}
}

func BenchmarkAuditEventExtractBody(b *testing.B) {
	body := AuditEvent(auditFixture())
	b.ReportAllocs()
	for b.Loop() {
		entries, err := ExtractBody(body, testBase)
		if err != nil || len(entries) == 0 {
			b.Fatal("no entries", err)
		}
	}
}
