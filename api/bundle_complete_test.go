package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
)

const nhsSystem = "https://fhir.nhs.uk/Id/nhs-number"

func TestTransactionOfWritesNeedsNoSearchScope(t *testing.T) {
	ts := newTestServer(t)
	cu := bearer(ts.systemToken(devidp.AllPracticesClientID, "system/*.cu"))
	r := ts.do("POST", "/", txBundle("transaction",
		txPost("urn:uuid:p", patient("OnlyCU", "")),
		txPost("urn:uuid:i", txImmunization("urn:uuid:p")),
	), cu)
	if r.Status != http.StatusOK {
		t.Fatalf("status %d, want 200 for creates under system/*.cu: %s", r.Status, r.Body)
	}
	// A GET entry still needs the read or search scope the single request needs.
	r = ts.mustStatus(ts.do("POST", "/", txBundle("batch",
		obj{"request": obj{"method": "GET", "url": "Patient?family=OnlyCU"}}), cu), 200)
	if got := entryStatus(responseEntries(t, r, "batch-response")[0]); !strings.HasPrefix(got, "403") {
		t.Errorf("search entry without the s scope answered %q, want 403", got)
	}
}

func TestBundleCancellationReadsTheEntrysIfMatch(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	start := w.base.Add(72 * 3600e9)
	appt := w.appointment(w.me, start, start.Add(600e9), w.slotFree)
	id := ts.create("Appointment", appt)
	if got := w.slotStatus(t, w.slotFree); got != "busy" {
		t.Fatalf("slot %s after booking, want busy", got)
	}
	cancelled := obj{}
	for k, v := range appt {
		cancelled[k] = v
	}
	cancelled["id"], cancelled["status"] = id, "cancelled"
	cancelled["cancelationReason"] = obj{"text": "no longer needed"}
	put := func(ifMatch string) obj {
		req := obj{"method": "PUT", "url": "Appointment/" + id}
		if ifMatch != "" {
			req["ifMatch"] = ifMatch
		}
		return obj{"resource": cancelled, "request": req}
	}
	// The outer If-Match is not the entry's: without request.ifMatch the cancellation is refused.
	r := ts.do("POST", "/", txBundle("transaction", put("")), header{"If-Match": `W/"1"`})
	if r.Status != http.StatusPreconditionRequired {
		t.Fatalf("cancellation without the entry's ifMatch: status %d, want 428: %s", r.Status, r.Body)
	}
	r = ts.do("POST", "/", txBundle("transaction", put(`W/"1"`)), nil)
	if r.Status != http.StatusOK {
		t.Fatalf("cancellation with the entry's ifMatch: status %d, want 200: %s", r.Status, r.Body)
	}
	if got := w.slotStatus(t, w.slotFree); got != "free" {
		t.Errorf("slot %s after the cancellation, want free", got)
	}
}

func TestTransactionBooksASlotItCreates(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	slot := slotEntries(w.online, 1)[0]
	slot["fullUrl"] = "urn:uuid:slot"
	res := slot["resource"].(obj)
	appt := w.appointment(w.me, w.base, w.base, "x")
	appt["slot"] = arr{obj{"reference": "urn:uuid:slot"}}
	appt["start"], appt["end"] = res["start"], res["end"]
	// The Appointment comes first in the Bundle: the server orders it after the Slot it references.
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction", txPost("urn:uuid:a", appt), slot), nil), 200)
	es := responseEntries(t, r, "transaction-response")
	if got := entryStatus(es[1]); !strings.HasPrefix(got, "201") {
		t.Fatalf("slot entry %q, want 201", got)
	}
	sres := es[1]["resource"].(map[string]any)
	if sres["status"] != "busy" || sres["meta"].(map[string]any)["versionId"] != "1" {
		t.Errorf("the slot entry answers %v at version %v, want busy at version 1", sres["status"], sres["meta"])
	}
	if got := w.slotStatus(t, sres["id"].(string)); got != "busy" {
		t.Errorf("stored slot %s, want busy", got)
	}
	ares := es[0]["resource"].(map[string]any)
	if ref := ares["slot"].([]any)[0].(map[string]any)["reference"]; ref != "Slot/"+sres["id"].(string) {
		t.Errorf("appointment books %v, want Slot/%s", ref, sres["id"])
	}
}

