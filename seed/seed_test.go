package seed

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"

	"github.com/gpfhir/gpfhir/fhir"
)

// cases are the option sets every property below must hold for.
var cases = []struct {
	name string
	opts Options
}{
	{"defaults", Options{Seed: 1}},
	{"summer time with many patients", Options{Seed: 42, Now: time.Date(2025, time.July, 2, 12, 37, 0, 0, time.UTC), Patients: 200}},
	{"clocks go back during the four weeks", Options{Seed: -7, Now: time.Date(2025, time.October, 24, 15, 10, 0, 0, time.UTC), Patients: 20}},
	{"one patient per practice", Options{Seed: 3, Now: time.Date(2026, time.January, 14, 7, 0, 0, 0, time.UTC), Patients: 3}},
}

func decode(t *testing.T, r Resource) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("%s/%s: body is not JSON: %v", r.Type, r.ID, err)
	}
	return m
}

func TestGenerate_SameOptionsGiveIdenticalBytes(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, b := Generate(tc.opts), Generate(tc.opts)
			if len(a) != len(b) {
				t.Fatalf("lengths differ: %d vs %d", len(a), len(b))
			}
			for i := range a {
				if a[i].Type != b[i].Type || a[i].ID != b[i].ID || !bytes.Equal(a[i].Body, b[i].Body) {
					t.Fatalf("resource %d differs: %s/%s vs %s/%s", i, a[i].Type, a[i].ID, b[i].Type, b[i].ID)
				}
			}
		})
	}
}

func TestGenerate_DifferentSeedGivesDifferentData(t *testing.T) {
	now := time.Date(2025, time.May, 7, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		a, b   int64
		sameAs bool
	}{
		{"seeds 1 and 2 differ", 1, 2, false},
		{"seeds 0 and -1 differ", 0, -1, false},
		{"seed 5 equals seed 5", 5, 5, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := Generate(Options{Seed: tc.a, Now: now})
			b := Generate(Options{Seed: tc.b, Now: now})
			var patientsA, patientsB [][]byte
			for _, r := range a {
				if r.Type == "Patient" {
					patientsA = append(patientsA, r.Body)
				}
			}
			for _, r := range b {
				if r.Type == "Patient" {
					patientsB = append(patientsB, r.Body)
				}
			}
			same := bytes.Equal(bytes.Join(patientsA, nil), bytes.Join(patientsB, nil))
			if same != tc.sameAs {
				t.Errorf("patients identical = %v, want %v", same, tc.sameAs)
			}
		})
	}
}

func TestGenerate_CountsMatchOptions(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.opts.Patients
			if want == 0 {
				want = DefaultPatients
			}
			n := map[string]int{}
			for _, r := range Generate(tc.opts) {
				n[r.Type]++
			}
			if n["Organization"] != 3 {
				t.Errorf("Organizations = %d, want 3", n["Organization"])
			}
			if n["Patient"] != want {
				t.Errorf("Patients = %d, want %d", n["Patient"], want)
			}
			if p := n["Practitioner"]; p < 6 || p > 12 {
				t.Errorf("Practitioners = %d, want 2-4 per practice", p)
			}
			if n["Immunization"] < want {
				t.Errorf("Immunizations = %d, want at least one per patient", n["Immunization"])
			}
			if n["Slot"] < 200 || n["Slot"] > 1000 {
				t.Errorf("Slots = %d, want a few hundred", n["Slot"])
			}
			for _, typ := range []string{"Location", "Schedule", "Appointment"} {
				if n[typ] == 0 {
					t.Errorf("no %s generated", typ)
				}
			}
			t.Logf("counts: %v", n)
		})
	}
}

func TestGenerate_IDsAreUniqueAndValid(t *testing.T) {
	idRE := regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, r := range Generate(tc.opts) {
				key := r.Type + "/" + r.ID
				if seen[key] {
					t.Errorf("duplicate %s", key)
				}
				seen[key] = true
				if !idRE.MatchString(r.ID) {
					t.Errorf("%s: id is not a valid FHIR id", key)
				}
				m := decode(t, r)
				if m["resourceType"] != r.Type || m["id"] != r.ID {
					t.Errorf("%s: body says %v/%v", key, m["resourceType"], m["id"])
				}
				// meta is the server's to stamp; only security labels (redaction) come with the data.
				if meta, ok := m["meta"].(map[string]any); ok && (len(meta) != 1 || meta["security"] == nil) {
					t.Errorf("%s: body has meta other than security labels: %v", key, meta)
				}
			}
		})
	}
}

