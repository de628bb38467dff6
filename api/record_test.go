package api_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/online"
)

const (
	sctSystem   = "http://snomed.info/sct"
	loincSystem = "http://loinc.org"
)

func concept(system, code, display string) obj {
	return obj{"coding": arr{coding(system, code, display)}, "text": display}
}

// recordEntry is a plausible entry of a GP record of type typ for patient, dated when; labels, as
// system, code pairs, go into meta.security.
func recordEntry(typ, patientID, pracID string, when time.Time, labels ...string) obj {
	subject := ref("Patient", patientID)
	day := when.Format("2006-01-02")
	var e obj
	switch typ {
	case "AllergyIntolerance":
		e = obj{"clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
			"verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
			"type":               "allergy", "category": arr{"medication"}, "criticality": "high",
			"code": concept(sctSystem, "91936005", "Allergy to penicillin"), "patient": subject, "recordedDate": rfc(when),
			"reaction": arr{obj{"manifestation": arr{concept(sctSystem, "247472004", "Hives")}, "severity": "moderate"}}}
	case "MedicationStatement":
		e = obj{"status": "active", "medicationCodeableConcept": concept("https://dmd.nhs.uk", "39113611000001102", "Salbutamol 100micrograms/dose inhaler"),
			"subject": subject, "effectiveDateTime": rfc(when)}
	case "Condition":
		e = obj{"clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
			"category": arr{concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")},
			"code":     concept(sctSystem, "38341003", "Hypertension"), "subject": subject, "onsetDateTime": day, "recordedDate": rfc(when)}
	case "Observation":
		e = obj{"status": "final", "category": arr{concept("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")},
			"code": concept(loincSystem, "8480-6", "Systolic blood pressure"), "subject": subject, "effectiveDateTime": rfc(when),
			"valueQuantity": obj{"value": 128, "unit": "mmHg", "system": "http://unitsofmeasure.org", "code": "mm[Hg]"}}
	case "Procedure":
		e = obj{"status": "completed", "code": concept(sctSystem, "80146002", "Appendicectomy"), "subject": subject, "performedDateTime": rfc(when)}
	case "DiagnosticReport":
		e = obj{"status": "final", "code": concept(loincSystem, "58410-2", "Full blood count"), "subject": subject,
			"effectiveDateTime": rfc(when), "issued": rfc(when.Add(24 * time.Hour)), "conclusion": "Normal"}
	case "Encounter":
		e = obj{"status": "finished", "class": coding("http://terminology.hl7.org/CodeSystem/v3-ActCode", "AMB", "ambulatory"),
			"type": arr{concept(sctSystem, "185345009", "Encounter for symptom")}, "subject": subject,
			"participant": arr{obj{"individual": ref("Practitioner", pracID)}},
			"period":      obj{"start": rfc(when), "end": rfc(when.Add(10 * time.Minute))}}
	case "ServiceRequest":
		e = obj{"status": "active", "intent": "order", "code": concept(sctSystem, "183519002", "Referral to cardiology service"),
			"subject": subject, "authoredOn": rfc(when), "requester": ref("Practitioner", pracID)}
	case "DocumentReference":
		e = obj{"status": "current", "type": concept(sctSystem, "371529009", "History and physical report"), "subject": subject,
			"date": rfc(when), "description": "Clinic letter",
			"content": arr{obj{"attachment": obj{"contentType": "text/plain", "data": "Q2xpbmljIGxldHRlcg=="}}}}
	case "Composition":
		e = obj{"status": "final", "type": concept(loincSystem, "11488-4", "Consult note"), "subject": subject, "date": rfc(when),
			"author": arr{ref("Practitioner", pracID)}, "title": "Consultation note"}
	case "Communication":
		e = obj{"status": "completed", "subject": subject, "sent": rfc(when), "sender": ref("Practitioner", pracID),
			"payload": arr{obj{"contentString": "Your results are normal"}}}
	default:
		panic("no record entry for " + typ)
	}
	e["resourceType"] = typ
	if len(labels) == 2 {
		e["meta"] = obj{"security": arr{obj{"system": labels[0], "code": labels[1]}}}
	}
	return e
}

// recordTypes are the record entry types by the level that shows them.
var recordTypesByLevel = map[string][]string{
	"summary":  {"AllergyIntolerance", "MedicationStatement", "Immunization", "MedicationRequest"},
	"detailed": {"Condition", "Observation", "Procedure", "DiagnosticReport", "Encounter", "ServiceRequest"},
	"full":     {"DocumentReference", "Composition", "Communication"},
}

var levelOrder = []string{"none", "summary", "detailed", "full"}

func shownAt(level, typ string) bool {
	for _, l := range levelOrder[1 : slices.Index(levelOrder, level)+1] {
		if slices.Contains(recordTypesByLevel[l], typ) {
			return true
		}
	}
	return false
}

func typesOfBundle(t *testing.T, r *response) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	entries, _ := r.JSON(t)["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, ok := em["search"].(map[string]any); ok && s["mode"] == "outcome" {
			continue
		}
		res, _ := em["resource"].(map[string]any)
		if res != nil {
			out[res["resourceType"].(string)] = append(out[res["resourceType"].(string)], res["id"].(string))
		}
	}
	return out
}

