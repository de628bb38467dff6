package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/store/sqlite"
)

// fuzzServer serves the API on a SQLite store with a few resources, for the fuzz targets that go through
// HTTP: one server per fuzz target, not per input.
func fuzzServer(f *testing.F) (base, token string) {
	f.Helper()
	st, err := sqlite.Open(context.Background(), f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = st.Close() })
	_, base, token = startAPI(f, st, io.Discard)
	for _, family := range []string{"Fuzz", "O'Brien"} {
		body, _ := json.Marshal(patient(family, ""))
		if code, got := fuzzDo(f, token, "POST", base+"/Patient", string(body)); code != http.StatusCreated {
			f.Fatalf("seed patient: %d %s", code, got)
		}
	}
	return base, token
}

func fuzzDo(tb testing.TB, token, method, url, body string) (int, string) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, err.Error() // a string net/http will not send: not the server's concern
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// FuzzSearchQuery: any query string on a search is answered, with a 2xx or a 4xx OperationOutcome,
// never a 5xx.
func FuzzSearchQuery(f *testing.F) {
	base, token := fuzzServer(f)
	for _, q := range []string{
		"family=fuzz", "family:exact=Fuzz&_sort=-birthdate", "birthdate=ge1970&birthdate=lt1990", "birthdate=foo",
		"family=%zz", "_id=a;b", "_count=0", "_count=-1", "_count=99999999999999999999", "_sort=nope",
		"name='%20OR%201=1%20--", "family[$ne]=x", "$where=1", "_has:Immunization:patient:status=completed",
		"_include=Patient:organization&_revinclude=*", "identifier=https://fhir.nhs.uk/Id/nhs-number|",
		"_elements=name,birthDate&_summary=true", "_total=accurate", "general-practitioner.name=x",
		"_cursor=garbage", "_lastUpdated=gt2020-01-01T00:00:00Z", "gender:not=male", "name:contains=%00",
	} {
		f.Add("Patient", q)
	}
	f.Add("Immunization", "patient=Patient/x&date=ge2020")
	f.Add("Slot", "status=free&start=gt2020-01-01&_include=Slot:schedule")
	f.Fuzz(func(t *testing.T, typ, q string) {
		// Bytes that cannot stand in a request line are net/http's to refuse, before gpfhir sees them.
		if strings.ContainsAny(typ, "/?#%") || strings.IndexFunc(typ+q, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
			return
		}
		code, body := fuzzDo(t, token, "GET", base+"/"+typ+"?"+q, "")
		if code == 0 {
			return
		}
		if code >= 500 || code != http.StatusOK && !strings.Contains(body, `"resourceType":"OperationOutcome"`) {
			t.Fatalf("GET /%s?%s: %d %.300s", typ, q, code, body)
		}
	})
}

// FuzzBundle: any body posted as a batch or transaction is answered with a Bundle or a 4xx
// OperationOutcome, never a 5xx.
func FuzzBundle(f *testing.F) {
	base, token := fuzzServer(f)
	for _, b := range []string{
		`{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","name":[{"family":"T"}]},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"GET","url":"Patient?family=fuzz"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/none"}}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PUT","url":"Patient/../../x"},"resource":{"resourceType":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","managingOrganization":{"reference":"urn:uuid:nope"}},"request":{"method":"POST","url":"Patient"}}]}`,
		`{"resourceType":"Bundle","type":"searchset"}`, `{"resourceType":"Bundle"}`, `{"resourceType":"Bundle","type":"batch","entry":[{}]}`,
		`{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"$where","url":"Patient"}}]}`, `[]`, `{`,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		code, got := fuzzDo(t, token, "POST", base+"/", body)
		if code >= 500 || !strings.Contains(got, `"resourceType":"Bundle"`) && !strings.Contains(got, `"resourceType":"OperationOutcome"`) {
			t.Fatalf("POST / %q: %d %.300s", body, code, got)
		}
	})
}
