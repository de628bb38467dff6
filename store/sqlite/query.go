package sqlite

import (
	"context"
	"database/sql/driver"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Which index serves which predicate in a driving clause (all lead with type, param so a search never
// leaves one parameter); clauses tested per row use idx_resource, see perRowIndex:
//
//	MatchPresent                      any idx_* index, on (type, param)
//	MatchToken, MatchExact            idx_value  (type, param, value, system, n, id)
//	MatchToken with only a System     idx_system (type, param, system, value, n, id) WHERE system <> ''
//	MatchTokenText, MatchPrefix       idx_text   (type, param, text, n, id) WHERE text <> '', as a range
//	MatchContains                     idx_text, on (type, param), with instr over the covering index
//	MatchRange                        idx_range  (type, param, lo, hi, id) WHERE value = ''
//	MatchHas                          idx_value, as a range of "Type/" references
//	sort keys, deletes                idx_resource (n, type, id, param, value, text, lo), n from current
//
// idx_system, idx_text and idx_range are partial: each holds only the entries its matches can select, and
// a predicate that uses one names the index's condition as well, since SQLite takes a partial index only
// for a query whose WHERE states its condition.
//
// Every value reaches SQLite as a bound parameter; only aliases and operators are written into the text.

// tables names where resources of one type are kept. Most types live in current, history and idx;
// AuditEvents in the audit chain and audit_ref, whose columns are named alike (see audit.go), so that one
// compiler serves both. An AuditEvent's date is its last_updated (dateColumn); audit_ref holds only the
// reference parameters, and every other predicate on an AuditEvent is tested on the record's own entries
// (entries, and auditfuncs.go).
type tables struct {
	current, history, idx string
	// indexed reports whether idx has the idx_* indexes that INDEXED BY names.
	indexed bool
	// dateColumn is the parameter answered from last_updated rather than from entries ("" if none).
	dateColumn string
	// entries reports that each row of current carries its index entries (column idx), which the
	// audit_* SQL functions read: predicates tested per row use them instead of the idx table.
	entries bool
}

var (
	resourceTables = tables{current: "current", history: "history", idx: "idx", indexed: true}
	auditTables    = tables{current: "audit", history: "audit", idx: "audit_ref", dateColumn: auditDate, entries: true}
)

func tablesOf(typ string) tables {
	if typ == store.AuditEventType {
		return auditTables
	}
	return resourceTables
}

// indexedBy is the INDEXED BY clause naming index, where the table has it.
func (t tables) indexedBy(index string) string {
	if !t.indexed {
		return ""
	}
	return ` INDEXED BY ` + index
}

// missing is the sort value of a resource without an entry for a sort parameter. -Inf is below every
// integer and every string in SQLite's ordering, so missing sorts first ascending, and unlike NULL it
// compares equal to itself in a keyset condition.
var missing = math.Inf(-1)

type builder struct {
	sb      strings.Builder
	args    []any
	aliases int // table aliases handed out, to keep them apart
}

func (b *builder) w(ss ...string) {
	for _, s := range ss {
		b.sb.WriteString(s)
	}
}

func (b *builder) arg(v any) {
	b.sb.WriteByte('?')
	b.args = append(b.args, v)
}

// buildSearch compiles q to one statement whose rows are id, version, last_updated, deleted, body, and then
// one column per sort key.
//
// Without sort keys the matches come out of the current table's primary key already in id order, so the
// page is read in order and the scan stops at the limit. With sort keys the matches are materialised first,
// so that each key's correlated subquery runs once per resource; the page is cut from them before the
// history join, so only the page's bodies are read and sorted.
func buildSearch(q store.Query) (string, []any, error) {
	if len(q.After) != 0 && len(q.After) != len(q.Sort)+1 {
		return "", nil, fmt.Errorf("%w: After has %d values for %d sort keys and the id", store.ErrInvalidQuery, len(q.After), len(q.Sort))
	}
	b := &builder{}
	t := tablesOf(q.Type)
	cols := `SELECT q.id, q.version, h.last_updated, h.deleted, h.body`
	for i := range q.Sort {
		cols += `, q.k` + strconv.Itoa(i)
	}
	sorted := len(q.Sort) > 0
	d, walk := refOrdered(q)
	switch {
	case sorted && (walk || columnsOnly(q)):
		// Sorted by columns only (an AuditEvent's date, _lastUpdated, _id), or walked from audit_ref
		// (below): there is no per-row subquery to run once, and left unmaterialised SQLite can walk an
		// index in the sort's order and stop at the page, instead of sorting every match
		// (AuditEvent?_sort=-date on the whole trail).
		b.w(`WITH q AS NOT MATERIALIZED (`)
	case sorted:
		b.w(`WITH q AS MATERIALIZED (`)
	default:
		b.w(cols, ` FROM (`)
	}
	if walk {
		// The auditor's question ("who saw this patient"): audit_ref's key holds one value's entries
		// newest first, so the page is read from its cursor there, the other clauses tested on each
		// record, and stops; the general form below would first list every record that names the value,
		// then look up and sort them all.
		x := b.alias("i")
		b.w(`SELECT `, x, `.id AS id, r.version AS version, `, x, `.t AS k0 FROM `, t.idx, ` `, x, ` CROSS JOIN `, t.current, ` r ON r.id = `, x, `.id WHERE `, x, `.param = `)
		if err := b.refWalk(q, d, x); err != nil {
			return "", nil, err
		}
	} else if err := b.rows(q, t, sorted); err != nil {
		return "", nil, err
	}
	if sorted {
		b.w(`), p AS (SELECT * FROM q`)
		b.pageOf(q)
		b.w(`) `, cols, ` FROM p AS q JOIN `, t.history, ` h ON h.type = `)
		b.arg(q.Type)
		b.w(` AND h.id = q.id AND h.version = q.version`)
		b.orderBy(q.Sort)
		return b.sb.String(), b.args, nil
	}
	b.w(`) AS q JOIN `, t.history, ` h ON h.type = `)
	b.arg(q.Type)
	b.w(` AND h.id = q.id AND h.version = q.version`)
	b.pageOf(q)
	return b.sb.String(), b.args, nil
}

// rows writes the general form of a page's candidates: the rows of q's type with their sort keys, the
// clauses driving from an index or, for a Scan, tested on each row walked in id order.
func (b *builder) rows(q store.Query, t tables, sorted bool) error {
	b.w(`SELECT r.id AS id, r.version AS version`)
	for i, k := range q.Sort {
		b.w(`, `)
		if err := b.sortExpr(q.Type, k.Param); err != nil {
			return err
		}
		b.w(` AS k`, strconv.Itoa(i))
	}
	b.w(` FROM `, t.current, ` r WHERE `)
	if q.Scan && !sorted {
		// Walk the primary key in id order from the page's start, every clause tested per row: the
		// page then costs what it reads up to its limit, however much the clauses select in all.
		if err := b.pinned(q, "r"); err != nil {
			return err
		}
		if len(q.After) > 0 {
			b.w(` AND r.id > `)
			b.arg(q.After[len(q.After)-1].Str)
		}
	} else if err := b.where(q, "r"); err != nil {
		return err
	}
	return nil
}

// refOrdered reports whether q is an AuditEvent search driven by one reference (a patient, an agent, an
// entity or a source) newest first: the order in which audit_ref's primary key holds a value's entries.
// It returns the driving clause. A reference entry has no system, so a record has one entry per value
// and a walk meets each record once. In id order (no sort) the general form lists the value's records
// and sorts them: the API sorts AuditEvent searches newest first unless asked otherwise.
func refOrdered(q store.Query) (int, bool) {
	if !tablesOf(q.Type).entries || q.Scan || len(q.Sort) != 1 || q.Sort[0].Param != auditDate || !q.Sort[0].Desc {
		return -1, false
	}
	d := drivingClause(q.Type, q.Clauses)
	if d < 0 || len(q.Clauses[d]) != 1 {
		return -1, false
	}
	p := q.Clauses[d][0]
	return d, p.Match == store.MatchExact && !p.Not && auditRefParams[p.Param] && p.Param != "altid"
}

// refWalk writes the conditions of a refOrdered query on the audit_ref entry x (its parameter's name
// already written) and the record r: x names the value, and every other clause is tested on r.
func (b *builder) refWalk(q store.Query, d int, x string) error {
	p := q.Clauses[d][0]
	b.arg(refParam(tablesOf(q.Type), p))
	if err := b.match(p, x, false); err != nil {
		return err
	}
	b.w(` AND `)
	if err := b.self(q, "r"); err != nil {
		return err
	}
	for i, c := range q.Clauses {
		if i == d && !patientFound(p) {
			continue
		}
		b.w(` AND `)
		if err := b.perRow(c, q.Type, "r"); err != nil {
			return err
		}
	}
	return nil
}

// columnsOnly reports whether every sort key of q is a column of the current table.
func columnsOnly(q store.Query) bool {
	for _, k := range q.Sort {
		if !isColumn(q.Type, k.Param) {
			return false
		}
	}
	return true
}

// pageOf writes the keyset condition, order and limit over the rows aliased q.
func (b *builder) pageOf(q store.Query) {
	if len(q.After) > 0 {
		b.w(` WHERE `)
		b.keyset(q.Sort, q.After)
	}
	b.orderBy(q.Sort)
	if q.Limit > 0 {
		b.w(` LIMIT +`) // +?: see limitParam
		b.arg(q.Limit)
	}
}

func (b *builder) orderBy(sort []store.SortKey) {
	b.w(` ORDER BY `)
	for i, k := range sort {
		b.w(`q.k`, strconv.Itoa(i))
		if k.Desc {
			b.w(` DESC`)
		}
		b.w(`, `)
	}
	b.w(`q.id`)
}

func buildCount(q store.Query) (string, []any, error) {
	b := &builder{}
	b.w(`SELECT count(*) FROM `, tablesOf(q.Type).current, ` r WHERE `)
	if err := b.where(q, "r"); err != nil {
		return "", nil, err
	}
	return b.sb.String(), b.args, nil
}

// buildExists is the statement that selects 1 when q has a match, 0 when not: what a search of one
// would find, without reading the match's version and body.
func buildExists(q store.Query) (string, []any, error) {
	b := &builder{}
	b.w(`SELECT EXISTS (SELECT 1 FROM `, tablesOf(q.Type).current, ` r WHERE `)
	if err := b.where(q, "r"); err != nil {
		return "", nil, err
	}
	b.w(`)`)
	return b.sb.String(), b.args, nil
}

// sortExpr writes the sort value of the resource aliased r: a column for the special parameters, else
// the lowest of the parameter's entries as store.SortValueOf values them: its Text, else its Value, else
// (for dates and numbers, which have no System either) its Low; an entry with only a System is NULL,
// which min() passes over. system is not in idx_resource, and SQLite reads the row for it only when the
// CASE gets that far, so the CASE asks it last, of the entries whose Low is 0: a date costs no row read
// (reading system for every entry made a sort by a date a fifth slower). The one difference from
// store.SortValueOf: an entry with a System, no Text or Value and a Low other than 0 sorts by its Low
// here; no extraction writes such an entry.
func (b *builder) sortExpr(typ, param string) error {
	t := tablesOf(typ)
	switch param {
	case "":
		return fmt.Errorf("%w: sort key without a parameter", store.ErrInvalidQuery)
	case store.ParamID:
		b.w(`r.id`)
	case store.ParamLastUpdated, t.dateColumn:
		b.w(`r.last_updated`)
	default:
		if t.entries {
			b.w(`coalesce(audit_sort(r.idx, `)
			b.arg(param)
			b.w(`), `)
			b.arg(missing)
			b.w(`)`)
			return nil
		}
		b.w(`coalesce((SELECT min(CASE WHEN s.text <> '' THEN s.text WHEN s.value <> '' THEN s.value WHEN s.lo <> 0 THEN s.lo WHEN s.system = '' THEN 0 END)`,
			` FROM `, t.idx, ` s WHERE s.n = r.n AND s.type = r.type AND s.id = r.id AND s.param = `)
		b.arg(param)
		b.w(`), `)
		b.arg(missing)
		b.w(`)`)
	}
	return nil
}

// keyset writes "(k0, k1, ..., id) comes after the cursor" in OR form, because the keys may mix directions.
func (b *builder) keyset(sort []store.SortKey, after []store.SortValue) {
	cols := make([]string, 0, len(after))
	desc := make([]bool, 0, len(after))
	for i, k := range sort {
		cols = append(cols, "q.k"+strconv.Itoa(i))
		desc = append(desc, k.Desc)
	}
	cols = append(cols, "q.id")
	desc = append(desc, false)
	b.w(`(`)
	for i := range cols {
		if i > 0 {
			b.w(` OR `)
		}
		b.w(`(`)
		for j := 0; j < i; j++ {
			b.w(cols[j], ` = `)
			b.arg(sortArg(after[j]))
			b.w(` AND `)
		}
		op := ` > `
		if desc[i] {
			op = ` < `
		}
		b.w(cols[i], op)
		b.arg(sortArg(after[i]))
		b.w(`)`)
	}
	b.w(`)`)
	if len(sort) > 0 {
		// Implied by the above, but in a form an index on the first key can seek to, so that a later
		// page starts where the cursor is instead of skipping every row before it.
		op := ` >= `
		if desc[0] {
			op = ` <= `
		}
		b.w(` AND `, cols[0], op)
		b.arg(sortArg(after[0]))
	}
}

func sortArg(v store.SortValue) any {
	switch {
	case v.IsInt:
		return v.Int
	case v.Str == "":
		return missing
	default:
		return v.Str
	}
}

func sortValue(v any) store.SortValue {
	switch v := v.(type) {
	case int64:
		return store.SortValue{Int: v, IsInt: true}
	case string:
		return store.SortValue{Str: v}
	case []byte:
		return store.SortValue{Str: string(v)}
	default: // missing
		return store.SortValue{}
	}
}

// How a query's clauses are evaluated. A materialised subquery ("r.id IN (SELECT ...)") costs what it
// selects, whatever else the query says, so it is fit to drive a search only when it is the caller's own,
// usually selective, criterion. The access clauses the API appends select what a caller may see (a whole
// practice's patients and everything about them); materialised, they would make every search cost as much
// as the practice, and then be cut down to the page the caller's criterion selects. So:
//
//   - in a query, and in a sub-query that is itself materialised, one clause drives: the first whose
//     predicates are all positive, which is the caller's criterion because restrictions are appended
//     last. It compiles to an IN list read from the index that serves it (the table at the top of this
//     file);
//   - every other clause is tested per candidate row, as a correlated EXISTS on the candidate's own index
//     entries under (type, id, param) in idx_resource, so it costs a few index probes per candidate
//     whatever it would select on its own;
//   - a chain tested per candidate row pins the referenced resource by the id in the reference and tests
//     every clause of the sub-query on that one row in the same way, at any depth; a _has tested per
//     candidate row finds the references to the candidate through idx_value.
//
// A query whose every clause has a negation has nothing to drive it: every current resource of the type
// is a candidate, read from the primary key, so its cost follows the number of resources of the type (as
// a negation always did). A query with only an access clause is driven by it, and costs what the caller
// may see of the type, which is then also the size of its result.

// where writes the conditions of q on the current table aliased a: one clause driving, the others tested
// per row.
func (b *builder) where(q store.Query, a string) error {
	if err := b.self(q, a); err != nil {
		return err
	}
	d := drivingClause(q.Type, q.Clauses)
	if d < 0 {
		return b.perRowAll(q.Clauses, q.Type, a)
	}
	if err := b.perRowAll(q.Clauses[:d], q.Type, a); err != nil {
		return err
	}
	b.w(` AND `)
	if err := b.driving(q.Clauses[d], q.Type, a); err != nil {
		return err
	}
	if tablesOf(q.Type).entries && slices.ContainsFunc(q.Clauses[d], patientFound) {
		// Its index entries selected a superset (patientFound).
		return b.perRowAll(q.Clauses[d:], q.Type, a)
	}
	return b.perRowAll(q.Clauses[d+1:], q.Type, a)
}

// perRowAll writes clauses tested on each candidate, each after AND: one by one, except that a run
// withoutTokensRun finds is one test.
func (b *builder) perRowAll(cs []store.Clause, typ, a string) error {
	for i := 0; i < len(cs); {
		n := withoutTokensRun(cs[i:], typ)
		b.w(` AND `)
		if err := b.perRowRun(cs[i:i+n], typ, a); err != nil {
			return err
		}
		i += n
	}
	return nil
}

// perRowRun writes clauses tested on each candidate: one clause as perRow does, or a run that
// withoutTokensRun found as one test.
func (b *builder) perRowRun(cs []store.Clause, typ, a string) error {
	if len(cs) == 1 {
		return b.perRow(cs[0], typ, a)
	}
	ps := make([]store.Predicate, len(cs))
	for i, c := range cs {
		ps[i] = c[0]
	}
	return b.tokenSet(ps, typ, a, true)
}

// withoutTokensRun is how many clauses at the start of cs can be tested as one: each a single negated
// token with a system and a code, all of one parameter (the labels a patient may not see:
// _security:not=R, :not=V, ...). 1 when only the first can.
func withoutTokensRun(cs []store.Clause, typ string) int {
	n := 1
	if len(cs[0]) != 1 || !setToken(cs[0][0], typ, true) {
		return n
	}
	for n < len(cs) && len(cs[n]) == 1 && cs[n][0].Param == cs[0][0].Param && setToken(cs[n][0], typ, true) {
		n++
	}
	return n
}

// setToken reports whether p can be one of the codes tokenSet tests: a token with a system and a code,
// negated or not as not says, on a type with an entry table.
func setToken(p store.Predicate, typ string, not bool) bool {
	return p.Match == store.MatchToken && !p.AnySystem && p.Value != "" && p.Not == not &&
		!tablesOf(typ).entries && !isColumn(typ, p.Param)
}

// tokenSet writes "the candidate a has (not: has none of) these codes of one parameter" as one look-up of
// the candidate's entries for the parameter, instead of one per code: a patient's search tests three
// withheld labels on every candidate, each a probe of the candidate's entries, where one look-up finds
// the few entries the candidate has for the parameter at once.
func (b *builder) tokenSet(ps []store.Predicate, typ, a string, not bool) error {
	for _, p := range ps {
		if err := indexParam(typ, p); err != nil {
			return err
		}
	}
	x := b.alias("i")
	t := tablesOf(typ)
	b.w(`(`)
	if not {
		b.w(`NOT `)
	}
	b.w(`EXISTS (SELECT 1 FROM `, t.idx, ` `, x, t.indexedBy(perRowIndex), ` WHERE `, x, `.n = `, a, `.n AND `, x, `.type = `)
	b.arg(typ)
	b.w(` AND `, x, `.id = `, a, `.id AND `, x, `.param = `)
	b.arg(ps[0].Param)
	b.w(` AND (`)
	for i, p := range ps {
		if i > 0 {
			b.w(` OR `)
		}
		b.w(`(1`)
		p.Not = false
		if err := b.match(p, x, true); err != nil {
			return err
		}
		b.w(`)`)
	}
	b.w(`)))`)
	return nil
}

// drivingClause is the clause that drives a query of typ (-1 for none): store.DrivingClause, except
// that a type whose rows carry their entries can drive only from a clause whose every predicate has an
// index (drives); the rest are tested on each record, and a query with no such clause reads every
// record of the type.
func drivingClause(typ string, cs []store.Clause) int {
	if !tablesOf(typ).entries {
		return store.DrivingClause(cs)
	}
	for i, c := range cs {
		ok := len(c) > 0
		for _, p := range c {
			ok = ok && drives(typ, p)
		}
		if ok {
			return i
		}
	}
	return -1
}

// drives reports whether p, on a type whose rows carry their entries, can be looked up in an index:
// a column, a reference parameter by value or by chain (but not to a Device, which audit_ref leaves out:
// refKept), or a _has.
func drives(typ string, p store.Predicate) bool {
	switch {
	case p.Not:
		return false
	case isColumn(typ, p.Param), p.Match == store.MatchHas:
		return true
	case p.Match == store.MatchExact:
		return auditRefParams[p.Param] && refKept(p.Value)
	case p.Match == store.MatchRefIn:
		return auditRefParams[p.Param] && p.Sub != nil && p.Sub.Type != "Device"
	case p.Match == store.MatchToken:
		return auditRefParams[p.Param] && p.Value != "" && refKept(p.Value)
	}
	return false
}

// pinned writes the conditions of q on a current row aliased a that the caller has already pinned by its
// id: every clause is tested on that row, none drives.
func (b *builder) pinned(q store.Query, a string) error {
	if err := b.self(q, a); err != nil {
		return err
	}
	return b.perRowAll(q.Clauses, q.Type, a)
}

// self writes the conditions every match of q meets: its type, and not deleted.
func (b *builder) self(q store.Query, a string) error {
	if q.Type == "" {
		return fmt.Errorf("%w: query without a type", store.ErrInvalidQuery)
	}
	b.w(a, `.type = `)
	b.arg(q.Type)
	b.w(` AND `, a, `.deleted = 0`)
	return nil
}

// driving writes a clause that selects the candidates. When every predicate is a plain index lookup, the
// lookups are UNIONed into one IN list, which SQLite can drive from the index instead of testing each
// resource of the type.
func (b *builder) driving(c store.Clause, typ, a string) error {
	if len(c) == 0 {
		return fmt.Errorf("%w: empty clause", store.ErrInvalidQuery)
	}
	union := true
	for _, p := range c {
		if p.Not || isColumn(typ, p.Param) {
			union = false
		}
	}
	if union {
		b.w(a, `.id IN (`)
		for i, p := range c {
			if i > 0 {
				b.w(` UNION ALL `)
			}
			if err := b.ids(p, typ); err != nil {
				return err
			}
		}
		b.w(`)`)
		return nil
	}
	if len(c) > 1 && !slices.ContainsFunc(c, func(p store.Predicate) bool { return p.Param != c[0].Param || !setToken(p, typ, false) }) {
		return b.tokenSet(c, typ, a, false)
	}
	b.w(`(`)
	for i, p := range c {
		if i > 0 {
			b.w(` OR `)
		}
		if ok, err := b.column(typ, p, a); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		b.w(a, `.id `)
		if p.Not {
			b.w(`NOT `)
		}
		b.w(`IN (`)
		if err := b.ids(p, typ); err != nil {
			return err
		}
		b.w(`)`)
	}
	b.w(`)`)
	return nil
}

// perRow writes a clause tested on the one row aliased a: each predicate a correlated EXISTS (NOT EXISTS
// when negated) on that row's entries.
func (b *builder) perRow(c store.Clause, typ, a string) error {
	if len(c) == 0 {
		return fmt.Errorf("%w: empty clause", store.ErrInvalidQuery)
	}
	if len(c) > 1 && !slices.ContainsFunc(c, func(p store.Predicate) bool { return p.Param != c[0].Param || !setToken(p, typ, false) }) {
		return b.tokenSet(c, typ, a, false)
	}
	b.w(`(`)
	for i, p := range c {
		if i > 0 {
			b.w(` OR `)
		}
		if ok, err := b.column(typ, p, a); ok || err != nil {
			if err != nil {
				return err
			}
			continue
		}
		if tablesOf(typ).entries && p.Match != store.MatchRefIn && p.Match != store.MatchHas {
			if err := b.auditMatch(p, a); err != nil {
				return err
			}
			continue
		}
		if p.Not {
			b.w(`NOT `)
		}
		b.w(`EXISTS (`)
		if err := b.entry(p, typ, a); err != nil {
			return err
		}
		b.w(`)`)
	}
	b.w(`)`)
	return nil
}

// isColumn reports whether param is answered from the current table's own columns.
func isColumn(typ, param string) bool {
	return param == store.ParamID || param == store.ParamLastUpdated || (param != "" && param == tablesOf(typ).dateColumn)
}

// column writes p when it is answered from the current table's own columns (_id, _lastUpdated, an
// AuditEvent's date) and reports whether it was. A date that is an instant has Low = High = the
// column, so both bound fields compare with it.
func (b *builder) column(typ string, p store.Predicate, a string) (bool, error) {
	param := p.Param
	if param != "" && param == tablesOf(typ).dateColumn {
		param = store.ParamLastUpdated
	}
	switch param {
	case store.ParamID:
		switch {
		case p.Match == store.MatchToken && !p.AnySystem && (p.System != "" || p.Value == ""):
			// An id is a code without a system (store.Matches): "system|id" matches nothing, and "|"
			// every code without a system, so every id.
			b.w(strconv.Itoa(boolInt((p.System == "") != p.Not)))
		case p.Match == store.MatchExact, p.Match == store.MatchToken:
			b.w(a, `.id`)
			if p.Not {
				b.w(` <> `)
			} else {
				b.w(` = `)
			}
			b.arg(p.Value)
		case p.Match == store.MatchPresent:
			b.w(strconv.Itoa(boolInt(!p.Not)))
		default:
			return true, fmt.Errorf("%w: match %d on _id", store.ErrInvalidQuery, p.Match)
		}
		return true, nil
	case store.ParamLastUpdated:
		switch p.Match {
		case store.MatchRange:
			if p.Not {
				b.w(`NOT `)
			}
			b.w(`(1`)
			for _, bd := range p.Bounds {
				if bd.Field != store.Low && bd.Field != store.High {
					return true, fmt.Errorf("%w: bound field %d", store.ErrInvalidQuery, bd.Field)
				}
				op, err := cmpOp(bd.Cmp)
				if err != nil {
					return true, err
				}
				b.w(` AND `, a, `.last_updated`, op)
				b.arg(bd.Value)
			}
			b.w(`)`)
		case store.MatchPresent:
			b.w(strconv.Itoa(boolInt(!p.Not)))
		default:
			return true, fmt.Errorf("%w: match %d on _lastUpdated", store.ErrInvalidQuery, p.Match)
		}
		return true, nil
	}
	return false, nil
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

func cmpOp(c store.Cmp) (string, error) {
	switch c {
	case store.LT:
		return ` < `, nil
	case store.LE:
		return ` <= `, nil
	case store.GT:
		return ` > `, nil
	case store.GE:
		return ` >= `, nil
	}
	return "", fmt.Errorf("%w: comparison %d", store.ErrInvalidQuery, c)
}

// alias returns a table alias not used elsewhere in the statement, so that a correlated subquery can
// always name the row it is correlated with.
func (b *builder) alias(prefix string) string {
	b.aliases++
	return prefix + strconv.Itoa(b.aliases)
}

func indexParam(typ string, p store.Predicate) error {
	if p.Param == "" || isColumn(typ, p.Param) {
		return fmt.Errorf("%w: parameter %q in an index predicate", store.ErrInvalidQuery, p.Param)
	}
	return nil
}

// ids writes a SELECT of the ids of resources of type typ that have an entry satisfying p (Not ignored),
// all of them: a materialised list for a driving clause.
func (b *builder) ids(p store.Predicate, typ string) error {
	x := b.alias("i")
	if p.Match == store.MatchHas {
		return b.has(p, typ, x)
	}
	if err := indexParam(typ, p); err != nil {
		return err
	}
	t := tablesOf(typ)
	b.w(`SELECT `, x, `.id FROM `, t.idx, ` `, x, ` WHERE `, x, `.type = `)
	b.arg(typ)
	b.w(` AND `, x, `.param = `)
	b.arg(refParam(t, p))
	return b.match(p, x, false)
}

// patientFound reports whether the AuditEvents matching p are found through their patient entries: p
// names a local Patient as agent or entity, and audit_ref keeps no entries of those (refs.go), since
// each has a patient entry of the same value (audit.PatientImplied). The patient's entries select a
// superset, the records that name the Patient in any of the three roles, so p is then tested on each.
func patientFound(p store.Predicate) bool {
	if p.Not || (p.Param != "agent" && p.Param != "entity") {
		return false
	}
	switch p.Match {
	case store.MatchExact:
		return audit.IsPatientRef(p.Value)
	case store.MatchToken:
		// A Patient's agent or entity entry has no system (audit.CheckBatch), so a token with a system
		// matches none, which the kept entries show as well as any.
		return (p.AnySystem || p.System == "") && audit.IsPatientRef(p.Value)
	case store.MatchRefIn:
		return p.Sub != nil && p.Sub.Type == "Patient"
	}
	return false
}

// refParam is the parameter of the index entries that find p's matches in t: audit_ref's patient
// entries for a predicate they stand for (patientFound), p's own otherwise.
func refParam(t tables, p store.Predicate) string {
	if t.entries && patientFound(p) {
		return "patient"
	}
	return p.Param
}

// entry writes a SELECT that has a row when the resource of type typ aliased a has an entry satisfying p
// (Not ignored). It reads only that resource's entries, found by its id (for _has: the references to it).
func (b *builder) entry(p store.Predicate, typ, a string) error {
	x := b.alias("i")
	if p.Match == store.MatchHas {
		return b.hasEntry(p, typ, a, x)
	}
	if err := indexParam(typ, p); err != nil {
		return err
	}
	t := tablesOf(typ)
	if t.entries {
		// Only a chain gets here (perRow): the record's references, from its own entries, as rows.
		b.w(`SELECT 1 FROM json_each(audit_refs(`, a, `.idx, `)
		b.arg(p.Param)
		b.w(`)) `, x, ` WHERE 1`)
		return b.match(p, x, true)
	}
	b.w(`SELECT 1 FROM `, t.idx, ` `, x, t.indexedBy(perRowIndex), ` WHERE `, x, `.n = `, a, `.n AND `, x, `.type = `)
	b.arg(typ)
	b.w(` AND `, x, `.id = `, a, `.id AND `, x, `.param = `)
	b.arg(p.Param)
	return b.match(p, x, true)
}

// perRowIndex is the index that finds one resource's entries satisfying a predicate by the n of its
// current row and its id: idx_resource, keyed (n, type, id, param), where one resource has only a few.
// The planner, without statistics, would rather take a range of idx_text or idx_range over every
// resource (two equalities and a range look cheaper to it than three equalities), which costs what the
// predicate selects across the store: the very cost testing per row is meant to avoid. idx_value cannot
// find it either: within a key its entries are in the order they were written, not by id (the schema
// says why), so it would read every entry of the code. A token's system is read from the table row, for
// the few entries matched.
const perRowIndex = "idx_resource"

// valueEq is how an equality on value is written: "value = +?", not "value = ?". idx_range's condition
// is that value is empty, and when SQLite weighs a partial index it compares the query's terms with the
// condition; a term "value = ?" has the condition's shape, so the planner reads the bound value to decide
// and marks the statement to be prepared again whenever that binding changes. Every search by token or
// reference then re-parsed and re-planned its statement on every run (a sixth of the server's CPU in a
// gpfhir bench run of patient reads and compartment searches, in sqlite3Reprepare). The unary plus is a
// no-op on the value and its affinity, and the term still drives idx_value.
// TestNoQueryIsPreparedAgainOnEveryRun keeps the queries off these shapes.
const valueEq = `.value = +`

// limitParam is how a LIMIT takes a parameter: "LIMIT +?", not "LIMIT ?". The SQLite of modernc.org/sqlite
// v1.62 reads a bound LIMIT's value while planning, and so marks the statement to be prepared again
// whenever that parameter is bound, which database/sql does on every run: every page of every search
// re-parsed and re-planned its statement (a GP system's compartment search took 150 µs a run on an empty
// store, 32 µs with the plus; the rest of the CPU profile's sqlite3Reprepare after valueEq). The unary
// plus hides the value from the planner and changes nothing else.
const limitParam = ` LIMIT +?`

// match writes the conditions on the entry aliased x for p's Match. perRow says whether x is one
// candidate's entry (entry) rather than every entry of the parameter (ids), which decides how a chain is
// followed.
func (b *builder) match(p store.Predicate, x string, perRow bool) error {
	switch p.Match {
	case store.MatchPresent:
	case store.MatchToken:
		if p.Value != "" || p.AnySystem {
			b.w(` AND `, x, valueEq)
			b.arg(p.Value)
		}
		if !p.AnySystem {
			b.w(` AND `, x, `.system = `)
			b.arg(p.System)
			if p.Value == "" && p.System != "" {
				// Implied by the equality, but SQLite uses the partial idx_system only for a query that
				// names its condition.
				b.w(` AND `, x, `.system <> ''`)
			}
		}
	case store.MatchExact:
		b.w(` AND `, x, valueEq)
		b.arg(p.Value)
	case store.MatchTokenText, store.MatchPrefix:
		// text <> '' is idx_text's condition (see the schema); an entry without text matches no text.
		b.w(` AND `, x, `.text <> '' AND `, x, `.text >= `)
		b.arg(p.Value)
		if end, ok := prefixEnd(p.Value); ok {
			b.w(` AND `, x, `.text < `)
			b.arg(end)
		} else if p.Value != "" {
			b.w(` AND substr(`, x, `.text, 1, length(`)
			b.arg(p.Value)
			b.w(`)) = `)
			b.arg(p.Value)
		}
	case store.MatchContains:
		b.w(` AND `, x, `.text <> '' AND instr(`, x, `.text, `)
		b.arg(p.Value)
		b.w(`) > 0`)
	case store.MatchRange:
		// A date's entry has only lo and hi (fhir.Extract); value = '' is idx_range's condition.
		b.w(` AND `, x, `.value = ''`)
		for _, bd := range p.Bounds {
			col := ".lo"
			switch bd.Field {
			case store.Low:
			case store.High:
				col = ".hi"
			default:
				return fmt.Errorf("%w: bound field %d", store.ErrInvalidQuery, bd.Field)
			}
			op, err := cmpOp(bd.Cmp)
			if err != nil {
				return err
			}
			b.w(` AND `, x, col, op)
			b.arg(bd.Value)
		}
	case store.MatchRefIn:
		if p.Sub == nil {
			return fmt.Errorf("%w: chained predicate on %q without a sub-query", store.ErrInvalidQuery, p.Param)
		}
		if perRow {
			return b.refTo(*p.Sub, x)
		}
		return b.refIn(*p.Sub, x)
	default:
		return fmt.Errorf("%w: match %d", store.ErrInvalidQuery, p.Match)
	}
	return nil
}

// refIn writes "the entry x references a match of sub" with sub's matches materialised as references: a
// driving chain, whose sub-query is the caller's criterion and selects few resources.
func (b *builder) refIn(sub store.Query, x string) error {
	s := b.alias("c")
	b.w(` AND `, x, `.value IN (SELECT `)
	b.arg(sub.Type + "/")
	b.w(` || `, s, `.id FROM `, tablesOf(sub.Type).current, ` `, s, ` WHERE `)
	if err := b.where(sub, s); err != nil {
		return err
	}
	b.w(`)`)
	return nil
}

// refTo writes "the entry x references a match of sub" for one candidate's entry: the reference names the
// one resource to test, found by its primary key, so nothing is materialised. References to sub.Type are
// the range ["Type/", "Type0") of x's index, since '0' follows '/'; any other reference (another type, an
// absolute URL) cannot match, as in refIn.
func (b *builder) refTo(sub store.Query, x string) error {
	if sub.Type == "" {
		return fmt.Errorf("%w: query without a type", store.ErrInvalidQuery)
	}
	prefix := sub.Type + "/"
	s := b.alias("c")
	b.w(` AND `, x, `.value > `)
	b.arg(prefix)
	b.w(` AND `, x, `.value < `)
	b.arg(sub.Type + "0")
	b.w(` AND EXISTS (SELECT 1 FROM `, tablesOf(sub.Type).current, ` `, s, ` WHERE `, s, `.id = substr(`, x, `.value, `)
	b.arg(len(prefix) + 1)
	b.w(`) AND `)
	if err := b.pinned(sub, s); err != nil {
		return err
	}
	b.w(`)`)
	return nil
}

// has writes the ids of resources of type typ referenced, through p.HasParam, by a resource matching p.Sub.
// References to typ are the index range ["typ/", "typ0"), since '0' follows '/'.
func (b *builder) has(p store.Predicate, typ, x string) error {
	if p.Sub == nil || p.HasParam == "" {
		return fmt.Errorf("%w: _has without a sub-query or a reference parameter", store.ErrInvalidQuery)
	}
	prefix := typ + "/"
	s := b.alias("c")
	t := tablesOf(p.Sub.Type)
	if t.entries {
		// The referrers drive (their own clauses choose how), and their references come from their
		// entries: audit_ref is keyed by value, not by record.
		b.w(`SELECT substr(`, x, `.value, `)
		b.arg(len(prefix) + 1)
		b.w(`) FROM `, t.current, ` `, s, `, json_each(audit_refs(`, s, `.idx, `)
		b.arg(p.HasParam)
		b.w(`)) `, x, ` WHERE `, x, `.value > `)
		b.arg(prefix)
		b.w(` AND `, x, `.value < `)
		b.arg(typ + "0")
		b.w(` AND `)
		return b.where(*p.Sub, s)
	}
	b.w(`SELECT substr(`, x, `.value, `)
	b.arg(len(prefix) + 1)
	b.w(`) FROM `, t.idx, ` `, x, ` WHERE `, x, `.type = `)
	b.arg(p.Sub.Type)
	b.w(` AND `, x, `.param = `)
	b.arg(p.HasParam)
	b.w(` AND `, x, `.value > `)
	b.arg(prefix)
	b.w(` AND `, x, `.value < `)
	b.arg(typ + "0")
	b.w(` AND `, x, `.id IN (SELECT `, s, `.id FROM `, t.current, ` `, s, ` WHERE `)
	if err := b.where(*p.Sub, s); err != nil {
		return err
	}
	b.w(`)`)
	return nil
}

// hasEntry writes a SELECT that has a row when a resource matching p.Sub references the resource of type
// typ aliased a through p.HasParam. The references to one resource are one key of idx_value, and each
// referrer is tested on its own row.
func (b *builder) hasEntry(p store.Predicate, typ, a, x string) error {
	if p.Sub == nil || p.HasParam == "" {
		return fmt.Errorf("%w: _has without a sub-query or a reference parameter", store.ErrInvalidQuery)
	}
	s := b.alias("c")
	t := tablesOf(p.Sub.Type)
	ref := store.Predicate{Param: p.HasParam, Match: store.MatchRefIn, Sub: &store.Query{Type: typ}}
	b.w(`SELECT 1 FROM `, t.idx, ` `, x, t.indexedBy("idx_value"), ` WHERE `, x, `.type = `)
	b.arg(p.Sub.Type)
	b.w(` AND `, x, `.param = `)
	b.arg(refParam(t, ref))
	b.w(` AND `, x, `.value = `)
	b.arg(typ + "/")
	b.w(` || `, a, `.id AND EXISTS (SELECT 1 FROM `, t.current, ` `, s, ` WHERE `, s, `.id = `, x, `.id AND `)
	if err := b.pinned(*p.Sub, s); err != nil {
		return err
	}
	if refParam(t, ref) != p.HasParam {
		// Found through the patient entry (patientFound): the record must name it as HasParam.
		b.w(` AND audit_match(`, s, `.idx, `)
		b.arg(p.HasParam)
		b.w(`, `)
		b.arg(int64(store.MatchExact))
		b.w(`, '', `, x, `.value, 0)`)
	}
	b.w(`)`)
	return nil
}

// prefixEnd returns the least string greater than every string starting with p, for a range scan.
func prefixEnd(p string) (string, bool) {
	e := []byte(p)
	for i := len(e) - 1; i >= 0; i-- {
		if e[i] < 0xff {
			e[i]++
			return string(e[:i+1]), true
		}
	}
	return "", false
}

// Search returns current, non-deleted resources matching q in q's order. ErrInvalidQuery if q cannot be
// compiled (no type, an unknown Match, a chain without Sub, After of the wrong length).
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Hit, error) {
	if seesAudit(&q) {
		if err := s.auditReady(ctx); err != nil {
			return nil, err
		}
	}
	q, err := s.dropImpliedChains(ctx, q)
	if err != nil {
		return nil, err
	}
	if query, args, ok := buildKeyed(q); ok {
		// At most a page of rows, each found by key: as quick as a read by id, so as little worth
		// interrupting.
		hits, err := s.search(uncancelled(ctx), q, query, args)
		if err != nil {
			return nil, err
		}
		if page, ok := keyedPage(hits, q.Limit); ok {
			return page, nil
		}
	}
	query, args, err := buildSearch(q)
	if err != nil {
		return nil, err
	}
	return s.search(ctx, q, query, args)
}

// dropImpliedChains returns q without each chain that another of its clauses already implies: a
// clause "P is in Sub" (MatchRefIn) beside "P is Type/id" (MatchExact), where Type/id is itself matched
// by Sub. Every resource that the second selects then has an entry of P, Type/id, that satisfies the
// first. It is how a GP system's search of one patient's compartment comes: its practices are a chain
// through the patient to the practice's Organization, which the general form tests on every
// candidate (Immunization?patient= with six hits: 54 µs alone on a demo store), though the patient is
// the same for all of them; the patient is tested once instead (17 µs), and what is left is one
// equality, which buildKeyed serves (19 µs). When Type/id is not matched by Sub the chain stays: another
// entry of P may satisfy it.
func (s *Store) dropImpliedChains(ctx context.Context, q store.Query) (store.Query, error) {
	if tablesOf(q.Type).entries || len(q.Clauses) < 2 {
		return q, nil
	}
	var kept []store.Clause
	for i, c := range q.Clauses {
		id, ok := impliedChain(q.Clauses, i)
		if ok {
			sub := *c[0].Sub
			// The id first: the general form drives from the first clause it can, and Sub's own
			// clauses (a practice's registered patients) would list every resource they match.
			sub.Clauses = append([]store.Clause{{{Param: store.ParamID, Match: store.MatchExact, Value: id}}}, sub.Clauses...)
			query, args, err := buildExists(sub)
			if err != nil {
				return q, err
			}
			holds, err := s.intRow(ctx, query, args)
			if err != nil {
				return q, err
			}
			if holds == 1 {
				if kept == nil {
					kept = append(make([]store.Clause, 0, len(q.Clauses)), q.Clauses[:i]...)
				}
				continue
			}
		}
		if kept != nil {
			kept = append(kept, c)
		}
	}
	if kept != nil {
		q.Clauses = kept
	}
	return q, nil
}

// impliedChain reports whether clause i of cs is one chain, "P is in Sub", beside a clause "P is
// Sub.Type/id", and returns the id.
func impliedChain(cs []store.Clause, i int) (string, bool) {
	if len(cs[i]) != 1 {
		return "", false
	}
	chain := cs[i][0]
	if chain.Match != store.MatchRefIn || chain.Not || chain.Sub == nil || tablesOf(chain.Sub.Type).entries {
		return "", false
	}
	for j, c := range cs {
		if j == i || len(c) != 1 {
			continue
		}
		p := c[0]
		if p.Param != chain.Param || p.Match != store.MatchExact || p.Not {
			continue
		}
		if id, ok := strings.CutPrefix(p.Value, chain.Sub.Type+"/"); ok && id != "" && !strings.Contains(id, "/") {
			return id, true
		}
	}
	return "", false
}

// keyedLimit is the largest page buildKeyed serves: past it, a value with more matches than the page
// would cost a page's worth of rows read for nothing before the general form runs.
const keyedLimit = 100

// buildKeyed compiles q in the keyed form, when q is one equality on one index parameter, unsorted, and
// its first page (a patient's look-up by NHS number on every patient request, a compartment search
// by patient, a GP system's search by identifier): the entries, their current rows and versions
// joined in the index's order, at most Limit+1 of them. The general form lists the matching ids
// first and then walks current in id order; for a handful of matches that cost twice a read by id
// (BenchmarkStore/SearchIdentifierPage10 12.6-13.6 µs, Get 6.3), this about 1.5 times (9.7-10.1 µs).
// The index's order is not id order, so keyedPage sorts the rows, and leaves a value with more than a
// page of matches to the general form, which finds which come first.
func buildKeyed(q store.Query) (string, []any, bool) {
	return buildKeyedFlagged(q, nil)
}

// buildKeyedFlagged is buildKeyed with one more column when flag is not empty: whether the row fails
// one of flag's clauses (SearchScreened's withheld).
func buildKeyedFlagged(q store.Query, flag []store.Clause) (string, []any, bool) {
	t := tablesOf(q.Type)
	if t.entries || q.Scan || len(q.Sort) > 0 || len(q.After) > 0 || q.Limit <= 0 || q.Limit > keyedLimit ||
		len(q.Clauses) != 1 || len(q.Clauses[0]) != 1 {
		return "", nil, false
	}
	p := q.Clauses[0][0]
	if p.Not || indexParam(q.Type, p) != nil || !(p.Match == store.MatchExact || p.Match == store.MatchToken && p.Value != "") {
		return "", nil, false
	}
	b := &builder{}
	// CROSS JOIN keeps SQLite from starting anywhere but the index.
	b.w(`SELECT r.id, r.version, h.last_updated, h.deleted, h.body`)
	if len(flag) > 0 {
		b.w(`, NOT (1`)
		if b.perRowAll(flag, q.Type, "r") != nil {
			return "", nil, false
		}
		b.w(`)`)
	}
	b.w(` FROM `, t.idx, ` i1 CROSS JOIN `, t.current,
		` r CROSS JOIN `, t.history, ` h WHERE i1.type = `)
	b.arg(q.Type)
	b.w(` AND i1.param = `)
	b.arg(p.Param)
	if err := b.match(p, "i1", false); err != nil {
		return "", nil, false
	}
	b.w(` AND r.type = `)
	b.arg(q.Type)
	b.w(` AND r.id = i1.id AND r.deleted = 0 AND h.type = `)
	b.arg(q.Type)
	b.w(` AND h.id = r.id AND h.version = r.version`, limitParam)
	b.args = append(b.args, q.Limit+1)
	return b.sb.String(), b.args, true
}

// SearchScreened answers store.Screener: with screenedKeyed's one statement when it can, else with
// store.SearchThenProbe.
func (s *Store) SearchScreened(ctx context.Context, q store.Query, screen int) ([]store.Hit, bool, error) {
	if err := store.CheckScreen(q, screen); err != nil {
		return nil, false, err
	}
	if hits, withheld, ok, err := s.screenedKeyed(ctx, q, screen); ok || err != nil {
		return hits, withheld, err
	}
	return store.SearchThenProbe(ctx, s, q, screen)
}

// screenedKeyed serves SearchScreened when q without its screen is a keyed search (buildKeyed) with no
// more matches than q's page: one statement reads them all, each with whether the screen withholds
// it, which is both the page and the probe's answer. ok is false when it cannot: q has no keyed form,
// or a cursor, or more matches than the page, whose first are the general form's to find.
func (s *Store) screenedKeyed(ctx context.Context, q store.Query, screen int) (hits []store.Hit, withheld, ok bool, err error) {
	if len(q.After) > 0 {
		return nil, false, false, nil
	}
	open := q
	open.Clauses = q.Clauses[:len(q.Clauses)-screen]
	if open, err = s.dropImpliedChains(ctx, open); err != nil {
		return nil, false, false, err
	}
	query, args, ok := buildKeyedFlagged(open, q.Clauses[len(q.Clauses)-screen:])
	if !ok {
		return nil, false, false, nil
	}
	rows := 0
	// As quick as the keyed search, and as little worth interrupting.
	err = s.eachRow(uncancelled(ctx), query, args, hitCols+1, func(cols []driver.Value) error {
		if rows++; rows > q.Limit {
			return nil
		}
		if cols[hitCols] == int64(1) {
			withheld = true
			return nil
		}
		h, err := hitOf(q.Type, cols[:hitCols])
		if err == nil {
			hits = append(hits, h)
		}
		return err
	})
	if err != nil || rows > q.Limit {
		return nil, false, false, err
	}
	page, _ := keyedPage(hits, q.Limit)
	return page, withheld, true, nil
}

// keyedPage makes the page of a keyed search's rows: in id order, each resource once (a resource has
// one entry per value, but the contract does not promise it); false when there were more rows than
// the page, and so perhaps matches the rows left out that come before some of them.
func keyedPage(hits []store.Hit, limit int) ([]store.Hit, bool) {
	if len(hits) > limit {
		return nil, false
	}
	slices.SortFunc(hits, func(a, b store.Hit) int { return strings.Compare(a.Resource.ID, b.Resource.ID) })
	return slices.CompactFunc(hits, func(a, b store.Hit) bool { return a.Resource.ID == b.Resource.ID }), true
}

// search runs a search's statement through the driver, as keyStmt runs reads by key: on a statement
// kept on the connection (at most maxConnStmts of them), its rows read as the driver's values.
// database/sql's Rows and Scan on top of the statement were most of the difference between a patient's
// look-up by NHS number, on every patient request, and a read by id. Each row is the resource's id,
// version, last_updated, deleted and body, then its sort keys.
func (s *Store) search(ctx context.Context, q store.Query, query string, args []any) ([]store.Hit, error) {
	var hits []store.Hit
	err := s.eachRow(ctx, query, args, hitCols+len(q.Sort), func(cols []driver.Value) error {
		h, err := hitOf(q.Type, cols)
		if err == nil {
			hits = append(hits, h)
		}
		return err
	})
	return hits, err
}

// eachRow runs query on a read connection, its statement prepared once per shape (boundedStmt), and
// hands each row's n columns to each.
func (s *Store) eachRow(ctx context.Context, query string, args []any, n int, each func([]driver.Value) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return translate(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		c, err := connOf(dc)
		if err != nil {
			return err
		}
		st, kept, err := c.boundedStmt(ctx, query)
		if err != nil {
			return err
		}
		if !kept {
			defer st.Close()
		}
		named, err := namedArgs(args)
		if err != nil {
			return err
		}
		rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, named)
		if err != nil {
			return err
		}
		defer rows.Close()
		cols := make([]driver.Value, n)
		for {
			switch err := rows.Next(cols); {
			case err == io.EOF:
				return nil
			case err != nil:
				return err
			}
			if err := each(cols); err != nil {
				return err
			}
		}
	})
	return translate(err)
}

