package api

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// searchQuery is a parsed search: the store query plus the result controls and what was applied.
type searchQuery struct {
	store store.Query
	count int
	total string
	// summary is the _summary value ("" when absent); elements the _elements names.
	summary  string
	elements []string
	// includes are the _include and _revinclude parameters, in the order given.
	includes []includeSpec
	// applied holds the parameters that took effect, for the self link and the cursor scope.
	applied url.Values
	// notes are issues for the outcome entry: ignored parameters, a clamped _count.
	notes []fhir.Issue
}

// resultParams are the parameters that control results rather than select resources. They are matched on
// the name before any modifier (_include:iterate).
var resultParams = map[string]bool{
	"_count": true, "_sort": true, "_total": true, "_format": true, "_pretty": true, cursorParam: true,
	"_summary": true, "_elements": true, "_include": true, "_revinclude": true,
}

// maxChainDepth bounds chains and _has nesting: each level is a sub-query, and a deep one is more likely a
// mistake or an attempt to make the server work hard than a real need.
const maxChainDepth = 4

// unsupported is a parameter this server does not know, or knows but cannot apply. By default it is
// ignored and reported in the outcome entry; under Prefer: handling=strict it is a 400.
type unsupported struct {
	key, why string
}

func (u *unsupported) Error() string { return u.key + ": " + u.why }

// parseSearch turns query parameters into a store query. strict makes unknown parameters an error
// (Prefer: handling=strict, and always for conditional interactions, where ignoring a criterion could
// update or delete the wrong resource).
func (s *Server) parseSearch(typ *fhir.TypeInfo, values url.Values, strict bool) (*searchQuery, *apiError) {
	if aerr := checkSearchBounds(values); aerr != nil {
		return nil, aerr
	}
	q := &searchQuery{
		store:   store.Query{Type: typ.Name},
		count:   s.cfg.DefaultCount,
		applied: url.Values{},
	}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ignore := func(u *unsupported) *apiError {
		if strict {
			return fail(kindUnsupported,
				"%s: %s; supported parameters are listed in the CapabilityStatement", u.key, u.why).at(u.key)
		}
		q.notes = append(q.notes, fhir.Issue{Severity: "warning", Code: "not-supported",
			Diagnostics: "the search parameter " + strconv.Quote(u.key) + " was ignored: " + u.why},
		)
		return nil
	}
	for _, key := range keys {
		vals := values[key]
		name, modifier, _ := strings.Cut(key, ":")
		if name == "_include" || name == "_revinclude" {
			seen := map[string]bool{}
			for _, v := range vals {
				// A repeated include adds nothing but its cost.
				if seen[v] {
					continue
				}
				seen[v] = true
				spec, err := parseInclude(key, name == "_revinclude", modifier, v)
				switch err := err.(type) {
				case nil:
					q.includes = append(q.includes, spec)
					q.applied.Add(key, v)
				case *unsupported:
					if aerr := ignore(err); aerr != nil {
						return nil, aerr
					}
				case *apiError:
					return nil, err
				}
			}
			continue
		}
		if resultParams[name] {
			if err := s.parseResultParam(q, typ, key, vals); err != nil {
				if u, ok := err.(*unsupported); ok {
					if aerr := ignore(u); aerr != nil {
						return nil, aerr
					}
					continue
				}
				return nil, err.(*apiError)
			}
			continue
		}
		for _, v := range vals {
			clause, err := s.parseParam(typ, key, v, 0)
			switch err := err.(type) {
			case nil:
			case *unsupported:
				if aerr := ignore(err); aerr != nil {
					return nil, aerr
				}
				continue
			case *apiError:
				return nil, err
			}
			q.store.Clauses = append(q.store.Clauses, clause)
			q.applied.Add(key, v)
		}
	}
	if q.summary != "" && q.summary != "false" && len(q.elements) > 0 {
		return nil, fail(kindInvalid, "_summary=%s and _elements cannot be used together; use one of them", q.summary).at("_elements")
	}
	if typ.Name == store.AuditEventType && len(q.store.Sort) == 0 {
		// An audit trail is read newest first unless asked otherwise: what an auditor or a patient
		// asking who saw their record wants first, and the order the embedded store keeps each
		// patient's, agent's and resource's records in (docs/audit.md).
		q.store.Sort = auditDefaultSort
	}
	return q, nil
}