func TestGenerate_NHSNumbersPassModulus11AndAreUnique(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, r := range Generate(tc.opts) {
				if r.Type != "Patient" {
					continue
				}
				var p struct {
					Identifier []struct{ System, Value string }
				}
				if err := json.Unmarshal(r.Body, &p); err != nil {
					t.Fatal(err)
				}
				found := 0
				for _, id := range p.Identifier {
					if id.System != fhir.NHSNumberSystem {
						continue
					}
					found++
					if err := fhir.CheckNHSNumber(id.Value); err != nil {
						t.Errorf("%s: NHS number %s: %v", r.ID, id.Value, err)
					}
					if !strings.HasPrefix(id.Value, "999") {
						t.Errorf("%s: NHS number %s is outside the 999 test range", r.ID, id.Value)
					}
					if seen[id.Value] {
						t.Errorf("%s: NHS number %s used twice", r.ID, id.Value)
					}
					seen[id.Value] = true
				}
				if found != 1 {
					t.Errorf("%s: %d NHS numbers, want 1", r.ID, found)
				}
			}
		})
	}
}

func TestGenerate_EveryResourceIsValidFHIRR4(t *testing.T) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases[:3] {
		t.Run(tc.name, func(t *testing.T) {
			failures := 0
			for _, r := range Generate(tc.opts) {
				if _, err := u.Unmarshal(r.Body); err != nil {
					failures++
					if failures <= 5 {
						t.Errorf("%s/%s: %v\n%s", r.Type, r.ID, err, r.Body)
					}
				}
			}
			if failures > 5 {
				t.Errorf("... %d invalid resources in all", failures)
			}
		})
	}
}

var literalRef = regexp.MustCompile(`^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$`)

// references returns every Reference.reference value in a decoded resource.
func references(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if s, ok := e.(string); ok && k == "reference" {
				*out = append(*out, s)
				continue
			}
			references(e, out)
		}
	case []any:
		for _, e := range x {
			references(e, out)
		}
	}
}

func TestGenerate_ReferencesPointToEarlierResources(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[string]bool{}
			for _, r := range Generate(tc.opts) {
				var refs []string
				references(decode(t, r), &refs)
				for _, s := range refs {
					if !literalRef.MatchString(s) {
						t.Errorf("%s/%s: reference %q is not a literal Type/id", r.Type, r.ID, s)
					} else if !seen[s] {
						t.Errorf("%s/%s: reference %q is not to an earlier resource", r.Type, r.ID, s)
					}
				}
				seen[r.Type+"/"+r.ID] = true
			}
		})
	}
}

type slotInfo struct {
	ID, Status string
	Start, End time.Time
	Schedule   struct{ Reference string }
	Extension  []struct {
		URL          string
		ValueBoolean *bool
	}
}

type apptInfo struct {
	ID, Status  string
	Start, End  time.Time
	Slot        []struct{ Reference string }
	Participant []struct {
		Actor  struct{ Reference string }
		Status string
	}
}

func slotsAndAppointments(t *testing.T, rs []Resource) ([]slotInfo, []apptInfo) {
	t.Helper()
	var slots []slotInfo
	var appts []apptInfo
	for _, r := range rs {
		switch r.Type {
		case "Slot":
			var s slotInfo
			if err := json.Unmarshal(r.Body, &s); err != nil {
				t.Fatal(err)
			}
			slots = append(slots, s)
		case "Appointment":
			var a apptInfo
			if err := json.Unmarshal(r.Body, &a); err != nil {
				t.Fatal(err)
			}
			appts = append(appts, a)
		}
	}
	return slots, appts
}

