package seed

import (
	"fmt"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

type practice struct {
	def        practiceDef
	orgID      string // "org-a81001"
	locID      string // "loc-a81001"
	key        string // "a81001", used in readable IDs
	postcode   string
	clinicians []*clinician
	patients   []*patientProfile
}

type clinician struct {
	id        string // "prac-a81001-1"
	practice  *practice
	name      clinicianName
	sdsUserID string
	gmc       string
}

// patientProfile is everything decided about one patient before any resource is written. Special
// states (identity proofing level, proxy grants, online access levels, redacted entries, ...) belong
// here as fields, set in buildPatients, and read by the emit functions.
type patientProfile struct {
	index     int // 1-based
	id        string
	nhsNumber string
	practice  *practice
	gp        *clinician
	given     string
	family    string
	gender    string // FHIR administrative gender
	birthDate time.Time
	line      string
	postcode  string
	phone     string
	email     string
	// access is what the practice set for online access; nil leaves the server's defaults.
	access *accessLevels
	// redactFirstImmunization labels the first immunisation redacted-online.
	redactFirstImmunization bool
}

func (p *patientProfile) age(now time.Time) int {
	y := now.Year() - p.birthDate.Year()
	if now.YearDay() < p.birthDate.YearDay() {
		y--
	}
	return y
}

func (g *gen) buildPractices() {
	r := g.rng("practices")
	pool := append([]clinicianName(nil), clinicianNames...)
	r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
	next := 0
	for _, d := range practiceDefs {
		key := strings.ToLower(d.ods)
		p := &practice{def: d, key: key, orgID: "org-" + key, locID: "loc-" + key}
		p.postcode = postcode(r, d.outward)
		n := 2 + r.IntN(3)
		for i := 1; i <= n; i++ {
			p.clinicians = append(p.clinicians, &clinician{
				id:        fmt.Sprintf("prac-%s-%d", key, i),
				practice:  p,
				name:      pool[next],
				sdsUserID: fmt.Sprintf("%012d", 100000000000+r.Int64N(900000000000)),
				gmc:       fmt.Sprintf("%07d", 2000000+r.IntN(5000000)),
			})
			next++
		}
		g.practices = append(g.practices, p)
	}
}

func postcode(r interface{ IntN(int) int }, outward string) string {
	return fmt.Sprintf("%s %d%c%c", outward, r.IntN(10),
		postcodeLetters[r.IntN(len(postcodeLetters))], postcodeLetters[r.IntN(len(postcodeLetters))])
}

// nhsNumbers returns n distinct valid NHS numbers from the 999 test range (never issued to real people).
func (g *gen) nhsNumbers(n int) []string {
	r := g.rng("nhs-numbers")
	c := r.IntN(400000)
	out := make([]string, 0, n)
	for len(out) < n {
		nine := fmt.Sprintf("999%06d", c)
		if check, ok := fhir.NHSCheckDigit(nine); ok {
			out = append(out, fmt.Sprintf("%s%d", nine, check))
		}
		c += 1 + r.IntN(3)
		if c > 999999 {
			panic("seed: ran out of 999-range NHS numbers")
		}
	}
	return out
}

func (g *gen) buildPatients() {
	n := g.opts.Patients
	numbers := g.nhsNumbers(n)
	spread := g.rng("practice-spread")
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("pat-%04d", i)
		r := g.rng("patient/" + id)
		var pr *practice
		if i <= len(g.practices) {
			pr = g.practices[i-1] // every practice has at least one patient
		} else {
			// Uneven list sizes, as in real life: 45% / 35% / 20%.
			switch x := spread.IntN(100); {
			case x < 45:
				pr = g.practices[0]
			case x < 80:
				pr = g.practices[1]
			default:
				pr = g.practices[2]
			}
		}
		p := &patientProfile{index: i, id: id, nhsNumber: numbers[i-1], practice: pr, gp: pick(r, pr.clinicians)}
		if r.IntN(2) == 0 {
			p.gender = "female"
			p.given = pick(r, femaleGiven)
			if i%8 == 3 {
				p.given = pick(r, femaleAccented)
			}
		} else {
			p.gender = "male"
			p.given = pick(r, maleGiven)
			if i%8 == 3 {
				p.given = pick(r, maleAccented)
			}
		}
		p.family = pick(r, families)
		if i%11 == 5 {
			p.family = pick(r, familiesAccented)
		}
		var age int
		switch x := r.IntN(100); {
		case x < 15:
			age = r.IntN(16)
		case x < 25:
			age = 16 + r.IntN(9)
		case x < 70:
			age = 25 + r.IntN(40)
		default:
			age = 65 + r.IntN(31)
		}
		p.birthDate = g.day(g.now, -(age*365 + age/4 + 1 + r.IntN(364)))
		p.line = fmt.Sprintf("%d %s", 1+r.IntN(120), pick(r, streets))
		p.postcode = postcode(r, pr.def.outward)
		p.phone = fmt.Sprintf("07700 900%03d", r.IntN(1000))
		p.email = fmt.Sprintf("%s.%s%d@example.com", asciiFold(p.given), asciiFold(p.family), i)
		g.patients = append(g.patients, p)
		pr.patients = append(pr.patients, p)
	}
	g.assignOnlineStates()
}

