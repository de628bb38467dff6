package online

import (
	"strings"
	"testing"
)

func TestPracticeBoundary(t *testing.T) {
	tests := []struct {
		name       string
		act        PracticeAction
		registered []string
		at         []string
		kind       RuleKind
		says       string
	}{
		{"a slot at the registered practice", ActBook, []string{"A81001"}, []string{"A81001"}, 0, ""},
		{"a slot shared with the registered practice", ActBook, []string{"A81001"}, []string{"B82001", "A81001"}, 0, ""},
		{"a slot at another practice", ActBook, []string{"A81001"}, []string{"B82001"}, RuleForbidden, "only at the practice they are registered with (A81001); this slot belongs to practice B82001"},
		{"a cancellation at another practice", ActCancel, []string{"A81001"}, []string{"B82001"}, RuleForbidden, "cancel appointments only"},
		{"a repeat request to another practice", ActRepeat, []string{"A81001"}, []string{"B82001"}, RuleForbidden, "addressed to practice B82001"},
		{"a slot that names no practice", ActBook, []string{"A81001"}, nil, RuleInvalid, "names no practice"},
		{"a patient registered nowhere", ActBook, nil, []string{"A81001"}, RuleForbidden, "not registered with a GP practice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := CheckPractice(tt.act, tt.registered, tt.at)
			if tt.kind == 0 {
				if e != nil {
					t.Fatalf("refused: %v", e)
				}
				return
			}
			if e == nil || e.Kind != tt.kind || !strings.Contains(e.Message, tt.says) {
				t.Fatalf("got %+v, want kind %d saying %q", e, tt.kind, tt.says)
			}
		})
	}
}
