package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	jsoniter "github.com/json-iterator/go"
	"golang.org/x/text/unicode/norm"
)

// Open ends of a date range: a Period without end has High = MaxInstant, one without start Low = MinInstant.
const (
	MaxInstant int64 = math.MaxInt64
	MinInstant int64 = math.MinInt64
)

// Extract computes the search-index entries of r for every search parameter of its type (none for an
// unserved type, and none for _id and _lastUpdated, which the store answers from its columns). base is
// the server's base URL without a trailing slash: absolute references under it are indexed as relative
// "Type/id". Identical entries are emitted once. See IndexEntry for the fields each type uses;
// token entries of an Identifier parameter also come as Param+OfTypeSuffix entries for :of-type.
func Extract(r *Resource, base string) []IndexEntry {
	return extract(r, base, nil)
}

// extract is Extract of the parameters named in only, or of every parameter when only is empty.
func extract(r *Resource, base string, only []string) []IndexEntry {
	ti, ok := LookupType(r.typ)
	if !ok {
		return nil
	}
	x := extractor{base: strings.TrimSuffix(base, "/")}
	for _, p := range ti.Params {
		if p.FromStore || len(only) > 0 && !slices.Contains(only, p.Code) {
			continue
		}
		for _, path := range p.Paths {
			for _, v := range Walk(r.tree, path.Elements) {
				x.value(p, path, v)
			}
		}
	}
	return x.out
}

// ExtractBody computes the index entries of a stored body, which was validated when it was written, without
// validating it again: for reindexing and bulk loaders. It fails only if body is not a JSON resource.
func ExtractBody(body []byte, base string) ([]IndexEntry, error) {
	tree, ferr := decodeTree(body)
	if ferr != nil {
		return nil, ferr
	}
	return Extract(&Resource{typ: tree["resourceType"].(string), tree: tree}, base), nil
}

// ExtractBodyParams is ExtractBody for the named parameters only (none when params is empty): the
// access policy reads a few parameters of a resource on every read, and extracting all of them would
// cost more than the read.
func ExtractBodyParams(body []byte, base string, params ...string) ([]IndexEntry, error) {
	if len(params) == 0 {
		return nil, nil
	}
	// Only the top-level elements the parameters' paths start at are decoded, and the body is walked
	// without copying the rest: a Patient's names, addresses and extensions would otherwise be copied
	// (encoding/json into a map of raw values) or built into maps on every read, only to be dropped.
	// pprof of a P9 read put two thirds of this function's time in that copy.
	typ, err := topLevelType(body)
	if err != nil {
		return nil, err
	}
	ti, ok := LookupType(typ)
	if !ok {
		return nil, nil
	}
	var wanted []string
	for _, p := range ti.Params {
		if p.FromStore || !slices.Contains(params, p.Code) {
			continue
		}
		for _, path := range p.Paths {
			el, _, _ := strings.Cut(path.Elements, ".")
			if !slices.Contains(wanted, el) {
				wanted = append(wanted, el)
			}
		}
	}
	tree := map[string]any{"resourceType": typ}
	var bad error
	it := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowIterator(body)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnIterator(it)
	it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
		i := slices.Index(wanted, key)
		if i < 0 {
			it.Skip()
			return it.Error == nil
		}
		dec := json.NewDecoder(bytes.NewReader(it.SkipAndReturnBytes()))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			bad = err
			return false
		}
		tree[wanted[i]] = v // not key, which points into the iterator's buffer
		return it.Error == nil
	})
	if bad == nil && it.Error != nil && it.Error != io.EOF {
		bad = it.Error
	}
	if bad != nil {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "the body is not valid JSON: "+bad.Error())}}
	}
	return extract(&Resource{typ: typ, tree: tree}, base, params), nil
}

// TopLevelElement returns the JSON of one top-level element of a body (nil when it has none), walking
// past the others without decoding or copying them: the policy reads a Patient's extensions on every
// patient request, and decoding the whole Patient for them cost more than the rest of the look-up.
func TopLevelElement(body []byte, name string) (json.RawMessage, error) {
	var raw json.RawMessage
	it := jsoniter.ConfigCompatibleWithStandardLibrary.BorrowIterator(body)
	defer jsoniter.ConfigCompatibleWithStandardLibrary.ReturnIterator(it)
	if it.WhatIsNext() != jsoniter.ObjectValue {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "the body is not a JSON object")}}
	}
	it.ReadObjectCB(func(it *jsoniter.Iterator, key string) bool {
		if key != name {
			it.Skip()
			return it.Error == nil
		}
		raw = it.SkipAndReturnBytes()
		return false
	})
	if it.Error != nil && it.Error != io.EOF {
		return nil, &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "the body is not valid JSON: "+it.Error.Error())}}
	}
	return raw, nil
}

