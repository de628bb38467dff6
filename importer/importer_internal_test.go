package importer

import (
	"encoding/json"
	"testing"
)

func TestMayMentionMissesNoReference(t *testing.T) {
	refs := map[string]string{"urn:uuid:org-1": "Organization/org-1", "urn:uuid:pr-2": "Practitioner/pr-2"}
	for _, c := range []struct {
		name, raw string
		want      bool
	}{
		{"names a key", `{"serviceProvider":{"reference":"urn:uuid:org-1"}}`, true},
		{"names another key", `{"participant":[{"individual":{"reference":"urn:uuid:pr-2"}}]}`, true},
		{"names none", `{"subject":{"reference":"urn:uuid:patient-9"}}`, false},
		{"escapes a character, which could hide a key", `{"serviceProvider":{"reference":"urn\u003auuid:org-1"}}`, true},
		{"empty", ``, false},
	} {
		if got := mayMention(json.RawMessage(c.raw), refs); got != c.want {
			t.Errorf("%s: mayMention(%s) = %v, want %v", c.name, c.raw, got, c.want)
		}
	}
	// What mayMention lets through, walkRefs rewrites: the escaped key is the same reference.
	raw := json.RawMessage(`{"serviceProvider":{"reference":"urn\u003auuid:org-1"}}`)
	out, changed := walkRefs(raw, func(ref string) (string, bool) { return refs[ref], false })
	if !changed || string(out) != `{"serviceProvider":{"reference":"Organization/org-1"}}` {
		t.Errorf("walkRefs of the escaped key: %s (changed %v)", out, changed)
	}
}