var foldReplacer = strings.NewReplacer(
	"ë", "e", "é", "e", "è", "e", "â", "a", "ï", "i", "ñ", "n", "ö", "o", "ó", "o", "ú", "u", "ü", "u",
	"Ó", "o", "Ú", "u", "É", "e", "'", "", " ", "",
)

// asciiFold makes a name usable in an e-mail address.
func asciiFold(s string) string { return strings.ToLower(foldReplacer.Replace(s)) }

func (g *gen) emitOrganization(p *practice) {
	d := p.def
	var ext arr // empty arrays are left out of the JSON
	if h, ok := cancellationCutoffs[d.ods]; ok {
		ext = arr{obj{{"url", online.CancellationCutoffExtension}, {"valueUnsignedInt", h}}}
	}
	g.emit("Organization", p.orgID,
		kv{"extension", ext},
		kv{"identifier", arr{identifier(fhir.ODSOrganizationSystem, d.ods)}},
		kv{"active", true},
		kv{"type", arr{concept(orgTypeSystem, code{"gp-practice", "GP Practice"})}},
		kv{"name", d.name},
		kv{"telecom", arr{
			obj{{"system", "phone"}, {"value", d.phone}, {"use", "work"}},
			obj{{"system", "email"}, {"value", p.key + ".reception@example.org"}, {"use", "work"}},
		}},
		kv{"address", arr{practiceAddress(p)}},
	)
}

func practiceAddress(p *practice) obj {
	return obj{{"use", "work"}, {"type", "both"}, {"line", arr{p.def.line}}, {"city", p.def.town},
		{"postalCode", p.postcode}, {"country", "GB"}}
}

// emitLocation writes the practice premises. FHIR R4 does not allow an Organization as a Schedule
// actor, so Schedules name the Location (managed by the practice) and the clinician instead.
func (g *gen) emitLocation(p *practice) {
	g.emit("Location", p.locID,
		kv{"status", "active"},
		kv{"name", p.def.name},
		kv{"mode", "instance"},
		kv{"telecom", arr{obj{{"system", "phone"}, {"value", p.def.phone}, {"use", "work"}}}},
		kv{"address", practiceAddress(p)},
		kv{"managingOrganization", ref("Organization", p.orgID)},
	)
}

func (g *gen) emitPractitioner(c *clinician) {
	g.emit("Practitioner", c.id,
		kv{"identifier", arr{identifier(sdsUserIDSystem, c.sdsUserID), identifier(gmcNumberSystem, c.gmc)}},
		kv{"active", true},
		kv{"name", arr{obj{{"use", "official"}, {"family", c.name.family}, {"given", arr{c.name.given}}, {"prefix", arr{"Dr"}}}}},
		kv{"telecom", arr{obj{{"system", "phone"}, {"value", c.practice.def.phone}, {"use", "work"}}}},
		kv{"gender", c.name.gender},
	)
}

func (g *gen) emitPatient(p *patientProfile) {
	nhs := identifier(fhir.NHSNumberSystem, p.nhsNumber)
	nhs = append(obj{{"extension", arr{obj{
		{"url", nhsNumberVerificationURL},
		{"valueCodeableConcept", concept(nhsNumberVerificationSystem, code{"01", "Number present and verified"})},
	}}}}, nhs...)
	pr := p.practice
	var ext arr // empty arrays are left out of the JSON
	if p.access != nil {
		ext = arr{p.access.extension()}
	}
	g.emit("Patient", p.id,
		kv{"extension", ext},
		kv{"identifier", arr{nhs}},
		kv{"active", true},
		kv{"name", arr{obj{{"use", "official"}, {"family", p.family}, {"given", arr{p.given}}}}},
		kv{"telecom", arr{
			obj{{"system", "phone"}, {"value", p.phone}, {"use", "mobile"}},
			obj{{"system", "email"}, {"value", p.email}, {"use", "home"}},
		}},
		kv{"gender", p.gender},
		kv{"birthDate", date(p.birthDate)},
		kv{"address", arr{obj{{"use", "home"}, {"type", "both"}, {"line", arr{p.line}}, {"city", pr.def.town},
			{"postalCode", p.postcode}, {"country", "GB"}}}},
		kv{"generalPractitioner", arr{ref("Organization", pr.orgID), ref("Practitioner", p.gp.id)}},
		kv{"managingOrganization", ref("Organization", pr.orgID)},
	)
}
