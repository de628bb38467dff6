package audit

import (
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
)

// testBase is the base URL the index tests build records under.
const testBase = "https://gpfhir.example/fhir"

// The two benchmarks index the same record (auditFixture: a system's search touching two patients'
// records), the first from its input, the second by decoding the rendered event, as the audit
// middleware did before EventIndex. Rendering the body is left out of both: the record stores it
// either way.

func BenchmarkAuditEventIndex(b *testing.B) {
	in := auditFixture()
	b.ReportAllocs()
	for b.Loop() {
		if len(EventIndex(in, testBase)) == 0 {
			b.Fatal("no entries")
		}
	}
}

func BenchmarkAuditEventExtractBody(b *testing.B) {
	body := Event(auditFixture())
	b.ReportAllocs()
	for b.Loop() {
		entries, err := fhir.ExtractBody(body, testBase)
		if err != nil || len(entries) == 0 {
			b.Fatal("no entries", err)
		}
	}
}

// BenchmarkAuditEvent renders the body of the same record.
func BenchmarkAuditEvent(b *testing.B) {
	in := auditFixture()
	b.ReportAllocs()
	for b.Loop() {
		if len(Event(in)) == 0 {
			b.Fatal("no body")
		}
	}
}
