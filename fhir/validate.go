package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
)

// Resource is a parsed and validated FHIR R4 resource: the generic JSON tree that the API's checks and
// Extract read and that Finalize renders, once the library has validated it in its typed form.
// A Resource is not safe for concurrent use.
type Resource struct {
	typ      string
	tree     map[string]any
	warnings []Issue
}

// Type returns the resourceType.
func (r *Resource) Type() string { return r.typ }

// ID returns the resource's logical id, or "" if it has none.
func (r *Resource) ID() string {
	s, _ := r.tree["id"].(string)
	return s
}

// Tree returns the resource as decoded by encoding/json with UseNumber: objects are map[string]any,
// arrays []any, numbers json.Number. It is the Resource's own tree, and Finalize renders it, so callers
// must not change it: a change would be stored without having been validated. To apply a change (a patch),
// marshal a copy and Parse it again.
func (r *Resource) Tree() map[string]any { return r.tree }

// Warnings returns the library's warning-severity findings, which do not reject the resource.
func (r *Resource) Warnings() []Issue { return r.warnings }

// unmarshaller is safe for concurrent use: it keeps no state between calls.
var unmarshaller = sync.OnceValues(func() (*jsonformat.Unmarshaller, error) {
	return jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
})

// Parse decodes and validates a FHIR R4 JSON resource of any R4 type. It reports every problem the
// library finds, not only the first, as an *Error: Malformed when the body is not a resource of a known
// type, Invalid otherwise. Besides R4 (unknown elements, wrong JSON types, bad primitive formats, codes
// outside required bindings, missing required elements, reference target types), it applies the
// project rules: every NHS number identifier must pass CheckNHSNumber. Other errors are internal.
func Parse(body []byte) (*Resource, error) {
	tree, ferr := decodeTree(body)
	if ferr != nil {
		return nil, ferr
	}
	typ := tree["resourceType"].(string)
	u, err := unmarshaller()
	if err != nil {
		return nil, err
	}
	rep := &reporter{}
	// The typed form is only the library's check: what is stored is rendered from the tree (Finalize).
	_, err = u.UnmarshalWithErrorReporter(body, rep)
	var issues []Issue
	if err != nil {
		lib, ok := libraryErrors(err)
		if !ok {
			return nil, fmt.Errorf("fhir: parse: %w", err)
		}
		for _, le := range lib {
			if le.Details == "unknown resource type" {
				return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueNotSupported,
					fmt.Sprintf("resourceType %q is not a FHIR R4 resource type", typ), "resourceType")}}
			}
			if le.Details == "invalid JSON" && le.Path == "" {
				return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure,
					"the body is not valid JSON: "+le.Diagnostics)}}
			}
			issues = append(issues, le.issue(SeverityError))
		}
	}
	issues = append(issues, rep.errors...)
	issues = append(issues, checkProjectRules(tree, typ)...)
	if len(issues) > 0 {
		sortIssues(issues)
		return nil, &Error{Kind: Invalid, Issues: issues}
	}
	return &Resource{typ: typ, tree: tree, warnings: rep.warnings}, nil
}

// decodeTree decodes the generic tree and checks that the body is an object with a string resourceType.
func decodeTree(body []byte) (map[string]any, *Error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	if err == nil && len(bytes.TrimSpace(body[dec.InputOffset():])) > 0 {
		err = errors.New("unexpected data after the top-level value")
	}
	if err != nil {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "the body is not valid JSON: "+err.Error())}}
	}
	tree, ok := v.(map[string]any)
	if !ok {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "the body must be a JSON object (a FHIR resource)")}}
	}
	rt, present := tree["resourceType"]
	if !present {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueRequired, "resourceType is missing: a FHIR resource names its type in resourceType", "resourceType")}}
	}
	if s, ok := rt.(string); !ok || s == "" {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "resourceType must be a non-empty string", "resourceType")}}
	}
	return tree, nil
}

func sortIssues(issues []Issue) {
	sort.SliceStable(issues, func(i, j int) bool {
		return firstExpr(issues[i]) < firstExpr(issues[j])
	})
}

func firstExpr(i Issue) string {
	if len(i.Expression) == 0 {
		return ""
	}
	return i.Expression[0]
}

