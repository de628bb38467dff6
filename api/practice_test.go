package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// elsewhere is another practice's appointment book: an Organization with its own ODS code, its site, a
// schedule published for online booking and free slots in it.
type elsewhere struct {
	org, loc, sched string
	slots           []string
}

const elsewhereODS = "Z99998"

func newElsewhere(t *testing.T, ts *testServer, base time.Time, nSlots int) elsewhere {
	t.Helper()
	var e elsewhere
	e.org = ts.create("Organization", obj{"resourceType": "Organization", "name": "Elsewhere Surgery",
		"identifier": arr{obj{"system": fhir.ODSOrganizationSystem, "value": elsewhereODS}}})
	e.loc = ts.create("Location", obj{"resourceType": "Location", "name": "Elsewhere", "managingOrganization": ref("Organization", e.org)})
	e.sched = ts.create("Schedule", obj{"resourceType": "Schedule", "active": true,
		"extension": arr{obj{"url": fhir.OnlineBookableExtension, "valueBoolean": true}},
		"actor":     arr{ref("Location", e.loc)}})
	for i := 0; i < nSlots; i++ {
		start := base.Add(time.Duration(i) * time.Hour)
		e.slots = append(e.slots, ts.create("Slot", obj{"resourceType": "Slot", "schedule": ref("Schedule", e.sched), "status": "free",
			"extension": arr{obj{"url": fhir.OnlineBookableExtension, "valueBoolean": true}},
			"start":     rfc(start), "end": rfc(start.Add(10 * time.Minute))}))
	}
	return e
}

func TestOnlineServicesStayWithinTheRegisteredPractice(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	d3 := w.base.Add(72 * time.Hour)
	far := w.base.Add(96 * time.Hour)
	other := newElsewhere(t, ts, far, 3)
	carer := nhsNumber(t, 3)
	now := time.Now()
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("none", "", "manage", "manage")))
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	proxy := bearer(ts.patientToken(carer, "P9", w.meNHS, "patient/*.cruds"))
	at := func(i int) obj {
		start := far.Add(time.Duration(i) * time.Hour)
		return w.appointment(w.me, start, start.Add(10*time.Minute), other.slots[i])
	}
	year := now.AddDate(1, 0, 0)
	planID := ts.create("MedicationRequest", plan(w.me, "active", 0, 5, year))
	owned := func(orgID string) obj {
		task := repeatTask(w.me, planID)
		task["owner"] = ref("Organization", orgID)
		return task
	}
	// An appointment the other practice's book holds for the patient, made by a GP system (which may):
	// the patient cannot cancel it online.
	theirs := ts.mustStatus(ts.do("POST", "/Appointment", at(2), nil), 201).JSON(t)["id"].(string)
	cancel := `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"moved"}}]`

	refused := []struct {
		name   string
		tok    header
		method string
		path   string
		body   any
		h      header
		status int
		code   string
		says   string
	}{
		{"the patient books another practice's slot", me, "POST", "/Appointment", at(0), nil, 403, "forbidden",
			"only at the practice they are registered with (" + testPracticeODS + "); this slot belongs to practice " + elsewhereODS},
		{"a proxy books another practice's slot for the patient", proxy, "POST", "/Appointment", at(0), nil, 403, "forbidden",
			"this slot belongs to practice " + elsewhereODS},
		{"the booking inside a transaction", me, "POST", "/", txBundle("transaction", txPost("urn:uuid:1", at(1))), nil, 403, "forbidden",
			"Bundle.entry[0]: online, patients can book appointments only"},
		{"the booking inside a batch", me, "POST", "/", txBundle("batch", txPost("urn:uuid:1", at(1))), nil, 200, "forbidden",
			"Bundle.entry[0]: online, patients can book appointments only"},
		{"the patient cancels an appointment in another practice's book", me, "PATCH", "/Appointment/" + theirs, cancel,
			header{"Content-Type": "application/json-patch+json", "If-Match": `W/"1"`}, 403, "forbidden",
			"this appointment is in the book of practice " + elsewhereODS},
		{"a repeat request addressed to another practice", me, "POST", "/Task", owned(other.org), nil, 403, "forbidden",
			"this request is addressed to practice " + elsewhereODS},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			h := header{}
			for k, v := range tt.tok {
				h[k] = v
			}
			for k, v := range tt.h {
				h[k] = v
			}
			r := ts.mustStatus(ts.do(tt.method, tt.path, tt.body, h), tt.status)
			var issue map[string]any
			if tt.status == 200 {
				e := responseEntries(t, r, "batch-response")[0]
				if !strings.HasPrefix(e["response"].(map[string]any)["status"].(string), "403") {
					t.Fatalf("batch entry answered %v, want 403", e["response"])
				}
				issue = e["response"].(map[string]any)["outcome"].(map[string]any)["issue"].([]any)[0].(map[string]any)
			} else {
				issue = r.issue(t)
			}
			if issue["code"] != tt.code || !strings.Contains(issue["diagnostics"].(string), tt.says) {
				t.Errorf("issue %v, want code %s saying %q", issue, tt.code, tt.says)
			}
		})
	}
	// Nothing of the refused writes is stored: the other practice's slots are as they were, the
	// appointment is still booked, and the plan has no outstanding request.
	for i, want := range []string{"free", "free", "busy"} {
		if got := w.slotStatus(t, other.slots[i]); got != want {
			t.Errorf("slot %d is %s, want %s", i, got, want)
		}
	}
	if st := ts.mustStatus(ts.do("GET", "/Appointment/"+theirs, nil, nil), 200).JSON(t)["status"]; st != "booked" {
		t.Errorf("the other practice's appointment is %v, want booked", st)
	}
	if n := len(bundleIDs(t, ts.mustStatus(ts.do("GET", "/Task?focus=MedicationRequest/"+planID, nil, nil), 200))); n != 0 {
		t.Errorf("%d repeat requests stored for the plan, want 0", n)
	}

	// Within the registered practice the same writes go through, for the patient and the proxy.
	ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree), me), 201)
	ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, d3.Add(10*time.Minute), d3.Add(20*time.Minute), w.slotNext), proxy), 201)
	ts.mustStatus(ts.do("POST", "/Task", owned(testPracticeID), me), 201)
}
