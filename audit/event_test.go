package audit

import (
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

func auditFixture() Input {
	return Input{
		ID: "ae1", Recorded: time.Date(2025, 3, 1, 9, 30, 0, 123e6, time.UTC),
		Interaction: "search-type", Status: 200, RequestID: "req-1",
		User: &User{Kind: "system", Issuer: "https://idp.example", Subject: "gp-a1", JTI: "jti-1",
			ClientID: "gp-a1", ClientName: "Practice System"},
		ClientAddress: "127.0.0.1", Site: "https://gp.example/fhir", Instance: "gpfhir-abc",
		Patients: []string{"p2", "p1", "p2"},
		Entities: []Entity{
			{Type: "Immunization", ID: "i1", Version: 3, PatientIDs: []string{"p1"}},
			{Type: "Immunization", ID: "i2", Version: 1, PatientIDs: []string{"p2"}},
		},
		Query: "patient=p1,p2&status=completed",
	}
}

func indexOf(t *testing.T, body []byte) map[string][]fhir.IndexEntry {
	t.Helper()
	entries, err := fhir.ExtractBody(body, "https://gp.example/fhir")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]fhir.IndexEntry{}
	for _, e := range entries {
		m[e.Param] = append(m[e.Param], e)
	}
	return m
}

func TestAuditEventIsValidR4AndIndexedForAuditorQuestions(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(*Input)
		wantAction  string
		wantOutcome string
		wantDesc    string
		wantPatient []string
		wantAgents  int
	}{
		{"a search with patients and resources", func(*Input) {}, "E", "0", "200 OK", []string{"Patient/p1", "Patient/p2"}, 3},
		{"a read by a patient names them as the user", func(in *Input) {
			in.Interaction, in.Query, in.Patients = "read", "", []string{"p1"}
			in.User = &User{Kind: "patient", Subject: "nhs-sub", NHSNumber: "9000000009", PatientID: "p1", JTI: "j", ClientID: "app"}
		}, "R", "0", "200 OK", []string{"Patient/p1"}, 3},
		{"a 401 without identity", func(in *Input) {
			in.Interaction, in.Status, in.User, in.Patients, in.Entities, in.Query = "delete", 401, nil, nil, nil, ""
			in.Decision = "deny-token"
		}, "D", "4", "401 Unauthorized (deny-token)", nil, 2},
		{"a server failure", func(in *Input) { in.Interaction, in.Status = "create", 500 }, "C", "8", "500 Internal Server Error", []string{"Patient/p1", "Patient/p2"}, 3},
		{"an operation", func(in *Input) {
			in.Interaction, in.Operation, in.Query, in.Patients, in.Entities = "operation", "$verify", "", nil, nil
		}, "E", "0", "$verify: 200 OK", nil, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := auditFixture()
			tc.edit(&in)
			body := Event(in)
			if _, err := fhir.Parse(body); err != nil {
				t.Fatalf("not valid R4: %v\n%s", err, body)
			}
			var ev map[string]any
			if err := json.Unmarshal(body, &ev); err != nil {
				t.Fatal(err)
			}
			if ev["action"] != tc.wantAction || ev["outcome"] != tc.wantOutcome || ev["outcomeDesc"] != tc.wantDesc {
				t.Errorf("action %v outcome %v desc %v", ev["action"], ev["outcome"], ev["outcomeDesc"])
			}
			if n := len(ev["agent"].([]any)); n != tc.wantAgents {
				t.Errorf("%d agents, want %d", n, tc.wantAgents)
			}
			idx := indexOf(t, body)
			var patients []string
			for _, e := range idx["patient"] {
				patients = append(patients, e.Value)
			}
			slices.Sort(patients)
			if !slices.Equal(patients, tc.wantPatient) {
				t.Errorf("patient index %v, want %v", patients, tc.wantPatient)
			}
			if s := idx["subtype"]; len(s) != 1 || s[0].System != RestfulInteraction || s[0].Value != in.Interaction {
				t.Errorf("subtype index %v", s)
			}
			if d := idx["date"]; len(d) != 1 || d[0].Low != in.Recorded.UnixMilli() {
				t.Errorf("date index %v", d)
			}
			if s := idx["source"]; len(s) != 1 || s[0].Value != "Device/gpfhir-abc" {
				t.Errorf("source index %v", s)
			}
			if a := idx["action"]; len(a) != 1 || a[0].Value != tc.wantAction {
				t.Errorf("action index %v", a)
			}
		})
	}
}

func TestAuditEventRecordsReferencesIdentifiersAndTheQuery(t *testing.T) {
	in := auditFixture()
	body := string(Event(in))
	for _, want := range []string{
		`"reference":"Immunization/i1/_history/3"`, `"valueString":"Patient/p1"`, `"value":"req-1"`,
		`"policy":["urn:ietf:params:oauth:jti:jti-1"]`, `"value":"gp-a1"`, `"name":"Practice System"`,
		`"query":"` + base64.StdEncoding.EncodeToString([]byte(in.Query)) + `"`, `"address":"127.0.0.1"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("event lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "status=completed") {
		t.Errorf("the query must be base64, not plain: %s", body)
	}
}

func TestAuditPatientViewKeepsOwnRecordAndLeavesInternalsOut(t *testing.T) {
	body := Event(auditFixture())
	view, err := PatientView(body, []string{"p1"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fhir.Parse(view); err != nil {
		t.Fatalf("patient view is not valid R4: %v\n%s", err, view)
	}
	s := string(view)
	for _, gone := range []string{"p2", "i2", "jti", "req-1", "127.0.0.1", "gpfhir-abc", "query", "110152", "detail", "gp.example"} {
		if strings.Contains(s, gone) {
			t.Errorf("patient view shows %q:\n%s", gone, s)
		}
	}
	for _, kept := range []string{`"Patient/p1"`, `"Immunization/i1/_history/3"`, `"name":"Practice System"`, `"recorded":"2025-03-01T09:30:00.123Z"`} {
		if !strings.Contains(s, kept) {
			t.Errorf("patient view lacks %s:\n%s", kept, s)
		}
	}
	if !strings.HasPrefix(s, `{"resourceType":"AuditEvent","id":"ae1"`) {
		t.Errorf("field order lost: %.60s", s)
	}
	got, err := Patients(body)
	if err != nil || !slices.Equal(got, []string{"p1", "p2"}) {
		t.Errorf("Patients = %v, %v", got, err)
	}
}

func TestAuditPatientViewNamesAnAppRecordedByItsID(t *testing.T) {
	in := auditFixture()
	in.User.ClientName = "" // recorded before the server had a name for the client
	names := map[string]string{in.User.ClientID: "Riverside Patient App"}
	view, err := PatientView(Event(in), []string{"p1"}, names)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(view), `"name":"Riverside Patient App"`) {
		t.Errorf("the patient sees the app by its id:\n%s", view)
	}
	// A name recorded at the time stays: it is what the app was called then.
	view, err = PatientView(Event(auditFixture()), []string{"p1"}, names)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(view), `"name":"Practice System"`) {
		t.Errorf("the recorded name was replaced:\n%s", view)
	}
}
