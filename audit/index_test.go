package audit

import (
	"fmt"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// auditBases are the base URLs the equivalence is checked under: with and without a trailing slash,
// none at all, and one that is a prefix of references AuditEvent writes ("Device/<instance>").
var auditBases = []string{"https://gp.example/fhir", "https://gp.example/fhir/", "", "Device"}

func TestAuditEventIndexMatchesExtractBody(t *testing.T) {
	patient := func(u User) func(*Input) {
		return func(in *Input) { in.User = &u }
	}
	tests := []struct {
		name string
		edit func(*Input)
	}{
		{"the fixture: a system's search touching two patients", func(*Input) {}},
		{"no user", func(in *Input) { in.User = nil }},
		{"no user, no patients, no entities, no query", func(in *Input) {
			in.User, in.Patients, in.Entities, in.Query, in.Interaction, in.Status = nil, nil, nil, "", "read", 401
		}},
		{"a patient with NHS number and Patient id", patient(User{Kind: "patient", Issuer: "https://login.nhs.example",
			Subject: "sub-1", NHSNumber: "9000000009", PatientID: "p1", JTI: "j1", ClientID: "app"})},
		{"a patient whose Patient id is also an entity", func(in *Input) {
			in.Interaction, in.Query = "read", ""
			in.User = &User{Kind: "patient", NHSNumber: "9000000009", PatientID: "p1", ClientID: "app"}
			in.Patients = []string{"p1"}
			in.Entities = []Entity{{Type: "Patient", ID: "p1", Version: 4, PatientIDs: []string{"p1"}}}
		}},
		{"a patient without NHS number or Patient id", patient(User{Kind: "patient", Issuer: "https://idp.example", Subject: "s"})},
		{"a proxy with the patient's Patient id", patient(User{Kind: "patient", Subject: "proxy", NHSNumber: "9000000017",
			ProxyFor: "9000000009", PatientID: "p1", ClientID: "app"})},
		{"a proxy whose Patient id is not among the patients", patient(User{Kind: "patient", NHSNumber: "9000000017",
			ProxyFor: "9000000009", PatientID: "p9"})},
		{"a proxy without Patient id", patient(User{Kind: "patient", NHSNumber: "9000000017", ProxyFor: "9000000009"})},
		{"a proxy without Patient id and no patients", func(in *Input) {
			in.User = &User{Kind: "patient", NHSNumber: "9000000017", ProxyFor: "9000000009"}
			in.Patients, in.Entities, in.Query = nil, nil, ""
		}},
		{"a system client with a name", patient(User{Kind: "system", Issuer: "https://idp.example", Subject: "gp",
			ClientID: "gp-1", ClientName: "Practice System"})},
		{"a system client without a name", patient(User{Kind: "system", Subject: "gp", ClientID: "gp-1"})},
		{"an auditor", func(in *Input) {
			in.User = &User{Kind: "auditor", Issuer: "https://idp.example", Subject: "aud", JTI: "j", ClientID: "console"}
			in.Patients = nil
			in.Entities = []Entity{{Type: "AuditEvent", ID: "ae0", Version: 1}}
		}},
		{"entities with and without versions, with patient details", func(in *Input) {
			in.Interaction, in.Query = "update", ""
			in.Entities = []Entity{
				{Type: "Appointment", ID: "a1", Version: 2, PatientIDs: []string{"p2", "p1", "p2"}},
				{Type: "Slot", ID: "s1"},
				{Type: "Patient", ID: "p3", PatientIDs: []string{"p3"}},
				{Type: "Appointment", ID: "a1"},
			}
		}},
		{"several patients, repeated and unsorted", func(in *Input) {
			in.Patients = []string{"p9", "p1", "p5", "p1", "p3", "p5"}
		}},
		{"a search with a query", func(in *Input) { in.Query, in.HasQuery = "name=smith&_count=10", true }},
		{"a search without parameters", func(in *Input) { in.Query, in.HasQuery = "", true }},
		{"a history listing with neither query nor HasQuery", func(in *Input) {
			in.Interaction, in.Query, in.HasQuery = "history-instance", "", false
		}},
		{"an operation", func(in *Input) {
			in.Interaction, in.Operation, in.Query, in.Patients, in.Entities = "operation", "$verify", "", nil, nil
		}},
		{"status 201", func(in *Input) { in.Interaction, in.Status, in.Query = "create", 201, "" }},
		{"status 401 with a decision", func(in *Input) { in.Status, in.Decision, in.User = 401, "deny-token", nil }},
		{"status 403", func(in *Input) { in.Status, in.Decision = 403, "deny-scope" }},
		{"status 404", func(in *Input) { in.Interaction, in.Status, in.Query = "read", 404, "" }},
		{"status 500", func(in *Input) { in.Interaction, in.Status = "delete", 500 }},
		{"no request id", func(in *Input) { in.RequestID = "" }},
		{"no client address", func(in *Input) { in.ClientAddress = "" }},
		{"no interaction", func(in *Input) { in.Interaction = "" }},
		{"no instance", func(in *Input) { in.Instance = "" }},
		{"recorded in another zone, below the millisecond", func(in *Input) {
			in.Recorded = time.Date(2025, 3, 1, 23, 59, 59, 999999999, time.FixedZone("", -5*3600))
		}},
		{"recorded in year 0", func(in *Input) { in.Recorded = time.Date(0, 1, 1, 0, 0, 0, 1, time.UTC) }},
		{"recorded in year 10000: not a FHIR instant", func(in *Input) {
			in.Recorded = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		}},
		{"recorded before year 0", func(in *Input) { in.Recorded = time.Date(-3, 6, 1, 0, 0, 0, 0, time.UTC) }},
		{"the zero time", func(in *Input) { in.Recorded = time.Time{} }},
		{"references under the base are made relative", func(in *Input) {
			in.Entities = []Entity{
				{Type: "https://gp.example/fhir/Patient", ID: "p7", Version: 1},
				{Type: "https://gp.example/fhir/Slot", ID: "s1"},
				{Type: "https://elsewhere.example/fhir/Slot", ID: "s1"},
				{Type: "https:", ID: "/gp.example/fhir"},
			}
		}},
		{"ids that are not FHIR ids", func(in *Input) {
			in.Patients = []string{"", "p 1", "p/1", "P1"}
			in.Entities = []Entity{{Type: "patient", ID: "x"}, {Type: "Patient", ID: ""}, {Type: "", ID: "x"}}
			in.Instance = "a/b"
		}},
		{"text that is not UTF-8", func(in *Input) {
			in.Interaction = "re\xffad"
			in.Entities = []Entity{{Type: "https://x\xe2\x82.example/y", ID: "z\xc0"}}
		}},
	}
	for _, tc := range tests {
		for _, base := range auditBases {
			t.Run(tc.name+" under "+fmt.Sprintf("%q", base), func(t *testing.T) {
				in := auditFixture()
				tc.edit(&in)
				assertAuditIndex(t, in, base)
			})
		}
	}
}

func TestAuditEventIndexMatchesExtractBodyForRandomInputs(t *testing.T) {
	rng := rand.New(rand.NewSource(20250301))
	for i := range 500 {
		in := randomAuditInput(rng)
		base := auditBases[rng.Intn(len(auditBases))]
		if !assertAuditIndex(t, in, base) {
			t.Fatalf("input %d: %+v (user %+v)", i, in, in.User)
		}
		// What AppendAudit asks of a record's entries, and stores rely on (PatientImplied).
		if err := checkPatientEntries(EventIndex(in, base)); err != nil {
			t.Fatalf("input %d: %v: %+v (user %+v)", i, err, in, in.User)
		}
	}
}

// assertAuditIndex reports whether EventIndex gives exactly ExtractBody's entries in ExtractBody's
// order: the store keeps them as given, so the order is part of the contract.
func assertAuditIndex(t *testing.T, in Input, base string) bool {
	t.Helper()
	want, err := fhir.ExtractBody(Event(in), base)
	if err != nil {
		t.Fatal(err)
	}
	got := EventIndex(in, base)
	if slices.Equal(got, want) {
		return true
	}
	t.Errorf("EventIndex under base %q differs from ExtractBody:\n got  %s\n want %s", base, formatEntries(got), formatEntries(want))
	return false
}

func formatEntries(es []fhir.IndexEntry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n   %+v", e)
	}
	return b.String()
}

