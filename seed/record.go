package seed

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// The rest of each patient's GP record, beyond immunisations and repeats: allergies and medicines taken
// from elsewhere (the summary record), problems, consultations with their observations, test results,
// procedures and referrals (the detailed record), and letters, consultation notes and messages (the full
// record), so that the access levels show different records. Every patient has a summary record; the
// patients the demo names have entries of every level. A few items are labelled confidential and so are
// hidden online.

const (
	loincSystem         = "http://loinc.org"
	allergyClinical     = "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical"
	allergyVerification = "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification"
	conditionClinical   = "http://terminology.hl7.org/CodeSystem/condition-clinical"
	conditionVerify     = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
	conditionCategory   = "http://terminology.hl7.org/CodeSystem/condition-category"
	observationCategory = "http://terminology.hl7.org/CodeSystem/observation-category"
	actCodeSystem       = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
	diagServiceSystem   = "http://terminology.hl7.org/CodeSystem/v2-0074"
	confidentiality     = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
)

type allergyDef struct {
	substance code
	category  string
	reaction  code
}

var allergyDefs = []allergyDef{
	{code{"91936005", "Allergy to penicillin"}, "medication", code{"271807003", "Eruption of skin"}},
	{code{"91935009", "Allergy to peanut"}, "food", code{"39579001", "Anaphylaxis"}},
	{code{"418689008", "Allergy to grass pollen"}, "environment", code{"21719001", "Allergic rhinitis"}},
	{code{"294505008", "Allergy to aspirin"}, "medication", code{"247472004", "Wheal"}},
}

// noKnownAllergy is what the record says when there is none: an explicit entry, as GP systems write it.
var noKnownAllergy = code{"716186003", "No known allergy"}

type problemDef struct {
	problem code
	minAge  int
	// confidential problems are labelled restricted, as a practice does for sensitive entries.
	confidential bool
}

var problemDefs = []problemDef{
	{code{"38341003", "Hypertension"}, 40, false},
	{code{"195967001", "Asthma"}, 5, false},
	{code{"44054006", "Type 2 diabetes mellitus"}, 35, false},
	{code{"43116000", "Eczema"}, 0, false},
	{code{"40930008", "Hypothyroidism"}, 30, false},
	{code{"35489007", "Depressive disorder"}, 16, true},
}

// A measurement taken at a consultation.
type vitalDef struct {
	code       code
	value      func(r *rand.Rand) float64
	unit, ucum string
}

var vitalDefs = []vitalDef{
	{code{"8480-6", "Systolic blood pressure"}, func(r *rand.Rand) float64 { return float64(110 + r.IntN(45)) }, "mmHg", "mm[Hg]"},
	{code{"29463-7", "Body weight"}, func(r *rand.Rand) float64 { return float64(550+r.IntN(500)) / 10 }, "kg", "kg"},
	{code{"8867-4", "Heart rate"}, func(r *rand.Rand) float64 { return float64(58 + r.IntN(40)) }, "/min", "/min"},
}

var (
	consultationType = code{"185345009", "Encounter for symptom"}
	fbcReport        = code{"58410-2", "CBC panel - Blood by Automated count"}
	haemoglobin      = code{"718-7", "Hemoglobin [Mass/volume] in Blood"}
	procedures       = []code{{"80146002", "Appendicectomy"}, {"18286008", "Ear syringing"}, {"71388002", "Wound dressing"}}
	referrals        = []code{{"183519002", "Referral to cardiology service"}, {"306206005", "Referral to physiotherapy service"}, {"183515008", "Referral to dermatology service"}}
	letterType       = code{"371525003", "Clinical procedure report"}
	consultNote      = code{"11488-4", "Consult note"}
)

