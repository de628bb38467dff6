package fhir

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseRejectsWithIssues(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		kind     ErrorKind
		code     string
		expr     string // expected expression of some issue ("" = no expression)
		diagWant string // substring of that issue's diagnostics
	}{
		{"malformed JSON is Malformed/structure", `{"resourceType":"Patient",`, Malformed, IssueStructure, "", "not valid JSON"},
		{"trailing data is Malformed", `{"resourceType":"Patient"} {}`, Malformed, IssueStructure, "", "after the top-level value"},
		{"array body is Malformed", `[]`, Malformed, IssueStructure, "", "JSON object"},
		{"missing resourceType is Malformed/required", `{"id":"a"}`, Malformed, IssueRequired, "resourceType", "missing"},
		{"unknown resourceType is Malformed/not-supported", `{"resourceType":"Foo"}`, Malformed, IssueNotSupported, "resourceType", `"Foo"`},
		{"unknown element is Invalid/structure", `{"resourceType":"Patient","foo":1}`, Invalid, IssueStructure, "Patient.foo", `"foo"`},
		{"unknown nested element names its path", `{"resourceType":"Patient","identifier":[{"system":"x","value":"1","bar":2}]}`, Invalid, IssueStructure, "Patient.identifier[0].bar", "not a known element"},
		{"wrong primitive type is Invalid/value", `{"resourceType":"Patient","name":[{"family":3}]}`, Invalid, IssueValue, "Patient.name[0].family", "must be a string"},
		{"boolean as string is Invalid/value", `{"resourceType":"Patient","active":"yes"}`, Invalid, IssueValue, "Patient.active", "boolean"},
		{"bad date is Invalid/value", `{"resourceType":"Patient","birthDate":"1980-13"}`, Invalid, IssueValue, "Patient.birthDate", "date"},
		{"code outside required binding is code-invalid", `{"resourceType":"Patient","gender":"bloke"}`, Invalid, IssueCodeInvalid, "Patient.gender", `"bloke"`},
		{"missing required element is required", `{"resourceType":"Appointment","participant":[{"status":"accepted"}]}`, Invalid, IssueRequired, "Appointment.status", "required"},
		{"reference to a wrong type is invalid", `{"resourceType":"Appointment","status":"booked","participant":[{"status":"accepted","actor":{"reference":"Slot/1"}}]}`, Invalid, IssueInvalid, "Appointment.participant[0].actor", "Slot"},
		{"NHS number with a bad check digit is value", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000008"}]}`, Invalid, IssueValue, "Patient.identifier[0].value", ErrNHSNumberCheckDigit.Error()},
		{"NHS number with spaces is value", `{"resourceType":"Patient","identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"900 000 0009"}]}`, Invalid, IssueValue, "Patient.identifier[0].value", ErrNHSNumberDigits.Error()},
		{"NHS number in a logical reference is checked", `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"occurrenceDateTime":"2020","patient":{"identifier":{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"123"}}}`, Invalid, IssueValue, "Immunization.patient.identifier.value", ErrNHSNumberLength.Error()},
		{"element name in the wrong case is structure", `{"resourceType":"Patient","Gender":"male"}`, Invalid, IssueStructure, "Patient.Gender", "case-sensitive"},
		{"null element is value", `{"resourceType":"Patient","gender":null}`, Invalid, IssueValue, "Patient.gender", "found null"},
		{"empty string is value", `{"resourceType":"Patient","name":[{"family":""}]}`, Invalid, IssueValue, "Patient.name[0].family", "empty"},
		{"empty object is structure", `{"resourceType":"Patient","name":[{}]}`, Invalid, IssueStructure, "Patient.name[0]", "empty object"},
		{"empty array is structure", `{"resourceType":"Patient","name":[]}`, Invalid, IssueStructure, "Patient.name", "empty array"},
		{"bad id is value", `{"resourceType":"Patient","id":"a b"}`, Invalid, IssueValue, "Patient.id", "not a valid id"},
		{"two choice types is structure", `{"resourceType":"Immunization","status":"completed","vaccineCode":{"text":"x"},"patient":{"reference":"Patient/1"},"occurrenceDateTime":"2020-01-01","occurrenceString":"x"}`, Invalid, IssueStructure, "Immunization.occurrence", "more than one occurrence[x]"},
		{"bundle entry resource path drops its type", `{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","foo":1},"request":{"method":"POST","url":"Patient"}}]}`, Invalid, IssueStructure, "Bundle.entry[0].resource.foo", "definition of Patient"},
		{"contained resource path drops its type", `{"resourceType":"Patient","contained":[{"resourceType":"Organization","id":"o","foo":1}]}`, Invalid, IssueStructure, "Patient.contained[0].foo", "foo"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.body))
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("Parse error = %v, want *Error", err)
			}
			if fe.Kind != tt.kind {
				t.Errorf("Kind = %v, want %v", fe.Kind, tt.kind)
			}
			for _, is := range fe.Issues {
				if is.Code == tt.code && firstExpr(is) == tt.expr && strings.Contains(is.Diagnostics, tt.diagWant) {
					if is.Severity != SeverityError {
						t.Errorf("severity = %q", is.Severity)
					}
					return
				}
			}
			t.Errorf("no issue with code %q, expression %q, diagnostics ~%q in %+v", tt.code, tt.expr, tt.diagWant, fe.Issues)
		})
	}
}

