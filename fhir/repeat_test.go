package fhir

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOutstandingRequestMarker(t *testing.T) {
	other := map[string]any{"url": "https://example.org/other", "valueString": "kept"}
	plan := map[string]any{"intent": "plan", "extension": []any{other}}

	marked := MarkOutstanding(plan, "t1")
	if got := ParsePlan("p", marked).Outstanding; got != "t1" {
		t.Fatalf("marked plan names %q, want t1", got)
	}
	if ParsePlan("p", plan).Outstanding != "" || len(plan["extension"].([]any)) != 1 {
		t.Errorf("MarkOutstanding changed its input: %v", plan)
	}
	b, _ := json.Marshal(marked)
	if !strings.Contains(string(b), `{"url":"`+OutstandingRequestExtension+`","valueReference":{"reference":"Task/t1"}}`) ||
		!strings.Contains(string(b), "kept") {
		t.Errorf("marked plan %s: want the other extension and a bare reference", b)
	}
	// A new request replaces a stale marker rather than adding a second.
	again := MarkOutstanding(marked, "t2")
	if n := len(again["extension"].([]any)); n != 2 || ParsePlan("p", again).Outstanding != "t2" {
		t.Errorf("re-marked plan: %v", again)
	}

	if _, changed := ClearOutstanding(marked, "t2"); changed {
		t.Errorf("a marker naming another request must stay")
	}
	if _, changed := ClearOutstanding(marked, ""); changed {
		t.Errorf("no request id clears nothing")
	}
	cleared, changed := ClearOutstanding(marked, "t1")
	if !changed || ParsePlan("p", cleared).Outstanding != "" || len(cleared["extension"].([]any)) != 1 {
		t.Errorf("cleared plan: %v (changed %v)", cleared, changed)
	}
	bare, _ := ClearOutstanding(MarkOutstanding(map[string]any{"intent": "plan"}, "t1"), "t1")
	if _, ok := bare["extension"]; ok {
		t.Errorf("a plan left without extensions must not carry an empty array: %v", bare)
	}
	// Completion counts the issue and clears the marker in one plan version.
	done, _ := ClearOutstanding(CountIssue(marked, 2), "t1")
	if p := ParsePlan("p", done); p.Issued != 3 || p.Outstanding != "" {
		t.Errorf("completed plan: %+v", p)
	}
}

func TestCheckNoOutstandingRequest(t *testing.T) {
	for _, status := range OutstandingTaskStatuses {
		e := CheckNoOutstandingRequest("t1", status)
		if e == nil || e.Kind != RuleConflict || !strings.HasPrefix(e.Message, OutstandingRequestMessage) ||
			!strings.Contains(e.Message, "Task/t1") {
			t.Errorf("%s: got %v, want a conflict naming Task/t1", status, e)
		}
	}
	// A marker left by a request that finished or was deleted, and a plan with none, do not block.
	for _, status := range []string{"completed", "rejected", "cancelled", "failed", ""} {
		if e := CheckNoOutstandingRequest("t1", status); e != nil {
			t.Errorf("%q: %v", status, e)
		}
	}
	if e := CheckNoOutstandingRequest("", "requested"); e != nil {
		t.Errorf("no request: %v", e)
	}
}