func TestConditionalReferencesResolve(t *testing.T) {
	ts := newTestServer(t)
	nhs := nhsNumber(t, 5)
	pid := ts.create("Patient", patient("Conditional", nhs))
	t.Run("to a stored resource", func(t *testing.T) {
		r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
			txPost("", txImmunization("Patient?identifier="+nhsSystem+"|"+nhs))), nil), 200)
		res := responseEntries(t, r, "transaction-response")[0]["resource"].(map[string]any)
		if got := res["patient"].(map[string]any)["reference"]; got != "Patient/"+pid {
			t.Errorf("reference %v, want Patient/%s", got, pid)
		}
	})
	t.Run("written with an escaped question mark", func(t *testing.T) {
		// JSON may spell "?" as \u003f; an entry is not skipped for showing no "?" byte.
		raw, err := json.Marshal(txBundle("transaction", txPost("", txImmunization("Patient?identifier="+nhsSystem+"|"+nhs))))
		if err != nil {
			t.Fatal(err)
		}
		escaped := bytes.Replace(raw, []byte("Patient?identifier"), []byte(`Patient\u003fidentifier`), 1)
		if bytes.Equal(escaped, raw) || bytes.IndexByte(escaped, '?') >= 0 {
			t.Fatalf("the bundle still has a \"?\": %s", escaped)
		}
		r := ts.mustStatus(ts.do("POST", "/", escaped, nil), 200)
		res := responseEntries(t, r, "transaction-response")[0]["resource"].(map[string]any)
		if got := res["patient"].(map[string]any)["reference"]; got != "Patient/"+pid {
			t.Errorf("reference %v, want Patient/%s", got, pid)
		}
	})
	t.Run("to a resource the transaction creates", func(t *testing.T) {
		other := nhsNumber(t, 6)
		r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
			txPost("", txImmunization("Patient?identifier="+nhsSystem+"|"+other)),
			txPost("", patient("Created", other))), nil), 200)
		es := responseEntries(t, r, "transaction-response")
		created := es[1]["resource"].(map[string]any)["id"].(string)
		if got := es[0]["resource"].(map[string]any)["patient"].(map[string]any)["reference"]; got != "Patient/"+created {
			t.Errorf("reference %v, want Patient/%v", got, created)
		}
	})
	t.Run("matching nothing", func(t *testing.T) {
		before := ts.txCount("Immunization", "")
		r := ts.do("POST", "/", txBundle("transaction",
			txPost("", txImmunization("Patient?identifier="+nhsSystem+"|"+nhsNumber(t, 7)))), nil)
		if r.Status != http.StatusUnprocessableEntity || !strings.Contains(string(r.Body), "Bundle.entry[0]") {
			t.Fatalf("status %d, want 422 naming entry 0: %s", r.Status, r.Body)
		}
		if n := ts.txCount("Immunization", ""); n != before {
			t.Errorf("%d Immunizations after a failed transaction, want %d", n, before)
		}
	})
}

