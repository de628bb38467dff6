package seed

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/audit"
)

// A year of online activity. The uptake dashboard counts what patients and proxies did, from the audit
// trail; a store seeded a moment ago would show one empty month. Activity makes the trail the server
// would have written had the demo practices used it for the past year: patients viewing their record,
// booking and cancelling appointments and ordering repeats, more of them as the months pass, and the
// refusals the Healthwatch study met (identity not verified to P9, a service switched off, a proxy grant
// ended, no record linked). The practices differ on purpose: one is above the 30% target, two below it.
//
// The records name the seeded patients and their real immunisations and repeat authorisations; the
// appointments and repeat requests they create or cancel are the year's, and are not among the demo
// resources (those are the coming four weeks' book). Each record's source observer is Device/gpfhir-seed,
// so an auditor can tell the simulated year from what the server did since.

// ActivityInstance is the server instance the seeded history names as its observer.
const ActivityInstance = "gpfhir-seed"

// activityClient is the app the seeded patients used: the dev identity provider's app client.
const activityClient = "gpfhir-dev-app"

// engagement is, per practice, the share of its patients active in a month a year ago and now.
var engagement = map[string][2]float64{"A81001": {0.35, 0.55}, "B82005": {0.05, 0.15}, "P81002": {0.02, 0.10}}

// Activity returns the audit inputs of a year of patients' and proxies' online activity before o.Now, in
// time order, for the server at base (whose dev identity provider, at base/dev-idp, is the issuer the
// users signed in at). Like Generate, it is a pure function of o and base.
func Activity(o Options, base string) []audit.Input {
	g := newGen(o)
	g.buildPractices()
	g.buildPatients()
	for _, pt := range g.patients {
		g.emitImmunizations(pt)
	}
	for _, pt := range g.patients {
		g.emitMedications(pt)
	}
	a := &activity{g: g, base: strings.TrimRight(base, "/"), entries: map[string][]audit.Entity{}, plans: map[string][]string{}}
	a.readRecords()
	d := People(o)
	var expiredFor *patientProfile
	for _, p := range g.patients {
		if p.nhsNumber == d.Proxy.ExpiredFor {
			expiredFor = p
		}
	}
	cared := youngestProfile(g.patients)
	thisMonth := time.Date(g.now.Year(), g.now.Month(), 1, 0, 0, 0, 0, g.loc)
	for k := 11; k >= 0; k-- {
		start := time.Date(thisMonth.Year(), thisMonth.Month()-time.Month(k), 1, 0, 0, 0, 0, g.loc)
		end := time.Date(start.Year(), start.Month()+1, 1, 0, 0, 0, 0, g.loc)
		if end.After(g.now) {
			end = g.now
		}
		if !end.After(start) {
			continue
		}
		// The share of the month that has passed: the current month is only partly over.
		part := float64(end.Sub(start)) / float64(time.Date(start.Year(), start.Month()+1, 1, 0, 0, 0, 0, g.loc).Sub(start))
		progress := float64(11-k) / 11
		month := start.Format("2006-01")
		for _, p := range g.patients {
			r := g.rng("activity/" + month + "/" + p.id)
			e := engagement[p.practice.def.ods]
			if r.Float64() < (e[0]+(e[1]-e[0])*progress)*part {
				a.active(r, p, start, end)
			}
			if r.IntN(100) < 3 {
				// Someone whose NHS login identity is verified to P5 only tries to see their record.
				a.add(a.at(r, start, end), a.user(p, "P5", nil, false), audit.Input{Interaction: "search-type", Status: 403,
					Decision: "deny-level", HasQuery: true})
			}
		}
		r := g.rng("activity/" + month + "/proxy")
		if r.Float64() < 0.6*part+0.2 {
			// The carer, acting for the patient they care for.
			a.add(a.at(r, start, end), a.user(cared, "P9", &d.Proxy, true), a.view(cared))
			if r.IntN(2) == 0 {
				a.book(r, cared, a.user(cared, "P9", &d.Proxy, true), start, end)
			}
		}
		if expiredFor != nil && k == 0 && r.IntN(3) > 0 {
			// The carer again, for the patient whose grant ended last month.
			a.add(a.at(r, start, end), a.user(expiredFor, "P9", &Person{NHSNumber: d.Proxy.NHSNumber, ProxyFor: expiredFor.nhsNumber}, false),
				audit.Input{Interaction: "search-type", Status: 403, Decision: "deny-proxy", HasQuery: true})
		}
		if k%2 == 0 {
			// The carer signed in as themselves: no GP record here is linked to their NHS number.
			a.add(a.at(r, start, end), &audit.User{Kind: "patient", Issuer: a.base + "/dev-idp", Subject: subject(d.Proxy.NHSNumber, "P9", ""),
				NHSNumber: d.Proxy.NHSNumber, ClientID: activityClient, JTI: a.jti()}, audit.Input{Interaction: "search-type", Status: 403,
				Decision: "deny-no-record", HasQuery: true})
		}
	}
	sort.SliceStable(a.out, func(i, j int) bool { return a.out[i].Recorded.Before(a.out[j].Recorded) })
	for i := range a.out {
		a.out[i].ID = fmt.Sprintf("seed-%06d", i+1)
		a.out[i].RequestID = fmt.Sprintf("seed-req-%06d", i+1)
	}
	return a.out
}

