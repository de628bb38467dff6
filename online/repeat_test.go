package online

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestRepeatRules(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	ok := Plan{ID: "p", Intent: "plan", Status: "active", Patient: "Patient/a", Issued: 2, Allowed: 6, Expiry: now.AddDate(0, 6, 0)}
	with := func(f func(*Plan)) Plan { p := ok; f(&p); return p }
	task := map[string]any{"status": "requested", "intent": "order",
		"code":  map[string]any{"coding": []any{map[string]any{"system": SNOMEDSystem, "code": RenewalCode}}},
		"focus": map[string]any{"reference": "MedicationRequest/p"}, "for": map[string]any{"reference": "Patient/a"}}
	tests := []struct {
		name string
		plan Plan
		says string
	}{
		{"an active plan with issues left", ok, ""},
		{"not active", with(func(p *Plan) { p.Status = "stopped" }), "no longer active"},
		{"expired", with(func(p *Plan) { p.Expiry = now.AddDate(0, 0, -1) }), "expired on 9 March 2025"},
		{"used up", with(func(p *Plan) { p.Issued = 6 }), "all 6 issues"},
		{"not a plan", with(func(p *Plan) { p.Intent = "order" }), "repeat authorisation"},
		{"not theirs", with(func(p *Plan) { p.Patient = "Patient/b" }), "not for the patient"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckRepeatRequest(task, tt.plan, now)
			if (err == nil) != (tt.says == "") || err != nil && !strings.Contains(err.Message, tt.says) {
				t.Fatalf("got %v, want %q", err, tt.says)
			}
		})
	}
	requested := map[string]any{"status": "requested", "focus": task["focus"]}
	step := func(to string, extra map[string]any) map[string]any {
		m := map[string]any{"status": to, "focus": task["focus"]}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	if s, err := CheckTaskChange(requested, step("completed", nil), false); err != nil || s != TaskComplete {
		t.Errorf("GP completes: %v %v", s, err)
	}
	if _, err := CheckTaskChange(requested, step("rejected", nil), false); err == nil {
		t.Errorf("a rejection without a reason must be refused")
	}
	if s, err := CheckTaskChange(requested, step("rejected", map[string]any{"statusReason": map[string]any{"text": "review"}}), false); err != nil || s != TaskReject {
		t.Errorf("GP rejects with a reason: %v %v", s, err)
	}
	if _, err := CheckTaskChange(requested, step("completed", nil), true); err == nil {
		t.Errorf("a patient cannot complete a request")
	}
	if s, err := CheckTaskChange(requested, step("cancelled", nil), true); err != nil || s != TaskCancel {
		t.Errorf("a patient cancels: %v %v", s, err)
	}
	if _, err := CheckTaskChange(step("completed", nil), step("in-progress", nil), false); err == nil {
		t.Errorf("a completed request cannot move back")
	}
	counted := ParsePlan("p", CountIssue(map[string]any{"intent": "plan"}, 2))
	if counted.Issued != 3 {
		t.Errorf("CountIssue: %d issues, want 3", counted.Issued)
	}
}

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