func TestGenerate_SlotsCoverNowsDayThroughFourWeeks(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.opts.Now
			if now.IsZero() {
				now = DefaultNow
			}
			loc := london()
			now = now.In(loc)
			day0 := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
			slots, _ := slotsAndAppointments(t, Generate(tc.opts))

			perDay := map[string]int{}
			freeFirstWeek := 0
			var firstToday time.Time
			for _, s := range slots {
				if !s.End.After(s.Start) {
					t.Errorf("%s: end %v is not after start %v", s.ID, s.End, s.Start)
				}
				local := s.Start.In(loc)
				if local.Hour() < 8 || s.End.In(loc).After(time.Date(local.Year(), local.Month(), local.Day(), 18, 0, 0, 0, loc)) {
					t.Errorf("%s: %v-%v is outside 08:00-18:00", s.ID, s.Start, s.End)
				}
				if wd := local.Weekday(); wd == time.Saturday || wd == time.Sunday {
					t.Errorf("%s: slot on a %v", s.ID, wd)
				}
				if s.Start.After(day0.AddDate(0, 0, 29)) {
					t.Errorf("%s: starts after Now's day + 28", s.ID)
				}
				if s.Start.Before(day0.AddDate(0, 0, -28)) {
					t.Errorf("%s: starts more than 4 weeks before Now's day", s.ID)
				}
				if s.Start.Before(now) && s.Status != "busy" {
					t.Errorf("%s: past slot is %s, want busy", s.ID, s.Status)
				}
				if !s.Start.Before(now) {
					perDay[local.Format("2006-01-02")]++
					if s.Status == "free" && s.Start.Before(day0.AddDate(0, 0, 7)) {
						freeFirstWeek++
					}
					if local.Format("2006-01-02") == day0.Format("2006-01-02") && (firstToday.IsZero() || s.Start.Before(firstToday)) {
						firstToday = s.Start
					}
				}
				online := 0
				for _, e := range s.Extension {
					if e.URL == OnlineBookableExtension && e.ValueBoolean != nil {
						online++
					}
				}
				if online != 1 {
					t.Errorf("%s: %d online-bookable markers, want 1", s.ID, online)
				}
			}
			for n := 0; n <= 28; n++ {
				d := day0.AddDate(0, 0, n)
				if wd := d.Weekday(); wd == time.Saturday || wd == time.Sunday {
					continue
				}
				if n == 0 && now.Hour() >= 17 {
					continue
				}
				if perDay[d.Format("2006-01-02")] == 0 {
					t.Errorf("no future slots on %s (day +%d)", d.Format("Mon 2006-01-02"), n)
				}
			}
			if freeFirstWeek == 0 {
				t.Error("no free slots in the first week")
			}
			if wd := now.Weekday(); wd != time.Saturday && wd != time.Sunday && now.Hour() < 17 {
				want := now.Truncate(15 * time.Minute)
				if want.Before(now) {
					want = want.Add(15 * time.Minute)
				}
				if open := day0.Add(8 * time.Hour); want.Before(open) {
					want = open
				}
				if !firstToday.Equal(want) {
					t.Errorf("first slot today starts %v, want the next quarter hour %v", firstToday, want)
				}
			}
		})
	}
}

func TestGenerate_BusySlotsHaveExactlyOneAppointment(t *testing.T) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			now := tc.opts.Now
			if now.IsZero() {
				now = DefaultNow
			}
			slots, appts := slotsAndAppointments(t, Generate(tc.opts))
			bySlot := map[string][]apptInfo{}
			statuses := map[string]int{}
			for _, a := range appts {
				statuses[a.Status]++
				if len(a.Slot) != 1 {
					t.Errorf("%s: %d slots, want 1", a.ID, len(a.Slot))
					continue
				}
				if a.Status == "booked" || a.Status == "fulfilled" {
					bySlot[a.Slot[0].Reference] = append(bySlot[a.Slot[0].Reference], a)
				}
				if a.Status == "booked" && !a.Start.After(now) {
					t.Errorf("%s: booked appointment is not in the future", a.ID)
				}
				if a.Status == "fulfilled" && a.Start.After(now) {
					t.Errorf("%s: fulfilled appointment is in the future", a.ID)
				}
				if len(a.Participant) < 2 || !strings.HasPrefix(a.Participant[0].Actor.Reference, "Patient/") ||
					!strings.HasPrefix(a.Participant[1].Actor.Reference, "Practitioner/") {
					t.Errorf("%s: participants %+v, want the Patient then the Practitioner", a.ID, a.Participant)
				}
			}
			for _, s := range slots {
				got := bySlot["Slot/"+s.ID]
				switch s.Status {
				case "busy":
					if len(got) != 1 {
						t.Errorf("busy %s has %d booked/fulfilled appointments, want 1", s.ID, len(got))
						continue
					}
					if !got[0].Start.Equal(s.Start) || !got[0].End.Equal(s.End) {
						t.Errorf("%s: appointment %v-%v does not match slot %v-%v", got[0].ID, got[0].Start, got[0].End, s.Start, s.End)
					}
					if s.Start.After(now) && got[0].Status != "booked" {
						t.Errorf("future busy %s has a %s appointment, want booked", s.ID, got[0].Status)
					}
				case "free":
					if len(got) != 0 {
						t.Errorf("free %s has %d booked/fulfilled appointments, want 0", s.ID, len(got))
					}
				default:
					t.Errorf("%s: status %q", s.ID, s.Status)
				}
				delete(bySlot, "Slot/"+s.ID)
			}
			for ref := range bySlot {
				t.Errorf("appointment for unknown slot %s", ref)
			}
			for _, st := range []string{"booked", "fulfilled", "cancelled"} {
				if statuses[st] == 0 {
					t.Errorf("no %s appointments", st)
				}
			}
		})
	}
}

func TestGenerate_PatientNamesIncludeAccentedCharacters(t *testing.T) {
	accented := 0
	for _, r := range Generate(Options{Seed: 9}) {
		if r.Type == "Patient" && bytes.ContainsAny(r.Body, "ëéâïñöóúüÓ") {
			accented++
		}
	}
	if accented < 3 {
		t.Errorf("%d patients with accented names, want at least 3", accented)
	}
}

