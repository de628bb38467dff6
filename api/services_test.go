package api_test

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// nhsNumber returns the n-th valid NHS number of a test range no other test uses.
func nhsNumber(t *testing.T, n int) string {
	t.Helper()
	for c := 0; ; c++ {
		nine := fmt.Sprintf("97%07d", 1000+n*20+c)
		if d, ok := fhir.NHSCheckDigit(nine); ok {
			return fmt.Sprintf("%s%d", nine, d)
		}
	}
}

// servicesWorld is a practice with an online appointment book, a reception-only one, and patients.
type servicesWorld struct {
	ts                      *testServer
	me, other               string // Patient ids
	meNHS, otherNHS         string
	prac, loc               string
	online, reception       string // Schedule ids
	slotFree, slotNext      string // adjacent free online slots, 3 days ahead
	slotSoon                string // free online slot starting in 2 hours
	slotReception, slotPast string
	slotFar                 string // 20 days ahead
	base                    time.Time
}

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func newServicesWorld(t *testing.T, ts *testServer) *servicesWorld {
	t.Helper()
	w := &servicesWorld{ts: ts, meNHS: nhsNumber(t, 1), otherNHS: nhsNumber(t, 2)}
	w.me = ts.create("Patient", patient("Me", w.meNHS))
	w.other = ts.create("Patient", patient("Other", w.otherNHS))
	w.prac = ts.create("Practitioner", obj{"resourceType": "Practitioner", "name": arr{obj{"family": "Doc"}}})
	w.loc = ts.create("Location", obj{"resourceType": "Location", "name": "Surgery", "managingOrganization": ref("Organization", testPracticeID)})
	sched := func(online bool) string {
		return ts.create("Schedule", obj{"resourceType": "Schedule", "active": true,
			"extension": arr{obj{"url": fhir.OnlineBookableExtension, "valueBoolean": online}},
			"actor":     arr{ref("Location", w.loc), ref("Practitioner", w.prac)}})
	}
	w.online, w.reception = sched(true), sched(false)
	w.base = time.Now().UTC().Truncate(time.Hour)
	slot := func(sched string, online bool, start time.Time, status string) string {
		return ts.create("Slot", obj{"resourceType": "Slot", "schedule": ref("Schedule", sched), "status": status,
			"extension": arr{obj{"url": fhir.OnlineBookableExtension, "valueBoolean": online}},
			"start":     rfc(start), "end": rfc(start.Add(10 * time.Minute))})
	}
	d3 := w.base.Add(72 * time.Hour)
	w.slotFree = slot(w.online, true, d3, "free")
	w.slotNext = slot(w.online, true, d3.Add(10*time.Minute), "free")
	w.slotSoon = slot(w.online, true, w.base.Add(3*time.Hour), "free")
	w.slotReception = slot(w.reception, false, d3, "free")
	w.slotPast = slot(w.online, true, w.base.Add(-48*time.Hour), "free")
	w.slotFar = slot(w.online, true, w.base.Add(20*24*time.Hour), "free")
	return w
}

// appointment is a booking of slots for a patient, starting and ending with them.
func (w *servicesWorld) appointment(patientID string, start, end time.Time, slots ...string) obj {
	var refs arr
	for _, s := range slots {
		refs = append(refs, ref("Slot", s))
	}
	return obj{"resourceType": "Appointment", "status": "booked", "slot": refs,
		"start": rfc(start), "end": rfc(end), "description": "GP appointment",
		"participant": arr{
			obj{"actor": ref("Patient", patientID), "status": "accepted"},
			obj{"actor": ref("Location", w.loc), "status": "accepted"},
		}}
}

func (w *servicesWorld) slotStatus(t *testing.T, id string) string {
	t.Helper()
	return w.ts.mustStatus(w.ts.do("GET", "/Slot/"+id, nil, nil), 200).JSON(t)["status"].(string)
}

// race sends the same request from n clients released at once, and returns each one's status and body.
// It is bounded (one request per client) and goes to the test server on 127.0.0.1 only.
func (ts *testServer) race(n int, method, path string, body any, h header) ([]int, []string) {
	statuses := make([]int, n)
	bodies := make([]string, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			r := ts.do(method, path, body, h)
			statuses[i], bodies[i] = r.Status, string(r.Body)
		}(i)
	}
	close(start)
	wg.Wait()
	return statuses, bodies
}