type activity struct {
	g    *gen
	base string
	out  []audit.Input
	// entries are each patient's record entries a view of their record shows; plans their repeat
	// authorisations.
	entries map[string][]audit.Entity
	plans   map[string][]string
	// withheld: patients whose record has an entry withheld from online access.
	withheld map[string]bool
	n        int
}

// readRecords works out, from the generated resources, what a view of each patient's record shows.
func (a *activity) readRecords() {
	a.withheld = map[string]bool{}
	from := map[string]time.Time{}
	for _, p := range a.g.patients {
		if p.access != nil && p.access.from != "" {
			t, _ := time.Parse("2006-01-02", p.access.from)
			from[p.id] = t
		}
	}
	for _, r := range a.g.out {
		var res struct {
			Meta *struct {
				Security []any `json:"security"`
			} `json:"meta"`
			Patient *struct {
				Reference string `json:"reference"`
			} `json:"patient"`
			Subject *struct {
				Reference string `json:"reference"`
			} `json:"subject"`
			Intent     string `json:"intent"`
			Occurrence string `json:"occurrenceDateTime"`
		}
		if r.Type != "Immunization" && r.Type != "MedicationRequest" || json.Unmarshal(r.Body, &res) != nil {
			continue
		}
		switch {
		case r.Type == "Immunization" && res.Patient != nil:
			pid := strings.TrimPrefix(res.Patient.Reference, "Patient/")
			if res.Meta != nil && len(res.Meta.Security) > 0 {
				a.withheld[pid] = true
				continue
			}
			if when, err := time.Parse(time.RFC3339, res.Occurrence); err == nil && when.Before(from[pid]) {
				continue // before the date from which the practice shows the record
			}
			a.entries[pid] = append(a.entries[pid], audit.Entity{Type: r.Type, ID: r.ID, Version: 1, PatientIDs: []string{pid}})
		case r.Type == "MedicationRequest" && res.Subject != nil && res.Intent == "plan":
			pid := strings.TrimPrefix(res.Subject.Reference, "Patient/")
			a.plans[pid] = append(a.plans[pid], r.ID)
		}
	}
}

// active is one patient's month: a few uses of the services their practice has switched on, and a
// refusal when they try one it has not.
func (a *activity) active(r *rand.Rand, p *patientProfile, start, end time.Time) {
	levels := accessLevels{record: "summary", prescriptions: "manage", appointments: "manage"}
	if p.access != nil {
		levels = *p.access
	}
	u := a.user(p, "P9", nil, false)
	for i, n := 0, 1+r.IntN(3); i < n; i++ {
		switch x := r.IntN(10); {
		case x < 5:
			if levels.record == "none" {
				a.add(a.at(r, start, end), u, audit.Input{Interaction: "search-type", Status: 403, Decision: "deny-access-level", HasQuery: true})
				continue
			}
			a.add(a.at(r, start, end), u, a.view(p))
		case x < 8:
			if levels.appointments != "manage" {
				a.add(a.at(r, start, end), u, audit.Input{Interaction: "create", Status: 403, Decision: "deny-access-level"})
				continue
			}
			a.book(r, p, u, start, end)
		default:
			if levels.prescriptions != "manage" {
				a.add(a.at(r, start, end), u, audit.Input{Interaction: "create", Status: 403, Decision: "deny-access-level"})
				continue
			}
			if plans := a.plans[p.id]; len(plans) > 0 {
				a.n++
				a.add(a.at(r, start, end), u, audit.Input{Interaction: "create", Status: 201, Patients: []string{p.id},
					Entities: []audit.Entity{{Type: "Task", ID: fmt.Sprintf("task-hist-%05d", a.n), Version: 1, PatientIDs: []string{p.id}}}})
			}
		}
	}
}

