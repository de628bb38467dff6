package audit

import (
	"bytes"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
)

// The hand-written encoder gives encoding/json's bytes (fhir.MarshalNoEscape) for events of every
// shape Event builds, strings that need escaping included: the chain's hashes are over these bytes, and
// records written before the encoder changed must read the same.
func TestEventJSONIsEncodingJSONs(t *testing.T) {
	odd := "a\"b\\c\n\t\x01<&>é\u2028\u2029\xff\xfe end"
	variants := map[string]func(*Input){
		"a system's search": func(*Input) {},
		"a patient's read": func(in *Input) {
			in.Interaction, in.Query, in.Patients = "read", "", []string{"p1"}
			in.User = &User{Kind: "patient", Subject: "nhs-sub", NHSNumber: "9000000009", PatientID: "p1", JTI: "j", ClientID: "app"}
		},
		"no identity": func(in *Input) {
			in.Interaction, in.Status, in.User, in.Patients, in.Entities, in.Query = "delete", 401, nil, nil, nil, ""
			in.Decision = "deny-token"
		},
		"a proxy by NHS number": func(in *Input) {
			in.User = &User{Kind: "patient", Subject: "s", NHSNumber: "9000000017", ProxyFor: "9000000009", ClientID: "app", ClientName: "App"}
		},
		"a resolved proxy": func(in *Input) {
			in.User = &User{Kind: "patient", Subject: "s", NHSNumber: "9000000017", ProxyFor: "9000000009", PatientID: "p9", ClientID: "app"}
			in.ClientAddress, in.RequestID, in.Withheld = "", "", true
		},
		"an operation, empty query": func(in *Input) {
			in.User = &User{Kind: "system", Issuer: "https://idp", Subject: "sub"}
			in.HasQuery, in.Query, in.Operation = true, "", "$export"
		},
		"strings to escape": func(in *Input) {
			// One character to escape alone in some, all of them in others.
			in.RequestID, in.ClientAddress, in.Site = `q"uote`, `back\slash`, odd
			in.User = &User{Kind: "system", Issuer: odd, Subject: odd, JTI: odd, ClientID: odd, ClientName: odd}
			in.Query = odd
		},
		"many entities": func(in *Input) {
			for i := range 40 {
				in.Entities = append(in.Entities, Entity{Type: "Observation", ID: string(rune('a' + i%26)), Version: int64(i), PatientIDs: []string{"p1", "p2", "p3"}})
			}
		},
	}
	for name, edit := range variants {
		in := auditFixture()
		edit(&in)
		got := Event(in)
		want := fhir.MarshalNoEscape(eventOf(in))
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}
