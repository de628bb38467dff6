package sqlite

import (
	"database/sql/driver"
	"encoding/json"
	"errors"

	msqlite "modernc.org/sqlite"

	"github.com/gpfhir/gpfhir/store"
)

// SQL functions over an AuditEvent's own index entries (the audit.idx column), so that a predicate on a
// code (action, outcome, subtype, ...) is tested on each candidate record without an index of its own
// (audit.go says why). They decode the entries on every call, which costs a few microseconds: the price
// of a test per candidate, paid by searches rather than by every request's append. What matches and what
// sorts first is decided by store.MatchesPredicate and store.SortValueOf, the statement every backend
// answers by, so that these records answer as the idx table's SQL does for every other type.
//
//	audit_match(idx, param, match, system, value, anysystem, [field, cmp, bound]...)
//	    1 if an entry of param satisfies the predicate (Not aside; the SQL negates), else 0
//	audit_refs(idx, param)  the Values of param's entries, as a JSON array for json_each
//	audit_sort(idx, param)  the sort value of param (store.SortValueOf), NULL if none
func init() {
	msqlite.MustRegisterDeterministicScalarFunction("audit_match", -1, auditMatch)
	msqlite.MustRegisterDeterministicScalarFunction("audit_refs", 2, auditRefs)
	msqlite.MustRegisterDeterministicScalarFunction("audit_sort", 2, auditSort)
}

var errFuncArgs = errors.New("audit function: bad arguments")

// entriesArg decodes the entries of args[0], and returns them with the parameter args[1]. Entries that
// do not decode (an edit of the file) are none: the record is then found only by its id and date.
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
	return all, param, nil
}

func auditMatch(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	if len(args) < 6 || (len(args)-6)%3 != 0 {
		return nil, errFuncArgs
	}
	entries, param, err := entriesArg(args)
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
	p := store.Predicate{Param: param, Match: store.Match(match), System: system, Value: value, AnySystem: anySystem != 0}
	if n := (len(args) - 6) / 3; n > 0 {
		p.Bounds = make([]store.Bound, 0, n)
	}
	for i := 6; i < len(args); i += 3 {
		var bd [3]int64
		for k := range 3 {
			v, ok := args[i+k].(int64)
			if !ok {
				return nil, errFuncArgs
			}
			bd[k] = v
		}
		p.Bounds = append(p.Bounds, store.Bound{Field: store.Field(bd[0]), Cmp: store.Cmp(bd[1]), Value: bd[2]})
	}
	// No resolver: auditMatch in query.go never writes a chain or a _has this way.
	ok, err := store.MatchesPredicate(store.Candidate{Index: entries}, p, nil)
	if err != nil {
		return nil, err
	}
	return int64(boolInt(ok)), nil
}

func auditRefs(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	entries, param, err := entriesArg(args)
	if err != nil {
		return nil, err
	}
	values := make([]string, 0, len(entries))
	for _, e := range entries {
		if e.Param == param {
			values = append(values, e.Value)
		}
	}
	b, err := json.Marshal(values)
	if err != nil {
		return nil, err
	}
	return string(b), nil
}

func auditSort(_ *msqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
	entries, param, err := entriesArg(args)
	if err != nil {
		return nil, err
	}
	switch v := store.SortValueOf(store.Candidate{Index: entries}, param); {
	case v == store.SortValue{}:
		return nil, nil
	case v.IsInt:
		return v.Int, nil
	default:
		return v.Str, nil
	}
}
