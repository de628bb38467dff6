package fhir

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// A FHIRPath evaluator for the part of FHIRPath that R4 search-parameter expressions use, written apart
// from Translate and Extract: it walks the JSON tree by the expression alone, resolving a choice element
// by its name prefix as FHIRPath over JSON does, with no use of the R4 proto descriptors or of Path. The
// test below compares what it selects with what Extract indexes, for every served parameter, so that a
// mistake in the translation (a wrong choice suffix, a lost filter, a dropped union term) shows up as a
// difference.

// fpNode is one value an expression selects; choice is the type suffix when it was reached through a
// choice element ("DateTime" for onsetDateTime).
type fpNode struct {
	v      any
	choice string
}

func fpEval(res map[string]any, expr string) ([]fpNode, error) {
	var out []fpNode
	for _, term := range fpSplit(expr, '|') {
		term = fpUnparen(strings.TrimSpace(term))
		cast := ""
		if i := strings.Index(term, " as "); i > 0 {
			term, cast = fpUnparen(strings.TrimSpace(term[:i])), strings.TrimSpace(term[i+4:])
		}
		steps := fpSplit(term, '.')
		if steps[0] != res["resourceType"] {
			continue
		}
		if cast != "" {
			steps = append(steps, "ofType("+cast+")")
		}
		cur := []fpNode{{v: res}}
		for _, step := range steps[1:] {
			var next []fpNode
			for _, n := range cur {
				sel, err := fpStep(n, step)
				if err != nil {
					return nil, err
				}
				next = append(next, sel...)
			}
			cur = next
		}
		out = append(out, cur...)
	}
	return out, nil
}

func fpStep(n fpNode, step string) ([]fpNode, error) {
	arg := func(prefix string) (string, bool) {
		if strings.HasPrefix(step, prefix) && strings.HasSuffix(step, ")") {
			return step[len(prefix) : len(step)-1], true
		}
		return "", false
	}
	m, _ := n.v.(map[string]any)
	if t, ok := arg("as("); ok {
		step = "ofType(" + t + ")"
	}
	if t, ok := arg("ofType("); ok {
		if strings.EqualFold(n.choice, t) {
			return []fpNode{n}, nil
		}
		return nil, nil
	}
	if t, ok := arg("where(resolve() is "); ok {
		if ref, _ := m["reference"].(string); strings.HasPrefix(ref, t+"/") {
			return []fpNode{n}, nil
		}
		return nil, nil
	}
	if cond, ok := arg("where("); ok {
		f, v, _ := strings.Cut(cond, "=")
		if m != nil && fmt.Sprint(m[strings.TrimSpace(f)]) == strings.Trim(strings.TrimSpace(v), "'") {
			return []fpNode{n}, nil
		}
		return nil, nil
	}
	if strings.ContainsAny(step, "()") {
		return nil, fmt.Errorf("the evaluator does not know %s", step)
	}
	if m == nil {
		return nil, nil
	}
	var out []fpNode
	add := func(v any, choice string) {
		if a, ok := v.([]any); ok {
			for _, e := range a {
				out = append(out, fpNode{v: e, choice: choice})
			}
			return
		}
		out = append(out, fpNode{v: v, choice: choice})
	}
	if v, ok := m[step]; ok {
		add(v, "")
		return out, nil
	}
	for k, v := range m {
		if len(k) > len(step) && strings.HasPrefix(k, step) && k[len(step)] >= 'A' && k[len(step)] <= 'Z' {
			add(v, k[len(step):])
		}
	}
	return out, nil
}

func fpSplit(s string, sep byte) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
		case sep:
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func fpUnparen(s string) string {
	if strings.HasPrefix(s, "(") && strings.HasSuffix(s, ")") && !strings.Contains(s[1:len(s)-1], "(") {
		return s[1 : len(s)-1]
	}
	return s
}

// fpExpected is what a selected value should be indexed as for a parameter of type pt, as comparable
// keys. A token key is "system|code", or "*|code" for a code whose system the expression does not carry.
func fpExpected(pt ParamType, nodes []fpNode, base string) map[string]bool {
	out := map[string]bool{}
	for _, n := range nodes {
		m, _ := n.v.(map[string]any)
		s, isStr := n.v.(string)
		switch pt {
		case ParamToken:
			switch {
			case isStr:
				out["*|"+s] = true
			case n.v == true || n.v == false:
				out["*|"+strconv.FormatBool(n.v.(bool))] = true
			case m == nil:
			case m["coding"] != nil || m["text"] != nil && m["value"] == nil:
				for _, c := range Walk(m, "coding") {
					if cm, _ := c.(map[string]any); cm != nil && str(cm, "code") != "" {
						out[str(cm, "system")+"|"+str(cm, "code")] = true
					}
				}
			case m["code"] != nil:
				out[str(m, "system")+"|"+str(m, "code")] = true
			case m["value"] != nil || m["system"] != nil:
				out[str(m, "system")+"|"+str(m, "value")] = true
			}
		case ParamString:
			if isStr {
				out[s] = true
			}
			for _, k := range []string{"text", "family", "given", "prefix", "suffix", "line", "city", "district", "state", "postalCode", "country"} {
				for _, v := range Walk(m, k) {
					if vs, ok := v.(string); ok && vs != "" {
						out[vs] = true
					}
				}
			}
		case ParamDate:
			if isStr {
				if lo, hi, err := ParseDateRange(s); err == nil {
					out[fmt.Sprint(lo, "..", hi)] = true
				}
			} else if m != nil && (m["start"] != nil || m["end"] != nil) {
				lo, hi := MinInstant, MaxInstant
				if st, ok := m["start"].(string); ok {
					lo, _, _ = ParseDateRange(st)
				}
				if en, ok := m["end"].(string); ok {
					_, hi, _ = ParseDateRange(en)
				}
				out[fmt.Sprint(lo, "..", hi)] = true
			}
		case ParamReference:
			ref, _ := m["reference"].(string)
			if typ, id, ok := LocalRef(ref, base); ok {
				out[typ+"/"+id] = true
			} else if IsAbsoluteURL(ref) {
				out[ref] = true
			}
		case ParamURI:
			if isStr {
				out[s] = true
			}
		}
	}
	return out
}

