package audit

import "testing"

// BenchmarkSummarize reads back auditFixture's record as the uptake tally reads every record of the trail.
func BenchmarkSummarize(b *testing.B) {
	body := Event(auditFixture())
	b.ReportAllocs()
	for b.Loop() {
		s, err := Summarize(body)
		if err != nil || len(s.Entities) == 0 {
			b.Fatal("no entities", err)
		}
	}
}
