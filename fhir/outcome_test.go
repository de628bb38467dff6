package fhir

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOperationOutcomeRendersIssuesResourceTypeFirst(t *testing.T) {
	out := OperationOutcome(NewIssue(IssueValue, "Patient.identifier[0].value is not a valid NHS number: <check>", "Patient.identifier[0].value"))
	s := string(out)
	if !strings.HasPrefix(s, `{"resourceType":"OperationOutcome","issue":[`) {
		t.Errorf("unexpected start: %s", s)
	}
	if !strings.Contains(s, "<check>") {
		t.Errorf("diagnostics were HTML-escaped: %s", s)
	}
	var oo struct {
		Issue []Issue `json:"issue"`
	}
	if err := json.Unmarshal(out, &oo); err != nil {
		t.Fatal(err)
	}
	if len(oo.Issue) != 1 || oo.Issue[0].Severity != "error" || oo.Issue[0].Code != "value" || oo.Issue[0].Expression[0] != "Patient.identifier[0].value" {
		t.Errorf("round trip = %+v", oo.Issue)
	}
}

func TestOperationOutcomeWithoutIssuesIsInformational(t *testing.T) {
	want := `{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"All OK"}]}`
	if got := string(OperationOutcome()); got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestErrorMessageCountsFurtherIssues(t *testing.T) {
	e := &Error{Kind: Invalid, Issues: []Issue{NewIssue(IssueValue, "first"), NewIssue(IssueValue, "second"), NewIssue(IssueValue, "third")}}
	if got, want := e.Error(), "fhir: invalid resource: first (and 2 more)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestBundleSplicesStoredBytes(t *testing.T) {
	total := 1
	b := NewBundle(BundleSearchset)
	b.ID = "b1"
	b.Meta = &BundleMeta{LastUpdated: "2026-11-23T10:00:00.123Z"}
	b.Total = &total
	b.Link = []BundleLink{{Relation: "self", URL: "https://x/fhir/Patient?name=a&_count=1"}}
	b.Entry = []BundleEntry{{
		FullURL:  "https://x/fhir/Patient/p1",
		Resource: json.RawMessage(`{"resourceType":"Patient","id":"p1"}`),
		Search:   &EntrySearch{Mode: SearchModeMatch},
	}}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Bundle","id":"b1","meta":{"lastUpdated":"2026-11-23T10:00:00.123Z"},"type":"searchset","total":1,` +
		`"link":[{"relation":"self","url":"https://x/fhir/Patient?name=a&_count=1"}],` +
		`"entry":[{"fullUrl":"https://x/fhir/Patient/p1","resource":{"resourceType":"Patient","id":"p1"},"search":{"mode":"match"}}]}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
}

func TestBundleTotalZeroIsRendered(t *testing.T) {
	zero := 0
	b := NewBundle(BundleSearchset)
	b.Total = &zero
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"total":0`) {
		t.Errorf("total 0 missing: %s", out)
	}
}

func TestBundleTransactionResponseEntry(t *testing.T) {
	b := NewBundle(BundleTransactionResponse)
	b.Entry = []BundleEntry{{Response: &EntryResponse{Status: "201 Created", Location: "Patient/p1/_history/1", Etag: WeakETag("1"), LastModified: "2026-11-23T10:00:00.123Z"}}}
	out, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), `"response":{"status":"201 Created","location":"Patient/p1/_history/1","etag":"W/\"1\"","lastModified":"2026-11-23T10:00:00.123Z"}`) {
		t.Errorf("got %s", out)
	}
}
