package auth

import (
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
)

func mustCaller(t *testing.T, c Claims, clientODS map[string][]string) *Caller {
	t.Helper()
	caller, err := NewCaller(c, clientODS)
	if err != nil {
		t.Fatalf("NewCaller: %v", err)
	}
	return caller
}

func TestPolicyTable(t *testing.T) {
	p9 := func() *Caller {
		c := mustCaller(t, Claims{Subject: "u1", NHSNumber: "9000000009", IdentityProofingLevel: "P9",
			Scope: stringList{"openid", "patient/*.rs"}}, nil)
		c.PatientIDs, c.Resolved = []string{"pat-1"}, true
		return c
	}
	p9Imm := func() *Caller {
		c := mustCaller(t, Claims{Subject: "u1", NHSNumber: "9000000009", VoT: "P9.Cp.Cd",
			Scope: stringList{"patient/Immunization.read"}}, nil)
		c.PatientIDs, c.Resolved = []string{"pat-1"}, true
		return c
	}
	p9NoRecord := func() *Caller {
		c := p9()
		c.PatientIDs = nil
		return c
	}
	p5 := mustCaller(t, Claims{Subject: "u2", NHSNumber: "9000000009", IdentityProofingLevel: "P5", Scope: stringList{"patient/*.rs"}}, nil)
	p0 := mustCaller(t, Claims{Subject: "u3", IdentityProofingLevel: "P0", Scope: stringList{"patient/*.rs"}}, nil)
	proxy := func() *Caller {
		c := p9()
		c.ProxyFor = "9000000017"
		return c
	}
	gp := mustCaller(t, Claims{Subject: "gp-a", ClientID: "gp-a", Scope: stringList{"system/*.cruds"}},
		map[string][]string{"gp-a": {"A81001"}})
	gpClaim := mustCaller(t, Claims{Subject: "gp-b", ClientID: "gp-b", Scope: stringList{"system/Patient.rs"},
		ODSCodes: stringList{"B82005"}}, nil)
	gpUnbound := mustCaller(t, Claims{Subject: "gp-x", ClientID: "gp-x", Scope: stringList{"system/*.rs"}}, nil)
	auditor := mustCaller(t, Claims{Subject: "aud", Scope: stringList{"user/AuditEvent.rs"}}, nil)
	commissioner := mustCaller(t, Claims{Subject: "com", Scope: stringList{DashboardScope}}, nil)

	own := Facts{Type: "Immunization", PatientIDs: []string{"pat-1"}, PracticeODS: []string{"A81001"}}
	other := Facts{Type: "Immunization", PatientIDs: []string{"pat-2"}, PracticeODS: []string{"B82005"}}
	ownPatient := Facts{Type: "Patient", PatientIDs: []string{"pat-1"}, PracticeODS: []string{"A81001"}}
	org := Facts{Type: "Organization"}
	ownGroup := Facts{Type: "Group", Organizations: []string{"o1"}, PracticeODS: []string{"A81001"}}
	otherGroup := Facts{Type: "Group", Organizations: []string{"o2"}, PracticeODS: []string{"B82005"}}

	tests := []struct {
		name   string
		caller *Caller
		in     Interaction
		facts  Facts
		want   Outcome
		// missing, when set, must appear in the refusal.
		missing string
	}{
		{"P9 patient reads own immunization", p9(), Read, own, Allowed, ""},
		{"P9 patient reads own Patient", p9(), Read, ownPatient, Allowed, ""},
		{"P9 patient cannot read another patient's immunization", p9(), Read, other, DenyCompartment, ""},
		{"P9 patient searches immunizations (compartment applied by the query)", p9(), Search, Facts{Type: "Immunization"}, Allowed, ""},
		{"P9 patient cannot write with read scopes", p9(), Create, own, DenyScope, "patient/Immunization.c"},
		{"P9 patient cannot delete", p9(), Delete, own, DenyScope, "patient/Immunization.d"},
		{"v1 .read alias grants read", p9Imm(), Read, own, Allowed, ""},
		{"v1 .read alias grants search", p9Imm(), Search, own, Allowed, ""},
		{"scope for one type does not reach another", p9Imm(), Read, ownPatient, DenyScope, "patient/Patient.r"},
		{"P9 with no matching Patient gets the no-record answer", p9NoRecord(), Read, own, DenyNoRecord, ""},
		{"P5 patient needs P9 for record data", p5, Read, own, DenyLevel, "P9"},
		{"P5 patient may read practice details", p5, Read, org, Allowed, ""},
		{"P0 patient needs P9 for record data", p0, Search, Facts{Type: "MedicationRequest"}, DenyLevel, "P9"},
		{"P0 patient may search slots", p0, Search, Facts{Type: "Slot"}, Allowed, ""},
		{"proxy without a grant is refused", proxy(), Read, own, DenyProxy, "proxy grant"},
		{"patient reads an AuditEvent about their record", p9(), Read, Facts{Type: "AuditEvent", PatientIDs: []string{"pat-1"}}, Allowed, ""},
		{"patient cannot read an AuditEvent about another patient", p9(), Read, Facts{Type: "AuditEvent", PatientIDs: []string{"pat-2"}}, DenyCompartment, ""},
		{"patient lists their trail (confined by the query)", p9(), Search, Facts{Type: "AuditEvent"}, Allowed, ""},
		{"patient cannot verify the audit chain", p9(), Interaction("operation"), Facts{Type: "AuditEvent"}, DenyRole, ""},
		{"P5 patient needs P9 to see who accessed the record", p5, Search, Facts{Type: "AuditEvent"}, DenyLevel, "P9"},
		{"GP system reads a patient at its practice", gp, Read, own, Allowed, ""},
		{"GP system cannot read a patient at another practice", gp, Read, other, DenyCompartment, ""},
		{"GP system writes at its practice", gp, Update, own, Allowed, ""},
		{"GP system cannot create for another practice", gp, Create, other, DenyCompartment, ""},
		{"GP system reads organizations", gp, Read, org, Allowed, ""},
		{"GP system bound by the ods_codes claim", gpClaim, Read, Facts{Type: "Patient", PatientIDs: []string{"pat-2"}, PracticeODS: []string{"B82005"}}, Allowed, ""},
		{"GP system scope is per type", gpClaim, Read, other, DenyScope, "system/Immunization.r"},
		{"GP system scope is per interaction", gpClaim, Update, Facts{Type: "Patient", PracticeODS: []string{"B82005"}}, DenyScope, "system/Patient.u"},
		{"unbound GP system sees no patients", gpUnbound, Read, own, DenyUnbound, "practice"},
		{"unbound GP system still reads organizations", gpUnbound, Read, org, Allowed, ""},
		{"GP system cannot read audit events", gp, Read, Facts{Type: "AuditEvent"}, DenyRole, ""},
		{"auditor reads audit events", auditor, Search, Facts{Type: "AuditEvent"}, Allowed, ""},
		{"auditor sees no clinical data", auditor, Read, own, DenyScope, ""},
		{"commissioner gets no FHIR resources", commissioner, Search, Facts{Type: "Patient"}, DenyRole, ""},
		{"unknown types are refused to everyone", gp, Read, Facts{Type: "Claim"}, DenyUnknownClass, ""},
		{"GP system reads a Group its practice manages", gp, Read, ownGroup, Allowed, ""},
		{"GP system creates a Group its practice manages", gp, Create, ownGroup, Allowed, ""},
		{"GP system updates a Group its practice manages", gp, Update, ownGroup, Allowed, ""},
		{"GP system cannot read another practice's Group", gp, Read, otherGroup, DenyCompartment, "managingEntity"},
		{"GP system cannot create a Group for another practice", gp, Create, otherGroup, DenyCompartment, "managingEntity"},
		{"GP system cannot keep a Group no practice manages", gp, Create, Facts{Type: "Group"}, DenyCompartment, "managingEntity"},
		{"unbound GP system uses no Groups", gpUnbound, Search, Facts{Type: "Group"}, DenyUnbound, "practice"},
		{"P9 patient cannot read a Group", p9(), Read, ownGroup, DenyRole, "practice"},
		{"P9 patient cannot search Groups", p9(), Search, Facts{Type: "Group"}, DenyRole, "practice"},
		{"P5 patient is refused Groups for what they are, not the level", p5, Read, ownGroup, DenyRole, "practice"},
		{"proxy cannot read a Group", proxy(), Read, ownGroup, DenyRole, "practice"},
		{"auditor cannot read a Group", mustCaller(t, Claims{Subject: "aud", Scope: stringList{"user/*.rs"}}, nil), Read, ownGroup, DenyRole, "AuditEvents only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Authorize(tt.caller, tt.in, tt.facts.Type)
			if d.Allow() && tt.in != Search {
				d = CanAccess(tt.caller, tt.in, tt.facts)
			}
			if d.Outcome != tt.want {
				t.Fatalf("decision %s (%s), want %s", d.Outcome, d.Reason, tt.want)
			}
			if !d.Allow() && d.Reason == "" {
				t.Errorf("a refusal must explain itself")
			}
			if tt.missing != "" && !strings.Contains(d.Missing+" "+d.Reason, tt.missing) {
				t.Errorf("refusal %q / %q does not name %q", d.Missing, d.Reason, tt.missing)
			}
		})
	}
}

