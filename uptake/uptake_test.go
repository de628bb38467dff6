package uptake

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

var at = time.Date(2025, 3, 31, 23, 30, 0, 0, time.UTC) // 00:30 on 1 April in London (summer time)

func ent(typ string) audit.Entity { return audit.Entity{Type: typ, ID: "x", Version: 1} }

func TestClassifyCountsPatientAndProxyActionsOnce(t *testing.T) {
	patient := audit.Summary{Recorded: at, Role: audit.RolePatient, UserPatient: "p1", UserNHS: "9000000009", Patients: []string{"p1"}}
	proxy := audit.Summary{Recorded: at, Role: audit.RoleProxy, UserNHS: "9000000017", Patients: []string{"p2"}}
	with := func(s audit.Summary, edit func(*audit.Summary)) audit.Summary { edit(&s); return s }
	tests := []struct {
		name string
		in   audit.Summary
		want Effect
	}{
		{"a booking", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "create", 201, []audit.Entity{ent("Appointment")}
		}),
			Effect{Use: Appointments, Patient: "p1"}},
		{"a cancellation (the only change patients may make)", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "update", 200, []audit.Entity{ent("Appointment")}
		}), Effect{Use: Appointments, Patient: "p1"}},
		{"a cancellation by patch", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "patch", 200, []audit.Entity{ent("Appointment")}
		}), Effect{Use: Appointments, Patient: "p1"}},
		{"a conditional create that found the booking already there", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "create", 200, []audit.Entity{ent("Appointment")}
		}), Effect{Patient: "p1"}},
		{"a repeat request", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "create", 201, []audit.Entity{ent("Task")}
		}),
			Effect{Use: Prescriptions, Patient: "p1"}},
		{"a search that showed immunisations", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "search-type", 200, []audit.Entity{ent("Immunization"), ent("Immunization")}
		}), Effect{Use: RecordViews, Patient: "p1"}},
		{"a search that showed nothing", with(patient, func(s *audit.Summary) { s.Interaction, s.Status = "search-type", 200 }),
			Effect{Patient: "p1"}},
		{"reading one's own demographics is not a record entry", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "read", 200, []audit.Entity{ent("Patient")}
		}), Effect{Patient: "p1"}},
		{"appointments listed are not record entries", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "search-type", 200, []audit.Entity{ent("Appointment")}
		}), Effect{Patient: "p1"}},
		{"a search that showed some entries and withheld others", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Withheld, s.Entities = "search-type", 200, true, []audit.Entity{ent("Immunization")}
		}), Effect{Use: RecordViews, Barrier: BarrierConfidential, Patient: "p1"}},
		{"a proxy's view counts for the patient acted for, and the proxy as a user", with(proxy, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "read", 200, []audit.Entity{ent("MedicationRequest")}
		}), Effect{Use: RecordViews, Patient: "p2", Proxy: "9000000017"}},
		{"a proxy without a grant", with(proxy, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Decision, s.Patients, s.PatientNHS = "search-type", 403, "deny-proxy", nil, "9000000009"
		}), Effect{Barrier: BarrierProxy, PatientNHS: "9000000009"}},
		{"a P5 patient refused record data", audit.Summary{Recorded: at, Role: audit.RolePatient, UserNHS: "9000000009",
			Interaction: "search-type", Status: 403, Decision: "deny-level"}, Effect{Barrier: BarrierLevel, PatientNHS: "9000000009"}},
		{"no record linked", audit.Summary{Recorded: at, Role: audit.RolePatient, UserNHS: "9000000009",
			Interaction: "read", Status: 403, Decision: "deny-no-record"}, Effect{Barrier: BarrierNoRecord, PatientNHS: "9000000009"}},
		{"service switched off", with(patient, func(s *audit.Summary) { s.Interaction, s.Status, s.Decision = "create", 403, "deny-access-level" }),
			Effect{Barrier: BarrierSwitchedOff, Patient: "p1"}},
		{"a redacted entry answered as not found", with(patient, func(s *audit.Summary) { s.Interaction, s.Status, s.Decision = "read", 404, "deny-redacted" }),
			Effect{Barrier: BarrierConfidential, Patient: "p1"}},
		{"another patient's record", with(patient, func(s *audit.Summary) { s.Interaction, s.Status, s.Decision = "read", 403, "deny-compartment" }),
			Effect{Barrier: BarrierOther, Patient: "p1"}},
		{"a slot already taken is no refusal", with(patient, func(s *audit.Summary) { s.Interaction, s.Status, s.Decision = "create", 409, "allow" }),
			Effect{}},
		{"a GP system's booking", audit.Summary{Recorded: at, Interaction: "create", Status: 201, Entities: []audit.Entity{ent("Appointment")}},
			Effect{}},
		{"the record of a transaction Bundle", with(patient, func(s *audit.Summary) {
			s.Interaction, s.Status, s.Entities = "transaction", 200, []audit.Entity{ent("Appointment")}
		}), Effect{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Classify(tc.in)
			if tc.want != (Effect{}) {
				tc.want.Period = Period{2025, time.April}
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPeriodsAreEnglishCalendarMonths(t *testing.T) {
	p, err := ParsePeriod("2025-03")
	if err != nil || p != (Period{2025, time.March}) || p.String() != "2025-03" || p.LastDay() != "2025-03-31" {
		t.Fatalf("ParsePeriod: %v %v", p, err)
	}
	if PeriodOf(at) != (Period{2025, time.April}) {
		t.Errorf("23:30 UTC on 31 March in summer time is April in England, got %v", PeriodOf(at))
	}
	if got := (Period{2025, time.January}).Add(-1); got != (Period{2024, time.December}) {
		t.Errorf("Add(-1) = %v", got)
	}
	for _, bad := range []string{"2025-13", "2025-3", "25-03", "2025/03", "abcd-ef", "1999-01"} {
		if _, err := ParsePeriod(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestRegistrationAndEnabledFollowThePolicy(t *testing.T) {
	entries := []fhir.IndexEntry{{Param: "general-practitioner", Value: "Practitioner/d1"},
		{Param: "general-practitioner", Value: "Organization/o2"}, {Param: "organization", Value: "Organization/o1"}}
	if got := Registered(entries); got != "o1" {
		t.Errorf("managing organization first: %q", got)
	}
	if got := Registered(entries[:2]); got != "o2" {
		t.Errorf("else the first practice among the GPs: %q", got)
	}
	if got := Registered(entries[:1]); got != "" {
		t.Errorf("a practitioner is no practice: %q", got)
	}
	tests := []struct {
		access online.Access
		want   Enabled
	}{
		{online.DefaultAccess, Enabled{Appointments: true, Prescriptions: true}},
		{online.Access{Record: online.RecordDetailed}, Enabled{Record: true}},
		{online.Access{Record: online.RecordFull, Appointments: online.ServiceView, Prescriptions: online.ServiceView}, Enabled{Record: true}},
		{online.NoAccess, Enabled{}},
	}
	for _, tc := range tests {
		if got := EnabledBy(tc.access); got != tc.want || got.Any() != (tc.want != Enabled{}) {
			t.Errorf("EnabledBy(%+v) = %+v, want %+v", tc.access, got, tc.want)
		}
	}
}

func TestComputeWorksOutUptakeGapAndSlotSupply(t *testing.T) {
	c := Census{Name: "A", ListSize: 200, Enabled: 160, Slots: 50, OnlineSlots: 20}
	f := Compute(Period{2025, 3}, "A1", &c, Counts{Users: 50}, 0.30)
	if *f.Uptake != 0.25 || *f.UptakeEnabled != 50.0/160 || math.Abs(*f.Gap-0.05) > 1e-12 || f.MeetsTarget {
		t.Errorf("uptake %v enabled %v gap %v meets %v", *f.Uptake, *f.UptakeEnabled, *f.Gap, f.MeetsTarget)
	}
	if *f.OnlinePer1000 != 100 || *f.OnlineShare != 0.4 {
		t.Errorf("slots per 1000 %v share %v", *f.OnlinePer1000, *f.OnlineShare)
	}
	if g := Compute(Period{2025, 3}, "A1", nil, Counts{Users: 5}, 0.3); g.Uptake != nil || g.HasCensus {
		t.Errorf("without a census uptake is unknown: %+v", g)
	}
	empty := Compute(Period{2025, 3}, "A1", &Census{}, Counts{}, 0.3)
	if empty.Uptake != nil || empty.OnlineShare != nil {
		t.Errorf("an empty list has no uptake: %+v", empty)
	}
	if got := f.POMI(); len(got) != 8 || got[0] != (Field{"patient_list_size", 200}) || got[7].Name != "Pat_DetCodeRec_Use" {
		t.Errorf("POMI fields: %v", got)
	}
}

func TestPairSuggestsUpToThreeAboveTargetOfSimilarSize(t *testing.T) {
	mk := func(code string, size, users int) Figures {
		return Compute(Period{2025, 3}, code, &Census{ListSize: size}, Counts{Users: users}, 0.30)
	}
	figs := []Figures{
		mk("LOW", 1000, 100),  // 10%: below
		mk("A", 1100, 400),    // above, close
		mk("B", 900, 500),     // above, close
		mk("C", 1000, 300),    // exactly on target: counts as meeting it, closest
		mk("D", 1900, 900),    // above, within a factor of two
		mk("E", 2100, 900),    // above, too big
		mk("F", 1000, 200),    // below: never a partner
		mk("TINY", 40, 1),     // below, nobody of its size above
		mk("G", 480, 400),     // above, too small for LOW
		mk("SAME", 1100, 500), // above, same distance as A with higher uptake
	}
	Pair(figs)
	want := map[string][]string{"LOW": {"C", "SAME", "A"}, "F": {"C", "SAME", "A"}, "TINY": nil}
	for _, f := range figs {
		if w, ok := want[f.Practice]; ok && !slices.Equal(f.Partners, w) {
			t.Errorf("%s partners %v, want %v", f.Practice, f.Partners, w)
		}
		if f.MeetsTarget && f.Partners != nil {
			t.Errorf("%s meets the target and got partners %v", f.Practice, f.Partners)
		}
	}
}

func TestPairPairsAThousandPracticesQuickly(t *testing.T) {
	var figs []Figures
	for i := 0; i < 1000; i++ {
		figs = append(figs, Compute(Period{2025, 3}, fmt.Sprintf("P%04d", i), &Census{ListSize: 1000 + i*13%9000}, Counts{Users: (i * 37) % 4000}, 0.3))
	}
	start := time.Now()
	Pair(figs)
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("pairing 1000 practices took %v", d)
	}
	paired := 0
	for _, f := range figs {
		if len(f.Partners) > 0 {
			paired++
		}
	}
	if paired == 0 {
		t.Error("no practice was paired")
	}
}
