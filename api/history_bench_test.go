package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// BenchmarkSystemHistoryPage is GET /_history?_count=10 on a store whose history is mostly what the
// caller may not see: 20,000 audit records and 2,000 versions of another patient's record, newer than
// the caller's own. Before history read only the caller's types and bounded the versions one page
// reads, a page cost a scan of all of it (docs/operations.md has the figures).
func BenchmarkSystemHistoryPage(b *testing.B) {
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	_, base, sysToken := startAPI(b, st, io.Discard)
	do := func(method, path, token string, body any) (int, []byte) {
		var rdr io.Reader
		if body != nil {
			raw, _ := json.Marshal(body)
			rdr = bytes.NewReader(raw)
		}
		req, _ := http.NewRequest(method, base+path, rdr)
		req.Header.Set("Authorization", "Bearer "+token)
		if rdr != nil {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}
	create := func(body obj) string {
		code, out := do("POST", "/"+body["resourceType"].(string), sysToken, body)
		var m map[string]any
		if code != 201 || json.Unmarshal(out, &m) != nil {
			b.Fatalf("create: %d %s", code, out)
		}
		return m["id"].(string)
	}
	me := create(patient("Me", validNHS))
	other := create(patient("Other", "9912003071"))
	create(obj{"resourceType": "Immunization", "status": "completed",
		"vaccineCode": obj{"coding": []any{obj{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
		"patient":     obj{"reference": "Patient/" + me}, "occurrenceDateTime": "2024-01-01"})
	for range 4 {
		var entries []obj
		for i := range 500 {
			entries = append(entries, txPost(fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i), obj{"resourceType": "Immunization", "status": "completed",
				"vaccineCode": obj{"coding": []any{obj{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
				"patient":     obj{"reference": "Patient/" + other}, "occurrenceDateTime": "2024-01-01"}))
		}
		if code, out := do("POST", "/", sysToken, txBundle("transaction", entries...)); code != 200 {
			b.Fatalf("transaction: %d %.300s", code, out)
		}
	}
	appendAuditRecords(b, st, 20_000, me)
	tok, err := devidp.PatientToken(context.Background(), nil, base+"/dev-idp", validNHS, "P9", "", []string{"patient/*.rs"})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct{ name, token string }{{"gp-system", sysToken}, {"patient", tok.AccessToken}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if code, out := do("GET", "/_history?_count=10", c.token, nil); code != 200 {
					b.Fatalf("%d %.300s", code, out)
				}
			}
		})
	}
}