func TestConcurrentBookingsOfOneSlotHaveExactlyOneWinner(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	tok := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	d3 := w.base.Add(72 * time.Hour)
	body := w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree)

	statuses, bodies := ts.race(50, "POST", "/Appointment", body, tok)
	won := 0
	for i, st := range statuses {
		switch st {
		case http.StatusCreated:
			won++
		case http.StatusConflict:
			if !strings.Contains(bodies[i], online.SlotTakenMessage) {
				t.Errorf("a losing booking must say %q: %s", online.SlotTakenMessage, bodies[i])
			}
		default:
			t.Errorf("booking %d: status %d: %s", i, st, bodies[i])
		}
	}
	if won != 1 {
		t.Fatalf("%d bookings won, want exactly 1", won)
	}
	if got := w.slotStatus(t, w.slotFree); got != "busy" {
		t.Errorf("slot is %s after the booking, want busy", got)
	}
	b := ts.mustStatus(ts.do("GET", "/Appointment?slot=Slot/"+w.slotFree+"&_total=accurate", nil, nil), 200).JSON(t)
	if b["total"].(float64) != 1 {
		t.Errorf("%v appointments hold the slot, want 1", b["total"])
	}
}

func TestBookingRules(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	d3 := w.base.Add(72 * time.Hour)
	soon := w.base.Add(3 * time.Hour)
	past := w.base.Add(-48 * time.Hour)
	booked := func(m obj, k string, v any) obj { m[k] = v; return m }
	tests := []struct {
		name   string
		body   obj
		status int
		code   string
		says   string
	}{
		{"a slot kept for reception is not bookable online", w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotReception),
			422, "business-rule", "not published for online booking"},
		{"a past slot cannot be booked", w.appointment(w.me, past, past.Add(10*time.Minute), w.slotPast),
			422, "business-rule", "only future slots"},
		{"start and end must be the slot's", w.appointment(w.me, d3, d3.Add(20*time.Minute), w.slotFree),
			422, "business-rule", "start and end must be those of its slots"},
		{"a new appointment is booked", booked(w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree), "status", "proposed"),
			422, "business-rule", "status booked"},
		{"no booking for someone else", w.appointment(w.other, d3, d3.Add(10*time.Minute), w.slotFree),
			403, "forbidden", "not part of your own GP record"},
		{"adjacent slots of one schedule book together", w.appointment(w.me, d3, d3.Add(20*time.Minute), w.slotFree, w.slotNext),
			201, "", ""},
		{"a booked slot is taken", w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree),
			409, "conflict", online.SlotTakenMessage},
		{"a slot starting soon can be booked", w.appointment(w.me, soon, soon.Add(10*time.Minute), w.slotSoon),
			201, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do("POST", "/Appointment", tt.body, me), tt.status)
			if tt.status >= 400 {
				is := r.issue(t)
				if is["code"] != tt.code || !strings.Contains(is["diagnostics"].(string), tt.says) {
					t.Errorf("issue %v, want code %s saying %q", is, tt.code, tt.says)
				}
			}
		})
	}
	if w.slotStatus(t, w.slotReception) != "free" || w.slotStatus(t, w.slotNext) != "busy" {
		t.Errorf("refused bookings must leave slots as they were; accepted ones make them busy")
	}
	// Patients cannot manage appointment books.
	ts.mustStatus(ts.do("POST", "/Schedule", obj{"resourceType": "Schedule", "actor": arr{ref("Location", w.loc)}}, me), 403)
	r := ts.mustStatus(ts.do("PATCH", "/Slot/"+w.slotReception, `[{"op":"replace","path":"/status","value":"busy"}]`,
		header{"Authorization": me["Authorization"], "Content-Type": "application/json-patch+json"}), 403)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "managed by the practice") {
		t.Errorf("refusal should say the practice manages slots: %s", r.Body)
	}
}