// auditDefaultSort is the order of an AuditEvent search without _sort: _sort=-date. Shared, never
// appended to: a search's own _sort builds a slice of its own.
var auditDefaultSort = []store.SortKey{{Param: "date", Desc: true}}

func searchParam(typ *fhir.TypeInfo, name string) (*fhir.SearchParam, bool) {
	return typ.Param(name)
}

// notAParam is the answer to a parameter name typ does not support: an R4 parameter this server leaves
// out is told apart, with the reason, from a name R4 does not define.
func notAParam(typ *fhir.TypeInfo, key, name string) *unsupported {
	if u, ok := typ.UnsupportedParam(name); ok {
		return &unsupported{key: key, why: name + " is an R4 search parameter of " + typ.Name + " that this server does not support: " + u.Reason}
	}
	return &unsupported{key: key, why: name + " is not a search parameter of " + typ.Name}
}

// parseParam parses one occurrence of a filter parameter, key=raw, on typ: a plain parameter with an
// optional modifier, a chain (subject:Patient.identifier=...) or a reverse chain (_has:...). It returns
// a *apiError for a malformed value and an *unsupported for a parameter that may be ignored.
func (s *Server) parseParam(typ *fhir.TypeInfo, key, raw string, depth int) (store.Clause, error) {
	if depth > maxChainDepth {
		return nil, fail(kindTooCostly, "%s: chains and _has may be at most %d levels deep", key, maxChainDepth).at(key)
	}
	if strings.HasPrefix(key, "_has:") {
		return s.parseHas(typ, key, raw, depth)
	}
	head, rest, chained := strings.Cut(key, ".")
	name, modifier, _ := strings.Cut(head, ":")
	sp, ok := searchParam(typ, name)
	if !ok {
		return nil, notAParam(typ, key, name)
	}
	if chained {
		return s.parseChain(typ, sp, key, modifier, rest, raw, depth)
	}
	return s.parseClause(sp, key, modifier, raw)
}

// parseChain parses "ref[:Type].rest=raw": resources whose reference ref points at a resource of Type
// (or, without a type, of any served target type that has the chained parameter) matching rest=raw.
func (s *Server) parseChain(typ *fhir.TypeInfo, sp *fhir.SearchParam, key, modifier, rest, raw string, depth int) (store.Clause, error) {
	if sp.Type != fhir.ParamReference {
		return nil, fail(kindBadValue, "%s: only reference parameters can be chained, and %s is a %s parameter", key, sp.Code, sp.Type).at(key)
	}
	targets := sp.Targets
	if modifier != "" {
		if !contains(sp.Targets, modifier) {
			return nil, fail(kindBadValue, "%s: :%s is not a target type of %s.%s (targets: %s)",
				key, modifier, typ.Name, sp.Code, strings.Join(sp.Targets, ", ")).at(key)
		}
		targets = []string{modifier}
	}
	var clause store.Clause
	var lastUnsupported error
	for _, t := range targets {
		ti, served := fhir.LookupType(t)
		if !served {
			continue
		}
		inner, err := s.parseParam(ti, rest, raw, depth+1)
		if u, ok := err.(*unsupported); ok {
			// With several target types, a parameter that only some of them have chains into those.
			lastUnsupported = u
			continue
		}
		if err != nil {
			return nil, err
		}
		clause = append(clause, store.Predicate{Param: sp.Code, Match: store.MatchRefIn,
			Sub: &store.Query{Type: ti.Name, Clauses: []store.Clause{inner}}})
	}
	if len(clause) == 0 {
		why := sp.Code + " points at no type served here that has the parameter " + strings.SplitN(rest, ".", 2)[0]
		if lastUnsupported != nil && len(targets) == 1 {
			why = lastUnsupported.(*unsupported).why
		}
		return nil, &unsupported{key: key, why: why}
	}
	return clause, nil
}

