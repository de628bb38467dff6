package online

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
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

func TestSlotSearchRangeReadsTheTightestBoundsOfTheStartValues(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2025, 3, d, 0, 0, 0, 0, time.UTC) }
	tests := []struct {
		name      string
		starts    []string
		low, high time.Time
	}{
		{"ge and le", []string{"ge2025-03-10", "le2025-03-24"}, day(10), day(24)},
		{"gt and lt, one value", []string{"gt2025-03-10,lt2025-03-24"}, day(10), day(24)},
		{"the latest lower and earliest upper bound", []string{"ge2025-03-10", "ge2025-03-12", "le2025-03-28", "le2025-03-20"}, day(12), day(20)},
		{"eq bounds both sides", []string{"eq2025-03-10"}, day(10), day(10)},
		{"no prefix is eq", []string{"2025-03-10"}, day(10), day(10)},
		{"an open range", []string{"ge2025-03-10"}, day(10), time.Time{}},
		{"a malformed date is skipped", []string{"ge2025-03-10", "leMarch"}, day(10), time.Time{}},
		{"none", nil, time.Time{}, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			low, high := SlotSearchRange(tt.starts)
			if !low.Equal(tt.low) || !high.Equal(tt.high) {
				t.Errorf("got %v to %v, want %v to %v", low, high, tt.low, tt.high)
			}
		})
	}
}

func TestBookableOnlyWhenTheExtensionIsTrue(t *testing.T) {
	with := func(v any) map[string]any {
		return map[string]any{"extension": []any{map[string]any{"url": fhir.OnlineBookableExtension, "valueBoolean": v}}}
	}
	tests := []struct {
		name string
		tree map[string]any
		want bool
	}{
		{"true", with(true), true},
		{"false", with(false), false},
		{"not a boolean", with("true"), false},
		{"no extension", map[string]any{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Bookable(tt.tree); got != tt.want {
				t.Errorf("Bookable = %v, want %v", got, tt.want)
			}
			if got := ParseSlot("s", tt.tree).OnlineBookable; got != tt.want {
				t.Errorf("ParseSlot.OnlineBookable = %v, want %v", got, tt.want)
			}
		})
	}
}
