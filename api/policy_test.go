package api_test

import (
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/online"
)

// TestReadsAndSearchesAgreeForEveryCaller checks the policy's central promise from outside: whatever a
// caller can read by id is exactly what its searches return, and nothing else, whichever part of the
// policy decides (compartment, practice registration, prospective record access, redaction,
// publication for online booking).
func TestReadsAndSearchesAgreeForEveryCaller(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	const farODS = "B82005"
	farOrg := ts.create("Organization", obj{"resourceType": "Organization", "name": "Far Practice",
		"identifier": arr{obj{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": farODS}}})
	farPatient := patient("Far", nhsNumber(t, 3))
	farPatient["managingOrganization"] = ref("Organization", farOrg)
	far := ts.create("Patient", farPatient)

	old, recent := time.Date(2019, 10, 1, 10, 0, 0, 0, time.UTC), time.Date(2024, 10, 1, 10, 0, 0, 0, time.UTC)
	type target struct{ typ, id string }
	targets := []target{
		{"Patient", w.me}, {"Patient", w.other}, {"Patient", far},
		{"Immunization", ts.create("Immunization", immunization(w.me, old))},
		{"Immunization", ts.create("Immunization", immunization(w.me, recent))},
		{"Immunization", ts.create("Immunization", immunization(w.me, recent, online.SecurityLabelSystem, online.RedactedOnlineCode))},
		{"Immunization", ts.create("Immunization", immunization(w.other, recent))},
		{"Immunization", ts.create("Immunization", immunization(far, recent))},
		{"Slot", w.slotFree}, {"Slot", w.slotReception},
		{"Schedule", w.online}, {"Schedule", w.reception},
	}
	// Prospective access from 2024 for me: the 2019 entry is hidden from me, not from the practice.
	w.setAccess(t, w.me, onlineAccess("full", "2024-01-01", "manage", "manage"))

	callers := []struct {
		name  string
		token string
	}{
		{"patient", ts.patientToken(w.meNHS, "P9", "", "patient/*.rs")},
		{"another patient", ts.patientToken(w.otherNHS, "P9", "", "patient/*.rs")},
		{"the practice's GP system", ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs")},
		{"another practice's GP system", ts.systemToken(devidp.PracticeClientID(farODS), "system/*.rs")},
	}
	for _, c := range callers {
		t.Run(c.name, func(t *testing.T) {
			h := bearer(c.token)
			readable := 0
			for _, tg := range targets {
				read := ts.do("GET", "/"+tg.typ+"/"+tg.id, nil, h)
				if read.Status != 200 && read.Status != 403 && read.Status != 404 {
					t.Fatalf("read %s/%s: unexpected %d %s", tg.typ, tg.id, read.Status, read.Body)
				}
				query := "/" + tg.typ + "?_id=" + tg.id
				if tg.typ == "Slot" {
					// A patient's slot search must name a start range of at most 14 days.
					query += "&start=ge" + w.base.AddDate(0, 0, -1).Format("2006-01-02") + "&start=le" + w.base.AddDate(0, 0, 12).Format("2006-01-02")
				}
				search := ts.do("GET", query, nil, h)
				if search.Status != 200 {
					t.Fatalf("search %s: %d %s", query, search.Status, search.Body)
				}
				found := slices.Contains(bundleIDs(t, search), tg.id)
				if (read.Status == 200) != found {
					t.Errorf("%s/%s: read answers %d but search finds it: %v", tg.typ, tg.id, read.Status, found)
				}
				if read.Status == 200 {
					readable++
				}
			}
			// Every caller sees something and not everything, so the comparison above is not vacuous.
			if readable == 0 || readable == len(targets) {
				t.Errorf("%s can read %d of %d targets; the world should show a difference", c.name, readable, len(targets))
			}
		})
	}
}
