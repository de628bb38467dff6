package sqlite

import (
	"database/sql/driver"
	"encoding/json"
	"errors"
	"strings"

	msqlite "modernc.org/sqlite"

	"github.com/gpfhir/gpfhir/store"
)

// SQL functions over an AuditEvent's own index entries (the audit.idx column), so that a predicate on a
// code (action, outcome, subtype, ...) is tested on each candidate record without an index of its own
// (audit.go says why). They decode the entries on every call, which costs a few microseconds: the price
// of a test per candidate, paid by searches rather than by every request's append.
//
//	audit_match(idx, param, match, system, value, anysystem, [field, cmp, bound]...)
//	    1 if an entry of param satisfies the predicate, as the idx table's SQL in query.go would
//	    (store.Match semantics; bounds all on the same entry), else 0
//	audit_refs(idx, param)  the Values of param's entries, as a JSON array for json_each
//	audit_sort(idx, param)  the sort value of param (lowest Text, else Value, else Low), NULL if none
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("audit_match", -1, auditMatch)
	msqlite.MustRegisterDeterministicScalarFunction("audit_refs", 2, auditRefs)
	msqlite.MustRegisterDeterministicScalarFunction("audit_sort", 2, auditSort)
}

var errFuncArgs = errors.New("audit function: bad arguments")

// entriesArg decodes the entries of args[0] whose parameter is args[1]. Entries that do not decode (an
// edit of the file) are none: the record is then found only by its id and date.
func entriesArg(args []driver.Value) ([]store.IndexEntry, string, error) {
	if len(args) < 2 {
		return nil, "", errFuncArgs
	}
	param, ok := args[1].(string)
	if !ok {
		return nil, "", errFuncArgs
	}
	blob, _ := args[0].([]byte)
	all, err := unpackIndex(blob)
	if err != nil {
		return nil, param, nil
	}
	var out []store.IndexEntry
	for _, e := range all {
		if e.Param == param {
			out = append(out, e)
		}
	}
	return out, param, nil
}

func auditMatch(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	if len(args) < 6 || (len(args)-6)%3 != 0 {
		return nil, errFuncArgs
	}
	entries, _, err := entriesArg(args)
	if err != nil {
		return nil, err
	}
	match, ok1 := args[2].(int64)
	system, ok2 := args[3].(string)
	value, ok3 := args[4].(string)
	anySystem, ok4 := args[5].(int64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return nil, errFuncArgs
	}
	var bounds [][3]int64
	for i := 6; i < len(args); i += 3 {
		var bd [3]int64
		for k := range 3 {
			v, ok := args[i+k].(int64)
			if !ok {
				return nil, errFuncArgs
			}
			bd[k] = v
		}
		bounds = append(bounds, bd)
	}
	for _, e := range entries {
		if entryMatches(e, store.Match(match), system, value, anySystem != 0, bounds) {
			return int64(1), nil
		}
	}
	return int64(0), nil
}

// entryMatches is query.go's match for one entry, in Go.
func entryMatches(e store.IndexEntry, m store.Match, system, value string, anySystem bool, bounds [][3]int64) bool {
	switch m {
	case store.MatchPresent:
		return true
	case store.MatchToken:
		if (value != "" || anySystem) && e.Value != value {
			return false
		}
		return anySystem || e.System == system
	case store.MatchExact:
		return e.Value == value
	case store.MatchTokenText, store.MatchPrefix:
		return strings.HasPrefix(e.Text, value)
	case store.MatchContains:
		return strings.Contains(e.Text, value)
	case store.MatchRange:
		for _, bd := range bounds {
			v := e.Low
			if store.Field(bd[0]) == store.High {
				v = e.High
			}
			if !compare(v, store.Cmp(bd[1]), bd[2]) {
				return false
			}
		}
		return true
	}
	return false
}

func compare(v int64, c store.Cmp, bound int64) bool {
	switch c {
	case store.LT:
		return v < bound
	case store.LE:
		return v <= bound
	case store.GT:
		return v > bound
	case store.GE:
		return v >= bound
	}
	return false
}

func auditRefs(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	entries, _, err := entriesArg(args)
	if err != nil {
		return nil, err
	}
	values := make([]string, 0, len(entries))
	for _, e := range entries {
		values = append(values, e.Value)
	}
	b, err := json.Marshal(values)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func auditSort(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	entries, _, err := entriesArg(args)
	if err != nil {
		return nil, err
	}
	// Text and Value compare as strings, Low as an integer, and an integer sorts below every string in
	// SQLite, as min() over the idx table's CASE expression would have it.
	var best driver.Value
	for _, e := range entries {
		var v driver.Value
		switch {
		case e.Text != "":
			v = e.Text
		case e.Value != "":
			v = e.Value
		default:
			v = e.Low
		}
		if best == nil || less(v, best) {
			best = v
		}
	}
	return best, nil
}

func less(a, b driver.Value) bool {
	ai, aInt := a.(int64)
	bi, bInt := b.(int64)
	switch {
	case aInt && bInt:
		return ai < bi
	case aInt != bInt:
		return aInt
	}
	return a.(string) < b.(string)
}