func randomAuditInput(rng *rand.Rand) Input {
	pick := func(s ...string) string { return s[rng.Intn(len(s))] }
	ids := func(n int) []string {
		var out []string
		for range rng.Intn(n + 1) {
			out = append(out, pick("p1", "p2", "p3", "p10", "", "p 1", "https://gp.example/fhir/Patient/p1"))
		}
		return out
	}
	in := Input{
		ID:            fmt.Sprintf("ae%d", rng.Intn(1000)),
		Recorded:      time.Unix(rng.Int63n(1<<35)-1<<33, rng.Int63n(1e9)).In(time.FixedZone("", (rng.Intn(29)-14)*3600)),
		Interaction:   pick("read", "vread", "search-type", "search-system", "history-instance", "create", "update", "patch", "delete", "operation", "", "weird\xff"),
		Operation:     pick("", "", "$verify"),
		Status:        []int{200, 201, 204, 400, 401, 403, 404, 409, 412, 500, 503}[rng.Intn(11)],
		Decision:      pick("", "deny-scope", "deny-token", "permit"),
		RequestID:     pick("", "req-1", "9b2c"),
		ClientAddress: pick("", "127.0.0.1", "::1"),
		Site:          pick("https://gp.example/fhir", ""),
		Instance:      pick("gpfhir-abc", "gpfhir-def", "", "Patient/p1"),
		Patients:      ids(4),
		Query:         pick("", "", "patient=p1", "name=%C3%A9"),
		HasQuery:      rng.Intn(2) == 0,
	}
	if rng.Intn(4) > 0 {
		u := &User{
			Kind:    pick("patient", "system", "auditor", "commissioner"),
			Issuer:  pick("", "https://idp.example"),
			Subject: pick("", "sub-1"),
			JTI:     pick("", "j1"),
		}
		if rng.Intn(2) == 0 {
			u.NHSNumber = "9000000009"
		}
		if rng.Intn(2) == 0 {
			u.PatientID = pick("p1", "p2", "p4", "")
		}
		if rng.Intn(3) == 0 {
			u.ProxyFor = "9000000017"
		}
		if rng.Intn(2) == 0 {
			u.ClientID, u.ClientName = "app", pick("", "The App")
		}
		in.User = u
	}
	for range rng.Intn(6) {
		e := Entity{
			Type:       pick("Patient", "Appointment", "Slot", "Immunization", "https://gp.example/fhir/Slot", "https:", "bad type"),
			ID:         pick("p1", "p2", "a1", "s1", "/gp.example/fhir", "", "x/y"),
			PatientIDs: ids(2),
		}
		if rng.Intn(2) == 0 {
			e.Version = rng.Int63n(5)
		}
		in.Entities = append(in.Entities, e)
	}
	if rng.Intn(20) == 0 {
		// Enough entities for EventIndex to de-duplicate with a map rather than a scan.
		for i := range 40 + rng.Intn(40) {
			in.Entities = append(in.Entities, Entity{Type: "Patient", ID: fmt.Sprintf("p%d", i%30), Version: int64(i % 3)})
		}
	}
	return in
}
