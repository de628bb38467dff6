package api_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// plan is a repeat authorisation for patientID: issued of allowed issues (repeats+1), expiring at expiry.
func plan(patientID, status string, issued, repeats int, expiry time.Time) obj {
	return obj{"resourceType": "MedicationRequest", "status": status, "intent": "plan",
		"extension": arr{obj{"url": fhir.RepeatInformationExtension, "extension": arr{
			obj{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": issued},
			obj{"url": "authorisationExpiryDate", "valueDateTime": rfc(expiry)},
		}}},
		"medicationCodeableConcept": obj{"coding": arr{coding("https://dmd.nhs.uk", "39733011000001106", "Atorvastatin 20mg tablets")}},
		"subject":                   ref("Patient", patientID),
		"authoredOn":                rfc(time.Now().AddDate(0, -2, 0)),
		"dosageInstruction":         arr{obj{"text": "Take ONE tablet at night"}},
		"dispenseRequest":           obj{"numberOfRepeatsAllowed": repeats, "quantity": obj{"value": 28, "unit": "tablet"}},
	}
}

func repeatTask(patientID, planID string) obj {
	return obj{"resourceType": "Task", "status": "requested", "intent": "order",
		"code":  obj{"coding": arr{coding(fhir.SNOMEDSystem, fhir.RenewalCode, "Renewal of prescription")}},
		"focus": ref("MedicationRequest", planID), "for": ref("Patient", patientID),
		"note": arr{obj{"text": "Running low"}},
		"input": arr{obj{"type": obj{"coding": arr{coding(fhir.PrescriptionOrderingSystem, "preferred-performer", "")}},
			"valueIdentifier": obj{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "FA123"}}},
	}
}

func TestRepeatRequestLifecycle(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	year := time.Now().AddDate(1, 0, 0)
	active := ts.create("MedicationRequest", plan(w.me, "active", 2, 5, year))
	stopped := ts.create("MedicationRequest", plan(w.me, "stopped", 2, 5, year))
	expired := ts.create("MedicationRequest", plan(w.me, "active", 2, 5, time.Now().AddDate(0, 0, -1)))
	usedUp := ts.create("MedicationRequest", plan(w.me, "active", 6, 5, year))
	others := ts.create("MedicationRequest", plan(w.other, "active", 0, 5, year))

	refused := []struct {
		name   string
		body   obj
		status int
		says   string
	}{
		{"a stopped plan", repeatTask(w.me, stopped), 422, "no longer active"},
		{"an expired plan", repeatTask(w.me, expired), 422, "expired"},
		{"a used-up plan", repeatTask(w.me, usedUp), 422, "all 6 issues"},
		{"someone else's plan", repeatTask(w.me, others), 422, "not for the patient"},
		{"for someone else", repeatTask(w.other, others), 403, "not part of your own GP record"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do("POST", "/Task", tt.body, me), tt.status)
			if !strings.Contains(r.issue(t)["diagnostics"].(string), tt.says) {
				t.Errorf("diagnostics %s do not say %q", r.Body, tt.says)
			}
		})
	}

	task := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
	r := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 409)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "already with the practice") {
		t.Errorf("an outstanding request must be named: %s", r.Body)
	}
	// The practice lists what is outstanding and works through it.
	list := ts.mustStatus(ts.do("GET", "/Task?status=requested&code="+fhir.SNOMEDSystem+"|"+fhir.RenewalCode, nil, nil), 200)
	if ids := bundleIDs(t, list); len(ids) != 1 || ids[0] != task["id"] {
		t.Errorf("outstanding requests %v, want [%v]", ids, task["id"])
	}
	update := func(m obj, status string, h header) *response {
		m["status"] = status
		delete(m, "meta")
		return ts.do("PUT", "/Task/"+m["id"].(string), m, h)
	}
	// A patient cannot move it along; the GP system can.
	ts.mustStatus(update(task, "completed", me), 422)
	task["status"] = "requested"
	task = ts.mustStatus(update(task, "in-progress", nil), 200).JSON(t)
	task = ts.mustStatus(update(task, "completed", nil), 200).JSON(t)
	outputs, _ := task["output"].([]any)
	if len(outputs) != 1 {
		t.Fatalf("a completed request must point at the issue: %v", task)
	}
	issueRef := outputs[0].(map[string]any)["valueReference"].(map[string]any)["reference"].(string)
	issue := ts.mustStatus(ts.do("GET", "/"+issueRef, nil, me), 200).JSON(t)
	if issue["intent"] != "order" || !strings.Contains(string(mustJSON(t, issue["basedOn"])), "MedicationRequest/"+active) {
		t.Errorf("issue %v is not an order based on the plan", issue)
	}
	p := fhir.ParsePlan(active, ts.mustStatus(ts.do("GET", "/MedicationRequest/"+active, nil, nil), 200).JSON(t))
	if p.Issued != 3 {
		t.Errorf("plan counts %d issues after completion, want 3", p.Issued)
	}
	ts.mustStatus(update(task, "rejected", nil), 422)

	// The next request can be made, and a rejection carries its reason to the patient.
	next := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
	ts.mustStatus(update(next, "rejected", nil), 422)
	next["status"] = "requested"
	next["statusReason"] = obj{"text": "Please book a medication review first"}
	ts.mustStatus(update(next, "rejected", nil), 200)
	seen := ts.mustStatus(ts.do("GET", "/Task/"+next["id"].(string), nil, me), 200).JSON(t)
	if !strings.Contains(string(mustJSON(t, seen["statusReason"])), "medication review") {
		t.Errorf("the patient must see the rejection reason: %v", seen)
	}
	// A patient may cancel a request the practice has not started on.
	third := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
	ts.mustStatus(update(third, "cancelled", me), 200)
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
