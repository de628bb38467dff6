package fhir

import (
	"strings"
	"testing"
	"time"
)

func TestBookingRules(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	at := func(h int) time.Time { return now.Add(time.Duration(h) * time.Hour) }
	slot := func(id, status string, start time.Time, online bool) SlotInfo {
		return SlotInfo{ID: id, Status: status, Schedule: "Schedule/s", Start: start, End: start.Add(10 * time.Minute), OnlineBookable: online}
	}
	appt := func(status string, start, end time.Time, patients ...string) map[string]any {
		var parts []any
		for _, p := range patients {
			parts = append(parts, map[string]any{"actor": map[string]any{"reference": p}})
		}
		return map[string]any{"status": status, "start": start.Format(time.RFC3339), "end": end.Format(time.RFC3339), "participant": parts}
	}
	free := slot("a", "free", at(24), true)
	next := slot("b", "free", at(24).Add(10*time.Minute), true)
	tests := []struct {
		name      string
		appt      map[string]any
		slots     []SlotInfo
		byPatient bool
		kind      RuleKind
		says      string
	}{
		{"a free online slot is booked", appt("booked", free.Start, free.End, "Patient/p"), []SlotInfo{free}, true, 0, ""},
		{"adjacent slots together", appt("booked", free.Start, next.End, "Patient/p"), []SlotInfo{next, free}, true, 0, ""},
		{"a busy slot is taken", appt("booked", free.Start, free.End, "Patient/p"), []SlotInfo{slot("a", "busy", at(24), true)}, true, RuleConflict, SlotTakenMessage},
		{"not published online", appt("booked", free.Start, free.End, "Patient/p"), []SlotInfo{slot("a", "free", at(24), false)}, true, RuleInvalid, "not published"},
		{"the past", appt("booked", at(-2), at(-2).Add(10*time.Minute), "Patient/p"), []SlotInfo{slot("a", "free", at(-2), true)}, true, RuleInvalid, "already started"},
		{"status booked", appt("pending", free.Start, free.End, "Patient/p"), []SlotInfo{free}, true, RuleInvalid, "status booked"},
		{"one patient", appt("booked", free.Start, free.End, "Patient/p", "Patient/q"), []SlotInfo{free}, true, RuleInvalid, "exactly one patient"},
		{"times match the slots", appt("booked", free.Start, next.End, "Patient/p"), []SlotInfo{free}, true, RuleInvalid, "start and end"},
		{"gaps are refused", appt("booked", free.Start, at(25).Add(10*time.Minute), "Patient/p"), []SlotInfo{free, slot("c", "free", at(25), true)}, true, RuleInvalid, "adjacent"},
		{"no slot", appt("booked", free.Start, free.End, "Patient/p"), nil, true, RuleInvalid, "must name the slot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckBooking(tt.appt, tt.slots, tt.byPatient, now)
			if tt.kind == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || err.Kind != tt.kind || !strings.Contains(err.Message, tt.says) {
				t.Fatalf("got %+v, want kind %d saying %q", err, tt.kind, tt.says)
			}
		})
	}
}

func TestCancellationRules(t *testing.T) {
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	booked := func(start time.Time) map[string]any {
		return map[string]any{"status": "booked", "start": start.Format(time.RFC3339), "description": "GP"}
	}
	cancel := func(m map[string]any) map[string]any {
		c := map[string]any{}
		for k, v := range m {
			c[k] = v
		}
		c["status"], c["cancelationReason"] = "cancelled", map[string]any{"text": "better"}
		return c
	}
	in48 := booked(now.Add(48 * time.Hour))
	in2 := booked(now.Add(2 * time.Hour))
	changed := cancel(in48)
	changed["description"] = "other"
	tests := []struct {
		name      string
		old, next map[string]any
		byPatient bool
		frees     bool
		says      string
	}{
		{"a patient cancels", in48, cancel(in48), true, true, ""},
		{"only status and reason", in48, changed, true, false, "only status and cancelationReason"},
		{"inside the cut-off", in2, cancel(in2), true, false, "24 hours"},
		{"the practice may cancel inside the cut-off", in2, cancel(in2), false, true, ""},
		{"patients only cancel", in48, map[string]any{"status": "arrived", "start": in48["start"], "description": "GP"}, true, false, "only be cancelled"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			frees, err := CheckAppointmentChange(tt.old, tt.next, tt.byPatient, DefaultCancellationCut, now)
			if tt.says == "" && (err != nil || frees != tt.frees) {
				t.Fatalf("frees %v err %v, want frees %v", frees, err, tt.frees)
			}
			if tt.says != "" && (err == nil || !strings.Contains(err.Message, tt.says)) {
				t.Fatalf("got %v, want an error saying %q", err, tt.says)
			}
		})
	}
}

