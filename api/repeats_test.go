package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/online"
)

// plan is a repeat authorisation for patientID: issued of allowed issues (repeats+1), expiring at expiry.
func plan(patientID, status string, issued, repeats int, expiry time.Time) obj {
	return obj{"resourceType": "MedicationRequest", "status": status, "intent": "plan",
		"extension": arr{obj{"url": online.RepeatInformationExtension, "extension": arr{
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
		"code":  obj{"coding": arr{coding(online.SNOMEDSystem, online.RenewalCode, "Renewal of prescription")}},
		"focus": ref("MedicationRequest", planID), "for": ref("Patient", patientID),
		"note": arr{obj{"text": "Running low"}},
		"input": arr{obj{"type": obj{"coding": arr{coding(online.PrescriptionOrderingSystem, "preferred-performer", "")}},
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
	list := ts.mustStatus(ts.do("GET", "/Task?status=requested&code="+online.SNOMEDSystem+"|"+online.RenewalCode, nil, nil), 200)
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
	p := online.ParsePlan(active, ts.mustStatus(ts.do("GET", "/MedicationRequest/"+active, nil, nil), 200).JSON(t))
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

// TestConcurrentRepeatRequestsForOnePlanHaveExactlyOneWinner: the outstanding-request rule holds under a
// race, because each request writes the plan in the Task's atomic group with compare-and-swap on the
// version its rules read.
func TestConcurrentRepeatRequestsForOnePlanHaveExactlyOneWinner(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	active := ts.create("MedicationRequest", plan(w.me, "active", 0, 100, time.Now().AddDate(1, 0, 0)))
	body := repeatTask(w.me, active)

	statuses, bodies := ts.race(20, "POST", "/Task", body, me)
	won := ""
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			if won != "" {
				t.Errorf("a second request was accepted: %s", bodies[i])
			}
			won = bodies[i]
		case http.StatusConflict:
			if !strings.Contains(bodies[i], online.OutstandingRequestMessage) {
				t.Errorf("a losing request must say %q: %s", online.OutstandingRequestMessage, bodies[i])
			}
		default:
			t.Errorf("request %d: status %d: %s", i, st, bodies[i])
		}
	}
	if won == "" {
		t.Fatalf("no request was accepted: %v", statuses)
	}
	b := ts.mustStatus(ts.do("GET", "/Task?focus=MedicationRequest/"+active+"&_total=accurate", nil, nil), 200).JSON(t)
	if b["total"].(float64) != 1 {
		t.Errorf("%v Tasks are stored for the plan, want 1", b["total"])
	}
	var task obj
	if err := json.Unmarshal([]byte(won), &task); err != nil {
		t.Fatal(err)
	}
	if got := outstandingOn(t, ts, active); got != task["id"] {
		t.Errorf("the plan marks %q as outstanding, want the accepted %v", got, task["id"])
	}
}

// outstandingOn returns the Task id the plan's outstanding-request marker names, or "". It also checks
// that the marker is a bare reference: the Task's note is the patient's own text.
func outstandingOn(t *testing.T, ts *testServer, planID string) string {
	t.Helper()
	pt := ts.mustStatus(ts.do("GET", "/MedicationRequest/"+planID, nil, nil), 200).JSON(t)
	for _, e := range pt["extension"].([]any) {
		if m := e.(map[string]any); m["url"] == online.OutstandingRequestExtension {
			if len(m) != 2 || len(m["valueReference"].(map[string]any)) != 1 {
				t.Errorf("the marker must carry the reference only: %v", m)
			}
		}
	}
	if strings.Contains(string(mustJSON(t, pt)), "Running low") {
		t.Errorf("the plan shows the request's note: %v", pt)
	}
	return online.ParsePlan(planID, pt).Outstanding
}

// TestRepeatRequestMarker: the marker comes and goes with the request, and one left behind by a deleted
// request, or missing from a plan the practice rewrote, does not decide on its own.
func TestRepeatRequestMarker(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	year := time.Now().AddDate(1, 0, 0)
	active := ts.create("MedicationRequest", plan(w.me, "active", 0, 5, year))
	finish := func(task obj, status string, h header) {
		t.Helper()
		task["status"] = status
		task["statusReason"] = obj{"text": "Please book a medication review first"}
		delete(task, "meta")
		ts.mustStatus(ts.do("PUT", "/Task/"+task["id"].(string), task, h), 200)
	}
	for _, end := range []struct {
		status string
		by     header
	}{{"completed", nil}, {"rejected", nil}, {"cancelled", me}} {
		task := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
		if got := outstandingOn(t, ts, active); got != task["id"] {
			t.Fatalf("the plan marks %q as outstanding, want %v", got, task["id"])
		}
		finish(task, end.status, end.by)
		if got := outstandingOn(t, ts, active); got != "" {
			t.Errorf("after %s, the plan still marks %q as outstanding", end.status, got)
		}
	}
	if p := online.ParsePlan(active, ts.mustStatus(ts.do("GET", "/MedicationRequest/"+active, nil, nil), 200).JSON(t)); p.Issued != 1 {
		t.Errorf("plan counts %d issues, want 1", p.Issued)
	}

	// A deleted request leaves its marker, which no longer blocks.
	gone := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
	ts.mustStatus(ts.do("DELETE", "/Task/"+gone["id"].(string), nil, nil), 204)
	next := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 201).JSON(t)
	if got := outstandingOn(t, ts, active); got != next["id"] {
		t.Errorf("the plan marks %q as outstanding, want %v", got, next["id"])
	}

	// The practice rewrites the plan without the marker: the outstanding request is still found.
	pt := ts.mustStatus(ts.do("GET", "/MedicationRequest/"+active, nil, nil), 200).JSON(t)
	var kept arr
	for _, e := range pt["extension"].([]any) {
		if e.(map[string]any)["url"] != online.OutstandingRequestExtension {
			kept = append(kept, e)
		}
	}
	pt["extension"] = kept
	delete(pt, "meta")
	ts.mustStatus(ts.do("PUT", "/MedicationRequest/"+active, pt, nil), 200)
	r := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, active), me), 409)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "Task/"+next["id"].(string)) {
		t.Errorf("the outstanding request must be named: %s", r.Body)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The rules rewrite a plan (the outstanding-request marker, the count of issues) and copy it into the
// issue: the decimals in it keep their precision (28.0 and 0.50 are not 28 and 0.5 in FHIR).
func TestRepeatRequestKeepsThePlansDecimalsAsWritten(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	p := plan(w.me, "active", 0, 5, time.Now().AddDate(1, 0, 0))
	p["dispenseRequest"].(obj)["quantity"] = obj{"value": json.Number("28.0"), "unit": "tablet"}
	p["dosageInstruction"] = arr{obj{"text": "Half a tablet at night",
		"doseAndRate": arr{obj{"doseQuantity": obj{"value": json.Number("0.50"), "unit": "tablet"}}}}}
	planID := ts.create("MedicationRequest", p)
	decimalsKept := func(what string, body []byte) {
		t.Helper()
		for _, want := range []string{`"value":28.0`, `"value":0.50`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s lost %s: %s", what, want, body)
			}
		}
	}
	task := ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, planID), me), 201).JSON(t)
	decimalsKept("the plan marked as requested", ts.mustStatus(ts.do("GET", "/MedicationRequest/"+planID, nil, nil), 200).Body)
	task["status"] = "completed"
	delete(task, "meta")
	done := ts.mustStatus(ts.do("PUT", "/Task/"+task["id"].(string), task, nil), 200).JSON(t)
	decimalsKept("the plan counting the issue", ts.mustStatus(ts.do("GET", "/MedicationRequest/"+planID, nil, nil), 200).Body)
	issueRef := done["output"].([]any)[0].(map[string]any)["valueReference"].(map[string]any)["reference"].(string)
	decimalsKept("the issue", ts.mustStatus(ts.do("GET", "/"+issueRef, nil, nil), 200).Body)
}
