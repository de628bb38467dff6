package store

import (
	"cmp"
	"fmt"
	"strings"
)

// This file states what a Query selects and in which order, once, in plain Go. store/memory evaluates
// queries with nothing else, and storetest compares every backend with it; a backend that tests
// predicates in Go (SQLite on its audit rows, MongoDB on its batches) calls these functions rather than
// keeping a copy. The rules are those documented on Match, Predicate, Clause, Query and SortKey; where the
// comments there leave a case open, the code here is the answer.
//
// The special parameters are answered as if the resource had one more entry each: ParamID an entry
// {Value: id} (a code without a system), ParamLastUpdated {Low: lastUpdated, High: lastUpdated}. Only the
// matches that make sense on them are accepted (Present, Exact and Token on _id; Present and Range on
// _lastUpdated); any other is ErrInvalidQuery, as it would be a programming error above the store.

// Candidate is one current, non-deleted resource as a query sees it.
type Candidate struct {
	Type        string
	ID          string
	LastUpdated int64 // Unix milliseconds
	// Index holds the resource's entries. They need not be filtered by parameter.
	Index []IndexEntry
}

// Resolver answers what chains and _has ask about other resources. Only MatchRefIn and MatchHas call it,
// so a caller that knows its predicates have neither may pass nil.
type Resolver interface {
	// RefIn reports whether the resource sub.Type/id exists, is current and not deleted, and matches
	// sub's clauses (sub's Sort, After and Limit do not apply).
	RefIn(sub *Query, id string) (bool, error)
	// Has reports whether some current, non-deleted resource of type sub.Type that matches sub's clauses
	// has an entry for param whose Value is ref.
	Has(sub *Query, param, ref string) (bool, error)
}