func TestNoRecordAnswerSaysSo(t *testing.T) {
	c := mustCaller(t, Claims{NHSNumber: "9000000009", IdentityProofingLevel: "P9", Scope: stringList{"patient/*.rs"}}, nil)
	c.Resolved = true
	d := Authorize(c, Read, "Patient")
	if !strings.Contains(d.Reason, "no GP record at this service is linked to this NHS number") {
		t.Errorf("reason %q", d.Reason)
	}
}

func TestSystemHistoryNeedsSomeListingScope(t *testing.T) {
	gp := mustCaller(t, Claims{ClientID: "gp", Scope: stringList{"system/Patient.r"}, ODSCodes: stringList{"A81001"}}, nil)
	if d := Authorize(gp, HistorySystem, ""); d.Outcome != DenyScope {
		t.Errorf("read-only scope allowed system history: %v", d)
	}
	gp.Scopes = append(gp.Scopes, Scope{Context: "system", Type: "Patient", Perms: "s"})
	if d := Authorize(gp, HistorySystem, ""); !d.Allow() {
		t.Errorf("system history refused: %v", d)
	}
}

func TestCallerKinds(t *testing.T) {
	tests := []struct {
		name    string
		claims  Claims
		odsConf map[string][]string
		want    Kind
		wantODS string
		wantErr bool
	}{
		{"NHS login claims make a patient", Claims{NHSNumber: "9000000009", IdentityProofingLevel: "P9", Scope: stringList{"patient/*.rs"}}, nil, KindPatient, "", false},
		{"vot alone gives the level", Claims{VoT: "P5.Cp.Cd", Scope: stringList{"patient/*.rs"}}, nil, KindPatient, "", false},
		{"client credentials with system scopes make a GP system", Claims{ClientID: "c", Scope: stringList{"system/*.rs"}, ODSCodes: stringList{"A1", "B2"}}, nil, KindSystem, "A1,B2", false},
		{"configuration binding beats the claim", Claims{ClientID: "c", Scope: stringList{"system/*.rs"}, ODSCodes: stringList{"A1"}}, map[string][]string{"c": {"Z9"}}, KindSystem, "Z9", false},
		{"azp stands in for client_id", Claims{AuthorizedParty: "c", Scp: stringList{"system/Patient.read"}}, map[string][]string{"c": {"Z9"}}, KindSystem, "Z9", false},
		{"AuditEvent scope makes an auditor", Claims{Scope: stringList{"user/AuditEvent.rs"}}, nil, KindAuditor, "", false},
		{"a system AuditEvent scope with a client makes an auditor, not a GP system", Claims{ClientID: "audit-tool", Scope: stringList{"system/AuditEvent.rs"}}, nil, KindAuditor, "", false},
		{"dashboard scope makes a commissioner", Claims{Scope: stringList{DashboardScope}}, nil, KindCommissioner, "", false},
		{"no usable scope is refused", Claims{Scope: stringList{"openid", "profile", "patient/Observation.rs?category=x"}}, nil, 0, "", true},
		{"system scopes without a client are refused", Claims{Scope: stringList{"system/*.rs"}}, nil, 0, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewCaller(tt.claims, tt.odsConf)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("accepted as %v", c.Kind)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Kind != tt.want || strings.Join(c.ODS, ",") != tt.wantODS {
				t.Errorf("kind %v ods %v, want %v %s", c.Kind, c.ODS, tt.want, tt.wantODS)
			}
		})
	}
}

