package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/online"
)

func TestOnlineServicesPolicy(t *testing.T) {
	patient := func(practice *online.Access) *Caller {
		return &Caller{Kind: KindPatient, NHSNumber: "9000000009", Level: "P9", Scopes: []Scope{{"patient", "*", "cruds"}},
			PatientIDs: []string{"pat-1"}, Resolved: true, PracticeAccess: practice}
	}
	proxy := func(grant online.Access) *Caller {
		c := patient(nil)
		c.ProxyFor, c.ProxyGrant, c.GrantAccess = "9000000017", "grant-1", &grant
		return c
	}
	none := &online.Access{}
	from := &online.Access{Record: online.RecordFull, RecordFrom: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	own := func(typ string) Facts { return Facts{Type: typ, PatientIDs: []string{"pat-1"}} }
	gp := &Caller{Kind: KindSystem, ClientID: "gp", ODS: []string{"A81001"}, Scopes: []Scope{{"system", "*", "cruds"}}}
	tests := []struct {
		name   string
		caller *Caller
		in     Interaction
		facts  Facts
		want   Outcome
		says   string
	}{
		{"defaults show the summary record", patient(nil), Read, own("Immunization"), Allowed, ""},
		{"record none refuses record entries", patient(none), Search, own("Immunization"), DenyAccessLevel, "has not switched on"},
		{"appointments none", patient(none), Search, own("Appointment"), DenyAccessLevel, "appointments access is none"},
		{"booking needs manage", patient(&online.Access{Appointments: online.ServiceView}), Create, own("Appointment"), DenyAccessLevel, "book or cancel"},
		{"patients do not delete appointments", patient(nil), Delete, own("Appointment"), DenyPatientWrite, "cancelled rather than deleted"},
		{"patients do not write slots", patient(nil), Update, Facts{Type: "Slot"}, DenyPatientWrite, "managed by the practice"},
		{"patients do not write their record", patient(nil), Create, own("Immunization"), DenyPatientWrite, "written by your practice"},
		{"redacted is hidden from patients", patient(nil), Read, Facts{Type: "Immunization", PatientIDs: []string{"pat-1"}, Redacted: true}, DenyRedacted, ""},
		{"redacted is shown to the practice", gp, Read, Facts{Type: "Immunization", PracticeODS: []string{"A81001"}, Redacted: true}, Allowed, ""},
		{"prospective: older entries hidden", patient(from), Read, Facts{Type: "Immunization", PatientIDs: []string{"pat-1"}, EntryDate: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)}, DenyAccessLevel, "before 1 January 2024"},
		{"prospective: newer entries shown", patient(from), Read, Facts{Type: "Immunization", PatientIDs: []string{"pat-1"}, EntryDate: time.Date(2024, 5, 1, 0, 0, 0, 0, time.UTC)}, Allowed, ""},
		{"a proxy gets no more than the grant", proxy(online.Access{Appointments: online.ServiceManage}), Read, own("Immunization"), DenyAccessLevel, "your proxy access does not include"},
		{"a proxy inside the grant", proxy(online.Access{Appointments: online.ServiceManage}), Create, own("Appointment"), Allowed, ""},
		{"a proxy without a grant in force", &Caller{Kind: KindPatient, NHSNumber: "9000000009", Level: "P9", ProxyFor: "9000000017",
			ProxyRefusal: "your proxy access for this patient ended on 1 March 2024", Scopes: []Scope{{"patient", "*", "rs"}}, Resolved: true},
			Read, own("Appointment"), DenyProxy, "ended on 1 March 2024"},
		{"proxies do not see who else acts", proxy(online.Access{Record: online.RecordFull}), Search, own("RelatedPerson"), DenyAccessLevel, "patient only"},
		{"unpublished slots are hidden from patients", patient(nil), Read, Facts{Type: "Slot", Unpublished: true}, DenyRedacted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Authorize(tt.caller, tt.in, tt.facts.Type)
			if d.Allow() {
				d = CanAccess(tt.caller, tt.in, tt.facts)
			}
			if d.Outcome != tt.want || !strings.Contains(d.Reason, tt.says) {
				t.Errorf("got %s %q, want %s saying %q", d.Outcome, d.Reason, tt.want, tt.says)
			}
		})
	}
}