func TestSlotSearchRange(t *testing.T) {
	d := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	if CheckSlotSearchRange(d, d.AddDate(0, 0, 14)) != nil {
		t.Errorf("14 days must be allowed")
	}
	if e := CheckSlotSearchRange(d, d.AddDate(0, 0, 15)); e == nil || e.Kind != RuleBadRequest {
		t.Errorf("15 days must be a bad request: %v", e)
	}
	if e := CheckSlotSearchRange(d, time.Time{}); e == nil || e.Kind != RuleBadRequest {
		t.Errorf("an open range must be a bad request: %v", e)
	}
}

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

func TestOnlineAccessAndGrants(t *testing.T) {
	ext := func(parts ...[2]string) map[string]any {
		var subs []any
		for _, p := range parts {
			key := "valueCode"
			if p[0] == "recordFrom" {
				key = "valueDate"
			}
			subs = append(subs, map[string]any{"url": p[0], key: p[1]})
		}
		return map[string]any{"extension": []any{map[string]any{"url": OnlineAccessExtension, "extension": subs}}}
	}
	got, err := ParseOnlineAccess(ext([2]string{"record", "full"}, [2]string{"recordFrom", "2023-10-31"}), DefaultOnlineAccess)
	if err != nil || got.Record != RecordFull || got.RecordFrom.Format("2006-01-02") != "2023-10-31" || got.Appointments != ServiceManage {
		t.Errorf("parsed %+v, %v", got, err)
	}
	if _, err := ParseOnlineAccess(ext([2]string{"appointments", "book"}), DefaultOnlineAccess); err == nil || !strings.Contains(err.Message, "none, view, manage") {
		t.Errorf("a bad level must be refused naming the levels: %v", err)
	}
	if a, _ := ParseOnlineAccess(map[string]any{}, DefaultOnlineAccess); a != DefaultOnlineAccess {
		t.Errorf("no extension must give the defaults: %+v", a)
	}
	m := OnlineAccess{Record: RecordFull, Prescriptions: ServiceManage, Appointments: ServiceView}.Min(OnlineAccess{Record: RecordSummary, Prescriptions: ServiceManage, Appointments: ServiceManage})
	if m.Record != RecordSummary || m.Appointments != ServiceView {
		t.Errorf("Min = %+v", m)
	}
	now := time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		g    ProxyGrant
		says string
	}{
		{ProxyGrant{Active: true, Start: now.AddDate(-1, 0, 0), End: now.AddDate(1, 0, 0)}, ""},
		{ProxyGrant{Active: true, End: now.AddDate(0, 0, -1)}, "ended on 9 March 2025"},
		{ProxyGrant{Active: true, Start: now.AddDate(0, 0, 1)}, "starts on 11 March 2025"},
		{ProxyGrant{Active: false}, "withdrawn"},
	} {
		ok, why := tt.g.InForce(now)
		if ok != (tt.says == "") || !strings.Contains(why, tt.says) {
			t.Errorf("%+v: %v %q, want %q", tt.g, ok, why, tt.says)
		}
	}
	redacted := map[string]any{"meta": map[string]any{"security": []any{map[string]any{"system": ConfidentialitySystem, "code": "R"}}}}
	normal := map[string]any{"meta": map[string]any{"security": []any{map[string]any{"system": ConfidentialitySystem, "code": "N"}}}}
	if !IsRedacted(redacted) || IsRedacted(normal) {
		t.Errorf("R redacts, N does not")
	}
}