// topLevelType reads a body's resourceType; the walk stops there, and the server writes it first.
func topLevelType(body []byte) (string, error) {
	raw, err := TopLevelElement(body, "resourceType")
	if err != nil {
		return "", err
	}
	var typ string
	if json.Unmarshal(raw, &typ) != nil || typ == "" {
		return "", &Error{Kind: Malformed, Issues: []Issue{NewIssue(IssueStructure, "resourceType must be a non-empty string", "resourceType")}}
	}
	return typ, nil
}

type extractor struct {
	base string
	out  []IndexEntry
	seen map[IndexEntry]struct{}
}

// dedupScan is how many entries add compares one by one before it keeps a set: most extractions (the
// access policy's few parameters on every read) stay below it and allocate no map.
const dedupScan = 32

func (x *extractor) add(e IndexEntry) {
	if x.seen == nil {
		if slices.Contains(x.out, e) {
			return
		}
		x.out = append(x.out, e)
		if len(x.out) > dedupScan {
			x.seen = make(map[IndexEntry]struct{}, 2*len(x.out))
			for _, o := range x.out {
				x.seen[o] = struct{}{}
			}
		}
		return
	}
	if _, dup := x.seen[e]; dup {
		return
	}
	x.seen[e] = struct{}{}
	x.out = append(x.out, e)
}

// Walk follows dotted element names from v, flattening arrays at every step.
func Walk(v any, elements string) []any {
	cur := []any{v}
	for elements != "" {
		name := elements
		if i := strings.IndexByte(elements, '.'); i >= 0 {
			name, elements = elements[:i], elements[i+1:]
		} else {
			elements = ""
		}
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			switch child := m[name].(type) {
			case nil:
			case []any:
				next = append(next, child...)
			default:
				next = append(next, child)
			}
		}
		cur = next
	}
	return cur
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func (x *extractor) value(p *SearchParam, path Path, v any) {
	m, _ := v.(map[string]any)
	if path.WhereField != "" && (m == nil || str(m, path.WhereField) != path.WhereValue) {
		return
	}
	if path.Child != "" {
		if m == nil {
			return
		}
		v = m[path.Child]
		m, _ = v.(map[string]any)
	}
	switch path.DataType {
	case TypeCode:
		if s, ok := v.(string); ok && s != "" {
			system := path.CodeSystem
			if path.CodeSystems != nil {
				system = path.CodeSystems[s]
			}
			x.add(IndexEntry{Param: p.Code, System: system, Value: s})
		}
	case TypeBoolean:
		if b, ok := v.(bool); ok {
			x.add(IndexEntry{Param: p.Code, Value: strconv.FormatBool(b)})
		}
	case TypeCoding:
		if m != nil {
			x.coding(p.Code, m, "")
		}
	case TypeCodeableConcept:
		if m == nil {
			return
		}
		text := str(m, "text")
		norm := NormalizeString(text)
		carried := false
		for _, c := range Walk(m, "coding") {
			if cm, ok := c.(map[string]any); ok {
				carried = x.coding(p.Code, cm, text) == norm || carried
			}
		}
		if text != "" && !carried {
			// A text-only entry lets :text find the concept by its text when its codings carry other
			// displays. Where a coding's entry already has that text (a Synthea code's text is its
			// display) it would find nothing more and sort no differently (a sort takes the lowest
			// text, store.SortValueOf), and cost random inserts into three SQLite b-trees on every write.
			x.add(IndexEntry{Param: p.Code, Text: norm})
		}
	case TypeIdentifier:
		if m == nil {
			return
		}
		val := str(m, "value")
		sys := str(m, "system")
		var text string
		if t, ok := m["type"].(map[string]any); ok {
			text = str(t, "text")
			for _, c := range Walk(t, "coding") {
				cm, ok := c.(map[string]any)
				if !ok || str(cm, "code") == "" || val == "" {
					continue
				}
				if text == "" {
					text = str(cm, "display")
				}
				x.add(IndexEntry{Param: p.Code + OfTypeSuffix, System: str(cm, "system"), Value: str(cm, "code") + "|" + val})
			}
		}
		if val != "" || sys != "" {
			x.add(IndexEntry{Param: p.Code, System: sys, Value: val, Text: NormalizeString(text)})
		}
	case TypeContactPoint:
		// R4 (search.html, token table): ContactPoint.system is the token's system and ContactPoint.value
		// its code, so "telecom=phone|01234" and "phone=01234" match, and "telecom=email|01234" does not.
		if m != nil && str(m, "value") != "" {
			x.add(IndexEntry{Param: p.Code, System: str(m, "system"), Value: str(m, "value")})
		}
	case TypeString:
		if s, ok := v.(string); ok {
			x.str(p.Code, s)
		}
	case TypeHumanName:
		if m != nil {
			for _, k := range []string{"text", "family", "given", "prefix", "suffix"} {
				x.strs(p.Code, m[k])
			}
		}
	case TypeAddress:
		if m != nil {
			for _, k := range []string{"text", "line", "city", "district", "state", "postalCode", "country"} {
				x.strs(p.Code, m[k])
			}
		}
	case TypeDate:
		if s, ok := v.(string); ok {
			if lo, hi, err := ParseDateRange(s); err == nil {
				x.add(IndexEntry{Param: p.Code, Low: lo, High: hi})
			}
		}
	case TypePeriod:
		if m == nil {
			return
		}
		lo, hi := MinInstant, MaxInstant
		var err error
		if s := str(m, "start"); s != "" {
			if lo, _, err = ParseDateRange(s); err != nil {
				return
			}
		}
		if s := str(m, "end"); s != "" {
			if _, hi, err = ParseDateRange(s); err != nil {
				return
			}
		}
		if m["start"] != nil || m["end"] != nil {
			x.add(IndexEntry{Param: p.Code, Low: lo, High: hi})
		}
	case TypeReference:
		if m == nil {
			return
		}
		ref := str(m, "reference")
		if ref == "" {
			return
		}
		if typ, id, ok := LocalRef(ref, x.base); ok {
			if path.RefType != "" && typ != path.RefType {
				return
			}
			x.add(IndexEntry{Param: p.Code, Value: typ + "/" + id})
			return
		}
		if path.RefType == "" && IsAbsoluteURL(ref) {
			x.add(IndexEntry{Param: p.Code, Value: ref})
		}
	case TypeURI:
		if s, ok := v.(string); ok && s != "" {
			x.add(IndexEntry{Param: p.Code, Value: s})
		}
	}
}