// TestTheGPRecordIsShownByAccessLevel: a P9 patient sees the record types their practice's access level
// covers, on every path (read, search, includes, chains, _has, history, counts), and is told for the others
// what is withheld and why; confidential entries, other patients' entries and entries from before the
// prospective-access date are never shown; a proxy sees no more than the grant allows.
func TestTheGPRecordIsShownByAccessLevel(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	when := time.Date(2025, 3, 4, 10, 30, 0, 0, time.UTC)
	mine, others, hidden := map[string]string{}, map[string]string{}, map[string]string{}
	var types []string
	for _, l := range levelOrder[1:] {
		types = append(types, recordTypesByLevel[l]...)
	}
	for _, typ := range types {
		var e, o, h obj
		switch typ {
		case "Immunization":
			e, o, h = immunization(w.me, when), immunization(w.other, when), immunization(w.me, when, online.ConfidentialitySystem, "R")
		case "MedicationRequest":
			e, o, h = plan(w.me, "active", 0, 5, when.AddDate(1, 0, 0)), plan(w.other, "active", 0, 5, when.AddDate(1, 0, 0)),
				plan(w.me, "active", 0, 5, when.AddDate(1, 0, 0))
			h["meta"] = obj{"security": arr{obj{"system": online.SecurityLabelSystem, "code": online.RedactedOnlineCode}}}
			e["authoredOn"], o["authoredOn"], h["authoredOn"] = rfc(when), rfc(when), rfc(when)
		default:
			e, o = recordEntry(typ, w.me, w.prac, when), recordEntry(typ, w.other, w.prac, when)
			h = recordEntry(typ, w.me, w.prac, when, online.ConfidentialitySystem, "V")
		}
		mine[typ], others[typ], hidden[typ] = ts.create(typ, e), ts.create(typ, o), ts.create(typ, h)
	}
	// The practice's own system sees every entry, confidential ones too.
	for _, typ := range types {
		ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/"+typ+"?patient=Patient/"+w.me, nil, nil), 200))
		if len(ids) != 2 {
			t.Errorf("GP system: %s for the patient = %v, want 2 (one confidential)", typ, ids)
		}
	}

	me := bearer(ts.patientToken(w.meNHS, "P9", ""))
	for _, level := range levelOrder[1:] {
		w.setAccess(t, w.me, onlineAccess(level, "", "none", "manage"))
		for _, typ := range types {
			// MedicationRequest is shown through prescriptions access too; it is off here, so the record
			// level alone decides.
			shown := shownAt(level, typ)
			t.Run(level+"/"+typ, func(t *testing.T) {
				if !shown {
					for _, path := range []string{"/" + typ, "/" + typ + "/" + mine[typ], "/" + typ + "/" + mine[typ] + "/_history", "/" + typ + "?_summary=count"} {
						r := ts.mustStatus(ts.do("GET", path, nil, me), 403)
						d, _ := r.issue(t)["diagnostics"].(string)
						if !strings.Contains(d, "has not switched on online access to "+typ+" entries") || !strings.Contains(d, "record access is "+level) {
							t.Errorf("%s: the refusal must say what is withheld and why: %s", path, d)
						}
					}
					// An include or _has through a type the caller may not see shows nothing.
					inc := typesOfBundle(t, ts.mustStatus(ts.do("GET", "/Patient?_id="+w.me+"&_revinclude="+typ+":patient", nil, me), 200))
					if len(inc[typ]) != 0 {
						t.Errorf("_revinclude shows withheld %s: %v", typ, inc[typ])
					}
					return
				}
				if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/"+typ, nil, me), 200)); !slices.Equal(ids, []string{mine[typ]}) {
					t.Errorf("search = %v, want only the patient's own visible %s", ids, mine[typ])
				}
				ts.mustStatus(ts.do("GET", "/"+typ+"/"+mine[typ], nil, me), 200)
				ts.mustStatus(ts.do("GET", "/"+typ+"/"+others[typ], nil, me), 403)
				ts.mustStatus(ts.do("GET", "/"+typ+"/"+hidden[typ], nil, me), 404)
				if r := ts.mustStatus(ts.do("GET", "/"+typ+"?_summary=count", nil, me), 200).JSON(t); r["total"] != float64(1) {
					t.Errorf("count = %v, want 1", r["total"])
				}
				if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/"+typ+"/_history", nil, me), 200)); !slices.Equal(ids, []string{mine[typ]}) {
					t.Errorf("type history = %v, want only %s", ids, mine[typ])
				}
				inc := typesOfBundle(t, ts.mustStatus(ts.do("GET", "/Patient?_id="+w.me+"&_revinclude="+typ+":patient", nil, me), 200))
				if !slices.Equal(inc[typ], []string{mine[typ]}) {
					t.Errorf("_revinclude = %v, want only %s", inc[typ], mine[typ])
				}
				chain := fmt.Sprintf("/%s?patient.identifier=https://fhir.nhs.uk/Id/nhs-number|%s", typ, w.meNHS)
				if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", chain, nil, me), 200)); !slices.Equal(ids, []string{mine[typ]}) {
					t.Errorf("chain = %v, want only %s", ids, mine[typ])
				}
				if typ != "Immunization" && typ != "MedicationRequest" {
					has := "/Patient?_has:" + typ + ":patient:_security=" + online.ConfidentialitySystem + "|V"
					if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", has, nil, me), 200)); len(ids) != 0 {
						t.Errorf("_has through a confidential %s reveals it: %v", typ, ids)
					}
				}
			})
		}
	}

	// Prospective access: entries dated before recordFrom are not shown.
	w.setAccess(t, w.me, onlineAccess("full", "2025-06-01", "none", "manage"))
	later := ts.create("Condition", recordEntry("Condition", w.me, w.prac, time.Date(2025, 7, 1, 9, 0, 0, 0, time.UTC)))
	if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/Condition", nil, me), 200)); !slices.Equal(ids, []string{later}) {
		t.Errorf("with record access from 1 June 2025, conditions = %v, want only %s", ids, later)
	}
	r := ts.mustStatus(ts.do("GET", "/Observation/"+mine["Observation"], nil, me), 403)
	if d := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "before 1 June 2025") {
		t.Errorf("an older entry's refusal must say why: %s", d)
	}

	// A proxy sees no more than the grant, whatever the practice allows the patient.
	w.setAccess(t, w.me, onlineAccess("full", "", "manage", "manage"))
	carer := nhsNumber(t, 9)
	now := time.Now()
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("summary", "", "none", "none")))
	proxy := bearer(ts.patientToken(carer, "P9", w.meNHS))
	for _, typ := range types {
		if typ == "MedicationRequest" {
			continue
		}
		want := 403
		if shownAt("summary", typ) {
			want = 200
		}
		r := ts.mustStatus(ts.do("GET", "/"+typ+"/"+mine[typ], nil, proxy), want)
		if want == 403 && !strings.Contains(r.issue(t)["diagnostics"].(string), "your proxy access does not include "+typ) {
			t.Errorf("proxy refusal for %s: %s", typ, r.Body)
		}
	}
}