// reporter collects the library's validation findings (run after a successful structural parse).
type reporter struct {
	errors, warnings []Issue
}

func (r *reporter) ReportValidationError(path string, err error) error {
	r.errors = append(r.errors, r.issue(path, err, SeverityError)...)
	return nil
}

func (r *reporter) ReportValidationWarning(path string, err error) error {
	r.warnings = append(r.warnings, r.issue(path, err, SeverityWarning)...)
	return nil
}

func (r *reporter) issue(path string, err error, sev string) []Issue {
	lib, ok := libraryErrors(err)
	if !ok {
		return []Issue{{Severity: sev, Code: IssueInvalid, Diagnostics: err.Error(), Expression: exprList(toFHIRPath(path))}}
	}
	out := make([]Issue, 0, len(lib))
	for _, le := range lib {
		if le.Path == "" {
			le.Path = path
		}
		out = append(out, le.issue(sev))
	}
	return out
}

// libError mirrors the library's internal UnmarshalError, read by reflection because its package is
// internal. Path is the library's dotted JSON path ("Patient.name[0].family").
type libError struct {
	Path, Details, Diagnostics string
}

// libraryErrors unpacks a *jsonpbhelper.UnmarshalError or UnmarshalErrorList. ok is false for any other
// error, which is then not a validation finding.
func libraryErrors(err error) (out []libError, ok bool) {
	v := reflect.ValueOf(err)
	one := func(p reflect.Value) bool {
		if p.Kind() != reflect.Pointer || p.IsNil() || p.Elem().Kind() != reflect.Struct {
			return false
		}
		s := p.Elem()
		path, det, diag := s.FieldByName("Path"), s.FieldByName("Details"), s.FieldByName("Diagnostics")
		if !path.IsValid() || !det.IsValid() || !diag.IsValid() || path.Kind() != reflect.String {
			return false
		}
		out = append(out, libError{path.String(), det.String(), diag.String()})
		return true
	}
	switch v.Kind() {
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			if e.Kind() == reflect.Interface {
				e = e.Elem()
			}
			if !one(e) {
				return nil, false
			}
		}
		return out, len(out) > 0
	case reflect.Pointer:
		return out, one(v)
	}
	return nil, false
}

var (
	reQuoted       = regexp.MustCompile(`^"(.*)"$`)
	reCodeMismatch = regexp.MustCompile(`^(".*") is not a (\w+?)Code$`)
	reRequired     = regexp.MustCompile(`^missing required field "(\w+)"$`)
	reRefType      = regexp.MustCompile(`^invalid reference to a (\w+) resource, want (.*)$`)
	reMultiChoice  = regexp.MustCompile(`^cannot accept multiple values for (\w+) field$`)
	reBadFormat    = regexp.MustCompile(`^invalid (\w+) format$`)
)

