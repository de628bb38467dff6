package api_test

import (
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
)

// farPractice gives the test practice's GP-system token and creates another practice's Organization,
// returning its ODS code and id.
func farPractice(ts *testServer) (home header, farODS, farOrg string) {
	home = bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.cruds"))
	farODS = testPeople.Practices[1].ODS
	farOrg = ts.create("Organization", obj{"resourceType": "Organization", "name": "Far",
		"identifier": arr{obj{"system": fhir.ODSOrganizationSystem, "value": farODS}}})
	return home, farODS, farOrg
}

// Whichever field places a patient, a GP system may store a Patient only registered at its own
// practices: handing the patient to another practice's view by changing managingOrganization alone is
// refused exactly as moving both references is.
func TestGPSystemCannotRegisterAPatientElsewhere(t *testing.T) {
	ts := newTestServer(t)
	home, farODS, farOrg := farPractice(ts)
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

// A GP system's transaction is decided on the patients each entry names, as the transaction leaves them:
// a patient it registers at the caller's practice may be written about in the same transaction, and one
// entry about a patient registered elsewhere refuses the whole of it, naming that entry, however many
// entries about the caller's own patients came before it.
func TestGPSystemTransactionIsDecidedOnEachEntrysPatient(t *testing.T) {
	ts := newTestServer(t)
	home, _, farOrg := farPractice(ts)
	ownID := ts.create("Patient", patient("Own", ""))
	elsewhere := patient("Elsewhere", "")
	elsewhere["managingOrganization"] = ref("Organization", farOrg)
	farID := ts.create("Patient", elsewhere)
	immunizations := func(pid string) int { return ts.txCount("Immunization", "patient=Patient/"+pid) }

	t.Run("a new patient and its record", func(t *testing.T) {
		pu := "urn:uuid:6f1b2a3c-0000-4000-8000-0000000000a1"
		entries := []obj{txPost(pu, patient("Newly", ""))}
		for range 3 {
			entries = append(entries, txPost("", txImmunization(pu)), txPost("", txImmunization("Patient/"+ownID)))
		}
		r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction", entries...), home), 200)
		es := responseEntries(t, r, "transaction-response")
		loc, _ := es[0]["response"].(map[string]any)["location"].(string)
		newID := strings.Split(strings.TrimPrefix(loc, "Patient/"), "/")[0]
		if n := immunizations(newID); n != 3 {
			t.Errorf("%d Immunizations for the new patient %q, want 3", n, newID)
		}
		if n := immunizations(ownID); n != 3 {
			t.Errorf("%d Immunizations for the practice's patient, want 3", n)
		}
	})

	t.Run("one entry about another practice's patient", func(t *testing.T) {
		before := immunizations(ownID)
		entries := []obj{txPost("", txImmunization("Patient/"+ownID)), txPost("", txImmunization("Patient/"+ownID)),
			txPost("", txImmunization("Patient/"+ownID)), txPost("", txImmunization("Patient/"+farID)),
			txPost("", txImmunization("Patient/"+ownID))}
		r := ts.do("POST", "/", txBundle("transaction", entries...), home)
		if r.Status != 403 || !strings.Contains(string(r.Body), "Bundle.entry[3]") {
			t.Fatalf("status %d, want 403 naming entry 3: %s", r.Status, r.Body)
		}
		if n := immunizations(ownID); n != before {
			t.Errorf("%d Immunizations after a refused transaction, want %d", n, before)
		}
		if n := immunizations(farID); n != 0 {
			t.Errorf("%d Immunizations for the other practice's patient, want 0", n)
		}
	})

	// Either way round, the Immunization is decided on the patient as the transaction moves them (its
	// POST is checked before the Patient's PUT, in the order a transaction is processed).
	t.Run("a patient moved away in the transaction that writes about them", func(t *testing.T) {
		before := immunizations(ownID)
		moved := ts.mustStatus(ts.do("GET", "/Patient/"+ownID, nil, nil), 200).JSON(t)
		delete(moved, "meta")
		moved["managingOrganization"] = ref("Organization", farOrg)
		move := obj{"resource": moved, "request": obj{"method": "PUT", "url": "Patient/" + ownID}}
		write := txPost("", txImmunization("Patient/"+ownID))
		for _, tc := range []struct {
			entries []obj
			refused string
		}{
			{[]obj{write, move}, "Bundle.entry[0]"},
			{[]obj{move, write}, "Bundle.entry[1]"},
		} {
			r := ts.do("POST", "/", txBundle("transaction", tc.entries...), home)
			body := string(r.Body)
			if r.Status != 403 || !strings.Contains(body, tc.refused+": this Immunization belongs to a patient who is not registered") {
				t.Fatalf("status %d, want 403 refusing %s: %s", r.Status, tc.refused, body)
			}
		}
		if n := immunizations(ownID); n != before {
			t.Errorf("%d Immunizations after refused transactions, want %d", n, before)
		}
		got := ts.mustStatus(ts.do("GET", "/Patient/"+ownID, nil, nil), 200).JSON(t)
		if m := got["managingOrganization"].(map[string]any)["reference"]; m != "Organization/"+testPracticeID {
			t.Errorf("managingOrganization is %v, want the test practice", m)
		}
	})
}