// intRow runs query, which selects one integer, as eachRow does.
func (s *Store) intRow(ctx context.Context, query string, args []any) (int64, error) {
	var n int64
	err := s.eachRow(ctx, query, args, 1, func(cols []driver.Value) error {
		v, ok := cols[0].(int64)
		if !ok {
			return fmt.Errorf("sqlite: %T where an integer was selected", cols[0])
		}
		n = v
		return nil
	})
	return n, err
}

// hitCols are the columns of a search's row before its sort keys.
const hitCols = 5

// hitOf makes a Hit of a search's row: the resource, and its sort keys with the id last.
func hitOf(typ string, cols []driver.Value) (store.Hit, error) {
	id, err := stringValue(cols[0])
	if err != nil {
		return store.Hit{}, err
	}
	r, err := resourceOf(typ, id, cols[1:hitCols])
	if err != nil {
		return store.Hit{}, err
	}
	if typ == store.AuditEventType {
		r.Body = unpack(r.Body)
	}
	keys := cols[hitCols:]
	h := store.Hit{Resource: r, SortValues: make([]store.SortValue, 0, len(keys)+1)}
	for _, k := range keys {
		h.SortValues = append(h.SortValues, sortValue(k))
	}
	h.SortValues = append(h.SortValues, store.SortValue{Str: r.ID})
	return h, nil
}

