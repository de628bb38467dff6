package seed

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/gpfhir/gpfhir/online"
)

type vaccination struct {
	vaccine code
	when    time.Time
}

// vaccinations returns the patient's vaccination history, following the shape of the UK schedule:
// childhood doses at their usual ages, seasonal flu and COVID for adults, pneumococcal and shingles
// for older people. Every patient gets at least one.
func (g *gen) vaccinations(p *patientProfile, r *rand.Rand) []vaccination {
	age := p.age(g.now)
	var vs []vaccination
	atAge := func(c code, years, months int) {
		t := time.Date(p.birthDate.Year()+years, p.birthDate.Month()+time.Month(months), p.birthDate.Day()+r.IntN(21), 0, 0, 0, 0, g.loc)
		if t.Before(g.day(g.now, -1)) {
			vs = append(vs, vaccination{c, t})
		}
	}
	// lastAutumn is a day in the most recent flu season (October-November) that has started.
	lastAutumn := func() time.Time {
		y := g.now.Year()
		if g.now.Month() < time.October {
			y--
		}
		t := time.Date(y, time.October, 1+r.IntN(50), 0, 0, 0, 0, g.loc)
		if !t.Before(g.now) {
			t = g.day(g.now, -1-r.IntN(5))
		}
		return t
	}
	switch {
	case age < 18:
		atAge(vaxMenB, 0, 2)
		mmr := pick(r, vaxMMR)
		atAge(mmr, 1, 0)
		atAge(mmr, 3, 4)
		if age >= 2 && r.IntN(3) > 0 {
			vs = append(vs, vaccination{vaxFluChild, lastAutumn()})
		}
		atAge(vaxHPV, 12, 6)
		atAge(vaxTdIPV, 14, 3)
	default:
		if age >= 65 {
			vs = append(vs, vaccination{vaxFluOver65, lastAutumn()})
			atAge(vaxPneumo, 65, 2)
		} else if r.IntN(5) < 2 {
			vs = append(vs, vaccination{vaxFluAdult, lastAutumn()})
		}
		if age >= 70 && age < 80 {
			atAge(vaxShingles, 70, 1)
		}
		if age >= 75 || r.IntN(3) == 0 {
			vs = append(vs, vaccination{vaxCovid, lastAutumn()})
		}
		if p.gender == "female" && age >= 20 && age < 40 && r.IntN(4) == 0 {
			atAge(vaxPertussi, age-1-r.IntN(3), 3)
		}
	}
	if len(vs) == 0 {
		vs = append(vs, vaccination{vaxFluAdult, lastAutumn()})
	}
	return vs
}

func (g *gen) emitImmunizations(p *patientProfile) {
	r := g.rng("immunizations/" + p.id)
	for i, v := range g.vaccinations(p, r) {
		when := g.at(v.when, 9+r.IntN(8), 5*r.IntN(12))
		if !when.Before(g.now) {
			when = g.now.Add(-time.Duration(1+r.IntN(48)) * time.Hour)
		}
		giver := pick(r, p.practice.clinicians)
		var meta obj
		if i == 0 && p.redactFirstImmunization {
			// Hidden from the patient and proxies online; the practice still sees it.
			meta = obj{{"security", arr{obj{{"system", online.SecurityLabelSystem}, {"code", online.RedactedOnlineCode},
				{"display", "Redacted for online access"}}}}}
		}
		g.emit("Immunization", fmt.Sprintf("imm-%s-%d", p.id[4:], i+1),
			kv{"meta", meta},
			kv{"status", "completed"},
			kv{"vaccineCode", concept(snomedSystem, v.vaccine)},
			kv{"patient", ref("Patient", p.id)},
			kv{"occurrenceDateTime", g.dateTime(when)},
			kv{"recorded", g.dateTime(when.Add(10 * time.Minute))},
			kv{"primarySource", true},
			kv{"lotNumber", fmt.Sprintf("%c%c%04d", 'A'+rune(r.IntN(26)), 'A'+rune(r.IntN(26)), r.IntN(10000))},
			kv{"performer", arr{obj{{"actor", ref("Practitioner", giver.id)}}}},
		)
	}
}

// emitMedications writes each repeat authorisation (intent=plan) followed by the prescriptions issued
// under it (intent=order, basedOn the plan), the GP Connect Patient Facing Prescriptions model.
func (g *gen) emitMedications(p *patientProfile) {
	r := g.rng("medications/" + p.id)
	age := p.age(g.now)
	var eligible []repeatMed
	for _, m := range repeatMeds {
		if age >= m.minAge {
			eligible = append(eligible, m)
		}
	}
	if len(eligible) == 0 {
		return
	}
	r.Shuffle(len(eligible), func(i, j int) { eligible[i], eligible[j] = eligible[j], eligible[i] })
	n := 0
	switch x := r.IntN(100); {
	case age >= 60 && x < 85, age >= 40 && x < 60, x < 25:
		n = 1 + r.IntN(3)
	}
	n = min(n, len(eligible))
	for i := 0; i < n; i++ {
		g.emitRepeat(p, r, eligible[i], fmt.Sprintf("medreq-%s-%d", p.id[4:], i+1))
	}
}