// emitRecord writes patient p's record, each resource after those it references.
func (g *gen) emitRecord(p *patientProfile) {
	r := g.rng("record/" + p.id)
	key := p.id[4:]
	age := p.age(g.now)
	subject := ref("Patient", p.id)
	restricted := obj{{"security", arr{obj{{"system", confidentiality}, {"code", "R"}, {"display", "restricted"}}}}}

	// Summary record: allergies (or an explicit none), and a medicine taken from elsewhere.
	allergies := r.IntN(3)
	if allergies == 0 {
		g.emit("AllergyIntolerance", "allergy-"+key+"-1",
			kv{"clinicalStatus", concept(allergyClinical, code{"active", "Active"})},
			kv{"verificationStatus", concept(allergyVerification, code{"confirmed", "Confirmed"})},
			kv{"code", concept(snomedSystem, noKnownAllergy)},
			kv{"patient", subject},
			kv{"recordedDate", g.dateTime(g.at(g.day(g.now, -(200+r.IntN(2000))), 10, 0))},
		)
	}
	for i, j := range r.Perm(len(allergyDefs))[:allergies] {
		a := allergyDefs[j]
		g.emit("AllergyIntolerance", fmt.Sprintf("allergy-%s-%d", key, i+1),
			kv{"clinicalStatus", concept(allergyClinical, code{"active", "Active"})},
			kv{"verificationStatus", concept(allergyVerification, code{"confirmed", "Confirmed"})},
			kv{"type", "allergy"},
			kv{"category", arr{a.category}},
			kv{"code", concept(snomedSystem, a.substance)},
			kv{"patient", subject},
			kv{"recordedDate", g.dateTime(g.at(g.day(g.now, -(100+r.IntN(3000))), 9+r.IntN(8), 0))},
			kv{"recorder", ref("Practitioner", p.gp.id)},
			kv{"reaction", arr{obj{{"manifestation", arr{concept(snomedSystem, a.reaction)}}}}},
		)
	}
	if r.IntN(3) == 0 {
		g.emit("MedicationStatement", "medstmt-"+key+"-1",
			kv{"status", "active"},
			kv{"medicationCodeableConcept", concept(dmdSystem, code{"322236009", "Paracetamol 500mg tablets"})},
			kv{"subject", subject},
			kv{"effectiveDateTime", g.dateTime(g.at(g.day(g.now, -(10+r.IntN(300))), 11, 0))},
			kv{"dateAsserted", g.dateTime(g.at(g.day(g.now, -(5+r.IntN(5))), 11, 0))},
			kv{"informationSource", subject},
			kv{"note", arr{obj{{"text", "Bought over the counter"}}}},
		)
	}

	// Detailed and full record, for the patients the demo names (the first six, and those with proxies):
	// problems, then consultations with what was measured, tested, done and referred, and
	// their notes and letters. Others keep the summary record only, which keeps `serve --dev` quick to
	// seed on MongoDB.
	if !g.showsWholeRecord(p) {
		return
	}
	n := 0
	for _, d := range problemDefs {
		// pat-0006, at detailed level, always has the confidential problem, so that the demo shows it
		// hidden online.
		forced := d.confidential && p.index == noServicesPatient
		if !forced && (age < d.minAge || r.IntN(4) != 0) {
			continue
		}
		n++
		onset := g.day(g.now, -(60 + r.IntN(365*min(age+1, 20))))
		var meta obj
		if d.confidential {
			meta = restricted
		}
		g.emit("Condition", fmt.Sprintf("cond-%s-%d", key, n),
			kv{"meta", meta},
			kv{"clinicalStatus", concept(conditionClinical, code{"active", "Active"})},
			kv{"verificationStatus", concept(conditionVerify, code{"confirmed", "Confirmed"})},
			kv{"category", arr{concept(conditionCategory, code{"problem-list-item", "Problem List Item"})}},
			kv{"code", concept(snomedSystem, d.problem)},
			kv{"subject", subject},
			kv{"onsetDateTime", date(onset)},
			kv{"recordedDate", g.dateTime(g.at(onset, 10, 30))},
			kv{"recorder", ref("Practitioner", p.gp.id)},
		)
	}
	consultations := 1 + r.IntN(3)
	for c := 1; c <= consultations; c++ {
		// The latest consultation is recent; earlier ones reach back about four years, so that
		// prospective access (from a date) shows some and hides others.
		when := g.at(g.day(g.now, -(3+(c-1)*(200+r.IntN(300))+r.IntN(20))), 9+r.IntN(8), 10*r.IntN(6))
		clinician := pick(r, p.practice.clinicians)
		enc := fmt.Sprintf("enc-%s-%d", key, c)
		g.emit("Encounter", enc,
			kv{"status", "finished"},
			kv{"class", obj{{"system", actCodeSystem}, {"code", "AMB"}, {"display", "ambulatory"}}},
			kv{"type", arr{concept(snomedSystem, consultationType)}},
			kv{"subject", subject},
			kv{"participant", arr{obj{{"individual", ref("Practitioner", clinician.id)}}}},
			kv{"period", obj{{"start", g.dateTime(when)}, {"end", g.dateTime(when.Add(10 * time.Minute))}}},
			kv{"serviceProvider", ref("Organization", p.practice.orgID)},
		)
		v := vitalDefs[r.IntN(len(vitalDefs))]
		g.emit("Observation", fmt.Sprintf("obs-%s-%d", key, c),
			kv{"status", "final"},
			kv{"category", arr{concept(observationCategory, code{"vital-signs", "Vital Signs"})}},
			kv{"code", concept(loincSystem, v.code)},
			kv{"subject", subject},
			kv{"encounter", ref("Encounter", enc)},
			kv{"effectiveDateTime", g.dateTime(when.Add(5 * time.Minute))},
			kv{"performer", arr{ref("Practitioner", clinician.id)}},
			kv{"valueQuantity", obj{{"value", v.value(r)}, {"unit", v.unit}, {"system", ucumSystem}, {"code", v.ucum}}},
		)
		switch r.IntN(3) {
		case 0:
			hb := fmt.Sprintf("obs-%s-%d-hb", key, c)
			g.emit("Observation", hb,
				kv{"status", "final"},
				kv{"category", arr{concept(observationCategory, code{"laboratory", "Laboratory"})}},
				kv{"code", concept(loincSystem, haemoglobin)},
				kv{"subject", subject},
				kv{"effectiveDateTime", g.dateTime(when.Add(24 * time.Hour))},
				kv{"valueQuantity", obj{{"value", 120 + r.IntN(45)}, {"unit", "g/L"}, {"system", ucumSystem}, {"code", "g/L"}}},
			)
			g.emit("DiagnosticReport", fmt.Sprintf("report-%s-%d", key, c),
				kv{"status", "final"},
				kv{"category", arr{concept(diagServiceSystem, code{"HM", "Hematology"})}},
				kv{"code", concept(loincSystem, fbcReport)},
				kv{"subject", subject},
				kv{"encounter", ref("Encounter", enc)},
				kv{"effectiveDateTime", g.dateTime(when.Add(24 * time.Hour))},
				kv{"issued", g.dateTime(when.Add(50 * time.Hour))},
				kv{"result", arr{ref("Observation", hb)}},
				kv{"conclusion", "Within normal limits"},
			)
		case 1:
			g.emit("Procedure", fmt.Sprintf("proc-%s-%d", key, c),
				kv{"status", "completed"},
				kv{"code", concept(snomedSystem, pick(r, procedures))},
				kv{"subject", subject},
				kv{"encounter", ref("Encounter", enc)},
				kv{"performedDateTime", g.dateTime(when.Add(5 * time.Minute))},
				kv{"performer", arr{obj{{"actor", ref("Practitioner", clinician.id)}}}},
			)
		default:
			g.emit("ServiceRequest", fmt.Sprintf("referral-%s-%d", key, c),
				kv{"status", "active"},
				kv{"intent", "order"},
				kv{"code", concept(snomedSystem, pick(r, referrals))},
				kv{"subject", subject},
				kv{"encounter", ref("Encounter", enc)},
				kv{"authoredOn", g.dateTime(when.Add(8 * time.Minute))},
				kv{"requester", ref("Practitioner", clinician.id)},
			)
		}

		// Full record: the consultation's free-text note, and for the latest one a letter and a message.
		g.emit("Composition", fmt.Sprintf("note-%s-%d", key, c),
			kv{"status", "final"},
			kv{"type", concept(loincSystem, consultNote)},
			kv{"subject", subject},
			kv{"encounter", ref("Encounter", enc)},
			kv{"date", g.dateTime(when.Add(10 * time.Minute))},
			kv{"author", arr{ref("Practitioner", clinician.id)}},
			kv{"title", "Consultation note"},
			kv{"section", arr{obj{{"title", "History"}, {"text", obj{{"status", "generated"},
				{"div", `<div xmlns="http://www.w3.org/1999/xhtml">Seen today. Examined; plan discussed and agreed.</div>`}}}}}},
		)
		if c == 1 {
			var meta obj
			if p.index%7 == 3 {
				meta = restricted
			}
			g.emit("DocumentReference", fmt.Sprintf("letter-%s-%d", key, c),
				kv{"meta", meta},
				kv{"status", "current"},
				kv{"type", concept(snomedSystem, letterType)},
				kv{"subject", subject},
				kv{"date", g.dateTime(when.Add(72 * time.Hour))},
				kv{"author", arr{ref("Practitioner", clinician.id)}},
				kv{"custodian", ref("Organization", p.practice.orgID)},
				kv{"description", "Letter about the consultation"},
				kv{"content", arr{obj{{"attachment", obj{{"contentType", "text/plain"}, {"language", "en-GB"},
					{"data", "VGhhbmsgeW91IGZvciBjb21pbmcgdG8gc2VlIHVzLg=="}, {"title", "Letter"}}}}}},
			)
			g.emit("Communication", fmt.Sprintf("message-%s-%d", key, c),
				kv{"status", "completed"},
				kv{"subject", subject},
				kv{"encounter", ref("Encounter", enc)},
				kv{"sent", g.dateTime(when.Add(73 * time.Hour))},
				kv{"recipient", arr{subject}},
				kv{"sender", ref("Practitioner", clinician.id)},
				kv{"payload", arr{obj{{"contentString", "Your results are back and are normal. No action is needed."}}}},
			)
		}
	}
}

// showsWholeRecord says whether the demo gives p a detailed and full record as well as the summary.
func (g *gen) showsWholeRecord(p *patientProfile) bool {
	if p.index <= noServicesPatient {
		return true
	}
	for _, gr := range g.grants {
		if gr.patient == p {
			return true
		}
	}
	return false
}