// parseHas parses "_has:Type:ref:rest=raw": resources that a Type resource matching rest=raw points at
// through its reference parameter ref (reverse chaining).
func (s *Server) parseHas(typ *fhir.TypeInfo, key, raw string, depth int) (store.Clause, error) {
	parts := strings.SplitN(key, ":", 4)
	if len(parts) != 4 || parts[1] == "" || parts[2] == "" || parts[3] == "" {
		return nil, fail(kindBadValue, "%s=%s: _has takes the form _has:Type:reference:parameter=value", key, raw).at(key)
	}
	src, ok := fhir.LookupType(parts[1])
	if !ok {
		return nil, &unsupported{key: key, why: parts[1] + " is not a resource type served here"}
	}
	ref, ok := src.Param(parts[2])
	if !ok {
		return nil, notAParam(src, key, parts[2])
	}
	if ref.Type != fhir.ParamReference || !contains(ref.Targets, typ.Name) {
		return nil, fail(kindBadValue, "%s: %s.%s is not a reference that can point at a %s", key, src.Name, ref.Code, typ.Name).at(key)
	}
	inner, err := s.parseParam(src, parts[3], raw, depth+1)
	if err != nil {
		return nil, err
	}
	return store.Clause{{Param: "_has", Match: store.MatchHas, HasParam: ref.Code,
		Sub: &store.Query{Type: src.Name, Clauses: []store.Clause{inner}}}}, nil
}

func (s *Server) parseResultParam(q *searchQuery, typ *fhir.TypeInfo, key string, vals []string) error {
	name, modifier, _ := strings.Cut(key, ":")
	if modifier != "" && name != "_include" && name != "_revinclude" {
		return fail(kindBadValue, "%s: %s takes no modifier", key, name).at(key)
	}
	v := vals[len(vals)-1]
	switch name {
	case "_count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail(kindBadValue, "_count=%s is not a whole number of 0 or more", v).at("_count")
		}
		if n > s.cfg.MaxCount {
			q.notes = append(q.notes, fhir.Issue{Severity: "information", Code: "informational",
				Diagnostics: "_count=" + v + " is above this server's maximum page size; " + strconv.Itoa(s.cfg.MaxCount) + " was used"})
			n = s.cfg.MaxCount
		}
		q.count = n
		q.applied.Set("_count", strconv.Itoa(n))
	case "_total":
		switch v {
		case "none", "estimate", "accurate":
			q.total = v
			q.applied.Set("_total", v)
		default:
			return fail(kindBadValue, "_total=%s is not one of none, estimate, accurate", v).at("_total")
		}
	case "_sort":
		seen := map[string]bool{}
		for _, k := range strings.Split(v, ",") {
			desc := strings.HasPrefix(k, "-")
			pname := strings.TrimPrefix(k, "-")
			if pname == "" {
				return fail(kindBadValue, "_sort=%s: an empty sort key", v).at("_sort")
			}
			sp, ok := searchParam(typ, pname)
			if !ok {
				return fail(kindUnsupported, "_sort=%s: %q is not a search parameter of %s", v, pname, typ.Name).at("_sort")
			}
			if seen[pname] {
				return fail(kindBadValue, "_sort=%s: %s is named twice", v, pname).at("_sort")
			}
			seen[pname] = true
			switch sp.Type {
			case fhir.ParamDate, fhir.ParamString, fhir.ParamToken, fhir.ParamURI, fhir.ParamNumber, fhir.ParamReference:
			default:
				return fail(kindUnsupported, "_sort=%s: %s parameters cannot be sorted on", v, sp.Type).at("_sort")
			}
			q.store.Sort = append(q.store.Sort, store.SortKey{Param: pname, Desc: desc})
		}
		q.applied.Set("_sort", v)
	case "_summary":
		switch v {
		case "true", "false", "text", "data", "count":
			q.summary = v
			q.applied.Set("_summary", v)
		default:
			return fail(kindBadValue, "_summary=%s is not one of true, false, text, data, count", v).at("_summary")
		}
	case "_elements":
		var names []string
		for _, e := range strings.Split(v, ",") {
			e = strings.TrimSpace(e)
			if !elementName.MatchString(e) {
				return fail(kindBadValue, "_elements=%s: %q is not an element name", v, e).at("_elements")
			}
			names = append(names, e)
		}
		q.elements = names
		q.applied.Set("_elements", v)
	}
	return nil
}