func TestGenerate_RepeatAuthorisationsHaveIssuesBasedOnThem(t *testing.T) {
	type medReq struct {
		ID, Status, Intent string
		Extension          []struct {
			URL       string
			Extension []struct {
				URL              string
				ValueUnsignedInt *int
				ValueDateTime    string
			}
		}
		BasedOn         []struct{ Reference string }
		DispenseRequest struct{ NumberOfRepeatsAllowed *int }
	}
	plans := map[string]medReq{}
	orders := 0
	for _, r := range Generate(Options{Seed: 11, Patients: 120}) {
		if r.Type != "MedicationRequest" {
			continue
		}
		var m medReq
		if err := json.Unmarshal(r.Body, &m); err != nil {
			t.Fatal(err)
		}
		switch m.Intent {
		case "plan":
			if len(m.Extension) != 1 || m.Extension[0].URL != repeatInformationURL || len(m.Extension[0].Extension) != 2 {
				t.Errorf("%s: missing repeat information extension", m.ID)
			}
			if m.DispenseRequest.NumberOfRepeatsAllowed == nil {
				t.Errorf("%s: missing numberOfRepeatsAllowed", m.ID)
			}
			plans[m.ID] = m
		case "order":
			orders++
			if len(m.BasedOn) != 1 {
				t.Fatalf("%s: basedOn %v", m.ID, m.BasedOn)
			}
			if _, ok := plans[strings.TrimPrefix(m.BasedOn[0].Reference, "MedicationRequest/")]; !ok {
				t.Errorf("%s: basedOn %s is not a plan", m.ID, m.BasedOn[0].Reference)
			}
		default:
			t.Errorf("%s: intent %q", m.ID, m.Intent)
		}
	}
	statuses := map[string]int{}
	for _, p := range plans {
		statuses[p.Status]++
	}
	if statuses["active"] == 0 || statuses["stopped"]+statuses["completed"] == 0 || orders == 0 {
		t.Errorf("plan statuses %v and %d orders: want active and ended plans, and orders", statuses, orders)
	}
}

func TestPeopleMatchesTheGeneratedPatients(t *testing.T) {
	d := People(Options{Seed: 1})
	if len(d.Practices) != 3 || len(d.Patients) != DefaultPatients {
		t.Fatalf("%d practices, %d patients", len(d.Practices), len(d.Patients))
	}
	bodies := map[string]string{}
	for _, r := range Generate(Options{Seed: 1}) {
		bodies[r.Type+"/"+r.ID] = string(r.Body)
	}
	for _, p := range d.Patients {
		b := bodies["Patient/"+p.PatientID]
		if !strings.Contains(b, p.NHSNumber) || !strings.Contains(b, "org-"+strings.ToLower(p.PracticeODS)) {
			t.Errorf("%s: directory says %s at %s; resource is %s", p.PatientID, p.NHSNumber, p.PracticeODS, b)
		}
		if p.NHSNumber == d.Proxy.NHSNumber {
			t.Errorf("the proxy's NHS number belongs to %s", p.PatientID)
		}
	}
	if d.Proxy.ProxyFor == "" {
		t.Error("the proxy acts for no one")
	}
}

func TestGenerate_OnlineServicesStates(t *testing.T) {
	res := Generate(Options{Seed: 1})
	d := People(Options{Seed: 1})
	body := map[string]string{}
	var grants []map[string]any
	for _, r := range res {
		body[r.Type+"/"+r.ID] = string(r.Body)
		if r.Type == "RelatedPerson" {
			grants = append(grants, decode(t, r))
		}
	}
	for _, tc := range []struct{ key, want string }{
		{"Patient/pat-0004", `"valueCode":"none"`},
		{"Patient/pat-0005", `"valueDate":"2023-10-31"`},
		{"Patient/pat-0006", `{"url":"appointments","valueCode":"none"}`},
		{"Immunization/imm-0001-1", `"code":"redacted-online"`},
		{"Organization/org-a81001", `"valueUnsignedInt":24`},
	} {
		if !strings.Contains(body[tc.key], tc.want) {
			t.Errorf("%s does not carry %s: %s", tc.key, tc.want, body[tc.key])
		}
	}
	if strings.Contains(body["Patient/pat-0002"], "online-access") {
		t.Errorf("patients outside the special states keep the defaults")
	}
	if len(grants) != 2 || d.Proxy.ExpiredFor == "" || d.Proxy.ProxyFor == "" {
		t.Fatalf("want an active and an expired grant for the proxy user: %d grants, %+v", len(grants), d.Proxy)
	}
	for _, g := range grants {
		ids := g["identifier"].([]any)
		if ids[0].(map[string]any)["value"] != d.Proxy.NHSNumber {
			t.Errorf("grant %v is not for the proxy user's NHS number", g["id"])
		}
	}
}
