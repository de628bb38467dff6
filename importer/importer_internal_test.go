package importer

import (
	"encoding/json"
	"testing"
)

func TestMayMentionMissesNoReference(t *testing.T) {
	refs := map[string]string{"urn:uuid:org-1": "Organization/org-1", "urn:uuid:pr-2": "Practitioner/pr-2"}
	for _, c := range []struct {
		name, raw string
		want      bool
	}{
		{"names a key", `{"serviceProvider":{"reference":"urn:uuid:org-1"}}`, true},
		{"names another key", `{"participant":[{"individual":{"reference":"urn:uuid:pr-2"}}]}`, true},
		{"names none", `{"subject":{"reference":"urn:uuid:patient-9"}}`, false},
		{"escapes a character, which could hide a key", `{"serviceProvider":{"reference":"urn\u003auuid:org-1"}}`, true},
		{"empty", ``, false},
	} {
		if got := mayMention(json.RawMessage(c.raw), refs); got != c.want {
			t.Errorf("%s: mayMention(%s) = %v, want %v", c.name, c.raw, got, c.want)
		}
	}
	// What mayMention lets through, replaceRefs rewrites: the escaped value is the same reference.
	raw := json.RawMessage(`{"serviceProvider":{"reference":"urn\u003auuid:org-1"}}`)
	if out := replaceRefs(raw, refs); string(out) != `{"serviceProvider":{"reference":"Organization/org-1"}}` {
		t.Errorf("replaceRefs of the escaped value: %s", out)
	}
}

// Rewriting references and dropping them keeps the rest of a resource as it was written: a decimal's
// precision is part of its value.
func TestReferenceRewritesKeepNumbersAsWritten(t *testing.T) {
	raw := json.RawMessage(`{"resourceType":"Immunization","doseQuantity":{"value":0.50},"patient":{"reference":"urn:uuid:p"},` +
		`"encounter":{"reference":"urn:uuid:e","display":"GP visit"},"reasonReference":[{"reference":"urn:uuid:e"}]}`)
	got := replaceRefs(raw, map[string]string{"urn:uuid:p": "Patient/p"})
	if want := `{"resourceType":"Immunization","doseQuantity":{"value":0.50},"patient":{"reference":"Patient/p"},` +
		`"encounter":{"reference":"urn:uuid:e","display":"GP visit"},"reasonReference":[{"reference":"urn:uuid:e"}]}`; string(got) != want {
		t.Errorf("replaceRefs:\n%s\nwant\n%s", got, want)
	}
	dropped := map[string]bool{"urn:uuid:e": true}
	if !refersTo(got, dropped) || refersTo(got, map[string]bool{"urn:uuid:x": true}) {
		t.Error("refersTo does not tell a dropped reference from an absent one")
	}
	stripped := stripRefs(got, dropped)
	if want := `{"doseQuantity":{"value":0.50},"encounter":{"display":"GP visit"},"patient":{"reference":"Patient/p"},"resourceType":"Immunization"}`; string(stripped) != want {
		t.Errorf("stripRefs:\n%s\nwant\n%s (the emptied Reference and array gone, the display kept)", stripped, want)
	}
	if out := stripRefs(got, map[string]bool{"urn:uuid:x": true}); &out[0] != &got[0] {
		t.Error("stripRefs with nothing to drop did not hand back the same bytes")
	}
	patient := setField(json.RawMessage(`{"resourceType":"Patient","extension":[{"url":"u","valueDecimal":1.10}]}`), "id", "p")
	if want := `{"extension":[{"url":"u","valueDecimal":1.10}],"id":"p","resourceType":"Patient"}`; string(patient) != want {
		t.Errorf("setField: %s, want %s", patient, want)
	}
}

// typedOf reads what a full decoding would: the same type, id and practice members, and the same refusals.
func TestTypedOfReadsWhatDecodingWould(t *testing.T) {
	type decoded struct {
		ResourceType         string          `json:"resourceType"`
		ID                   string          `json:"id"`
		ManagingOrganization json.RawMessage `json:"managingOrganization"`
		GeneralPractitioner  json.RawMessage `json:"generalPractitioner"`
	}
	for _, raw := range []string{
		`{"resourceType":"Patient","id":"p1","managingOrganization":{"reference":"Organization/o1"}}`,
		`{"resourceType":"Patient","id":"p1","generalPractitioner":[{"reference":"Practitioner/d1"}]}`,
		`{"resourceType":"Patient","id":"p1","managingOrganization":null}`,
		`{"id":"p1","name":[{"text":"\"resourceType\":\"Patient\""}],"resourceType":"Patient"}`,
		`{"resourceType":"Immuni\u007aation","id":"i\u00311"}`,
		` {"resourceType":"Observation"}`,
		`{"contained":[{"resourceType":"Organization","id":"o"}],"resourceType":"Patient"}`,
		`{"resourceType":"Patient","id":7}`,
		`{"resourceType":7}`,
		`{"resourceType":""}`,
		`{"id":"p1"}`,
		`["resourceType","Patient"]`,
		`"Patient"`,
		`null`,
	} {
		var d decoded
		err := json.Unmarshal([]byte(raw), &d)
		wantOK := err == nil && d.ResourceType != ""
		got, ok := typedOf(json.RawMessage(raw))
		if ok != wantOK {
			t.Errorf("typedOf(%s) ok = %v, decoding says %v", raw, ok, wantOK)
			continue
		}
		want := typed{d.ResourceType, d.ID, len(d.ManagingOrganization) > 0, len(d.GeneralPractitioner) > 0}
		if ok && got != want {
			t.Errorf("typedOf(%s) = %+v, decoding gives %+v", raw, got, want)
		}
	}
}