var elementName = regexp.MustCompile(`^[a-z][A-Za-z0-9]*(\.[a-z][A-Za-z0-9]*)*$`)

// splitValues splits a parameter value on commas that are not escaped with a backslash, and unescapes.
func splitValues(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && (v[i+1] == ',' || v[i+1] == '$' || v[i+1] == '|' || v[i+1] == '\\'):
			// Keep the escape of a bar: token values are split on unescaped bars later.
			if v[i+1] == '|' {
				cur.WriteByte('\\')
			}
			cur.WriteByte(v[i+1])
			i++
		case v[i] == ',':
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(v[i])
		}
	}
	return append(out, cur.String())
}

// splitBars splits a token value on unescaped bars and unescapes each part.
func splitBars(v string) []string {
	var out []string
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '|':
			out = append(out, unescape(v[start:i]))
			start = i + 1
		}
	}
	return append(out, unescape(v[start:]))
}

// splitToken splits system|code on the first unescaped bar. hasBar distinguishes "code" from "|code".
func splitToken(v string) (system, code string, hasBar bool) {
	parts := splitBars(v)
	if len(parts) == 1 {
		return "", parts[0], false
	}
	return parts[0], strings.Join(parts[1:], "|"), true
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func badValue(key, v, why string) *apiError {
	return fail(kindBadValue, "%s=%s: %s", key, v, why).at(key)
}

// parseClause turns one occurrence of a parameter into a disjunction of predicates.
func (s *Server) parseClause(sp *fhir.SearchParam, key, modifier, raw string) (store.Clause, error) {
	if modifier == "missing" {
		switch raw {
		case "true", "false":
			return store.Clause{{Param: sp.Code, Match: store.MatchPresent, Not: raw == "true"}}, nil
		}
		return nil, badValue(key, raw, "missing takes true or false")
	}
	var clause store.Clause
	for _, v := range splitValues(raw) {
		if v == "" {
			return nil, badValue(key, raw, "empty value")
		}
		p, err := s.parsePredicate(sp, key, modifier, v)
		if err != nil {
			return nil, err
		}
		clause = append(clause, p...)
	}
	return clause, nil
}

func (s *Server) parsePredicate(sp *fhir.SearchParam, key, modifier, v string) ([]store.Predicate, error) {
	if sp.Type != fhir.ParamToken {
		// Only token values are split on bars, so only they keep "\|" escaped this far.
		v = unescape(v)
	}
	switch sp.Type {
	case fhir.ParamToken:
		return tokenPredicate(sp, key, modifier, v)
	case fhir.ParamString:
		p := store.Predicate{Param: sp.Code, Match: store.MatchPrefix, Value: fhir.NormalizeString(v)}
		switch modifier {
		case "":
		case "exact":
			p.Match, p.Value = store.MatchExact, v
		case "contains":
			p.Match = store.MatchContains
		default:
			return nil, badModifier(key, modifier, v, sp)
		}
		return []store.Predicate{p}, nil
	case fhir.ParamURI:
		if modifier != "" {
			return nil, badModifier(key, modifier, v, sp)
		}
		return []store.Predicate{{Param: sp.Code, Match: store.MatchExact, Value: v}}, nil
	case fhir.ParamDate:
		if modifier != "" {
			return nil, badModifier(key, modifier, v, sp)
		}
		preds, err := s.datePredicates(sp.Code, v)
		if err != nil {
			return nil, badValue(key, v, err.Error())
		}
		return preds, nil
	case fhir.ParamReference:
		return s.referencePredicates(sp, key, modifier, v)
	}
	return nil, &unsupported{key: key, why: string(sp.Type) + " parameters are not supported"}
}

// tokenPredicate handles code, system|code, |code and system|, with :not, :text and (on identifiers)
// :of-type.
func tokenPredicate(sp *fhir.SearchParam, key, modifier, v string) ([]store.Predicate, error) {
	p := store.Predicate{Param: sp.Code}
	switch modifier {
	case "":
	case "not":
		p.Not = true
	case "text":
		if sp.Code == store.ParamID || isBooleanToken(sp) {
			return nil, badModifier(key, modifier, v, sp)
		}
		p.Match, p.Value = store.MatchTokenText, fhir.NormalizeString(unescape(v))
		return []store.Predicate{p}, nil
	case "of-type":
		if !isIdentifierToken(sp) {
			return nil, fail(kindBadValue, "%s=%s: :of-type applies only to identifier parameters", key, v).at(key)
		}
		parts := splitBars(v)
		if len(parts) != 3 || parts[1] == "" || parts[2] == "" {
			return nil, badValue(key, v, ":of-type takes system|code|value: the identifier type's system and code, then the identifier value")
		}
		return []store.Predicate{{Param: sp.Code + fhir.OfTypeSuffix, Match: store.MatchToken,
			System: parts[0], AnySystem: parts[0] == "", Value: parts[1] + "|" + parts[2]}}, nil
	default:
		return nil, badModifier(key, modifier, v, sp)
	}
	if sp.Code == store.ParamID {
		p.Match, p.Value = store.MatchExact, v
		return []store.Predicate{p}, nil
	}
	system, code, hasBar := splitToken(v)
	p.Match, p.System, p.Value, p.AnySystem = store.MatchToken, system, code, !hasBar
	if hasBar && system == "" && code == "" {
		return nil, badValue(key, v, "a token needs a code, a system, or both")
	}
	if isBooleanToken(sp) && (hasBar || code != "true" && code != "false") {
		return nil, badValue(key, v, "takes true or false")
	}
	return []store.Predicate{p}, nil
}

func isIdentifierToken(sp *fhir.SearchParam) bool {
	return len(sp.Paths) > 0 && sp.Paths[0].DataType == fhir.TypeIdentifier
}

func isBooleanToken(sp *fhir.SearchParam) bool {
	return len(sp.Paths) > 0 && sp.Paths[0].DataType == fhir.TypeBoolean
}

func badModifier(key, modifier, v string, sp *fhir.SearchParam) *apiError {
	return fail(kindBadValue, "%s=%s: the modifier :%s is not supported on the %s parameter %s",
		key, v, modifier, sp.Type, sp.Code).at(key)
}

// referencePredicates handles id, Type/id and this server's absolute URLs. A bare id on a parameter with
// several target types may point at any of them.
func (s *Server) referencePredicates(sp *fhir.SearchParam, key, modifier, v string) ([]store.Predicate, error) {
	v = strings.TrimPrefix(v, s.cfg.BaseURL+"/")
	targets := sp.Targets
	if modifier != "" {
		if !contains(sp.Targets, modifier) {
			return nil, fail(kindBadValue, "%s=%s: :%s is not a modifier of %s, nor one of its target types (%s)",
				key, v, modifier, sp.Code, strings.Join(sp.Targets, ", ")).at(key)
		}
		targets = []string{modifier}
	}
	if strings.Contains(v, "://") {
		return []store.Predicate{{Param: sp.Code, Match: store.MatchExact, Value: v}}, nil
	}
	if typ, id, ok := strings.Cut(v, "/"); ok {
		if !contains(targets, typ) {
			return nil, fail(kindBadValue, "%s=%s: %s is not a target type of %s (targets: %s)",
				key, v, typ, sp.Code, strings.Join(targets, ", ")).at(key)
		}
		return []store.Predicate{{Param: sp.Code, Match: store.MatchExact, Value: typ + "/" + id}}, nil
	}
	out := make([]store.Predicate, 0, len(targets))
	for _, t := range targets {
		out = append(out, store.Predicate{Param: sp.Code, Match: store.MatchExact, Value: t + "/" + v})
	}
	return out, nil
}

// datePredicates translates a prefixed date search value into predicates on the indexed range
// [Low, High], after the R4 rules (search.html, date): the search value is itself a range given by its
// precision, and the prefixes compare the two ranges. Several predicates are alternatives (an OR).
func (s *Server) datePredicates(param, v string) ([]store.Predicate, error) {
	prefix := "eq"
	whole := v
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	// An unencoded "+" of a timezone offset arrives as a space.
	v = strings.Replace(v, " ", "+", 1)
	lo, hi, err := fhir.ParseDateRange(v)
	if err != nil {
		if _, known := datePrefixes[prefix]; !known {
			// "foo" has no prefix "fo": the error is about the whole value, not about "o".
			_, _, err = fhir.ParseDateRange(strings.Replace(whole, " ", "+", 1))
		}
		return nil, err
	}
	one := func(not bool, bounds ...store.Bound) []store.Predicate {
		return []store.Predicate{{Param: param, Match: store.MatchRange, Bounds: bounds, Not: not}}
	}
	b := func(f store.Field, c store.Cmp, v int64) store.Bound { return store.Bound{Field: f, Cmp: c, Value: v} }
	within := []store.Bound{b(store.Low, store.GE, lo), b(store.High, store.LE, hi)}
	switch prefix {
	case "eq": // the search range contains the target
		return one(false, within...), nil
	case "ne":
		return one(true, within...), nil
	case "gt": // the range above the search value overlaps the target
		return one(false, b(store.High, store.GT, hi)), nil
	case "lt":
		return one(false, b(store.Low, store.LT, lo)), nil
	case "ge": // gt, or eq
		return append(one(false, b(store.High, store.GT, hi)), one(false, within...)...), nil
	case "le":
		return append(one(false, b(store.Low, store.LT, lo)), one(false, within...)...), nil
	case "sa": // the target starts after the search range ends
		return one(false, b(store.Low, store.GT, hi)), nil
	case "eb":
		return one(false, b(store.High, store.LT, lo)), nil
	case "ap":
		// Approximately: the ranges overlap once the search range is widened by 10% of its distance from
		// now, and at least a day, as HAPI does.
		now := s.now().UnixMilli()
		d := now - lo
		if d < 0 {
			d = -d
		}
		d /= 10
		if d < 86_400_000 {
			d = 86_400_000
		}
		return one(false, b(store.Low, store.LE, hi+d), b(store.High, store.GE, lo-d)), nil
	}
	return nil, errUnknownPrefix(prefix)
}

// datePrefixes are the R4 prefixes of date values.
var datePrefixes = map[string]bool{"eq": true, "ne": true, "lt": true, "gt": true, "le": true, "ge": true, "sa": true, "eb": true, "ap": true}

type errUnknownPrefix string

func (e errUnknownPrefix) Error() string {
	return "unknown prefix " + strconv.Quote(string(e)) + "; use eq, ne, lt, gt, le, ge, sa, eb or ap"
}

// searchValues collects the parameters of a search from the URL and, for POST _search, the form body.
func (s *Server) searchValues(c *gin.Context) (url.Values, *apiError) {
	values, aerr := parseQuery(c.Request.URL.RawQuery, "the query string")
	if aerr != nil {
		return nil, aerr
	}
	if c.Request.Method == http.MethodPost {
		if err := checkBodyType(c, "application/x-www-form-urlencoded"); err != nil {
			return nil, err
		}
		body, err := s.readFormBody(c)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, v := range body {
			n += len(v)
		}
		if n > maxQueryParams {
			return nil, fail(kindTooCostly, "the _search body has %d parameters; this server takes at most %d", n, maxQueryParams)
		}
		for k, v := range body {
			values[k] = append(values[k], v...)
		}
	}
	return values, nil
}

func (s *Server) readFormBody(c *gin.Context) (url.Values, *apiError) {
	if c.Request.ContentLength > s.cfg.MaxBody {
		return nil, tooLarge(s.cfg.MaxBody)
	}
	c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody)
	if err := c.Request.ParseForm(); err != nil {
		return nil, fail(kindMalformed, "the _search body is not a valid form: %v", err)
	}
	return c.Request.PostForm, nil
}