func TestBundleGETEntriesAndOrder(t *testing.T) {
	ts := newTestServer(t)
	keep := ts.create("Patient", patient("Kept", ""))
	gone := ts.create("Patient", patient("Gone", ""))
	t.Run("batch reads and searches", func(t *testing.T) {
		r := ts.mustStatus(ts.do("POST", "/", txBundle("batch",
			obj{"request": obj{"method": "GET", "url": "Patient/" + keep}},
			obj{"request": obj{"method": "GET", "url": "Patient?family=Kept"}},
			obj{"request": obj{"method": "GET", "url": "Patient/" + keep, "ifNoneMatch": `W/"1"`}},
			obj{"request": obj{"method": "GET", "url": "Patient/nope"}},
			obj{"request": obj{"method": "GET", "url": "dev-idp/keys"}},
		), nil), 200)
		es := responseEntries(t, r, "batch-response")
		want := []string{"200", "200", "304", "404", "400"}
		for i, e := range es {
			if got := entryStatus(e); !strings.HasPrefix(got, want[i]) {
				t.Errorf("entry %d status %q, want %s", i, got, want[i])
			}
		}
		if es[0]["resource"].(map[string]any)["id"] != keep {
			t.Errorf("read entry has no Patient/%s: %v", keep, es[0])
		}
		if b := es[1]["resource"].(map[string]any); b["type"] != "searchset" || b["total"] == nil && len(b["entry"].([]any)) != 1 {
			t.Errorf("search entry is not the searchset: %v", b)
		}
		if es[3]["response"].(map[string]any)["outcome"] == nil {
			t.Errorf("the 404 entry carries no OperationOutcome")
		}
	})
	t.Run("transaction runs deletes, creates, updates, reads in that order", func(t *testing.T) {
		ops := base64.StdEncoding.EncodeToString([]byte(`[{"op":"replace","path":"/gender","value":"male"}]`))
		r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
			obj{"request": obj{"method": "GET", "url": "Patient/" + gone}},
			obj{"request": obj{"method": "GET", "url": "Patient?family=Fresh"}},
			obj{"request": obj{"method": "PATCH", "url": "Patient/" + keep},
				"resource": obj{"resourceType": "Binary", "contentType": "application/json-patch+json", "data": ops}},
			txPost("", patient("Fresh", "")),
			obj{"request": obj{"method": "DELETE", "url": "Patient/" + gone}},
		), nil), 200)
		es := responseEntries(t, r, "transaction-response")
		want := []string{"410", "200", "200", "201", "204"}
		for i, e := range es {
			if got := entryStatus(e); !strings.HasPrefix(got, want[i]) {
				t.Errorf("entry %d status %q, want %s", i, got, want[i])
			}
		}
		if b := es[1]["resource"].(map[string]any); len(b["entry"].([]any)) != 1 {
			t.Errorf("the search entry does not see the Patient the transaction created: %v", b)
		}
		if g := es[2]["resource"].(map[string]any)["gender"]; g != "male" {
			t.Errorf("patched gender %v, want male", g)
		}
	})
}

func TestBundleUpdateWithTheStoredContentIsANoOp(t *testing.T) {
	ts := newTestServer(t)
	p := patient("Same", "")
	id := ts.create("Patient", p)
	p["id"] = id
	put := obj{"resource": p, "request": obj{"method": "PUT", "url": "Patient/" + id}}
	r := ts.mustStatus(ts.do("POST", "/", txBundle("transaction", put), nil), 200)
	e := responseEntries(t, r, "transaction-response")[0]
	resp := e["response"].(map[string]any)
	if !strings.HasPrefix(entryStatus(e), "200") || resp["etag"] != `W/"1"` {
		t.Errorf("an update with the stored content answered %v, want 200 at version 1", resp)
	}
	if !strings.Contains(string(r.Body), `"code":"unchanged"`) {
		t.Errorf("no unchanged outcome: %s", r.Body)
	}
	if got := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200).Header.Get("ETag"); got != `W/"1"` {
		t.Errorf("stored version %s, want still 1", got)
	}
	p["gender"] = "male"
	r = ts.mustStatus(ts.do("POST", "/", txBundle("transaction", put), nil), 200)
	if etag := responseEntries(t, r, "transaction-response")[0]["response"].(map[string]any)["etag"]; etag != `W/"2"` {
		t.Errorf("a changed update answered etag %v, want W/\"2\"", etag)
	}
}