func TestParseScope(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"patient/Immunization.rs", "patient/Immunization.rs", true},
		{"system/*.cruds", "system/*.cruds", true},
		{"user/AuditEvent.rs", "user/AuditEvent.rs", true},
		{"patient/Patient.read", "patient/Patient.rs", true},
		{"system/Patient.write", "system/Patient.cud", true},
		{"patient/*.*", "patient/*.cruds", true},
		{"patient/Patient.sr", "", false},
		{"patient/Patient.rr", "", false},
		{"patient/Patient.x", "", false},
		{"openid", "", false},
		{"admin/Patient.rs", "", false},
		{"patient/Observation.rs?category=laboratory", "", false},
	}
	for _, tt := range tests {
		s, ok := ParseScope(tt.in)
		if ok != tt.ok || ok && s.String() != tt.want {
			t.Errorf("ParseScope(%q) = %v %v, want %q %v", tt.in, s, ok, tt.want, tt.ok)
		}
	}
}

func TestDashboardIsForCommissionersOnly(t *testing.T) {
	tests := []struct {
		name   string
		claims Claims
		allow  bool
		says   string
	}{
		{"a commissioner", Claims{Subject: "c1", Scope: stringList{"openid", DashboardScope}}, true, ""},
		{"a patient, even with the scope", Claims{Subject: "u1", NHSNumber: "9000000009", IdentityProofingLevel: "P9",
			Scope: stringList{"patient/*.rs", DashboardScope}}, false, "own GP record"},
		{"a GP system", Claims{Subject: "gp", ClientID: "gp-a1", Scope: stringList{"system/*.rs"}}, false, "client gp-a1"},
		{"an auditor", Claims{Subject: "a", ClientID: "tool", Scope: stringList{"user/AuditEvent.rs"}}, false, "AuditEvents only"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := AuthorizeDashboard(mustCaller(t, tc.claims, nil))
			if d.Allow() != tc.allow {
				t.Fatalf("allow = %v: %+v", d.Allow(), d)
			}
			if !tc.allow && (d.Outcome != DenyRole || d.Missing != DashboardScope || !strings.Contains(d.Reason, tc.says) ||
				!strings.Contains(d.Reason, DashboardScope)) {
				t.Errorf("refusal %+v should say %q and name the scope", d, tc.says)
			}
		})
	}
}

