package api_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// TestProxyAccessIsAuditedWithTheProxyAsActingAgent: when a carer acts for a patient under a grant, the
// AuditEvent names the carer (by NHS number) as the acting agent, role AGNT, and the patient as an entity,
// so that the patient's own trail shows who acted for them. A refused proxy request is recorded the same
// way.
func TestProxyAccessIsAuditedWithTheProxyAsActingAgent(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	carer, stranger := nhsNumber(t, 7), nhsNumber(t, 8)
	now := time.Now()
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("none", "", "view", "manage")))

	tests := []struct {
		name   string
		proxy  string
		reqID  string
		status int
	}{
		{"a proxy acting within the grant", carer, "proxy-audit-allowed", http.StatusOK},
		{"a proxy with no grant", stranger, "proxy-audit-refused", http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := bearer(ts.patientToken(tt.proxy, "P9", w.meNHS, "patient/*.cruds"))
			tok["X-Request-ID"] = tt.reqID
			ts.mustStatus(ts.do("GET", "/Appointment", nil, tok), tt.status)

			ev := ts.auditEvent(tt.reqID)
			var acting bool
			for _, a := range list(ev["agent"]) {
				who, _ := a["who"].(map[string]any)
				id, _ := who["identifier"].(map[string]any)
				if id["system"] != fhir.NHSNumberSystem || id["value"] != tt.proxy {
					continue
				}
				for _, role := range list(a["role"]) {
					for _, c := range list(role["coding"]) {
						if c["code"] == "AGNT" {
							acting = true
						}
					}
				}
			}
			if !acting {
				t.Errorf("no agent with role AGNT naming the proxy %s: %v", tt.proxy, ev["agent"])
			}
			var patient bool
			for _, e := range list(ev["entity"]) {
				what, _ := e["what"].(map[string]any)
				if what["reference"] == "Patient/"+w.me {
					patient = true
				}
				if id, _ := what["identifier"].(map[string]any); id != nil && id["system"] == fhir.NHSNumberSystem && id["value"] == w.meNHS {
					patient = true
				}
			}
			if !patient {
				t.Errorf("the patient acted for is not an entity: %v", ev["entity"])
			}
		})
	}

	// The patient's own trail shows that someone acted for them.
	mine := bearer(ts.patientToken(w.meNHS, "P9", ""))
	trail := ts.mustStatus(ts.do("GET", "/AuditEvent?patient=Patient/"+w.me, nil, mine), http.StatusOK).JSON(t)
	var seen bool
	for _, e := range list(trail["entry"]) {
		res, _ := e["resource"].(map[string]any)
		for _, a := range list(res["agent"]) {
			if roles, ok := a["role"]; ok {
				for _, role := range list(roles) {
					for _, c := range list(role["coding"]) {
						seen = seen || c["code"] == "AGNT"
					}
				}
			}
		}
	}
	if !seen {
		t.Errorf("the patient's trail does not show the proxy acting for them")
	}
}
