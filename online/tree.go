package online

import (
	"encoding/json"
	"reflect"
	"slices"
	"time"
)

// Small readers of decoded JSON trees that the rules share. Walking element paths, references and
// extensions are FHIR mechanics and come from package fhir.

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func instant(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// sameExcept reports whether two trees are equal apart from the named top-level elements. Both are
// compared as JSON values, so number forms do not matter.
func sameExcept(a, b map[string]any, skip ...string) bool {
	norm := func(m map[string]any) any {
		c := make(map[string]any, len(m))
		for k, v := range m {
			if !slices.Contains(skip, k) {
				c[k] = v
			}
		}
		raw, _ := json.Marshal(c)
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}

func pick(m map[string]any, k string) map[string]any { return map[string]any{k: m[k]} }

// number reads a JSON number: as the API decodes stored bodies (json.Number, fhir.DecodeObject), as
// encoding/json decodes by default (float64), or built in Go (int).
func number(v any) (int, bool) {
	switch n := v.(type) {
	case json.Number:
		if i, err := n.Int64(); err == nil {
			return int(i), true
		}
		if f, err := n.Float64(); err == nil {
			return int(f), true
		}
	case float64:
		return int(n), true
	case int:
		return n, true
	}
	return 0, false
}
