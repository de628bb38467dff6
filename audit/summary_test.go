package audit

import (
	"bytes"
	"math/rand"
	"reflect"
	"slices"
	"testing"
	"time"
)

func TestSummarizeReadsBackWhatEventWrote(t *testing.T) {
	at := time.Date(2025, 3, 4, 10, 11, 12, 345e6, time.UTC)
	tests := []struct {
		name string
		in   Input
		want Summary
	}{
		{"a patient's search that returned two entries and withheld one",
			Input{ID: "a1", Recorded: at, Interaction: "search-type", Status: 200, Withheld: true, RequestID: "r",
				User:     &User{Kind: "patient", Subject: "s", NHSNumber: "9000000009", PatientID: "p1"},
				Patients: []string{"p1"}, Site: "https://x", Instance: "i",
				Entities: []Entity{{Type: "Immunization", ID: "i1", Version: 2, PatientIDs: []string{"p1"}}, {Type: "Immunization", ID: "i2", Version: 1}},
				HasQuery: true},
			Summary{ID: "a1", Recorded: at, Interaction: "search-type", Status: 200, Withheld: true, Role: RolePatient,
				UserNHS: "9000000009", UserPatient: "p1", Patients: []string{"p1"},
				Entities: []Entity{{Type: "Immunization", ID: "i1", Version: 2, PatientIDs: []string{"p1"}}, {Type: "Immunization", ID: "i2", Version: 1}}}},
		{"a proxy refused for want of a grant, the patient named by NHS number",
			Input{ID: "a2", Recorded: at, Interaction: "search-type", Status: 403, Decision: "deny-proxy", Withheld: true,
				User: &User{Kind: "patient", Subject: "s", NHSNumber: "9000000017", ProxyFor: "9000000009"}, Site: "https://x", Instance: "i"},
			Summary{ID: "a2", Recorded: at, Interaction: "search-type", Status: 403, Decision: "deny-proxy", Role: RoleProxy,
				UserNHS: "9000000017", PatientNHS: "9000000009"}},
		{"a proxy booking for the patient acted for",
			Input{ID: "a3", Recorded: at, Interaction: "create", Status: 201,
				User:     &User{Kind: "patient", Subject: "s", NHSNumber: "9000000017", ProxyFor: "9000000009", PatientID: "p1"},
				Entities: []Entity{{Type: "Appointment", ID: "ap", Version: 1, PatientIDs: []string{"p1"}}}, Site: "https://x", Instance: "i"},
			Summary{ID: "a3", Recorded: at, Interaction: "create", Status: 201, Role: RoleProxy, UserNHS: "9000000017",
				Patients: []string{"p1"}, Entities: []Entity{{Type: "Appointment", ID: "ap", Version: 1, PatientIDs: []string{"p1"}}}}},
		{"a GP system's operation is no patient's",
			Input{ID: "a4", Recorded: at, Interaction: "operation", Operation: "$verify", Status: 200,
				User: &User{Kind: "system", Issuer: "https://idp", Subject: "gp", ClientID: "gp"}, Site: "https://x", Instance: "i"},
			Summary{ID: "a4", Recorded: at, Interaction: "operation", Operation: "$verify", Status: 200}},
		{"a request without a token",
			Input{ID: "a5", Recorded: at, Interaction: "read", Status: 401, Decision: "deny-token", Site: "https://x", Instance: "i",
				Entities: []Entity{{Type: "Patient", ID: "p9", PatientIDs: []string{"p9"}}}},
			Summary{ID: "a5", Recorded: at, Interaction: "read", Status: 401, Decision: "deny-token",
				Entities: []Entity{{Type: "Patient", ID: "p9", PatientIDs: []string{"p9"}}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := Event(tc.in)
			got, err := Summarize(body)
			if err != nil {
				t.Fatal(err)
			}
			if !summaryEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
			// The tally's shortcuts read what Summarize reads.
			if i := InteractionOf(body); i != got.Interaction {
				t.Errorf("InteractionOf = %q, Summarize read %q", i, got.Interaction)
			}
			if may := MayNameUser(body); may != (got.Role != "") {
				t.Errorf("MayNameUser = %v for a record whose role is %q", may, got.Role)
			}
		})
	}
}

// A character written escaped could spell a role code, so MayNameUser cannot rule the user out.
func TestMayNameUserAllowsForEscapes(t *testing.T) {
	in := Input{ID: "a6", Recorded: time.Now(), Interaction: "read", Status: 200, RequestID: "bell\x07",
		User: &User{Kind: "system", Issuer: "https://idp", Subject: "gp", ClientID: "gp"}}
	if body := Event(in); !bytes.Contains(body, []byte(`\u`)) || !MayNameUser(body) {
		t.Errorf("a body with an escape: MayNameUser %v: %s", MayNameUser(body), body)
	}
	if MayNameUser([]byte(`{"agent":[{"role":[{"coding":[{"code":"P\u0041T"}]}]}]}`)) == false {
		t.Error("an escaped PAT was ruled out")
	}
}

func summaryEqual(a, b Summary) bool {
	if len(a.Entities) != len(b.Entities) {
		return false
	}
	for i := range a.Entities {
		x, y := a.Entities[i], b.Entities[i]
		if x.Type != y.Type || x.ID != y.ID || x.Version != y.Version || !slices.Equal(x.PatientIDs, y.PatientIDs) {
			return false
		}
	}
	return slices.Equal(a.Patients, b.Patients) && a.Recorded.Equal(b.Recorded) &&
		a.ID == b.ID && a.Interaction == b.Interaction && a.Operation == b.Operation && a.Status == b.Status &&
		a.Decision == b.Decision && a.Withheld == b.Withheld && a.Role == b.Role && a.UserNHS == b.UserNHS &&
		a.UserPatient == b.UserPatient && a.PatientNHS == b.PatientNHS
}

func TestOutcomeDescNamesWithheldItemsOnSuccessOnly(t *testing.T) {
	if d := outcomeDesc(200, "allow", "", true); d != "200 OK ("+WithheldTag+")" {
		t.Errorf("success that withheld: %q", d)
	}
	if d := outcomeDesc(404, "deny-redacted", "", true); d != "404 Not Found (deny-redacted)" {
		t.Errorf("refusal names its decision, not the withholding: %q", d)
	}
	if d := outcomeDesc(200, "allow", "", false); d != "200 OK" {
		t.Errorf("plain success: %q", d)
	}
}

// The tally logs and passes over a record it cannot read; a body of another shape must not give it facts
// that the body does not state.
func TestSummarizeRefusesWhatIsNotAnAuditEventOfEvents(t *testing.T) {
	for name, body := range map[string]string{
		"not JSON":            `{"id":"a1","recorded":`,
		"no recorded time":    `{"id":"a1","outcomeDesc":"200 OK"}`,
		"no status":           `{"id":"a1","recorded":"2025-03-04T10:11:12Z","outcomeDesc":"OK"}`,
		"a status not a text": `{"id":"a1","recorded":"2025-03-04T10:11:12Z","outcomeDesc":200}`,
	} {
		if s, err := Summarize([]byte(body)); err == nil {
			t.Errorf("%s: read as %+v", name, s)
		}
	}
	odd := `{"id":"a1","recorded":"2025-03-04T10:11:12Z","outcomeDesc":"200 OK","agent":5,` +
		`"entity":[{"what":"Patient/p1","role":{"code":"1"}},{"what":{"reference":"Observation/o1"},"detail":{"type":"x"}},7]}`
	s, err := Summarize([]byte(odd))
	if err != nil {
		t.Fatal(err)
	}
	if s.Role != "" || len(s.Patients) != 0 || len(s.Entities) != 1 || s.Entities[0].ID != "o1" || len(s.Entities[0].PatientIDs) != 0 {
		t.Errorf("facts the body does not state: %+v", s)
	}
}

// TestSummaryOfMatchesSummarize: the Summary a record carries from NewRecord is the one Summarize reads
// from its body, for generated inputs whose strings JSON changes (invalid UTF-8) or that look like the
// parts outcomeDesc is read back by (": ", " (", a tag).
func TestSummaryOfMatchesSummarize(t *testing.T) {
	rng := rand.New(rand.NewSource(20261207))
	odd := []string{"", "x\xffy", "op: 200 OK", "deny-level) (", "withheld-confidential", "é"}
	for i := range 2000 {
		in := randomAuditInput(rng)
		if rng.Intn(3) == 0 {
			in.Decision = odd[rng.Intn(len(odd))]
			in.Operation = odd[rng.Intn(len(odd))]
			in.ID = odd[rng.Intn(len(odd))]
			in.Withheld = rng.Intn(2) == 0
			if in.User != nil {
				in.User.PatientID = odd[rng.Intn(len(odd))]
			}
			if len(in.Entities) > 0 {
				in.Entities[0].ID = odd[rng.Intn(len(odd))]
			}
		}
		if rng.Intn(10) == 0 {
			in.Recorded = time.Date(10000+rng.Intn(5), 1, 1, 0, 0, 0, 0, time.UTC) // no four-digit year
		}
		want, werr := Summarize(Event(in))
		got, gerr := summaryOf(eventOf(in))
		if (werr == nil) != (gerr == nil) || (werr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("input %d: %+v (user %+v)\n summaryOf %+v (%v)\n Summarize %+v (%v)", i, in, in.User, got, gerr, want, werr)
		}
		rec := NewRecord(in, "")
		if (rec.Summary == nil) != (werr != nil) || (rec.Summary != nil && !reflect.DeepEqual(*rec.Summary, want)) {
			t.Fatalf("input %d: NewRecord's Summary %+v, Summarize %+v (%v)", i, rec.Summary, want, werr)
		}
	}
}
