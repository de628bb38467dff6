package online

import (
	"strings"
	"testing"
	"time"
)

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
		return map[string]any{"extension": []any{map[string]any{"url": AccessExtension, "extension": subs}}}
	}
	got, err := ParseAccess(ext([2]string{"record", "full"}, [2]string{"recordFrom", "2023-10-31"}), DefaultAccess)
	if err != nil || got.Record != RecordFull || got.RecordFrom.Format("2006-01-02") != "2023-10-31" || got.Appointments != ServiceManage {
		t.Errorf("parsed %+v, %v", got, err)
	}
	if _, err := ParseAccess(ext([2]string{"appointments", "book"}), DefaultAccess); err == nil || !strings.Contains(err.Message, "none, view, manage") {
		t.Errorf("a bad level must be refused naming the levels: %v", err)
	}
	if a, _ := ParseAccess(map[string]any{}, DefaultAccess); a != DefaultAccess {
		t.Errorf("no extension must give the defaults: %+v", a)
	}
	m := Access{Record: RecordFull, Prescriptions: ServiceManage, Appointments: ServiceView}.Min(Access{Record: RecordSummary, Prescriptions: ServiceManage, Appointments: ServiceManage})
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

func TestPracticeAccessFailsClosedOnUnreadableLevels(t *testing.T) {
	levels := func(parts ...any) map[string]any {
		return map[string]any{"extension": []any{map[string]any{"url": AccessExtension, "extension": parts}}}
	}
	tests := []struct {
		name    string
		patient map[string]any
		want    Access
	}{
		{"no extension gives the defaults", map[string]any{}, DefaultAccess},
		{"a set level replaces the default", levels(map[string]any{"url": "record", "valueCode": "full"}),
			Access{Record: RecordFull, Prescriptions: ServiceManage, Appointments: ServiceManage}},
		{"an unknown level grants nothing", levels(map[string]any{"url": "record", "valueCode": "everything"}), NoAccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PracticeAccess(tt.patient); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}