func TestCancellation(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	d3 := w.base.Add(72 * time.Hour)
	soon := w.base.Add(3 * time.Hour)
	appt := ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree), me), 201).JSON(t)
	late := ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, soon, soon.Add(10*time.Minute), w.slotSoon), me), 201).JSON(t)
	id := appt["id"].(string)
	cancelled := func(m obj) obj {
		c := obj{}
		for k, v := range m {
			c[k] = v
		}
		c["status"] = "cancelled"
		c["cancelationReason"] = obj{"text": "I feel better"}
		return c
	}
	ifMatch := func(v string) header { return header{"Authorization": me["Authorization"], "If-Match": v} }
	moved := cancelled(appt)
	moved["description"] = "something else"
	noReason := cancelled(appt)
	delete(noReason, "cancelationReason")
	tests := []struct {
		name   string
		path   string
		body   any
		h      header
		status int
		says   string
	}{
		{"If-Match is required", "/Appointment/" + id, cancelled(appt), me, 428, "If-Match"},
		{"only status and reason may change", "/Appointment/" + id, moved, ifMatch(`W/"1"`), 422, "only status and cancelationReason"},
		{"a reason is required", "/Appointment/" + id, noReason, ifMatch(`W/"1"`), 422, "cancelationReason"},
		{"not inside the practice's cut-off", "/Appointment/" + late["id"].(string), cancelled(late), ifMatch(`W/"1"`), 422, "24 hours"},
		{"a stale version is refused", "/Appointment/" + id, cancelled(appt), ifMatch(`W/"9"`), 412, "version"},
		{"cancelled", "/Appointment/" + id, cancelled(appt), ifMatch(`W/"1"`), 200, ""},
		{"only once", "/Appointment/" + id, cancelled(appt), ifMatch(`W/"2"`), 422, "already cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.body.(obj)
			delete(body, "meta")
			r := ts.mustStatus(ts.do("PUT", tt.path, body, tt.h), tt.status)
			if tt.status >= 400 && !strings.Contains(r.issue(t)["diagnostics"].(string), tt.says) {
				t.Errorf("diagnostics %s do not say %q", r.Body, tt.says)
			}
		})
	}
	if got := w.slotStatus(t, w.slotFree); got != "free" {
		t.Errorf("slot is %s after the cancellation, want free again", got)
	}
	if got := w.slotStatus(t, w.slotSoon); got != "busy" {
		t.Errorf("a refused cancellation freed its slot (%s)", got)
	}
	// The practice sets its own cut-off; with 1 hour the late appointment can be cancelled, by PATCH.
	org := ts.mustStatus(ts.do("GET", "/Organization/"+testPracticeID, nil, nil), 200).JSON(t)
	org["extension"] = arr{obj{"url": online.CancellationCutoffExtension, "valueUnsignedInt": 1}}
	delete(org, "meta")
	ts.mustStatus(ts.do("PUT", "/Organization/"+testPracticeID, org, nil), 200)
	ts.mustStatus(ts.do("PATCH", "/Appointment/"+late["id"].(string),
		`[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"sorted"}}]`,
		header{"Authorization": me["Authorization"], "Content-Type": "application/json-patch+json", "If-Match": `W/"1"`}), 200)
	if got := w.slotStatus(t, w.slotSoon); got != "free" {
		t.Errorf("slot is %s after the PATCH cancellation, want free", got)
	}
	// Listing shows both, cancelled ones included.
	b := ts.mustStatus(ts.do("GET", "/Appointment?patient=Patient/"+w.me+"&date=ge"+w.base.Format("2006-01-02"), nil, me), 200).JSON(t)
	if n := len(b["entry"].([]any)); n != 2 {
		t.Errorf("listing has %d entries, want 2", n)
	}
}

func TestPatientSlotSearch(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	me := bearer(ts.patientToken(w.meNHS, "P9", ""))
	day := func(n int) string { return w.base.AddDate(0, 0, n).Format("2006-01-02") }
	search := func(q string) *response {
		return ts.do("GET", "/Slot?status=free&schedule.actor=Location/"+w.loc+"&_include=Slot:schedule&"+q, nil, me)
	}
	r := ts.mustStatus(search("start=ge"+day(0)+"&start=le"+day(15)), 400)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "14 days") {
		t.Errorf("the refusal must explain the limit: %s", r.Body)
	}
	ts.mustStatus(search("start=ge"+day(0)), 400)
	b := ts.mustStatus(search("start=ge"+day(0)+"&start=le"+day(14)), 200).JSON(t)
	got := map[string]bool{}
	for _, e := range b["entry"].([]any) {
		res := e.(map[string]any)["resource"].(map[string]any)
		got[res["resourceType"].(string)+"/"+res["id"].(string)] = true
	}
	for _, want := range []string{"Slot/" + w.slotFree, "Slot/" + w.slotSoon, "Schedule/" + w.online} {
		if !got[want] {
			t.Errorf("missing %s in %v", want, got)
		}
	}
	for _, hidden := range []string{"Slot/" + w.slotReception, "Schedule/" + w.reception, "Slot/" + w.slotFar} {
		if got[hidden] {
			t.Errorf("%s must not be shown to a patient", hidden)
		}
	}
	// A slot kept for reception reads as unknown to a patient, like a redacted entry.
	ts.mustStatus(ts.do("GET", "/Slot/"+w.slotReception, nil, me), 404)
	// GP systems see every slot, over any range.
	all := ts.mustStatus(ts.do("GET", "/Slot?_total=accurate&start=ge"+url.QueryEscape(day(-5)), nil, nil), 200).JSON(t)
	if all["total"].(float64) != 6 {
		t.Errorf("GP system sees %v slots, want 6", all["total"])
	}
}