func TestGroupsAreConfinedByTheirManagingPractice(t *testing.T) {
	gp := mustCaller(t, Claims{Subject: "gp-a", ClientID: "gp-a", Scope: stringList{"system/*.cruds"}},
		map[string][]string{"gp-a": {"A81001"}})
	r := gp.Restrict("Group")
	if r.Nothing || r.PracticeParam != "managing-entity" || len(r.Practices) != 1 || r.Practices[0] != "A81001" || r.PatientParam != "" {
		t.Errorf("GP system's Group restriction %+v, want managing-entity confined to A81001", r)
	}
	p9 := mustCaller(t, Claims{Subject: "u1", NHSNumber: "9000000009", IdentityProofingLevel: "P9", Scope: stringList{"patient/*.rs"}}, nil)
	p9.PatientIDs, p9.Resolved = []string{"pat-1"}, true
	if r := p9.Restrict("Group"); !r.Nothing {
		t.Errorf("a patient's Group restriction %+v, want Nothing", r)
	}
	f := FactsOf("Group", "g1", []fhir.IndexEntry{{Param: "managing-entity", Value: "Organization/o1"},
		{Param: "member", Value: "Patient/pat-1"}, {Param: "managing-entity", Value: "Practitioner/d1"}})
	if len(f.Organizations) != 1 || f.Organizations[0] != "o1" || len(f.PatientIDs) != 0 {
		t.Errorf("FactsOf a Group: %+v, want the managing Organization o1 only", f)
	}
}
