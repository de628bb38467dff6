package seed

import (
	"reflect"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/uptake"
)

func TestActivityIsAYearOfPlausibleDeterministicHistory(t *testing.T) {
	o := Options{Seed: 1, Now: time.Date(2025, 3, 10, 9, 5, 0, 0, time.UTC)}
	a, b := Activity(o, "http://127.0.0.1:8080"), Activity(o, "http://127.0.0.1:8080")
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same options gave different activity")
	}
	if len(a) < 100 {
		t.Fatalf("only %d records", len(a))
	}
	first := uptake.PeriodOf(a[0].Recorded)
	if want := uptake.PeriodOf(o.Now).Add(-11); first != want {
		t.Errorf("history starts in %v, want %v", first, want)
	}
	practice := map[string]string{}
	for _, p := range People(o).Patients {
		practice[p.PatientID] = p.PracticeODS
	}
	users := map[string]map[string]bool{}
	barriers := map[uptake.Barrier]int{}
	ids := map[string]bool{}
	last := uptake.PeriodOf(o.Now).Add(-1)
	for i, in := range a {
		if !in.Recorded.Before(o.Now) || i > 0 && in.Recorded.Before(a[i-1].Recorded) {
			t.Fatalf("record %d at %v: not in time order before now", i, in.Recorded)
		}
		if ids[in.ID] {
			t.Fatalf("id %s twice", in.ID)
		}
		ids[in.ID] = true
		s, err := audit.Summarize(audit.Event(in))
		if err != nil {
			t.Fatal(err)
		}
		e := uptake.Classify(s)
		if e.Barrier != "" {
			barriers[e.Barrier]++
		}
		if e.Use != uptake.NoService && e.Period == last {
			code := practice[e.Patient]
			if users[code] == nil {
				users[code] = map[string]bool{}
			}
			users[code][e.Patient] = true
		}
	}
	for _, b := range []uptake.Barrier{uptake.BarrierLevel, uptake.BarrierNoRecord, uptake.BarrierSwitchedOff, uptake.BarrierConfidential} {
		if barriers[b] == 0 {
			t.Errorf("no %s in a year", b)
		}
	}
	size := map[string]int{}
	for _, code := range practice {
		size[code]++
	}
	share := func(code string) float64 { return float64(len(users[code])) / float64(size[code]) }
	if share("A81001") < 0.3 || share("B82005") >= 0.3 || share("P81002") >= 0.3 {
		t.Errorf("last month's uptake A81001 %.2f B82005 %.2f P81002 %.2f: want the first above 30%% and the others below",
			share("A81001"), share("B82005"), share("P81002"))
	}
}