// fpIndexed is what Extract indexed for parameter p, as the same keys.
func fpIndexed(p *SearchParam, entries []IndexEntry, expected map[string]bool) map[string]bool {
	out := map[string]bool{}
	for _, e := range entries {
		if e.Param != p.Code {
			continue
		}
		switch p.Type {
		case ParamToken:
			if e.Value == "" && e.System == "" {
				continue // the text-only entry of a CodeableConcept, for :text
			}
			if k := e.System + "|" + e.Value; expected[k] || !expected["*|"+e.Value] {
				out[k] = true
			} else {
				out["*|"+e.Value] = true // a code, with the system its binding implies
			}
		case ParamDate:
			out[fmt.Sprint(e.Low, "..", e.High)] = true
		default:
			out[e.Value] = true
		}
	}
	return out
}

func sortedKeys2(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// realisticResources are the hand-written fixtures (a resource of every served type, most elements
// filled) and, when the shared sample is there, Synthea's records of served types, with their urn:uuid
// references rewritten as the Type/id references they stand for.
func realisticResources(t *testing.T) []map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/realistic.json")
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(syntheaArchive); err != nil {
		t.Logf("Synthea sample not available (%v): the hand-written fixtures only", err)
		return out
	}
	syntheaBundles(t, 3, func(name string, b Bundle) {
		urls := map[string]string{}
		var trees []map[string]any
		for _, e := range b.Entry {
			var tree map[string]any
			if err := json.Unmarshal(e.Resource, &tree); err != nil {
				t.Fatal(err)
			}
			urls[e.FullURL] = fmt.Sprint(tree["resourceType"], "/", tree["id"])
			trees = append(trees, tree)
		}
		for _, tree := range trees {
			if _, ok := LookupType(tree["resourceType"].(string)); !ok {
				continue
			}
			var fix func(v any)
			fix = func(v any) {
				switch v := v.(type) {
				case map[string]any:
					if r, ok := v["reference"].(string); ok && urls[r] != "" {
						v["reference"] = urls[r]
					}
					for _, c := range v {
						fix(c)
					}
				case []any:
					for _, c := range v {
						fix(c)
					}
				}
			}
			fix(tree)
			out = append(out, tree)
		}
	})
	return out
}

// TestIndexValuesAreWhatTheR4ExpressionSelects: for every served parameter and every realistic resource
// of its type, the index entries Extract writes are exactly what the parameter's R4 expression selects,
// evaluated independently. Every parameter of the record types must be exercised by some resource.
func TestIndexValuesAreWhatTheR4ExpressionSelects(t *testing.T) {
	resources := realisticResources(t)
	exercised := map[string]bool{}
	served := map[string]bool{}
	for _, tree := range resources {
		typ := tree["resourceType"].(string)
		served[typ] = true
		ti, _ := LookupType(typ)
		body, _ := json.Marshal(tree)
		entries, err := ExtractBody(body, testBase)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ti.Params {
			if p.FromStore || p.Code == "online-bookable" {
				continue
			}
			nodes, err := fpEval(tree, p.Expression)
			if err != nil {
				t.Fatalf("%s.%s: %v", typ, p.Code, err)
			}
			want := fpExpected(p.Type, nodes, testBase)
			got := fpIndexed(p, entries, want)
			if len(want) > 0 {
				exercised[typ+"."+p.Code] = true
			}
			if w, g := sortedKeys2(want), sortedKeys2(got); strings.Join(w, "\n") != strings.Join(g, "\n") {
				t.Errorf("%s/%v %s (%s):\n indexed  %q\n selected %q", typ, tree["id"], p.Code, p.Expression, g, w)
			}
		}
	}
	var missing []string
	for _, ti := range Types() {
		if !served[ti.Name] {
			t.Errorf("no realistic %s to check", ti.Name)
		}
		for _, p := range ti.Params {
			// The common meta parameters are the same on every type: exercised on Patient, they are
			// exercised for all.
			common := ti.Name != "Patient" && (p.Code == "_tag" || p.Code == "_profile" || p.Code == "_security")
			if !p.FromStore && !common && !exercised[ti.Name+"."+p.Code] && p.Code != "online-bookable" {
				missing = append(missing, ti.Name+"."+p.Code)
			}
		}
	}
	if len(missing) > 0 {
		t.Errorf("parameters no realistic resource exercises: %v", missing)
	}
}