// TestUnsupportedR4ParametersAreNamedWithTheReason: an R4 search parameter of a served type that the
// server does not support is listed in the CapabilityStatement with the reason, and a search using it is
// told so (lenient) or refused (strict), never silently ignored.
func TestUnsupportedR4ParametersAreNamedWithTheReason(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200).JSON(t)
	var listed bool
	for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		rm := r.(map[string]any)
		if rm["type"] != "Observation" {
			continue
		}
		for _, e := range list(rm["extension"]) {
			if e["url"] != "https://gpfhir.example/StructureDefinition/unsupported-search-parameter" {
				continue
			}
			parts := map[string]string{}
			for _, p := range list(e["extension"]) {
				for _, k := range []string{"valueString", "valueCanonical"} {
					if v, ok := p[k].(string); ok {
						parts[p["url"].(string)] = v
					}
				}
			}
			if parts["name"] == "value-quantity" && strings.Contains(parts["reason"], "quantity parameters are not supported") &&
				parts["definition"] == "http://hl7.org/fhir/SearchParameter/Observation-value-quantity" {
				listed = true
			}
		}
		for _, sp := range list(rm["searchParam"]) {
			if sp["name"] == "value-quantity" {
				t.Error("value-quantity is advertised as supported")
			}
		}
	}
	if !listed {
		t.Error("the CapabilityStatement does not list Observation's value-quantity as unsupported with its reason")
	}
	r := ts.mustStatus(ts.get("/Observation?value-quantity=5&status=final", nil), 200)
	if oo := outcomeEntry(r.JSON(t)); oo == nil || !strings.Contains(string(r.Body), "value-quantity is an R4 search parameter of Observation that this server does not support") {
		t.Errorf("lenient search must say the parameter was not applied and why: %s", r.Body)
	}
	r = ts.mustStatus(ts.get("/Observation?value-quantity=5", header{"Prefer": "handling=strict"}), 400)
	if !strings.Contains(string(r.Body), "quantity parameters are not supported") {
		t.Errorf("strict search must say why: %s", r.Body)
	}
}
