package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
)

// A caller who may not write a resource gets the same refusal whether or not it sends If-Match, and
// whatever version it names: the version check comes after authorisation, so that a 412 "current
// version is N" never tells it the resource exists, or at which version.
func TestWritesAreAuthorisedBeforeTheVersionCheck(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	d3 := w.base.Add(72 * time.Hour)
	// w.other's appointment, booked by the practice, and w.other's record as it stands.
	appt := ts.create("Appointment", w.appointment(w.other, d3, d3.Add(10*time.Minute), w.slotFree))
	victim := ts.mustStatus(ts.do("GET", "/Patient/"+w.other, nil, nil), 200).JSON(t)
	elsewhere := bearer(ts.systemToken(devidp.PracticeClientID(testPeople.Practices[1].ODS), "system/*.cruds"))
	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	with := func(h header, kv ...string) header {
		out := header{}
		for k, v := range h {
			out[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			out[kv[i]] = kv[i+1]
		}
		return out
	}
	moved := map[string]any{}
	for k, v := range victim {
		moved[k] = v
	}
	moved["gender"] = "male"
	patch := `[{"op":"replace","path":"/gender","value":"male"}]`
	cancel := `[{"op":"replace","path":"/status","value":"cancelled"},{"op":"add","path":"/cancelationReason","value":{"text":"x"}}]`
	jp := "application/json-patch+json"
	putEntry := func(ifMatch string) obj {
		return txBundle("transaction", obj{"resource": moved, "request": obj{"method": "PUT", "url": "Patient/" + w.other, "ifMatch": ifMatch}})
	}
	delEntry := func(ifMatch string) obj {
		return txBundle("transaction", obj{"request": obj{"method": "DELETE", "url": "Patient/" + w.other, "ifMatch": ifMatch}})
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		h      header
	}{
		{"another practice's update", "PUT", "/Patient/" + w.other, moved, elsewhere},
		{"another practice's update with a stale If-Match", "PUT", "/Patient/" + w.other, moved, with(elsewhere, "If-Match", `W/"7"`)},
		{"another practice's update with the current If-Match", "PUT", "/Patient/" + w.other, moved, with(elsewhere, "If-Match", `W/"1"`)},
		{"another practice's conditional update naming the id", "PUT", "/Patient?family=Other", moved, with(elsewhere, "If-Match", `W/"7"`)},
		{"another practice's patch with a stale If-Match", "PATCH", "/Patient/" + w.other, patch, with(elsewhere, "If-Match", `W/"7"`, "Content-Type", jp)},
		{"another practice's delete with a stale If-Match", "DELETE", "/Patient/" + w.other, nil, with(elsewhere, "If-Match", `W/"7"`)},
		{"another practice's transaction update with a stale ifMatch", "POST", "/", putEntry(`W/"7"`), elsewhere},
		{"another practice's transaction delete with a stale ifMatch", "POST", "/", delEntry(`W/"7"`), elsewhere},
		{"a patient cancels another patient's appointment", "PATCH", "/Appointment/" + appt, cancel, with(me, "If-Match", `W/"1"`, "Content-Type", jp)},
		{"a patient cancels another patient's appointment with a stale If-Match", "PATCH", "/Appointment/" + appt, cancel, with(me, "If-Match", `W/"7"`, "Content-Type", jp)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.body, tt.h)
			if r.Status != 403 {
				t.Fatalf("status %d, want 403: %s", r.Status, r.Body)
			}
			is := r.issue(t)
			if is["code"] != "forbidden" {
				t.Errorf("code %v, want forbidden", is["code"])
			}
			if d := is["diagnostics"].(string); strings.Contains(d, "version") {
				t.Errorf("the refusal speaks of versions: %s", d)
			}
		})
	}
	// Nothing changed: both are still at version 1 as they were.
	for _, p := range []string{"/Patient/" + w.other, "/Appointment/" + appt} {
		m := ts.mustStatus(ts.do("GET", p, nil, nil), 200).JSON(t)
		if v := m["meta"].(map[string]any)["versionId"]; v != "1" {
			t.Errorf("%s is at version %v, want 1", p, v)
		}
	}
	// The practice's own system still gets its 412 on a stale version.
	r := ts.mustStatus(ts.do("PUT", "/Patient/"+w.other, moved, header{"If-Match": `W/"7"`}), 412)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "current version is 1") {
		t.Errorf("412 does not name the current version: %s", r.Body)
	}
}