func TestParseCollectsEveryIssue(t *testing.T) {
	body := `{"resourceType":"Patient","gender":"bloke","foo":1,"birthDate":"1980-13","name":[{"family":3}],
		"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000008"}]}`
	_, err := Parse([]byte(body))
	var fe *Error
	if !errors.As(err, &fe) {
		t.Fatalf("err = %v", err)
	}
	got := map[string]string{}
	for _, is := range fe.Issues {
		got[firstExpr(is)] = is.Code
	}
	want := map[string]string{
		"Patient.gender":              IssueCodeInvalid,
		"Patient.foo":                 IssueStructure,
		"Patient.birthDate":           IssueValue,
		"Patient.name[0].family":      IssueValue,
		"Patient.identifier[0].value": IssueValue,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("issue at %s: code %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

func TestFinalizeSetsMetaAndKeepsTags(t *testing.T) {
	body := `{"resourceType":"Patient","id":"old","meta":{"versionId":"7","tag":[{"system":"s","code":"c"}],"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"],"source":"#x"},
		"gender":"female","active":true}`
	r, err := Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 23, 11, 0, 0, 123456789, time.FixedZone("", 3600))
	out, err := r.Finalize("p1", 3, at)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		`{"resourceType":"Patient",`,
		`"id":"p1"`,
		`"versionId":"3"`,
		`"lastUpdated":"2026-11-23T10:00:00.123Z"`,
		`"tag":[{"code":"c","system":"s"}]`,
		`"profile":["https://fhir.hl7.org.uk/StructureDefinition/UKCore-Patient"]`,
		`"source":"#x"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("Finalize output lacks %s:\n%s", want, s)
		}
	}
	if strings.Contains(s, "\n") {
		t.Errorf("output is not compact: %s", s)
	}
	if r.ID() != "p1" {
		t.Errorf("ID() = %q after Finalize", r.ID())
	}
	// The output parses again.
	if _, err := Parse(out); err != nil {
		t.Errorf("Finalize output does not parse: %v", err)
	}
}

func TestParseAndFinalizeAreSafeForConcurrentUse(t *testing.T) {
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			for i := 0; i < 20; i++ {
				r, err := Parse([]byte(benchPatient))
				if err == nil {
					_, err = r.Finalize("p1", int64(i+1), time.Now())
				}
				if err != nil {
					done <- err
					return
				}
				Extract(r, testBase)
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func TestFinalizeAddsMetaWhenAbsentAndReplacesVersion(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Slot","schedule":{"reference":"Schedule/s1"},"status":"free","start":"2026-06-01T09:30:00Z","end":"2026-06-01T09:40:00Z"}`)
	out, err := r.Finalize("s-1", 1, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), `{"resourceType":"Slot","end":"2026-06-01T09:40:00Z","id":"s-1","meta":{"lastUpdated":"2026-01-02T03:04:05.000Z","versionId":"1"},`) {
		t.Errorf("got %s", out)
	}
	out, err = r.Finalize("s-1", 2, time.Date(2026, 1, 2, 3, 4, 6, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"meta":{"lastUpdated":"2026-01-02T03:04:06.000Z","versionId":"2"}`) {
		t.Errorf("second Finalize: %s", out)
	}
	if _, err := r.Finalize("bad id", 3, time.Now()); err == nil {
		t.Error("Finalize accepted an invalid id")
	}
}

// A time's precision is part of its value: the library's typed form rounds to microseconds and pads to
// milliseconds, and the stored resource must not.
func TestFinalizeKeepsTimesAndDecimalsAsWritten(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Observation","status":"final","code":{"text":"t"},
		"effectiveDateTime":"2026-01-02T10:00:00.123456789Z","issued":"2026-01-02T10:00:00.1+01:00",
		"valueQuantity":{"value":1.50,"unit":"mL"},
		"extension":[{"url":"https://example.org/x","valueTime":"10:00:00.5"}]}`)
	out, err := r.Finalize("o1", 1, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"effectiveDateTime":"2026-01-02T10:00:00.123456789Z"`,
		`"issued":"2026-01-02T10:00:00.1+01:00"`,
		`"valueQuantity":{"unit":"mL","value":1.50}`,
		`"valueTime":"10:00:00.5"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("Finalize output lacks %s:\n%s", want, out)
		}
	}
	if _, err := Parse(out); err != nil {
		t.Errorf("Finalize output does not parse again: %v", err)
	}
}

func TestParseExposesTypeIDAndTree(t *testing.T) {
	r := mustParse(t, `{"resourceType":"Patient","id":"p9","multipleBirthInteger":2}`)
	if r.Type() != "Patient" || r.ID() != "p9" {
		t.Errorf("Type, ID = %q, %q", r.Type(), r.ID())
	}
	if n, ok := r.Tree()["multipleBirthInteger"].(json.Number); !ok || n.String() != "2" {
		t.Errorf("tree number = %#v, want json.Number 2", r.Tree()["multipleBirthInteger"])
	}
}
