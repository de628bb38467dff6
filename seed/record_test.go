package seed

import (
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// TestGenerate_EveryRecordLevelHasEntries: the demo data holds entries of every served record type, so
// that summary, detailed and full record access show different records; some are labelled confidential,
// and the patients the README shows at summary and at detailed level each have entries the other level
// does not show.
func TestGenerate_EveryRecordLevelHasEntries(t *testing.T) {
	out := Generate(Options{Seed: 1})
	byType := map[string]int{}
	confidential := map[string]int{}
	perPatient := map[string]map[online.RecordLevel]int{}
	for _, r := range out {
		level, isRecord := online.RecordLevelOf(r.Type)
		if !isRecord {
			continue
		}
		byType[r.Type]++
		m := decode(t, r)
		if online.IsRedacted(m) {
			confidential[r.Type]++
			continue
		}
		for _, ref := range []string{"subject", "patient"} {
			if s, ok := m[ref].(map[string]any); ok {
				pid := strings.TrimPrefix(s["reference"].(string), "Patient/")
				if perPatient[pid] == nil {
					perPatient[pid] = map[online.RecordLevel]int{}
				}
				perPatient[pid][level]++
			}
		}
	}
	for _, ti := range fhir.Types() {
		if _, isRecord := online.RecordLevelOf(ti.Name); isRecord && byType[ti.Name] == 0 {
			t.Errorf("no %s in the demo data", ti.Name)
		}
	}
	if len(confidential) < 2 {
		t.Errorf("confidential entries by type %v: want some of more than one type", confidential)
	}
	for _, pid := range []string{"pat-0001", "pat-0006"} {
		for _, l := range []online.RecordLevel{online.RecordSummary, online.RecordDetailed, online.RecordFull} {
			if perPatient[pid][l] == 0 {
				t.Errorf("%s has no visible %s-level entries (%v)", pid, l, perPatient[pid])
			}
		}
	}
	if confidentialOf := func(pid string) bool {
		for _, r := range out {
			if r.Type == "Condition" && strings.Contains(string(r.Body), `"Patient/`+pid+`"`) && online.IsRedacted(decode(t, r)) {
				return true
			}
		}
		return false
	}; !confidentialOf("pat-0006") {
		t.Error("pat-0006 (detailed record) should have a confidential problem, hidden online")
	}
}
