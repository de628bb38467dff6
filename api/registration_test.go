package api_test

import (
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
)

// Whichever field places a patient, a GP system may store a Patient only registered at its own
// practices: handing the patient to another practice's view by changing managingOrganization alone is
// refused exactly as moving both references is.
func TestGPSystemCannotRegisterAPatientElsewhere(t *testing.T) {
	ts := newTestServer(t)
	home := bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.cruds"))
	farODS := testPeople.Practices[1].ODS
	farOrg := ts.create("Organization", obj{"resourceType": "Organization", "name": "Far",
		"identifier": arr{obj{"system": fhir.ODSOrganizationSystem, "value": farODS}}})
	// Registered at the test practice by both fields, as the seeded patients are.
	kept := patient("Kept", "")
	kept["generalPractitioner"] = arr{ref("Organization", testPracticeID)}
	id := ts.create("Patient", kept)
	current := func() map[string]any {
		return ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200).JSON(t)
	}
	placed := func(managing, gp string) map[string]any {
		p := current()
		delete(p, "meta")
		if managing != "" {
			p["managingOrganization"] = ref("Organization", managing)
		}
		if gp != "" {
			p["generalPractitioner"] = arr{ref("Organization", gp)}
		}
		return p
	}
	jp := header{"Content-Type": "application/json-patch+json"}
	for k, v := range home {
		jp[k] = v
	}
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		h      header
	}{
		{"managingOrganization alone moved", "PUT", "/Patient/" + id, placed(farOrg, ""), home},
		{"generalPractitioner alone moved", "PUT", "/Patient/" + id, placed("", farOrg), home},
		{"both moved", "PUT", "/Patient/" + id, placed(farOrg, farOrg), home},
		{"managingOrganization moved by patch", "PATCH", "/Patient/" + id,
			`[{"op":"replace","path":"/managingOrganization","value":{"reference":"Organization/` + farOrg + `"}}]`, jp},
		{"managingOrganization moved in a transaction", "POST", "/",
			txBundle("transaction", obj{"resource": placed(farOrg, ""), "request": obj{"method": "PUT", "url": "Patient/" + id}}), home},
		{"a new patient registered partly elsewhere", "POST", "/Patient", func() map[string]any {
			p := patient("New", "")
			p["generalPractitioner"] = arr{ref("Organization", farOrg)}
			return p
		}(), home},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.do(tt.method, tt.path, tt.body, tt.h)
			if r.Status != 403 {
				t.Fatalf("status %d, want 403: %s", r.Status, r.Body)
			}
			is := r.issue(t)
			if is["code"] != "forbidden" || !strings.Contains(is["diagnostics"].(string), "would register the patient at practice "+farODS) {
				t.Errorf("issue %v", is)
			}
		})
	}
	after := current()
	if v := after["meta"].(map[string]any)["versionId"]; v != "1" {
		t.Errorf("the patient is at version %v, want 1 (unchanged)", v)
	}
	if m := after["managingOrganization"].(map[string]any)["reference"]; m != "Organization/"+testPracticeID {
		t.Errorf("managingOrganization is %v, want the test practice", m)
	}
	// Within the practice the same write goes through.
	ts.mustStatus(ts.do("PUT", "/Patient/"+id, placed(testPracticeID, testPracticeID), home), 200)
}