// issue turns one library finding into an Issue with plain-English diagnostics.
func (le libError) issue(sev string) Issue {
	expr := toFHIRPath(le.Path)
	diag := le.Diagnostics
	unquoted := diag
	if m := reQuoted.FindStringSubmatch(diag); m != nil {
		if s, err := strconv.Unquote(diag); err == nil {
			unquoted = s
		} else {
			unquoted = m[1]
		}
	}
	mk := func(code, text, at string) Issue {
		return Issue{Severity: sev, Code: code, Diagnostics: text, Expression: exprList(at)}
	}
	switch d := le.Details; {
	case d == "unknown field":
		name := strings.TrimPrefix(unquoted, "_")
		at := joinPath(expr, name)
		return mk(IssueStructure, fmt.Sprintf("%s is not a known element: %q is not part of the FHIR R4 definition of %s",
			at, unquoted, lastName(le.Path)), at)
	case d == "code type mismatch":
		if m := reCodeMismatch.FindStringSubmatch(diag); m != nil {
			return mk(IssueCodeInvalid, fmt.Sprintf("%s has the code %s, which is not in the required value set %s",
				expr, m[1], m[2]), expr)
		}
		return mk(IssueCodeInvalid, fmt.Sprintf("%s has a code outside its required value set: %s", expr, diag), expr)
	case strings.HasPrefix(d, "expected "):
		what := strings.TrimPrefix(d, "expected ")
		text := fmt.Sprintf("%s must be %s %s", expr, article(what), what)
		if strings.TrimSpace(diag) == "" || strings.TrimSpace(diag) == "found" {
			diag = "found null"
		}
		return mk(IssueValue, text+", "+diag, expr)
	case reBadFormat.MatchString(d):
		what := reBadFormat.FindStringSubmatch(d)[1]
		if what == "Id" {
			return mk(IssueValue, fmt.Sprintf("%s is not a valid id: ids are 1 to 64 characters, each a letter, digit, '-' or '.'", expr), expr)
		}
		return mk(IssueValue, fmt.Sprintf("%s is not a valid %s", expr, what), expr)
	case reRequired.MatchString(d):
		field := reRequired.FindStringSubmatch(d)[1]
		at := joinPath(expr, jsonName(field))
		return mk(IssueRequired, fmt.Sprintf("%s is required but missing", at), at)
	case reRefType.MatchString(d):
		m := reRefType.FindStringSubmatch(d)
		return mk(IssueInvalid, fmt.Sprintf("%s refers to a %s, but may only refer to %s", expr, m[1], m[2]), expr)
	case reMultiChoice.MatchString(d):
		m := reMultiChoice.FindStringSubmatch(d)
		return mk(IssueStructure, fmt.Sprintf("%s has more than one %s[x] element (%s is one of them); only one type may be given",
			expr, m[1], diag), joinPath(expr, m[1]))
	case d == "invalid JSON":
		return mk(IssueStructure, fmt.Sprintf("%s is not valid JSON of the expected shape", expr), expr)
	}
	text := expr
	if text != "" {
		text += ": "
	}
	text += le.Details
	if diag != "" {
		text += " (" + diag + ")"
	}
	return mk(IssueValue, text, expr)
}

func exprList(e string) []string {
	if e == "" {
		return nil
	}
	return []string{e}
}

func joinPath(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func lastName(expr string) string {
	if i := strings.LastIndexByte(expr, '.'); i >= 0 {
		expr = expr[i+1:]
	}
	if i := strings.IndexByte(expr, '['); i >= 0 {
		expr = expr[:i]
	}
	return expr
}

func article(w string) string {
	if w != "" && strings.ContainsRune("aeiou", rune(w[0])) {
		return "an"
	}
	return "a"
}

// jsonName converts a proto field name (snake_case) to its FHIR JSON name (camelCase).
func jsonName(field string) string {
	parts := strings.Split(field, "_")
	for i := 1; i < len(parts); i++ {
		if parts[i] != "" {
			parts[i] = strings.ToUpper(parts[i][:1]) + parts[i][1:]
		}
	}
	return strings.Join(parts, "")
}

// toFHIRPath converts the library's JSON path to a FHIRPath location: primitive-extension names lose
// their underscore ("Patient._gender" -> "Patient.gender") and a contained resource's type segment is
// dropped ("Patient.contained[0].Organization.name" -> "Patient.contained[0].name", and likewise for
// Bundle.entry[n].resource). Choice elements
// keep their JSON names ("Immunization.occurrenceDateTime").
func toFHIRPath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, ".")
	out := segs[:0]
	for i, s := range segs {
		if i > 0 && s != "" && s[0] >= 'A' && s[0] <= 'Z' {
			continue // the type segment of a contained or entry resource
		}
		if i > 0 {
			s = strings.TrimPrefix(s, "_")
		}
		out = append(out, s)
	}
	return strings.Join(out, ".")
}