func (g *gen) emitRepeat(p *patientProfile, r *rand.Rand, m repeatMed, planID string) {
	status := "active"
	switch x := r.IntN(10); {
	case x == 0:
		status = "stopped"
	case x == 1:
		status = "completed"
	}
	prescriber := p.gp
	// An active authorisation was started within the last year and runs for a year from then; an ended
	// one started and expired in the past.
	var authored time.Time
	if status == "active" {
		authored = g.day(g.now, -(30 + r.IntN(300)))
	} else {
		authored = g.day(g.now, -(400 + r.IntN(700)))
	}
	authored = g.at(authored, 9+r.IntN(8), 5*r.IntN(12))
	expiry := g.day(authored, 365)
	// Prescriptions issued so far, one per supply period, never more than allowed.
	issued := int(g.now.Sub(authored).Hours()/24) / m.supplyDurationDs
	if status != "active" {
		issued = 1 + r.IntN(m.repeatsAllowed)
	}
	issued = min(issued, m.repeatsAllowed+1)

	course := arr{concept(courseSystem, code{"continuous", "Continuous long term therapy"})}
	category := arr{concept(medCategorySystem, code{"community", "Community"})}
	medication := conceptText(dmdSystem, m.med, m.med.display)
	dosage := arr{obj{{"text", m.dosage}}}
	quantity := obj{{"value", m.quantity}, {"unit", m.unit}}
	supply := obj{{"value", m.supplyDurationDs}, {"unit", "day"}, {"system", ucumSystem}, {"code", "d"}}

	var statusReason obj
	if status == "stopped" {
		statusReason = obj{{"text", "Stopped by prescriber: changed to an alternative"}}
	}
	g.emit("MedicationRequest", planID,
		kv{"extension", arr{obj{
			{"url", repeatInformationURL},
			{"extension", arr{
				obj{{"url", "numberOfPrescriptionsIssued"}, {"valueUnsignedInt", issued}},
				obj{{"url", "authorisationExpiryDate"}, {"valueDateTime", g.dateTime(expiry)}},
			}},
		}}},
		kv{"status", status},
		kv{"statusReason", statusReason},
		kv{"intent", "plan"},
		kv{"category", category},
		kv{"medicationCodeableConcept", medication},
		kv{"subject", ref("Patient", p.id)},
		kv{"authoredOn", g.dateTime(authored)},
		kv{"requester", ref("Practitioner", prescriber.id)},
		kv{"courseOfTherapyType", course[0]},
		kv{"dosageInstruction", dosage},
		kv{"dispenseRequest", obj{
			{"validityPeriod", obj{{"start", g.dateTime(authored)}, {"end", g.dateTime(expiry)}}},
			{"numberOfRepeatsAllowed", m.repeatsAllowed},
			{"quantity", quantity},
			{"expectedSupplyDuration", supply},
		}},
		kv{"substitution", obj{{"allowedBoolean", true}}},
	)

	// Write the most recent issues (up to three) as orders; older ones are only counted above.
	first := max(1, issued-2)
	for k := first; k <= issued; k++ {
		when := g.at(g.day(authored, (k-1)*m.supplyDurationDs), 8+r.IntN(9), 5*r.IntN(12))
		if !when.Before(g.now) {
			when = g.now.Add(-time.Duration(1+r.IntN(12)) * time.Hour)
		}
		orderStatus := "completed"
		if k == issued && status == "active" && g.now.Sub(when) < time.Duration(m.supplyDurationDs)*24*time.Hour {
			orderStatus = "active"
		}
		g.emit("MedicationRequest", fmt.Sprintf("%s-issue-%d", planID, k),
			kv{"status", orderStatus},
			kv{"intent", "order"},
			kv{"category", category},
			kv{"medicationCodeableConcept", medication},
			kv{"subject", ref("Patient", p.id)},
			kv{"authoredOn", g.dateTime(when)},
			kv{"requester", ref("Practitioner", prescriber.id)},
			kv{"basedOn", arr{ref("MedicationRequest", planID)}},
			kv{"courseOfTherapyType", course[0]},
			kv{"dosageInstruction", dosage},
			kv{"dispenseRequest", obj{{"quantity", quantity}, {"expectedSupplyDuration", supply}}},
			kv{"substitution", obj{{"allowedBoolean", true}}},
		)
	}
}
