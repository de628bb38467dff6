package api

import (
	"encoding/json"
	"net/http"
	"net/url"
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
	// applied holds the parameters that took effect, for the self link and the cursor scope.
	applied url.Values
	// notes are issues for the outcome entry: ignored parameters, a clamped _count.
	notes []fhir.Issue
}

// resultParams are the parameters that control results rather than select resources.
var resultParams = map[string]bool{
	"_count": true, "_sort": true, "_total": true, "_format": true, "_pretty": true, cursorParam: true,
}

// parseSearch turns query parameters into a store query. strict makes unknown parameters an error
// (Prefer: handling=strict, and always for conditional interactions, where ignoring a criterion could
// update or delete the wrong resource).
func (s *Server) parseSearch(typ *fhir.TypeInfo, values url.Values, strict bool) (*searchQuery, *apiError) {
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
	for _, key := range keys {
		vals := values[key]
		if resultParams[key] {
			if err := s.parseResultParam(q, typ, key, vals); err != nil {
				return nil, err
			}
			continue
		}
		name, modifier, _ := strings.Cut(key, ":")
		sp, ok := searchParam(typ, name)
		if !ok {
			if strict {
				return nil, fail(http.StatusBadRequest, "not-supported",
					"unknown search parameter %q for %s; supported parameters are listed in the CapabilityStatement", key, typ.Name).at(key)
			}
			q.notes = append(q.notes, fhir.Issue{Severity: "warning", Code: "not-supported",
				Diagnostics: "the search parameter " + strconv.Quote(key) + " is not supported for " + typ.Name + " and was ignored"})
			continue
		}
		for _, v := range vals {
			clause, err := s.parseClause(sp, key, modifier, v)
			if err != nil {
				if strict || err.status != http.StatusNotImplemented {
					return nil, err
				}
				q.notes = append(q.notes, fhir.Issue{Severity: "warning", Code: "not-supported",
					Diagnostics: err.issues[0].Diagnostics + "; the parameter was ignored"})
				continue
			}
			q.store.Clauses = append(q.store.Clauses, clause)
			q.applied.Add(key, v)
		}
	}
	return q, nil
}

func searchParam(typ *fhir.TypeInfo, name string) (*fhir.SearchParam, bool) {
	return typ.Param(name)
}

func (s *Server) parseResultParam(q *searchQuery, typ *fhir.TypeInfo, key string, vals []string) *apiError {
	v := vals[len(vals)-1]
	switch key {
	case "_count":
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fail(http.StatusBadRequest, "value", "_count=%s is not a whole number of 0 or more", v).at("_count")
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
			return fail(http.StatusBadRequest, "value", "_total=%s is not one of none, estimate, accurate", v).at("_total")
		}
	case "_sort":
		for _, k := range strings.Split(v, ",") {
			desc := strings.HasPrefix(k, "-")
			name := strings.TrimPrefix(k, "-")
			sp, ok := searchParam(typ, name)
			if !ok {
				return fail(http.StatusBadRequest, "not-supported", "_sort: %q is not a search parameter of %s", name, typ.Name).at("_sort")
			}
			switch sp.Type {
			case fhir.ParamDate, fhir.ParamString, fhir.ParamToken, fhir.ParamURI, fhir.ParamNumber, fhir.ParamReference:
			default:
				return fail(http.StatusBadRequest, "not-supported", "_sort: %s parameters cannot be sorted on", sp.Type).at("_sort")
			}
			q.store.Sort = append(q.store.Sort, store.SortKey{Param: name, Desc: desc})
		}
		q.applied.Set("_sort", v)
	}
	return nil
}