// checkProjectRules walks the tree for what the library lets through or what the project adds:
//   - element names must start with a lower-case letter (the library also accepts "Gender" for "gender",
//     which would then be stored under a name no search finds);
//   - FHIR JSON has no empty strings, objects or arrays (the library drops or keeps them silently);
//   - every NHS number identifier, anywhere in the resource (contained resources and logical references
//     included), passes the Modulus 11 check.
func checkProjectRules(tree map[string]any, typ string) []Issue {
	var issues []Issue
	var walk func(v any, at string)
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if sys, _ := v["system"].(string); sys == NHSNumberSystem {
				if val, ok := v["value"].(string); ok {
					if err := CheckNHSNumber(val); err != nil {
						issues = append(issues, NewIssue(IssueValue,
							fmt.Sprintf("%s.value is not a valid NHS number: %s", at, err.Error()), at+".value"))
					}
				}
			}
			for _, k := range sortedKeys(v) {
				name := strings.TrimPrefix(k, "_")
				childAt := at + "." + name
				if name == "" || name[0] < 'a' || name[0] > 'z' {
					issues = append(issues, NewIssue(IssueStructure,
						fmt.Sprintf("%s is not a known element: FHIR element names are case-sensitive and start with a lower-case letter, found %q", childAt, k), childAt))
					continue
				}
				switch child := v[k].(type) {
				case string:
					if strings.TrimSpace(child) == "" {
						issues = append(issues, NewIssue(IssueValue,
							fmt.Sprintf("%s is empty: FHIR strings must have content; leave the element out instead", childAt), childAt))
					}
				case map[string]any:
					if len(child) == 0 {
						issues = append(issues, NewIssue(IssueStructure,
							fmt.Sprintf("%s is an empty object: FHIR elements must have a value or children; leave it out instead", childAt), childAt))
						continue
					}
					walk(child, childAt)
				case []any:
					if len(child) == 0 {
						issues = append(issues, NewIssue(IssueStructure,
							fmt.Sprintf("%s is an empty array: leave the element out instead", childAt), childAt))
						continue
					}
					walk(child, childAt)
				}
			}
		case []any:
			for i, e := range v {
				elemAt := at + "[" + strconv.Itoa(i) + "]"
				switch e := e.(type) {
				case string:
					if strings.TrimSpace(e) == "" {
						issues = append(issues, NewIssue(IssueValue,
							fmt.Sprintf("%s is empty: FHIR strings must have content", elemAt), elemAt))
					}
				case map[string]any:
					if len(e) == 0 {
						issues = append(issues, NewIssue(IssueStructure,
							fmt.Sprintf("%s is an empty object: FHIR elements must have a value or children", elemAt), elemAt))
						continue
					}
					walk(e, elemAt)
				case []any:
					walk(e, elemAt)
				}
			}
		}
	}
	walk(tree, typ)
	return issues
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// MaxID is the longest logical id R4 allows.
const MaxID = 64

// ValidID reports whether s is a valid R4 logical id: 1-64 of [A-Za-z0-9-.].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxID {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// FormatInstant renders t as a FHIR instant in UTC with millisecond precision: 2026-11-23T10:00:00.123Z.
func FormatInstant(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// Finalize stamps the resource as a stored version: it sets id, meta.versionId and meta.lastUpdated
// (truncated to milliseconds, UTC), keeps the rest of meta (tag, profile, security, source), and returns
// the canonical JSON: compact, resourceType first, every object's members in sorted order, and every value
// as it was written. The Resource's tree is updated to match.
//
// The JSON is rendered from the tree rather than from the library's typed form. Both hold the same
// content, and the typed form would round every time to microseconds and pad fractions of a second to
// milliseconds (10:00:00.5 became 10:00:00.500, and nanoseconds were lost), when in FHIR the precision
// written is part of the value. Rendering the typed form also cost 13% of an import's CPU, half of it
// in a time-zone database look-up for every date-time with an offset.
func (r *Resource) Finalize(id string, version int64, lastUpdated time.Time) ([]byte, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("fhir: finalize: invalid id %q", id)
	}
	r.tree["id"] = id
	mt, _ := r.tree["meta"].(map[string]any)
	if mt == nil {
		mt = map[string]any{}
		r.tree["meta"] = mt
	}
	mt["versionId"] = strconv.FormatInt(version, 10)
	mt["lastUpdated"] = FormatInstant(lastUpdated)

	var buf bytes.Buffer
	buf.Grow(1024)
	buf.WriteString(`{"resourceType":`)
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(r.typ); err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(r.tree))
	for k := range r.tree {
		if k != "resourceType" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		trimNewline(&buf)
		buf.WriteByte(',')
		if err := enc.Encode(k); err != nil {
			return nil, err
		}
		trimNewline(&buf)
		buf.WriteByte(':')
		if err := enc.Encode(r.tree[k]); err != nil {
			return nil, fmt.Errorf("fhir: finalize: %w", err)
		}
	}
	trimNewline(&buf)
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func trimNewline(b *bytes.Buffer) {
	if n := b.Len(); n > 0 && b.Bytes()[n-1] == '\n' {
		b.Truncate(n - 1)
	}
}