// view is a search of the patient's immunisations, as a patient's app makes it.
func (a *activity) view(p *patientProfile) audit.Input {
	return audit.Input{Interaction: "search-type", Status: 200, Patients: []string{p.id}, HasQuery: true,
		Entities: a.entries[p.id], Withheld: a.withheld[p.id]}
}

// book is a booking, and now and then its cancellation a few days later.
func (a *activity) book(r *rand.Rand, p *patientProfile, u *audit.User, start, end time.Time) {
	a.n++
	id := fmt.Sprintf("appt-hist-%05d", a.n)
	at := a.at(r, start, end)
	a.add(at, u, audit.Input{Interaction: "create", Status: 201, Patients: []string{p.id},
		Entities: []audit.Entity{{Type: "Appointment", ID: id, Version: 1, PatientIDs: []string{p.id}}}})
	if later := at.Add(time.Duration(24+r.IntN(96)) * time.Hour); r.IntN(4) == 0 && later.Before(end) {
		uu := *u
		uu.JTI = a.jti()
		a.add(later, &uu, audit.Input{Interaction: "update", Status: 200, Patients: []string{p.id},
			Entities: []audit.Entity{{Type: "Appointment", ID: id, Version: 2, PatientIDs: []string{p.id}}}})
	}
}

// user is the patient, or a proxy acting for them, as a token from the dev identity provider names
// them. linked says whether the request found the patient's record (P9, and for a proxy a grant in
// force).
func (a *activity) user(p *patientProfile, level string, proxy *Person, linked bool) *audit.User {
	u := &audit.User{Kind: "patient", Issuer: a.base + "/dev-idp", NHSNumber: p.nhsNumber, ClientID: activityClient, JTI: a.jti()}
	switch {
	case proxy != nil:
		u.NHSNumber, u.ProxyFor = proxy.NHSNumber, p.nhsNumber
		if linked {
			u.PatientID = p.id
		}
	case level == "P9":
		u.PatientID = p.id
	}
	u.Subject = subject(u.NHSNumber, level, u.ProxyFor)
	return u
}

func (a *activity) add(at time.Time, u *audit.User, in audit.Input) {
	in.Recorded = at.UTC().Truncate(time.Millisecond)
	in.User = u
	in.Site, in.Instance, in.ClientAddress = a.base, ActivityInstance, "127.0.0.1"
	a.out = append(a.out, in)
}

// at is a moment in [start, end) during waking hours, when people use their apps.
func (a *activity) at(r *rand.Rand, start, end time.Time) time.Time {
	days := int(end.Sub(start).Hours()/24) + 1
	for try := 0; try < 20; try++ {
		d := start.AddDate(0, 0, r.IntN(days))
		t := time.Date(d.Year(), d.Month(), d.Day(), 7+r.IntN(15), r.IntN(60), r.IntN(60), 0, a.g.loc)
		if !t.Before(start) && t.Before(end) {
			return t
		}
	}
	return start
}

func (a *activity) jti() string {
	a.n++
	sum := sha256.Sum256([]byte(fmt.Sprintf("gpfhir seed jti %d %d", a.g.seed, a.n)))
	return hex.EncodeToString(sum[:12])
}

// subject is the dev identity provider's subject for a sign-in: opaque and stable per identity, as NHS
// login's is, never the NHS number (auth/devidp derives it the same way).
func subject(nhs, level, proxyFor string) string {
	sum := sha256.Sum256([]byte("gpfhir dev-idp subject\x00" + nhs + "\x00" + level + "\x00" + proxyFor))
	return "dev-" + hex.EncodeToString(sum[:10])
}
