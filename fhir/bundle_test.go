package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
)

// encodingJSON is what Marshal wrote before it was written out by hand: encoding/json without HTML
// escaping. Marshal must write the same bytes for every bundle whose resources are compact JSON objects.
func encodingJSON(b *Bundle) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// awkward are strings that encoding/json escapes, or that look as if it might.
var awkward = []string{"", "plain", `quote " inside`, `back\slash`, "tab\tnew\nline\rcr", "\b\f\x00\x01\x1f\x7f",
	"<script>&amp;</script>", "café ünïcödé", "emoji 🙂", "line\u2028sep\u2029para", "bad \xff\xfe utf8",
	"https://x/fhir/Patient?name=a&_count=1", `W/"3"`}

func TestBundleMarshalWritesWhatEncodingJSONWould(t *testing.T) {
	total := 3
	score := 0.125
	big := 1e21
	fixed := []*Bundle{
		NewBundle(BundleSearchset),
		{Type: BundleHistory},
		{ResourceType: "Bundle", ID: "b", Meta: &BundleMeta{}, Type: BundleBatchResponse, Total: &total,
			Link: []BundleLink{{Relation: "self", URL: "https://x/fhir/Patient?_count=1"}, {Relation: "next", URL: "https://x/fhir/Patient?_cursor=a%2Fb"}},
			Entry: []BundleEntry{
				{},
				{Search: &EntrySearch{}},
				{Search: &EntrySearch{Score: &score}},
				{Search: &EntrySearch{Mode: SearchModeInclude, Score: &big}},
				{FullURL: "urn:uuid:1", Resource: json.RawMessage(`{"resourceType":"Patient","id":"p1","name":[{"family":"O'Brien \u00e9"}]}`),
					Request: &EntryRequest{Method: "PUT", URL: "Patient/p1", IfMatch: `W/"1"`, IfNoneExist: "identifier=a|b",
						IfNoneMatch: "*", IfModifiedSince: "2026-01-01T00:00:00Z"}},
				{Response: &EntryResponse{Status: "400 Bad Request", Outcome: json.RawMessage(`{"resourceType":"OperationOutcome","issue":[]}`)}},
				{Response: &EntryResponse{Status: "201 Created", Location: "Patient/p1/_history/1", Etag: `W/"1"`, LastModified: "2026-11-23T10:00:00.123Z"}},
			}},
	}
	for i, b := range fixed {
		sameAsEncodingJSON(t, fmt.Sprintf("bundle %d", i), b)
	}
	// Every string field with every awkward string, and awkward strings inside the resources' JSON.
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return awkward[rng.IntN(len(awkward))] }
	for i := range 500 {
		n := rng.IntN(4)
		b := &Bundle{ResourceType: pick(), ID: pick(), Type: pick()}
		if rng.IntN(2) == 0 {
			b.Meta = &BundleMeta{LastUpdated: pick()}
		}
		b.Link = []BundleLink{{Relation: pick(), URL: pick()}}
		for range n {
			name, _ := json.Marshal(pick())
			e := BundleEntry{FullURL: pick(), Resource: json.RawMessage(`{"resourceType":"Basic","text":` + string(name) + `}`),
				Search:  &EntrySearch{Mode: pick()},
				Request: &EntryRequest{Method: pick(), URL: pick(), IfMatch: pick(), IfNoneExist: pick(), IfNoneMatch: pick(), IfModifiedSince: pick()},
				Response: &EntryResponse{Status: pick(), Location: pick(), Etag: pick(), LastModified: pick(),
					Outcome: json.RawMessage(`{"resourceType":"OperationOutcome","issue":[{"diagnostics":` + string(name) + `}]}`)}}
			b.Entry = append(b.Entry, e)
		}
		if !sameAsEncodingJSON(t, fmt.Sprintf("case %d", i), b) {
			return
		}
	}
}

// sameAsEncodingJSON reports whether Marshal writes b as encodingJSON does, failing the test if not.
func sameAsEncodingJSON(t *testing.T, label string, b *Bundle) bool {
	t.Helper()
	got, err := b.Marshal()
	if err != nil {
		t.Fatalf("%s: %v", label, err)
	}
	want, err := encodingJSON(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s:\ngot  %s\nwant %s", label, got, want)
		return false
	}
	return true
}

func TestBundleMarshalRefusesAResourceThatIsNotAnObject(t *testing.T) {
	for _, raw := range []string{`[1]`, `"x"`, `{"resourceType":"Patient"`, ` `} {
		b := NewBundle(BundleSearchset)
		b.Entry = []BundleEntry{{Resource: json.RawMessage(raw)}}
		if _, err := b.Marshal(); err == nil || !strings.Contains(err.Error(), "resource is not a JSON object") {
			t.Errorf("resource %q: error %v, want one saying it is not a JSON object", raw, err)
		}
		b.Entry = []BundleEntry{{Response: &EntryResponse{Status: "200 OK", Outcome: json.RawMessage(raw)}}}
		if _, err := b.Marshal(); err == nil || !strings.Contains(err.Error(), "outcome is not a JSON object") {
			t.Errorf("outcome %q: error %v, want one saying it is not a JSON object", raw, err)
		}
	}
}

// BenchmarkBundleMarshal renders a searchset page of 20 Patients of about 1 KB each, by hand (Marshal)
// and as encoding/json did before.
func BenchmarkBundleMarshal(b *testing.B) {
	bundle := NewBundle(BundleSearchset)
	total := 20
	bundle.Total = &total
	bundle.Link = []BundleLink{{Relation: "self", URL: "https://x/fhir/Patient?_count=20"}}
	for i := range 20 {
		body := `{"resourceType":"Patient","id":"p` + strings.Repeat("0", i) + `","meta":{"versionId":"1","lastUpdated":"2026-11-23T10:00:00.123Z"},` +
			`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9000000009"}],"name":[{"family":"Smith","given":["Jo"]}],` +
			`"address":[{"line":["` + strings.Repeat("1 Some Street ", 50) + `"],"city":"Leeds","postalCode":"LS1 4AP"}]}`
		bundle.Entry = append(bundle.Entry, BundleEntry{FullURL: "https://x/fhir/Patient/p", Resource: json.RawMessage(body), Search: &EntrySearch{Mode: SearchModeMatch}})
	}
	for _, m := range []struct {
		name string
		f    func(*Bundle) ([]byte, error)
	}{{"Marshal", (*Bundle).Marshal}, {"encodingJSON", encodingJSON}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.f(bundle); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
