package fhir

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestRewriteReferencesKeepsEverythingElseByteForByte(t *testing.T) {
	in := `{"resourceType":"Immunization", "doseQuantity": {"value": 0.50, "unit": "mL"},
	  "patient" : { "reference" : "urn:uuid:p1", "display": "reference" },
	  "performer": [{"actor": {"refer\u0065nce": "urn:uuid:pr1"}}, {"actor": {"reference": "Practitioner/x"}}],
	  "note": [{"text": "see \"reference\": \"urn:uuid:p1\""}],
	  "extension": [{"url": "u", "valueReference": {"reference": {"not": "a string"}}}],
	  "references": "urn:uuid:p1", "big": 12345678901234567890123}`
	ids := map[string]string{"urn:uuid:p1": "Patient/1", "urn:uuid:pr1": "Practitioner/\"q\"&<1>"}
	var seen []string
	out, changed, err := RewriteReferences([]byte(in), func(ref string) (string, error) {
		seen = append(seen, ref)
		if to, ok := ids[ref]; ok {
			return to, nil
		}
		return ref, nil
	})
	if err != nil || !changed {
		t.Fatalf("changed %v, err %v", changed, err)
	}
	if want := []string{"urn:uuid:p1", "urn:uuid:pr1", "Practitioner/x"}; !reflect.DeepEqual(seen, want) {
		t.Errorf("fn saw %q, want %q (only string values of reference keys, escapes decoded)", seen, want)
	}
	want := `{"resourceType":"Immunization", "doseQuantity": {"value": 0.50, "unit": "mL"},
	  "patient" : { "reference" : "Patient/1", "display": "reference" },
	  "performer": [{"actor": {"refer\u0065nce": "Practitioner/\"q\"&<1>"}}, {"actor": {"reference": "Practitioner/x"}}],
	  "note": [{"text": "see \"reference\": \"urn:uuid:p1\""}],
	  "extension": [{"url": "u", "valueReference": {"reference": {"not": "a string"}}}],
	  "references": "urn:uuid:p1", "big": 12345678901234567890123}`
	if string(out) != want {
		t.Errorf("rewritten\n%s\nwant\n%s", out, want)
	}
	if !json.Valid(out) {
		t.Errorf("the result is not JSON: %s", out)
	}
}

func TestRewriteReferencesUnchangedAndErrors(t *testing.T) {
	in := []byte(`{"subject":{"reference":"Patient/1"},"x":[{"reference":"Patient/2"}]}`)
	out, changed, err := RewriteReferences(in, func(ref string) (string, error) { return ref, nil })
	if err != nil || changed || &out[0] != &in[0] {
		t.Errorf("nothing replaced: want the same bytes back, unchanged; got changed %v, err %v", changed, err)
	}
	boom := errors.New("no such patient")
	calls := 0
	out, changed, err = RewriteReferences(in, func(ref string) (string, error) {
		calls++
		if ref == "Patient/1" {
			return "", boom
		}
		return "Patient/9", nil
	})
	if !errors.Is(err, boom) || changed || string(out) != string(in) || calls != 1 {
		t.Errorf("fn failing: err %v, changed %v, %d calls, out %s; want its error, the body as it was, one call", err, changed, calls, out)
	}
	var refs []string
	EachReference(in, func(ref string) bool { refs = append(refs, ref); return false })
	if !reflect.DeepEqual(refs, []string{"Patient/1"}) {
		t.Errorf("EachReference stopping at the first: %q", refs)
	}
	// An unterminated string: nothing to rewrite past it, and no panic.
	if _, changed, _ := RewriteReferences([]byte(`{"reference":"Patient/1`), func(string) (string, error) { return "x", nil }); changed {
		t.Error("an unterminated value was rewritten")
	}
}

func TestDecodeObjectKeepsNumbersAsWritten(t *testing.T) {
	m, err := DecodeObject([]byte(`{"value": 2.50, "n": 12345678901234567890123, "e": 1e2}`))
	if err != nil {
		t.Fatal(err)
	}
	m["unit"] = "mL"
	b, _ := json.Marshal(m)
	if want := `{"e":1e2,"n":12345678901234567890123,"unit":"mL","value":2.50}`; string(b) != want {
		t.Errorf("encoded again %s, want %s", b, want)
	}
	for _, bad := range []string{`[1]`, `{"a":1} {}`, `{"a":`} {
		if _, err := DecodeObject([]byte(bad)); err == nil {
			t.Errorf("DecodeObject(%s) accepted it", bad)
		}
	}
}