// Matches reports whether c satisfies every clause (an empty list is satisfied). It returns
// ErrInvalidQuery for a malformed predicate it evaluates, and what r returns; clauses and predicates are
// evaluated in order and stop at the first that decides, so use CheckQuery to refuse a malformed query
// whatever the data.
func Matches(c Candidate, clauses []Clause, r Resolver) (bool, error) {
	for _, cl := range clauses {
		ok, err := MatchesClause(c, cl, r)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// MatchesClause reports whether c satisfies any predicate of cl. An empty clause is ErrInvalidQuery:
// it would match nothing, which is never what a caller building one meant.
func MatchesClause(c Candidate, cl Clause, r Resolver) (bool, error) {
	if len(cl) == 0 {
		return false, fmt.Errorf("%w: empty clause", ErrInvalidQuery)
	}
	for _, p := range cl {
		ok, err := MatchesPredicate(c, p, r)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// MatchesPredicate reports whether c satisfies p: whether some entry of c for p.Param satisfies the
// match, negated when p.Not is set (so a negated predicate holds for a resource with no entry for the
// parameter, which is what :not and :missing=true mean in FHIR). ErrInvalidQuery if p is malformed.
func MatchesPredicate(c Candidate, p Predicate, r Resolver) (bool, error) {
	ok, err := matchesPositive(c, p, r)
	if err != nil {
		return false, err
	}
	return ok != p.Not, nil
}

// matchesPositive is MatchesPredicate without Not.
func matchesPositive(c Candidate, p Predicate, r Resolver) (bool, error) {
	if err := checkPredicate(p); err != nil {
		return false, err
	}
	switch p.Param {
	case ParamID:
		return entryMatches(IndexEntry{Param: ParamID, Value: c.ID}, p), nil
	case ParamLastUpdated:
		return entryMatches(IndexEntry{Param: ParamLastUpdated, Low: c.LastUpdated, High: c.LastUpdated}, p), nil
	}
	switch p.Match {
	case MatchHas:
		if r == nil {
			return false, fmt.Errorf("%w: _has without a resolver", ErrInvalidQuery)
		}
		return r.Has(p.Sub, p.HasParam, c.Type+"/"+c.ID)
	case MatchRefIn:
		if r == nil {
			return false, fmt.Errorf("%w: chain without a resolver", ErrInvalidQuery)
		}
		// Only a relative reference to the sub-query's type can name one of its matches; an absolute
		// URL, even to this server, is another server's resource as far as the index knows.
		prefix := p.Sub.Type + "/"
		for _, e := range c.Index {
			if e.Param != p.Param {
				continue
			}
			id, ok := strings.CutPrefix(e.Value, prefix)
			if !ok || id == "" {
				continue
			}
			if ok, err := r.RefIn(p.Sub, id); err != nil || ok {
				return ok, err
			}
		}
		return false, nil
	}
	for _, e := range c.Index {
		if e.Param == p.Param && entryMatches(e, p) {
			return true, nil
		}
	}
	return false, nil
}

// entryMatches reports whether one entry of the predicate's parameter satisfies p's match (Not aside).
// p has been checked, and is neither a chain nor a _has.
func entryMatches(e IndexEntry, p Predicate) bool {
	switch p.Match {
	case MatchPresent:
		return true
	case MatchToken:
		// "system|" (empty Value, a System) is every code in the system; "code" (AnySystem) is the code
		// in any system or none; "|code" and "system|code" need both to be equal.
		if (p.Value != "" || p.AnySystem) && e.Value != p.Value {
			return false
		}
		return p.AnySystem || e.System == p.System
	case MatchExact:
		return e.Value == p.Value
	case MatchTokenText, MatchPrefix:
		return strings.HasPrefix(e.Text, p.Value)
	case MatchContains:
		return strings.Contains(e.Text, p.Value)
	case MatchRange:
		// Every bound on the same entry: "born in 1980" is one birth date inside the year, not one
		// entry after its start and another before its end.
		for _, b := range p.Bounds {
			v := e.Low
			if b.Field == High {
				v = e.High
			}
			if !b.holds(v) {
				return false
			}
		}
		return true
	}
	return false
}

func (b Bound) holds(v int64) bool {
	switch b.Cmp {
	case LT:
		return v < b.Value
	case LE:
		return v <= b.Value
	case GT:
		return v > b.Value
	case GE:
		return v >= b.Value
	}
	return false
}

// checkPredicate refuses what no backend can evaluate, at this level only (not inside Sub).
func checkPredicate(p Predicate) error {
	if p.Param == "" && p.Match != MatchHas { // a _has names its parameter in HasParam
		return fmt.Errorf("%w: predicate without a parameter", ErrInvalidQuery)
	}
	switch p.Param {
	case ParamID:
		if p.Match != MatchPresent && p.Match != MatchExact && p.Match != MatchToken {
			return fmt.Errorf("%w: match %d on _id", ErrInvalidQuery, p.Match)
		}
	case ParamLastUpdated:
		if p.Match != MatchPresent && p.Match != MatchRange {
			return fmt.Errorf("%w: match %d on _lastUpdated", ErrInvalidQuery, p.Match)
		}
	}
	switch p.Match {
	case MatchPresent, MatchToken, MatchTokenText, MatchExact, MatchPrefix, MatchContains:
	case MatchRange:
		for _, b := range p.Bounds {
			if b.Field != Low && b.Field != High {
				return fmt.Errorf("%w: bound field %d", ErrInvalidQuery, b.Field)
			}
			if b.Cmp < LT || b.Cmp > GE {
				return fmt.Errorf("%w: comparison %d", ErrInvalidQuery, b.Cmp)
			}
		}
	case MatchRefIn:
		if p.Sub == nil || p.Sub.Type == "" {
			return fmt.Errorf("%w: chain on %q without a sub-query type", ErrInvalidQuery, p.Param)
		}
	case MatchHas:
		if p.Sub == nil || p.Sub.Type == "" || p.HasParam == "" {
			return fmt.Errorf("%w: _has without a sub-query type or a reference parameter", ErrInvalidQuery)
		}
	default:
		return fmt.Errorf("%w: unknown match %d", ErrInvalidQuery, p.Match)
	}
	return nil
}

// CheckQuery returns ErrInvalidQuery if q, or any query nested in it, could not be evaluated on any
// data: no type, an empty clause, a malformed predicate, a sort key without a parameter, or an After
// that is not one value per sort key plus the id. Backends refuse such a query even when no resource
// would reach the malformed part.
func CheckQuery(q Query) error {
	if q.Type == "" {
		return fmt.Errorf("%w: query without a type", ErrInvalidQuery)
	}
	for _, k := range q.Sort {
		if k.Param == "" {
			return fmt.Errorf("%w: sort key without a parameter", ErrInvalidQuery)
		}
	}
	if len(q.After) != 0 && len(q.After) != len(q.Sort)+1 {
		return fmt.Errorf("%w: After has %d values for %d sort keys and the id", ErrInvalidQuery, len(q.After), len(q.Sort))
	}
	for _, c := range q.Clauses {
		if len(c) == 0 {
			return fmt.Errorf("%w: empty clause", ErrInvalidQuery)
		}
		for _, p := range c {
			if err := checkPredicate(p); err != nil {
				return err
			}
			if p.Sub != nil {
				if err := CheckQuery(Query{Type: p.Sub.Type, Clauses: p.Sub.Clauses}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// SortValueOf returns c's value for the sort parameter param: its id for ParamID, its lastUpdated for
// ParamLastUpdated, otherwise the lowest value of its entries for param, each entry valued by its Text
// (normalised strings, token display), else its Value (codes, references), else, for an entry with no
// System either (a date or a number), its Low; in CompareSortValues order. An entry with a System and
// nothing else (an identifier without a value) has no value to sort by: valued by its Low, it would put
// a string parameter's resource among integers. The zero SortValue means c has no value for param.
func SortValueOf(c Candidate, param string) SortValue {
	switch param {
	case ParamID:
		return SortValue{Str: c.ID}
	case ParamLastUpdated:
		return SortValue{Int: c.LastUpdated, IsInt: true}
	}
	var best SortValue
	for _, e := range c.Index {
		if e.Param != param {
			continue
		}
		var v SortValue
		switch {
		case e.Text != "":
			v = SortValue{Str: e.Text}
		case e.Value != "":
			v = SortValue{Str: e.Value}
		case e.System == "":
			v = SortValue{Int: e.Low, IsInt: true}
		default:
			continue
		}
		if best == (SortValue{}) || CompareSortValues(v, best) < 0 {
			best = v
		}
	}
	return best
}

// CompareSortValues orders two sort values ascending: no value (the zero SortValue) first, then
// integers, then strings, each in their natural (byte-wise for strings) order. The order of the kinds
// is SQLite's and BSON's, so that a parameter whose entries mix them sorts alike on every backend.
func CompareSortValues(a, b SortValue) int {
	kind := func(v SortValue) int {
		switch {
		case v.IsInt:
			return 1
		case v.Str == "":
			return 0
		}
		return 2
	}
	if c := cmp.Compare(kind(a), kind(b)); c != 0 {
		return c
	}
	if a.IsInt {
		return cmp.Compare(a.Int, b.Int)
	}
	return cmp.Compare(a.Str, b.Str)
}

// Position returns c's place in a search sorted by keys: SortValueOf for each key, then the id, as a
// Hit's SortValues and a Query's After hold it.
func Position(c Candidate, keys []SortKey) []SortValue {
	pos := make([]SortValue, 0, len(keys)+1)
	for _, k := range keys {
		pos = append(pos, SortValueOf(c, k.Param))
	}
	return append(pos, SortValue{Str: c.ID})
}

// ComparePositions orders two positions (as Position returns them) by keys, each ascending or
// descending, and then by the id ascending, the tie-breaker every search ends with. A missing value
// sorts first ascending and so last descending. Positions shorter than len(keys)+1 compare as equal
// from the first missing value on.
func ComparePositions(keys []SortKey, a, b []SortValue) int {
	for i := range min(len(a), len(b), len(keys)+1) {
		c := CompareSortValues(a[i], b[i])
		if i < len(keys) && keys[i].Desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return 0
}
