package fhir

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse feeds arbitrary bodies to the validator: every input is either a resource or a *Error (with
// issues to answer), never a panic; and what it accepts can be indexed and subset.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		`{"resourceType":"Patient","name":[{"family":"Smith"}],"birthDate":"1970-01-01"}`,
		`{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}]}`,
		`{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/p"},"occurrenceDateTime":"2020"}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Patient","unknown":1}`, `{"resourceType":"Patient","gender":"nope"}`,
		`{"resourceType":"Patient","_birthDate":{"extension":[{"url":"x","valueString":"y"}]}}`,
		`{"resourceType":"$where","$gt":""}`, `{"resourceType":"Patient","name":[{"family":"'; DROP TABLE resources;--"}]}`,
		`[]`, `null`, `"x"`, `{`, `{"resourceType":{}}`, "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := Parse(body)
		if err != nil {
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Parse(%q) failed with %T %v, not a *fhir.Error the API can answer", body, err, err)
			}
			if len(fe.Issues) == 0 {
				t.Fatalf("Parse(%q): an error with no issue to tell the client", body)
			}
			return
		}
		out, err := r.Finalize("fuzz", 1, time.Unix(1700000000, 0))
		if err != nil {
			t.Fatalf("Finalize of an accepted resource failed: %v", err)
		}
		if _, err := Parse(out); err != nil {
			t.Fatalf("what Finalize stored of an accepted resource does not parse again: %v\n%s", err, out)
		}
		_ = Extract(r, "http://example.org/fhir")
		for _, mode := range []SubsetMode{SummaryTrue, SummaryText, SummaryData} {
			if _, err := Subset(out, mode, nil); err != nil {
				t.Fatalf("Subset of an accepted resource failed: %v", err)
			}
		}
	})
}

// FuzzParseDateRange: search date values either parse to an ordered range or fail with an error.
func FuzzParseDateRange(f *testing.F) {
	for _, s := range []string{"2020", "2020-02", "2020-02-29", "2021-02-29", "2020-01-01T10:00:00Z",
		"2020-01-01T10:00:00.123+01:00", "foo", "", "9999-12-31T23:59:59Z", "0000", "2020-13", "2020-01-01T25:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		low, high, err := ParseDateRange(s)
		if err == nil && low > high {
			t.Fatalf("ParseDateRange(%q) = [%d, %d]: low after high", s, low, high)
		}
	})
}
