package api_test

import (
	"bytes"
	"net/http"
	"testing"
)

// TestPatientsFindTheirRecordsAsAnotherServerLeftThem: a patient's requests to one server find their
// Patient records as they are now, after another server on the same store (a second gpfhir process)
// has changed them: renamed, record access switched off, a second record with the NHS number, the NHS number moved to someone
// else. The answers nhscache.go keeps must never outlive such a write. And the bodies it keeps, shared
// between requests, are served unchanged after requests of many kinds have used them.
func TestPatientsFindTheirRecordsAsAnotherServerLeftThem(t *testing.T) {
	a, b := openSharedStores(t)
	writer, reader := newTestServerOn(t, a), newTestServerOn(t, b)
	nhs := nhsNumber(t, 1)
	id := writer.create("Patient", patient("Before", nhs))
	tok := bearer(reader.patientToken(nhs, "P9", ""))
	family := func(id string) string {
		t.Helper()
		m := reader.mustStatus(reader.do("GET", "/Patient/"+id, nil, tok), http.StatusOK).JSON(t)
		return m["name"].([]any)[0].(map[string]any)["family"].(string)
	}
	if got := family(id); got != "Before" {
		t.Fatalf("read %q, want Before", got)
	}
	put := func(body map[string]any) {
		t.Helper()
		body["id"] = id
		writer.mustStatus(writer.do("PUT", "/Patient/"+id, body, nil), http.StatusOK)
	}

	put(patient("After", nhs))
	if got := family(id); got != "After" {
		t.Errorf("after another server's update the patient read %q, want After", got)
	}

	// The practice switches record access off, from the other server: the patient's next search of
	// their record is refused, by the levels of the Patient as it is now.
	reader.mustStatus(reader.do("GET", "/AllergyIntolerance", nil, tok), http.StatusOK)
	off := patient("After", nhs)
	off["extension"] = arr{onlineAccess("none", "", "", "")}
	put(off)
	reader.mustStatus(reader.do("GET", "/AllergyIntolerance", nil, tok), http.StatusForbidden)
	put(patient("After", nhs))

	second := writer.create("Patient", patient("Second", nhs))
	if got := family(second); got != "Second" {
		t.Errorf("the patient's second record read %q, want Second", got)
	}

	put(patient("Moved", nhsNumber(t, 2)))
	if r := reader.do("GET", "/Patient/"+id, nil, tok); r.Status == http.StatusOK {
		t.Errorf("the record now of another NHS number was served to the patient: %s", r.Body)
	}

	for _, path := range []string{"/Patient/" + second + "?_summary=true", "/Patient/" + second + "?_elements=name",
		"/Patient?_id=" + second, "/Patient/" + second + "/$everything", "/Patient/$me", "/Patient/" + second + "/_history"} {
		reader.mustStatus(reader.do("GET", path, nil, tok), http.StatusOK)
	}
	own := reader.mustStatus(reader.do("GET", "/Patient/"+second, nil, tok), http.StatusOK)
	stored := reader.mustStatus(reader.do("GET", "/Patient/"+second, nil, nil), http.StatusOK)
	if !bytes.Equal(own.Body, stored.Body) {
		t.Errorf("the patient's own record, kept between requests, reads\n%s\nthe store's\n%s", own.Body, stored.Body)
	}
}