func strictHandling(c *gin.Context) bool {
	for _, part := range strings.Split(c.GetHeader("Prefer"), ",") {
		if strings.TrimSpace(part) == "handling=strict" {
			return true
		}
	}
	return false
}

func (s *Server) search(req *request, p pathParams) error {
	c := req.c
	values, aerr := s.searchValues(c)
	if aerr != nil {
		return aerr
	}
	q, aerr := s.parseSearch(p.typ, values, strictHandling(c))
	if aerr != nil {
		return aerr
	}
	if err := s.searchRules(req, p.typ, values); err != nil {
		return err
	}
	scope := p.typ.Name + "?" + q.applied.Encode()
	if cur := values.Get(cursorParam); cur != "" {
		after, err := s.cursors.openPosition(cursorScope(req, scope), cur)
		if err != nil {
			return err
		}
		if len(after) != len(q.store.Sort)+1 {
			return badCursor()
		}
		q.store.After = after
	}
	// Restrict before counting and paging, so that neither counts nor skips what the caller may not see.
	noted := len(req.screens)
	if err := s.restrict(req, &q.store); err != nil {
		return err
	}
	ctx := c.Request.Context()
	bundle := fhir.NewBundle("searchset")
	if q.summary == "count" || q.total == "accurate" || q.total == "estimate" {
		n, err := s.store.Count(ctx, q.store)
		if err != nil {
			return err
		}
		bundle.Total = &n
	}
	var hits []store.Hit
	if q.count > 0 && q.summary != "count" {
		q.store.Limit = q.count + 1
		var err error
		if hits, err = s.searchScreened(req, q.store, noted); err != nil {
			return err
		}
	}
	bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "self", URL: s.cfg.BaseURL + "/" + pageLink(scope, "")})
	if len(hits) > q.count {
		hits = hits[:q.count]
		next, err := s.cursors.signPosition(cursorScope(req, scope), hits[len(hits)-1].SortValues)
		if err != nil {
			return internal(err)
		}
		bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "next", URL: s.cfg.BaseURL + "/" + pageLink(scope, next)})
	}
	page := make([]store.Resource, len(hits))
	for i, h := range hits {
		page[i] = h.Resource
	}
	for _, r := range page {
		r = s.served(req, r) // audit: touched; a patient's view of an AuditEvent
		entry, err := s.searchEntry(r, "match", q, q.elements)
		if err != nil {
			return err
		}
		bundle.Entry = append(bundle.Entry, entry)
	}
	if len(q.includes) > 0 && len(page) > 0 {
		included, notes, err := s.includes(req, q.includes, page)
		if err != nil {
			return err
		}
		q.notes = append(q.notes, notes...)
		for _, r := range included {
			r = s.served(req, r) // audit: touched; a patient's view of an AuditEvent
			// _elements names elements of the searched type; included resources are other types.
			entry, err := s.searchEntry(r, "include", q, nil)
			if err != nil {
				return err
			}
			bundle.Entry = append(bundle.Entry, entry)
		}
	}
	withheld, err := s.withheldNotes(req)
	if err != nil {
		return err
	}
	req.withheld = len(withheld) > 0
	q.notes = append(q.notes, withheld...)
	if len(q.notes) > 0 {
		bundle.Entry = append(bundle.Entry, fhir.BundleEntry{
			Resource: fhir.OperationOutcome(q.notes...),
			Search:   &fhir.EntrySearch{Mode: "outcome"},
		})
	}
	return s.writeBundle(c, bundle)
}

