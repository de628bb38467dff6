package seed

import (
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// Online services states of the demo data: patients whose practice set particular access levels, a
// redacted entry, practices' cancellation cut-offs, and the proxy user's grants. They are chosen by
// position, not drawn from the random streams, so adding them reshuffles nothing else.

// accessLevels are the online-access levels the practice set for a patient ("" leaves a part out).
type accessLevels struct {
	record, from, prescriptions, appointments string
}

// grantDef is one proxy grant of the proxy user.
type grantDef struct {
	patient    *patientProfile
	start, end time.Time
	levels     accessLevels
}

// cancellationCutoffs are the practices' online cancellation cut-offs in hours; a practice not listed
// sets none and gets the server's default.
var cancellationCutoffs = map[string]int{"A81001": 24, "B82005": 2}

// The patients in a special state, by 1-based index. The dev identity provider's login page offers them.
const (
	redactedPatient      = 1 // pat-0001: one immunisation redacted for online access
	notSwitchedOnPatient = 4 // pat-0004: the practice has not switched on record access
	prospectivePatient   = 5 // pat-0005: full record from 2023-10-31, prescriptions view only
	noServicesPatient    = 6 // pat-0006: detailed record, no appointments or prescriptions online
)

// assignOnlineStates sets the special states on the built patients.
func (g *gen) assignOnlineStates() {
	at := func(i int) *patientProfile {
		if i <= len(g.patients) {
			return g.patients[i-1]
		}
		return nil
	}
	if p := at(redactedPatient); p != nil {
		p.redactFirstImmunization = true
	}
	if p := at(notSwitchedOnPatient); p != nil {
		p.access = &accessLevels{record: "none", prescriptions: "manage", appointments: "manage"}
	}
	if p := at(prospectivePatient); p != nil {
		p.access = &accessLevels{record: "full", from: "2023-10-31", prescriptions: "view", appointments: "manage"}
	}
	if p := at(noServicesPatient); p != nil {
		p.access = &accessLevels{record: "detailed", prescriptions: "none", appointments: "none"}
	}
	cared := youngestProfile(g.patients)
	g.grants = append(g.grants, grantDef{patient: cared, start: g.day(g.now, -365), end: g.day(g.now, 365),
		levels: accessLevels{record: "summary", prescriptions: "manage", appointments: "manage"}})
	if lapsed := g.expiredGrantPatient(cared); lapsed != nil {
		g.grants = append(g.grants, grantDef{patient: lapsed, start: g.day(g.now, -730), end: g.day(g.now, -30),
			levels: accessLevels{record: "full", prescriptions: "manage", appointments: "manage"}})
	}
}

// expiredGrantPatient is who the proxy user used to act for: the first patient after the special ones
// who is not the one they act for now.
func (g *gen) expiredGrantPatient(cared *patientProfile) *patientProfile {
	for _, p := range g.patients[min(noServicesPatient, len(g.patients)):] {
		if p != cared {
			return p
		}
	}
	return nil
}

func (a *accessLevels) extension() obj {
	var parts arr
	add := func(name, key, v string) {
		if v != "" {
			parts = append(parts, obj{{"url", name}, {key, v}})
		}
	}
	add("record", "valueCode", a.record)
	add("recordFrom", "valueDate", a.from)
	add("prescriptions", "valueCode", a.prescriptions)
	add("appointments", "valueCode", a.appointments)
	return obj{{"url", online.AccessExtension}, {"extension", parts}}
}

// proxyNHSNumber is the proxy user's own NHS number: the next valid one after the patients', held by no
// Patient.
func (g *gen) proxyNHSNumber() string {
	extra := g.nhsNumbers(g.opts.Patients + 1)
	return extra[len(extra)-1]
}

// emitGrants writes the proxy user's grants as RelatedPersons.
func (g *gen) emitGrants() {
	proxy := g.proxyNHSNumber()
	for i, gr := range g.grants {
		g.emit("RelatedPerson", "proxy-"+gr.patient.id[4:]+"-"+string(rune('a'+i)),
			kv{"extension", arr{gr.levels.extension()}},
			kv{"identifier", arr{identifier(fhir.NHSNumberSystem, proxy)}},
			kv{"active", true},
			kv{"patient", ref("Patient", gr.patient.id)},
			kv{"relationship", arr{concept("http://terminology.hl7.org/CodeSystem/v3-RoleCode", code{"PRN", "parent"})}},
			kv{"name", arr{obj{{"use", "official"}, {"family", "Carer"}, {"given", arr{"Pat"}}}}},
			kv{"period", obj{{"start", g.dateTime(gr.start)}, {"end", g.dateTime(gr.end)}}},
		)
	}
}

func youngestProfile(ps []*patientProfile) *patientProfile {
	best := ps[0]
	for _, p := range ps[1:] {
		if p.birthDate.After(best.birthDate) {
			best = p
		}
	}
	return best
}
