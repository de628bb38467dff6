package api

import (
	"hash/maphash"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
)

const (
	orgY1 = `{"resourceType":"Organization","id":"o1","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y00001"}]}`
	orgY2 = `{"resourceType":"Organization","id":"o1","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y00002"}]}`
)

func odsOf(t *testing.T, c *entryCache, body string, calls *int) string {
	t.Helper()
	entries, err := c.entries([]byte(body), []string{"identifier"}, func() ([]fhir.IndexEntry, error) {
		*calls++
		return fhir.ExtractBodyParams([]byte(body), "http://x", "identifier")
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Param == "identifier" && e.System == fhir.ODSOrganizationSystem {
			return e.Value
		}
	}
	return ""
}

// The same body is decoded once; a changed body (the practice's ODS code edited, by this process or
// another) is decoded again, whatever its id and version, so the policy never decides on stale facts.
func TestEntryCacheFollowsTheBodyNotTheResource(t *testing.T) {
	c := newEntryCache()
	calls := 0
	for range 3 {
		if got := odsOf(t, c, orgY1, &calls); got != "Y00001" {
			t.Fatalf("ODS code %q, want Y00001", got)
		}
	}
	if calls != 1 {
		t.Fatalf("the same body was decoded %d times, want once", calls)
	}
	if got := odsOf(t, c, orgY2, &calls); got != "Y00002" || calls != 2 {
		t.Fatalf("after the edit: ODS code %q after %d decodings, want Y00002 after 2", got, calls)
	}
	if got := odsOf(t, c, orgY1, &calls); got != "Y00001" || calls != 2 {
		t.Fatalf("the first body again: ODS code %q after %d decodings, want Y00001 still cached", got, calls)
	}
}

// A hash that two bodies share is a miss for the second: the body kept with the entries is compared.
func TestEntryCacheCollisionIsAMiss(t *testing.T) {
	c := newEntryCache()
	calls := 0
	// What a collision would leave: orgY2's key holding orgY1's body and entries.
	y1, err := fhir.ExtractBodyParams([]byte(orgY1), "http://x", "identifier")
	if err != nil {
		t.Fatal(err)
	}
	c.cache.Add(entryKey{params: "identifier", sum: maphash.Bytes(c.seed, []byte(orgY2))}, entryValue{body: []byte(orgY1), entries: y1})
	if got := odsOf(t, c, orgY2, &calls); got != "Y00002" || calls != 1 {
		t.Fatalf("ODS code %q after %d decodings, want Y00002 decoded from its own body", got, calls)
	}
}

// Different parameters of one body are different entries.
func TestEntryCacheKeysByParameters(t *testing.T) {
	c := newEntryCache()
	body := []byte(orgY1)
	for _, params := range [][]string{{"identifier"}, {"_security"}, {"identifier", "_security"}} {
		got, err := c.entries(body, params, func() ([]fhir.IndexEntry, error) {
			return fhir.ExtractBodyParams(body, "http://x", params...)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range got {
			if e.Param != "identifier" && e.Param != "_security" || len(params) == 1 && e.Param != params[0] {
				t.Fatalf("params %v gave an entry of %s", params, e.Param)
			}
		}
		if params[0] == "identifier" && len(got) == 0 {
			t.Fatalf("params %v gave no entries", params)
		}
	}
}

// A body over the size bound is decoded every time and not kept.
func TestEntryCacheSkipsLargeBodies(t *testing.T) {
	c := newEntryCache()
	body := []byte(`{"resourceType":"Organization","id":"o1","name":"` + string(make([]byte, entryCacheMaxBody)) + `"}`)
	for i := range body[48 : len(body)-2] {
		body[48+i] = 'a'
	}
	calls := 0
	for range 2 {
		if _, err := c.entries(body, []string{"identifier"}, func() ([]fhir.IndexEntry, error) {
			calls++
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 2 || c.cache.Len() != 0 {
		t.Fatalf("%d decodings and %d kept, want 2 and 0", calls, c.cache.Len())
	}
}