// Count returns how many current, non-deleted resources match q. ErrInvalidQuery as for Search.
func (s *Store) Count(ctx context.Context, q store.Query) (int, error) {
	if seesAudit(&q) {
		if err := s.auditReady(ctx); err != nil {
			return 0, err
		}
	}
	q, err := s.dropImpliedChains(ctx, q)
	if err != nil {
		return 0, err
	}
	query, args, err := buildCount(q)
	if err != nil {
		return 0, err
	}
	n, err := s.intRow(ctx, query, args)
	return int(n), err
}

// auditMatch writes p as a test of the record aliased a on its own entries (auditfuncs.go): the
// predicate's match, parameter, system, value and bounds, as audit_match reads them.
func (b *builder) auditMatch(p store.Predicate, a string) error {
	switch p.Match {
	case store.MatchPresent, store.MatchToken, store.MatchExact, store.MatchTokenText, store.MatchPrefix, store.MatchContains, store.MatchRange:
	default:
		return fmt.Errorf("%w: match %d", store.ErrInvalidQuery, p.Match)
	}
	if p.Not {
		b.w(`NOT `)
	}
	b.w(`audit_match(`, a, `.idx, `)
	b.arg(p.Param)
	b.w(`, `)
	b.arg(int64(p.Match))
	b.w(`, `)
	b.arg(p.System)
	b.w(`, `)
	b.arg(p.Value)
	b.w(`, `)
	b.arg(boolInt(p.AnySystem))
	for _, bd := range p.Bounds {
		if bd.Field != store.Low && bd.Field != store.High {
			return fmt.Errorf("%w: bound field %d", store.ErrInvalidQuery, bd.Field)
		}
		if _, err := cmpOp(bd.Cmp); err != nil {
			return err
		}
		b.w(`, `)
		b.arg(int64(bd.Field))
		b.w(`, `)
		b.arg(int64(bd.Cmp))
		b.w(`, `)
		b.arg(bd.Value)
	}
	b.w(`)`)
	return nil
}

// seesAudit reports whether q, or any query nested in it, selects AuditEvents, and so may read audit_ref.
func seesAudit(q *store.Query) bool {
	if q == nil {
		return false
	}
	if q.Type == store.AuditEventType {
		return true
	}
	for _, c := range q.Clauses {
		for _, p := range c {
			if seesAudit(p.Sub) {
				return true
			}
		}
	}
	return false
}
