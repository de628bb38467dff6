package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
)

// group is a Group of people managed by Organization org, with members (references, "Type/id").
func group(org string, members ...string) obj {
	g := obj{"resourceType": "Group", "type": "person", "actual": true, "managingEntity": ref("Organization", org)}
	var ms arr
	for _, m := range members {
		ms = append(ms, obj{"entity": obj{"reference": m}})
	}
	if len(ms) > 0 {
		g["member"] = ms
	}
	return g
}

// exported downloads every file of m, by type.
func exported(t *testing.T, ts *testServer, m manifest, h header) map[string][]string {
	t.Helper()
	got := map[string][]string{}
	for _, o := range m.Output {
		ids := download(t, ts, o.URL, h)
		if len(ids) != o.Count {
			t.Errorf("%s: %d lines, manifest count %d", o.Type, len(ids), o.Count)
		}
		got[o.Type] = ids
	}
	return got
}

func TestGroupExportAndAccess(t *testing.T) {
	ts := newTestServer(t, func(c *apiConfig) { c.ExportDir = t.TempDir() })
	w := newServicesWorld(t, ts)
	third := ts.create("Patient", patient("Third", nhsNumber(t, 3)))
	imms := map[string]int{w.me: 2, w.other: 1, third: 3}
	for pid, n := range imms {
		for i := 0; i < n; i++ {
			ts.create("Immunization", immunization(pid, time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC)))
		}
	}
	farODS := testPeople.Practices[1].ODS
	farOrg := ts.create("Organization", obj{"resourceType": "Organization", "name": "Far",
		"identifier": arr{obj{"system": fhir.ODSOrganizationSystem, "value": farODS}}})
	// Another practice's Group, which names one of the test practice's patients too.
	farGroup := ts.create("Group", group(farOrg, "Patient/"+w.me))

	own := bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.cruds"))
	create := func(g obj) string {
		t.Helper()
		return ts.mustStatus(ts.do("POST", "/Group", g, own), http.StatusCreated).JSON(t)["id"].(string)
	}
	two := create(group(testPracticeID, "Patient/"+w.me, "Patient/"+w.other, "Practitioner/"+w.prac))
	empty := create(group(testPracticeID, "Practitioner/"+w.prac))

	t.Run("a Group of two patients exports exactly their records", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/Group/"+two+"/$export", own)
		got := exported(t, ts, m, own)
		pts := slices.Sorted(slices.Values(got["Patient"]))
		want := slices.Sorted(slices.Values([]string{w.me, w.other}))
		if !slices.Equal(pts, want) {
			t.Errorf("Patients exported %v, want %v", pts, want)
		}
		if n := len(got["Immunization"]); n != imms[w.me]+imms[w.other] {
			t.Errorf("%d Immunizations exported, want %d (the members' only)", n, imms[w.me]+imms[w.other])
		}
		if _, ok := got["Group"]; ok {
			t.Errorf("a Group export wrote Groups; it holds the members' compartments")
		}
	})
	t.Run("a Group with no Patient members exports nothing", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/Group/"+empty+"/$export", own)
		if len(m.Output) != 0 {
			t.Errorf("output %+v, want none", m.Output)
		}
	})
	t.Run("another practice's Group is refused", func(t *testing.T) {
		r := ts.do("GET", "/Group/"+farGroup+"/$export", nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]})
		if r.Status != http.StatusForbidden {
			t.Fatalf("export of another practice's Group: %d %s, want 403", r.Status, r.Body)
		}
		if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "managingEntity") {
			t.Errorf("the refusal should say the Group is another practice's: %q", d)
		}
		ts.mustStatus(ts.do("GET", "/Group/"+farGroup, nil, own), http.StatusForbidden).issue(t)
		ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/Group?member=Patient/"+w.me, nil, own), 200))
		if !slices.Equal(ids, []string{two}) {
			t.Errorf("the practice's search for Groups of a patient finds %v, want only its own %s", ids, two)
		}
		r = ts.do("POST", "/Group", group(farOrg, "Patient/"+w.me), own)
		if r.Status != http.StatusForbidden {
			t.Errorf("creating a Group managed by another practice: %d, want 403", r.Status)
		}
		r.issue(t)
		moved := group(farOrg, "Patient/"+w.me)
		moved["id"] = two
		if r := ts.do("PUT", "/Group/"+two, moved, own); r.Status != http.StatusForbidden {
			t.Errorf("handing a Group to another practice: %d, want 403", r.Status)
		}
		updated := group(testPracticeID, "Patient/"+w.me, "Patient/"+w.other)
		updated["id"] = empty
		ts.mustStatus(ts.do("PUT", "/Group/"+empty, updated, own), 200)
	})
	t.Run("a system export holds the practice's own Groups only", func(t *testing.T) {
		m, _ := kickOff(t, ts, "/$export?_type=Group", own)
		got := slices.Sorted(slices.Values(exported(t, ts, m, own)["Group"]))
		if want := slices.Sorted(slices.Values([]string{two, empty})); !slices.Equal(got, want) {
			t.Errorf("Groups exported %v, want the practice's own %v", got, want)
		}
	})
	t.Run("the practice deletes its own Groups only", func(t *testing.T) {
		r := ts.do("DELETE", "/Group/"+farGroup, nil, own)
		if r.Status != http.StatusForbidden {
			t.Errorf("deleting another practice's Group: %d, want 403", r.Status)
		}
		r.issue(t)
		gone := create(group(testPracticeID, "Patient/"+w.me))
		if r := ts.do("DELETE", "/Group/"+gone, nil, own); r.Status >= 300 {
			t.Errorf("deleting its own Group: %d %s", r.Status, r.Body)
		}
		ts.mustStatus(ts.do("GET", "/Group/"+gone, nil, own), http.StatusGone)
	})
	t.Run("a patient cannot see Groups", func(t *testing.T) {
		pt := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.rs"))
		for _, path := range []string{"/Group/" + two, "/Group?member=Patient/" + w.me} {
			r := ts.do("GET", path, nil, pt)
			if r.Status != http.StatusForbidden {
				t.Errorf("patient GET %s: %d, want 403", path, r.Status)
				continue
			}
			if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "practice") {
				t.Errorf("patient GET %s: refusal %q does not say Groups are the practice's", path, d)
			}
		}
	})
	t.Run("an unknown Group is 404", func(t *testing.T) {
		r := ts.do("GET", "/Group/no-such-group/$export", nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]})
		if r.Status != http.StatusNotFound {
			t.Fatalf("export of an unknown Group: %d %s, want 404", r.Status, r.Body)
		}
		if r.issue(t)["code"] != "not-found" {
			t.Errorf("issue %s", r.Body)
		}
	})
	t.Run("CapabilityStatement lists Group", func(t *testing.T) {
		cs := ts.mustStatus(ts.do("GET", "/metadata", nil, nil), 200).JSON(t)
		var found map[string]any
		for _, res := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
			if res.(map[string]any)["type"] == "Group" {
				found = res.(map[string]any)
			}
		}
		if found == nil {
			t.Fatal("no Group in the CapabilityStatement")
		}
		var params []string
		for _, sp := range found["searchParam"].([]any) {
			params = append(params, sp.(map[string]any)["name"].(string))
		}
		for _, want := range []string{"identifier", "type", "actual", "code", "member", "managing-entity", "characteristic"} {
			if !slices.Contains(params, want) {
				t.Errorf("Group search parameter %s not listed (%v)", want, params)
			}
		}
		ops, _ := found["operation"].([]any)
		if len(ops) == 0 || !strings.Contains(ops[0].(map[string]any)["definition"].(string), "group-export") {
			t.Errorf("Group's $export not listed: %v", ops)
		}
	})
}