// splitValues splits a parameter value on commas that are not escaped with a backslash, and unescapes.
func splitValues(v string) []string {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(v); i++ {
		switch {
		case v[i] == '\\' && i+1 < len(v) && (v[i+1] == ',' || v[i+1] == '$' || v[i+1] == '|' || v[i+1] == '\\'):
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

// splitToken splits system|code on the first unescaped bar. hasBar distinguishes "code" from "|code".
func splitToken(v string) (system, code string, hasBar bool) {
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
			continue
		}
		if v[i] == '|' {
			return unescape(v[:i]), unescape(v[i+1:]), true
		}
	}
	return "", unescape(v), false
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
	return fail(http.StatusBadRequest, "value", "%s=%s: %s", key, v, why).at(key)
}

// parseClause turns one occurrence of a parameter into a disjunction of predicates.
func (s *Server) parseClause(sp *fhir.SearchParam, key, modifier, raw string) (store.Clause, *apiError) {
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

func notSupported(key, what string) *apiError {
	return fail(http.StatusNotImplemented, "not-supported", "%s: %s is not supported", key, what).at(key)
}

func (s *Server) parsePredicate(sp *fhir.SearchParam, key, modifier, v string) ([]store.Predicate, *apiError) {
	switch sp.Type {
	case fhir.ParamToken:
		p := store.Predicate{Param: sp.Code}
		switch modifier {
		case "":
		case "not":
			p.Not = true
		case "text":
			p.Match, p.Value = store.MatchTokenText, fhir.NormalizeString(v)
			return []store.Predicate{p}, nil
		default:
			return nil, badModifier(key, modifier, sp)
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
		return []store.Predicate{p}, nil
	case fhir.ParamString:
		p := store.Predicate{Param: sp.Code, Match: store.MatchPrefix, Value: fhir.NormalizeString(v)}
		switch modifier {
		case "":
		case "exact":
			p.Match, p.Value = store.MatchExact, v
		case "contains":
			p.Match = store.MatchContains
		default:
			return nil, badModifier(key, modifier, sp)
		}
		return []store.Predicate{p}, nil
	case fhir.ParamURI:
		if modifier != "" {
			return nil, badModifier(key, modifier, sp)
		}
		return []store.Predicate{{Param: sp.Code, Match: store.MatchExact, Value: v}}, nil
	case fhir.ParamDate:
		if modifier != "" {
			return nil, badModifier(key, modifier, sp)
		}
		bounds, not, err := s.dateBounds(v)
		if err != nil {
			return nil, badValue(key, v, err.Error())
		}
		return []store.Predicate{{Param: sp.Code, Match: store.MatchRange, Bounds: bounds, Not: not}}, nil
	case fhir.ParamReference:
		return s.referencePredicates(sp, key, modifier, v)
	}
	return nil, notSupported(key, string(sp.Type)+" parameters")
}

func badModifier(key, modifier string, sp *fhir.SearchParam) *apiError {
	return fail(http.StatusBadRequest, "value", "%s: the modifier :%s is not valid for %s parameters", key, modifier, sp.Type).at(key)
}

// referencePredicates handles id, Type/id and this server's absolute URLs. A bare id on a parameter with
// several target types may point at any of them.
func (s *Server) referencePredicates(sp *fhir.SearchParam, key, modifier, v string) ([]store.Predicate, *apiError) {
	v = strings.TrimPrefix(v, s.cfg.BaseURL+"/")
	targets := sp.Targets
	if modifier != "" {
		if !contains(sp.Targets, modifier) {
			return nil, fail(http.StatusBadRequest, "value", "%s: :%s is not a target type of %s (targets: %s)",
				key, modifier, sp.Code, strings.Join(sp.Targets, ", ")).at(key)
		}
		targets = []string{modifier}
	}
	if strings.Contains(v, "://") {
		return []store.Predicate{{Param: sp.Code, Match: store.MatchExact, Value: v}}, nil
	}
	if typ, id, ok := strings.Cut(v, "/"); ok {
		if !contains(targets, typ) {
			return nil, fail(http.StatusBadRequest, "value", "%s=%s: %s is not a target type of %s (targets: %s)",
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

// dateBounds translates a prefixed date search value into bounds on the indexed range [Low, High], after
// the R4 rules: the search value is itself a range given by its precision.
func (s *Server) dateBounds(v string) (bounds []store.Bound, not bool, err error) {
	prefix := "eq"
	if len(v) >= 2 && v[0] >= 'a' && v[0] <= 'z' {
		prefix, v = v[:2], v[2:]
	}
	lo, hi, err := fhir.ParseDateRange(v)
	if err != nil {
		return nil, false, err
	}
	switch prefix {
	case "eq":
		return []store.Bound{{Field: store.Low, Cmp: store.GE, Value: lo}, {Field: store.High, Cmp: store.LE, Value: hi}}, false, nil
	case "ne":
		return []store.Bound{{Field: store.Low, Cmp: store.GE, Value: lo}, {Field: store.High, Cmp: store.LE, Value: hi}}, true, nil
	case "gt":
		return []store.Bound{{Field: store.High, Cmp: store.GT, Value: hi}}, false, nil
	case "lt":
		return []store.Bound{{Field: store.Low, Cmp: store.LT, Value: lo}}, false, nil
	case "ge":
		return []store.Bound{{Field: store.High, Cmp: store.GE, Value: lo}}, false, nil
	case "le":
		return []store.Bound{{Field: store.Low, Cmp: store.LE, Value: hi}}, false, nil
	case "sa":
		return []store.Bound{{Field: store.Low, Cmp: store.GT, Value: hi}}, false, nil
	case "eb":
		return []store.Bound{{Field: store.High, Cmp: store.LT, Value: lo}}, false, nil
	case "ap":
		// Approximately: widen by 10% of the distance from now, at least a day, as HAPI does.
		now := s.now().UnixMilli()
		d := now - lo
		if d < 0 {
			d = -d
		}
		d /= 10
		if d < 86_400_000 {
			d = 86_400_000
		}
		return []store.Bound{{Field: store.Low, Cmp: store.LE, Value: hi + d}, {Field: store.High, Cmp: store.GE, Value: lo - d}}, false, nil
	}
	return nil, false, errUnknownPrefix(prefix)
}

type errUnknownPrefix string

func (e errUnknownPrefix) Error() string {
	return "unknown prefix " + strconv.Quote(string(e)) + "; use eq, ne, lt, gt, le, ge, sa, eb or ap"
}

// searchValues collects the parameters of a search from the URL and, for POST _search, the form body.
func (s *Server) searchValues(c *gin.Context) (url.Values, *apiError) {
	values := c.Request.URL.Query()
	if c.Request.Method == http.MethodPost {
		if err := checkBodyType(c, "application/x-www-form-urlencoded"); err != nil {
			return nil, err
		}
		body, err := s.readFormBody(c)
		if err != nil {
			return nil, err
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
		return nil, fail(http.StatusBadRequest, "structure", "the _search body is not a valid form: %v", err)
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

func (s *Server) search(c *gin.Context, p pathParams) error {
	values, aerr := s.searchValues(c)
	if aerr != nil {
		return aerr
	}
	q, aerr := s.parseSearch(p.typ, values, strictHandling(c))
	if aerr != nil {
		return aerr
	}
	scope := p.typ.Name + "?" + q.applied.Encode()
	if cur := values.Get(cursorParam); cur != "" {
		var after []store.SortValue
		if err := s.cursors.open(scope, cur, &after); err != nil {
			return err
		}
		q.store.After = after
	}
	if err := s.restrict(c, &q.store); err != nil {
		return err
	}
	ctx := c.Request.Context()
	bundle := fhir.NewBundle("searchset")
	if q.total == "accurate" || q.total == "estimate" {
		n, err := s.store.Count(ctx, q.store)
		if err != nil {
			return err
		}
		bundle.Total = &n
	}
	var hits []store.Hit
	if q.count > 0 {
		q.store.Limit = q.count + 1
		var err error
		if hits, err = s.store.Search(ctx, q.store); err != nil {
			return err
		}
	}
	self := s.cfg.BaseURL + "/" + scope
	bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "self", URL: self})
	if len(hits) > q.count {
		hits = hits[:q.count]
		next, err := s.cursors.sign(scope, hits[len(hits)-1].SortValues)
		if err != nil {
			return internal(err)
		}
		bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "next", URL: self + "&" + cursorParam + "=" + next})
	}
	for _, h := range hits {
		bundle.Entry = append(bundle.Entry, fhir.BundleEntry{
			FullURL:  s.cfg.BaseURL + "/" + h.Resource.Type + "/" + h.Resource.ID,
			Resource: json.RawMessage(h.Resource.Body),
			Search:   &fhir.EntrySearch{Mode: "match"},
		})
	}
	if len(q.notes) > 0 {
		bundle.Entry = append(bundle.Entry, fhir.BundleEntry{
			Resource: fhir.OperationOutcome(q.notes...),
			Search:   &fhir.EntrySearch{Mode: "outcome"},
		})
	}
	return s.writeBundle(c, bundle)
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
