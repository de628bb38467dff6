package seed

import (
	"hash/fnv"
	"math/rand/v2"
	"sync"
	"time"
	_ "time/tzdata" // Europe/London must resolve the same way on every machine, or output would differ.
)

// Options control Generate. The zero value is usable.
type Options struct {
	// Seed selects the data set. The same Options always produce byte-identical output.
	Seed int64
	// Now is the instant the data is built around: appointments before it are past, slots after it are
	// free. Zero means DefaultNow, so that output never depends on the wall clock.
	Now time.Time
	// Patients is how many patients to create, spread over the practices. 0 (or less) means 50; values
	// above MaxPatients are capped.
	Patients int
}

// DefaultNow is used when Options.Now is zero: a Monday morning in London.
var DefaultNow = time.Date(2025, time.March, 10, 9, 5, 0, 0, time.UTC)

// DefaultPatients is the number of patients created when Options.Patients is not positive.
const DefaultPatients = 50

// MaxPatients bounds Options.Patients: the NHS numbers are drawn from one run of the 999 test range.
const MaxPatients = 100000

// Resource is one generated FHIR R4 resource.
type Resource struct {
	Type string
	ID   string
	// Body is the resource as FHIR JSON, with resourceType and id set and no meta but security labels.
	Body []byte
}

// newGen applies the Options defaults and makes a generator. Generate and People share it, so that the
// directory the identity provider serves is always the data that was seeded.
func newGen(o Options) *gen {
	if o.Now.IsZero() {
		o.Now = DefaultNow
	}
	if o.Patients <= 0 {
		o.Patients = DefaultPatients
	}
	if o.Patients > MaxPatients {
		o.Patients = MaxPatients
	}
	g := &gen{seed: uint64(o.Seed), loc: london(), opts: o}
	g.now = o.Now.In(g.loc)
	return g
}

// Generate builds the demo data set. Resources come in dependency order: every literal reference
// ("Type/id") points to a resource earlier in the slice, so a loader can create them one by one.
// The order is Organization, Location, Practitioner, Patient, RelatedPerson (proxy grants),
// Immunization, MedicationRequest, the rest of each patient's record (AllergyIntolerance,
// MedicationStatement, Condition, Encounter, Observation, DiagnosticReport, Procedure, ServiceRequest,
// Composition, DocumentReference, Communication), Schedule, Slot, Appointment.
func Generate(o Options) []Resource {
	g := newGen(o)

	g.buildPractices()
	g.buildPatients()

	for _, p := range g.practices {
		g.emitOrganization(p)
	}
	for _, p := range g.practices {
		g.emitLocation(p)
	}
	for _, p := range g.practices {
		for _, c := range p.clinicians {
			g.emitPractitioner(c)
		}
	}
	for _, pt := range g.patients {
		g.emitPatient(pt)
	}
	g.emitGrants()
	for _, pt := range g.patients {
		g.emitImmunizations(pt)
	}
	for _, pt := range g.patients {
		g.emitMedications(pt)
	}
	for _, pt := range g.patients {
		g.emitRecord(pt)
	}
	g.emitAppointmentBooks()
	return g.out
}

// gen holds the state of one Generate call.
type gen struct {
	seed uint64
	opts Options
	loc  *time.Location
	now  time.Time // opts.Now in loc

	practices []*practice
	patients  []*patientProfile
	grants    []grantDef
	out       []Resource
}

// rng returns a random source for one named part of the data set. Each part (a patient, a schedule day,
// ...) draws from its own stream, so adding a new kind of data later does not reshuffle everything else.
func (g *gen) rng(label string) *rand.Rand {
	h := fnv.New64a()
	h.Write([]byte(label))
	return rand.New(rand.NewPCG(g.seed, h.Sum64()))
}

func (g *gen) emit(typ, id string, fields ...kv) {
	body := append(obj{{"resourceType", typ}, {"id", id}}, fields...)
	g.out = append(g.out, Resource{Type: typ, ID: id, Body: encode(body)})
}

var london = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return loc
})

// Small FHIR building blocks.

func ref(typ, id string) obj { return obj{{"reference", typ + "/" + id}} }

func coding(system string, c code) obj {
	return obj{{"system", system}, {"code", c.code}, {"display", c.display}}
}

func concept(system string, c code) obj {
	return obj{{"coding", arr{coding(system, c)}}}
}

func conceptText(system string, c code, text string) obj {
	return obj{{"coding", arr{coding(system, c)}}, {"text", text}}
}

func identifier(system, value string) obj { return obj{{"system", system}, {"value", value}} }

// dateTime renders t in UK local time with its offset, as GP Connect expects.
func (g *gen) dateTime(t time.Time) string { return t.In(g.loc).Format("2006-01-02T15:04:05-07:00") }

func date(t time.Time) string { return t.Format("2006-01-02") }

// day returns local midnight n days after the day of t.
func (g *gen) day(t time.Time, n int) time.Time {
	t = t.In(g.loc)
	return time.Date(t.Year(), t.Month(), t.Day()+n, 0, 0, 0, 0, g.loc)
}

// at returns hh:mm local time on the day d.
func (g *gen) at(d time.Time, hh, mm int) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), hh, mm, 0, 0, g.loc)
}

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }
