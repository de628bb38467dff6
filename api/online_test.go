package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
)

// onlineAccess is the online-access extension with the given parts; "" leaves a part out.
func onlineAccess(record, from, prescriptions, appointments string) obj {
	var parts arr
	add := func(name, key, v string) {
		if v != "" {
			parts = append(parts, obj{"url": name, key: v})
		}
	}
	add("record", "valueCode", record)
	add("recordFrom", "valueDate", from)
	add("prescriptions", "valueCode", prescriptions)
	add("appointments", "valueCode", appointments)
	return obj{"url": online.AccessExtension, "extension": parts}
}

// setAccess is the practice (the GP system) setting a patient's online access levels.
func (w *servicesWorld) setAccess(t *testing.T, patientID string, ext obj) {
	t.Helper()
	p := w.ts.mustStatus(w.ts.do("GET", "/Patient/"+patientID, nil, nil), 200).JSON(t)
	delete(p, "meta")
	p["extension"] = arr{ext}
	w.ts.mustStatus(w.ts.do("PUT", "/Patient/"+patientID, p, nil), 200)
}

func immunization(patientID string, when time.Time, labels ...string) obj {
	im := obj{"resourceType": "Immunization", "status": "completed", "patient": ref("Patient", patientID),
		"vaccineCode":        obj{"coding": arr{coding("http://snomed.info/sct", "34680411000001107", "Flu vaccine")}},
		"occurrenceDateTime": rfc(when)}
	if len(labels) > 0 {
		im["meta"] = obj{"security": arr{obj{"system": labels[0], "code": labels[1]}}}
	}
	return im
}

func TestAccessLevelsSetByThePractice(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	old := ts.create("Immunization", immunization(w.me, time.Date(2019, 10, 1, 10, 0, 0, 0, time.UTC)))
	recent := ts.create("Immunization", immunization(w.me, time.Date(2024, 10, 1, 10, 0, 0, 0, time.UTC)))
	pl := ts.create("MedicationRequest", plan(w.me, "active", 0, 5, time.Now().AddDate(1, 0, 0)))

	// Bad levels are refused with the allowed values.
	p := ts.mustStatus(ts.do("GET", "/Patient/"+w.me, nil, nil), 200).JSON(t)
	delete(p, "meta")
	p["extension"] = arr{onlineAccess("everything", "", "", "")}
	r := ts.mustStatus(ts.do("PUT", "/Patient/"+w.me, p, nil), 422)
	if !strings.Contains(r.issue(t)["diagnostics"].(string), "none, summary, detailed, full") {
		t.Errorf("diagnostics should list the levels: %s", r.Body)
	}

	tests := []struct {
		name   string
		access obj
		method string
		path   string
		body   any
		status int
		says   string
	}{
		{"defaults: summary record", nil, "GET", "/Immunization", nil, 200, ""},
		{"record none refuses immunisations, saying so", onlineAccess("none", "", "manage", "manage"),
			"GET", "/Immunization", nil, 403, "has not switched on online access to Immunization entries"},
		{"record none still shows medication through prescriptions", onlineAccess("none", "", "view", "manage"),
			"GET", "/MedicationRequest/" + pl, nil, 200, ""},
		{"appointments none", onlineAccess("full", "", "manage", "none"),
			"GET", "/Appointment", nil, 403, "appointments access is none"},
		{"appointments view cannot book", onlineAccess("full", "", "manage", "view"),
			"POST", "/Appointment", nil, 403, "book or cancel appointments"},
		{"prescriptions view cannot order", onlineAccess("full", "", "view", "manage"),
			"POST", "/Task", nil, 403, "order repeat prescriptions"},
		{"prospective access hides older entries from reads", onlineAccess("full", "2024-01-01", "manage", "manage"),
			"GET", "/Immunization/" + old, nil, 403, "before 1 January 2024"},
		{"prospective access shows newer entries", onlineAccess("full", "2024-01-01", "manage", "manage"),
			"GET", "/Immunization/" + recent, nil, 200, ""},
		{"patients cannot change their own levels", onlineAccess("full", "", "manage", "manage"),
			"PUT", "/Patient/" + w.me, p, 403, "kept by your GP practice"},
	}
	d3 := w.base.Add(72 * time.Hour)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.access != nil {
				w.setAccess(t, w.me, tt.access)
			}
			body := tt.body
			switch tt.path {
			case "/Appointment":
				body = w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree)
			case "/Task":
				body = repeatTask(w.me, pl)
			}
			if tt.method == "GET" {
				body = nil
			}
			tok := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
			r := ts.mustStatus(ts.do(tt.method, tt.path, body, tok), tt.status)
			if tt.status >= 400 && !strings.Contains(r.issue(t)["diagnostics"].(string), tt.says) {
				t.Errorf("diagnostics %s do not say %q", r.Body, tt.says)
			}
		})
	}
	// Prospective access confines searches before counting.
	w.setAccess(t, w.me, onlineAccess("summary", "2024-01-01", "none", "none"))
	tok := bearer(ts.patientToken(w.meNHS, "P9", ""))
	if ids := bundleIDs(t, ts.mustStatus(ts.do("GET", "/Immunization?_total=accurate", nil, tok), 200)); len(ids) != 1 || ids[0] != recent {
		t.Errorf("search shows %v, want only %s", ids, recent)
	}
}

func TestRedactedItemsAreHiddenFromPatientsOnEveryPath(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	when := time.Date(2024, 10, 1, 10, 0, 0, 0, time.UTC)
	shown := ts.create("Immunization", immunization(w.me, when))
	labels := [][2]string{{online.ConfidentialitySystem, "R"}, {online.ConfidentialitySystem, "V"}, {online.SecurityLabelSystem, online.RedactedOnlineCode}}
	var hidden []string
	for _, l := range labels {
		hidden = append(hidden, ts.create("Immunization", immunization(w.me, when, l[0], l[1])))
	}
	// Redacted after the fact: the earlier, unlabelled version must not leak through history either.
	later := ts.create("Immunization", immunization(w.me, when))
	relabel := immunization(w.me, when, online.SecurityLabelSystem, online.RedactedOnlineCode)
	relabel["id"] = later
	ts.mustStatus(ts.do("PUT", "/Immunization/"+later, relabel, nil), 200)
	hidden = append(hidden, later)

	tok := bearer(ts.patientToken(w.meNHS, "P9", ""))
	leaks := func(t *testing.T, body []byte) {
		t.Helper()
		for _, id := range hidden {
			if strings.Contains(string(body), id) {
				t.Errorf("redacted %s shown: %s", id, body)
			}
		}
	}
	withheldNote := func(t *testing.T, r *response, want bool) {
		t.Helper()
		got := strings.Contains(string(r.Body), `"code":"`+online.ConfidentialItemsCode+`"`)
		if got != want {
			t.Errorf("confidential-items note present=%v, want %v: %s", got, want, r.Body)
		}
	}
	searches := []string{
		"/Immunization", "/Immunization?_total=accurate", "/Immunization?_summary=count",
		"/Patient?_revinclude=Immunization:patient", "/Immunization?patient=Patient/" + w.me + "&_count=1",
	}
	for _, q := range searches {
		t.Run("search "+q, func(t *testing.T) {
			r := ts.mustStatus(ts.do("GET", q, nil, tok), 200)
			leaks(t, r.Body)
			withheldNote(t, r, true)
			if strings.Contains(q, "_total") || strings.Contains(q, "_summary=count") {
				if total := r.JSON(t)["total"].(float64); total != 1 {
					t.Errorf("total %v counts redacted entries, want 1", total)
				}
			}
		})
	}
	for _, path := range []string{"/Immunization/" + hidden[0], "/Immunization/" + later, "/Immunization/" + later + "/_history/1",
		"/Immunization/" + later + "/_history"} {
		t.Run("read "+path, func(t *testing.T) {
			r := ts.mustStatus(ts.do("GET", path, nil, tok), 404)
			if r.issue(t)["code"] != "not-found" {
				t.Errorf("a redacted entry must read as not found: %s", r.Body)
			}
		})
	}
	for _, path := range []string{"/Immunization/_history", "/_history"} {
		t.Run("history "+path, func(t *testing.T) {
			leaks(t, ts.mustStatus(ts.do("GET", path, nil, tok), 200).Body)
		})
	}
	// The searchset says something was withheld, not what: no note when nothing was.
	withheldNote(t, ts.mustStatus(ts.do("GET", "/Immunization?_id="+shown, nil, tok), 200), false)
	withheldNote(t, ts.mustStatus(ts.do("GET", "/AllergyIntolerance", nil, tok), 200), false)
	// The practice sees everything.
	gp := ts.mustStatus(ts.do("GET", "/Immunization?patient=Patient/"+w.me, nil, nil), 200)
	if n := len(bundleIDs(t, gp)); n != 5 {
		t.Errorf("GP system sees %d immunisations, want 5", n)
	}
	withheldNote(t, gp, false)
}

// grant is a practice-managed proxy grant: proxyNHS may act for patientID from start to end with the
// services in access.
func grant(patientID, proxyNHS string, start, end time.Time, access obj) obj {
	return obj{"resourceType": "RelatedPerson", "active": true, "patient": ref("Patient", patientID),
		"identifier":   arr{obj{"system": fhir.NHSNumberSystem, "value": proxyNHS}},
		"relationship": arr{obj{"coding": arr{coding("http://terminology.hl7.org/CodeSystem/v3-RoleCode", "PRN", "parent")}}},
		"name":         arr{obj{"family": "Carer", "given": arr{"Pat"}}},
		"period":       obj{"start": rfc(start), "end": rfc(end)},
		"extension":    arr{access}}
}

func TestProxyGrants(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	carer, lapsed, early := nhsNumber(t, 3), nhsNumber(t, 4), nhsNumber(t, 5)
	now := time.Now()
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("none", "", "view", "manage")))
	ts.create("RelatedPerson", grant(w.me, lapsed, now.AddDate(-2, 0, 0), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), onlineAccess("full", "", "manage", "manage")))
	ts.create("RelatedPerson", grant(w.me, early, now.AddDate(0, 1, 0), now.AddDate(1, 0, 0), onlineAccess("full", "", "manage", "manage")))
	imm := ts.create("Immunization", immunization(w.me, now.AddDate(0, -1, 0)))
	d3 := w.base.Add(72 * time.Hour)

	tok := func(nhs, level string) header { return bearer(ts.patientToken(nhs, level, w.meNHS, "patient/*.cruds")) }
	tests := []struct {
		name   string
		tok    header
		method string
		path   string
		body   any
		status int
		says   string
	}{
		{"in period and service: book for the patient", tok(carer, "P9"), "POST", "/Appointment",
			w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree), 201, ""},
		{"in period: list the patient's appointments", tok(carer, "P9"), "GET", "/Appointment", nil, 200, ""},
		{"outside the granted services", tok(carer, "P9"), "GET", "/Immunization/" + imm, nil, 403, "your proxy access does not include"},
		{"view only: no repeat orders", tok(carer, "P9"), "POST", "/Task", repeatTask(w.me, "x"), 403, "your proxy access for this patient does not allow"},
		{"grants are the patient's business", tok(carer, "P9"), "GET", "/RelatedPerson", nil, 403, "shown to the patient only"},
		{"after the period", tok(lapsed, "P9"), "GET", "/Appointment", nil, 403, "ended on 1 March 2024"},
		{"before the period", tok(early, "P9"), "GET", "/Appointment", nil, 403, "starts on"},
		{"no grant at all", tok(w.otherNHS, "P9"), "GET", "/Appointment", nil, 403, "no proxy access for this patient"},
		{"the proxy must be P9", tok(carer, "P5"), "GET", "/Appointment", nil, 403, "P9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do(tt.method, tt.path, tt.body, tt.tok), tt.status)
			if tt.status >= 400 && !strings.Contains(r.issue(t)["diagnostics"].(string), tt.says) {
				t.Errorf("diagnostics %s do not say %q", r.Body, tt.says)
			}
		})
	}
	// The patient sees who may act for them; a proxy cannot write grants.
	mine := bearer(ts.patientToken(w.meNHS, "P9", ""))
	if n := len(bundleIDs(t, ts.mustStatus(ts.do("GET", "/RelatedPerson", nil, mine), 200))); n != 3 {
		t.Errorf("patient sees %d grants, want 3", n)
	}
}

func TestMeExplainsWhatIsAvailableAndWhy(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	carer := nhsNumber(t, 6)
	now := time.Now()
	w.setAccess(t, w.other, onlineAccess("none", "", "manage", "manage"))
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(-2, 0, 0), time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC), onlineAccess("full", "", "manage", "manage")))
	ts.create("RelatedPerson", grant(w.other, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("full", "", "view", "none")))
	tests := []struct {
		name string
		tok  header
		says []string
	}{
		{"linked, defaults", bearer(ts.patientToken(w.meNHS, "P9", "")), []string{`"valueCode":"self"`, "Patient/" + w.me, `"valueCode":"summary"`,
			`{"name":"shows","valueCode":"AllergyIntolerance"}`, `{"name":"shows","valueCode":"Immunization"}`,
			`{"name":"type","valueCode":"Condition"},{"name":"needs","valueCode":"detailed"},{"name":"reason","valueString":"the practice has switched on summary record access; Condition entries need detailed`,
			`{"name":"type","valueCode":"DocumentReference"},{"name":"needs","valueCode":"full"}`}},
		{"proofing level", bearer(ts.patientToken(w.meNHS, "P5", "")), []string{"needs level P9", `"valueBoolean":false`}},
		{"not switched on", bearer(ts.patientToken(w.otherNHS, "P9", "")), []string{"the practice has not switched on online access to the GP record"}},
		{"not linked, and proxy grants", bearer(ts.patientToken(carer, "P9", "")), []string{
			"no GP record at this service is linked", "ended on 1 March 2024", "Patient/" + w.other,
			"your proxy access for this patient does not include appointments"}},
		{"a GP system", nil, []string{`"valueCode":"system"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.do("GET", "/Patient/$me", nil, tt.tok), 200)
			for _, s := range tt.says {
				if !strings.Contains(string(r.Body), s) {
					t.Errorf("$me does not say %q: %s", s, r.Body)
				}
			}
		})
	}
}