// searchEntry renders one searchset entry, subsetting the body for _summary and _elements.
func (s *Server) searchEntry(r store.Resource, mode string, q *searchQuery, elements []string) (fhir.BundleEntry, error) {
	body := r.Body
	var subset fhir.SubsetMode
	switch {
	case q.summary == "true":
		subset = fhir.SummaryTrue
	case q.summary == "text":
		subset = fhir.SummaryText
	case q.summary == "data":
		subset = fhir.SummaryData
	case len(elements) > 0:
		subset = fhir.SubsetElements
	}
	if subset != 0 {
		var err error
		if body, err = fhir.Subset(body, subset, elements); err != nil {
			return fhir.BundleEntry{}, internal(err)
		}
	}
	return fhir.BundleEntry{
		FullURL:  s.cfg.BaseURL + "/" + r.Type + "/" + r.ID,
		Resource: json.RawMessage(body),
		Search:   &fhir.EntrySearch{Mode: mode},
	}, nil
}

func (s *Server) writeBundle(c *gin.Context, b *fhir.Bundle) error {
	b.Meta = &fhir.BundleMeta{LastUpdated: s.now().Format("2006-01-02T15:04:05.000Z07:00")}
	body, err := b.Marshal()
	if err != nil {
		return internal(err)
	}
	writeFHIR(c, http.StatusOK, body)
	return nil
}