// coding adds a Coding's entry, and returns its normalised text ("" when it adds none).
func (x *extractor) coding(param string, c map[string]any, ccText string) string {
	code := str(c, "code")
	if code == "" {
		return ""
	}
	text := str(c, "display")
	if text == "" {
		text = ccText
	}
	e := IndexEntry{Param: param, System: str(c, "system"), Value: code, Text: NormalizeString(text)}
	x.add(e)
	return e.Text
}

func (x *extractor) str(param, s string) {
	if s == "" {
		return
	}
	x.add(IndexEntry{Param: param, Value: s, Text: NormalizeString(s)})
}

func (x *extractor) strs(param string, v any) {
	switch v := v.(type) {
	case string:
		x.str(param, v)
	case []any:
		for _, e := range v {
			if s, ok := e.(string); ok {
				x.str(param, s)
			}
		}
	}
}

// Ref is one literal reference to a resource on this server.
type Ref struct {
	// Expression locates the reference string, e.g. "Appointment.participant[0].actor.reference".
	Expression string
	Type, ID   string
}

// References lists the literal references in r that point at this server: relative "Type/id" (a
// "/_history/n" suffix is dropped) and absolute URLs under base. Contained ("#x"), "urn:uuid:"/"urn:oid:"
// and other absolute references are skipped. The API checks that each one resolves.
func References(r *Resource, base string) []Ref {
	base = strings.TrimSuffix(base, "/")
	var out []Ref
	var rec func(v any, at string)
	rec = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["reference"].(string); ok {
				if typ, id, ok := LocalRef(ref, base); ok {
					out = append(out, Ref{Expression: at + ".reference", Type: typ, ID: id})
				}
			}
			for _, k := range sortedKeys(v) {
				switch v[k].(type) {
				case map[string]any, []any:
					rec(v[k], at+"."+k)
				}
			}
		case []any:
			for i, e := range v {
				rec(e, at+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	rec(r.tree, r.typ)
	return out
}

// LocalRef splits a reference to this server into type and id: relative "Type/id", optionally with
// "/_history/n", or an absolute URL under base (which may be empty). It is the project's one reference
// parser, so that what the index holds, what the policy decides on and what the rules follow agree.
func LocalRef(ref, base string) (typ, id string, ok bool) {
	if base != "" && strings.HasPrefix(ref, base+"/") {
		ref = ref[len(base)+1:]
	} else if strings.Contains(ref, ":") || strings.HasPrefix(ref, "#") {
		return "", "", false
	}
	// Type/id or Type/id/_history/version, cut rather than split: the policy and the audit read references
	// on every request.
	typ, rest, ok := strings.Cut(ref, "/")
	if !ok {
		return "", "", false
	}
	id, hist, versioned := strings.Cut(rest, "/")
	if versioned {
		h, v, ok := strings.Cut(hist, "/")
		if !ok || h != "_history" || v == "" || strings.Contains(v, "/") {
			return "", "", false
		}
	}
	if !ValidTypeName(typ) || !ValidID(id) {
		return "", "", false
	}
	return typ, id, true
}

// ValidTypeName reports whether s has the form of a FHIR resource type name (an upper-case ASCII letter,
// then ASCII letters), as in a reference or a SMART scope. It does not say the type is served.
func ValidTypeName(s string) bool {
	if s == "" || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// IsAbsoluteURL reports whether s is an absolute URL with a scheme, as opposed to a relative reference.
func IsAbsoluteURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}

// NormalizeString prepares text for string and :text matching: accents removed (NFD, then combining
// marks dropped), lower case, runs of white space collapsed to one space, and trimmed. Search values
// must be normalised the same way.
func NormalizeString(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if !ascii {
		s = norm.NFD.String(s)
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.Is(unicode.Mn, r):
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var errDate = errors.New("not a FHIR date, dateTime or instant")

// ParseDateRange parses a FHIR date, dateTime or instant (or a search value of the same form) and returns
// the range it denotes at its precision, as inclusive Unix milliseconds: "1980" is the whole of 1980,
// "1980-05-06T10:00" that minute, "...T10:00:00.123Z" that millisecond. An offset is honoured; a value
// without one (a date, or a dateTime without zone) is taken as UTC.
func ParseDateRange(s string) (low, high int64, err error) {
	fail := func() (int64, int64, error) { return 0, 0, fmt.Errorf("%w: %q", errDate, s) }
	num := func(from, n int) (int, bool) {
		if len(s) < from+n {
			return 0, false
		}
		v := 0
		for i := from; i < from+n; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			v = v*10 + int(c-'0')
		}
		return v, true
	}
	year, ok := num(0, 4)
	if !ok {
		return fail()
	}
	month, day := 1, 1
	var start, end time.Time
	switch {
	case len(s) == 4:
		start = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(1, 0, 0)
		return start.UnixMilli(), end.UnixMilli() - 1, nil
	case len(s) == 7 && s[4] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return fail()
		}
		start = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(0, 1, 0)
		return start.UnixMilli(), end.UnixMilli() - 1, nil
	case len(s) == 10 && s[4] == '-' && s[7] == '-':
		if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
			return fail()
		}
		if day, ok = num(8, 2); !ok || day < 1 || day > daysIn(year, month) {
			return fail()
		}
		start = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return start.UnixMilli(), start.AddDate(0, 0, 1).UnixMilli() - 1, nil
	case len(s) >= 16 && s[4] == '-' && s[7] == '-' && s[10] == 'T' && s[13] == ':':
	default:
		return fail()
	}
	// dateTime / instant: YYYY-MM-DDThh:mm[:ss[.fff...]][Z|(+|-)hh:mm]
	if month, ok = num(5, 2); !ok || month < 1 || month > 12 {
		return fail()
	}
	if day, ok = num(8, 2); !ok || day < 1 || day > daysIn(year, month) {
		return fail()
	}
	hour, ok1 := num(11, 2)
	minute, ok2 := num(14, 2)
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return fail()
	}
	i := 16
	sec, nanos := 0, 0
	width := time.Minute
	if i < len(s) && s[i] == ':' {
		if sec, ok = num(17, 2); !ok || sec > 60 {
			return fail()
		}
		if sec == 60 {
			sec = 59 // leap second: clamp rather than reject
		}
		i = 19
		width = time.Second
		if i < len(s) && s[i] == '.' {
			j := i + 1
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			digits := s[i+1 : j]
			if len(digits) == 0 {
				return fail()
			}
			frac := digits
			if len(frac) > 9 {
				frac = frac[:9]
			}
			n, _ := strconv.Atoi(frac + strings.Repeat("0", 9-len(frac)))
			nanos = n
			switch {
			case len(digits) >= 3:
				width = time.Millisecond
			case len(digits) == 2:
				width = 10 * time.Millisecond
			default:
				width = 100 * time.Millisecond
			}
			i = j
		}
	}
	loc := time.UTC
	switch rest := s[i:]; {
	case rest == "" || rest == "Z":
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := num(i+1, 2)
		om, ok2 := num(i+4, 2)
		if !ok1 || !ok2 || oh > 14 || om > 59 {
			return fail()
		}
		off := oh*3600 + om*60
		if rest[0] == '-' {
			off = -off
		}
		loc = time.FixedZone("", off)
	default:
		return fail()
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, nanos, loc)
	low = t.Truncate(time.Millisecond).UnixMilli()
	if width == time.Millisecond {
		return low, low, nil
	}
	return low, t.Add(width).UnixMilli() - 1, nil
}

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
