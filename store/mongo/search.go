package mongo

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/store"
)

// Search compiles q into a find on res_<Type> (see plan for which clauses it holds) and tests the clauses
// left out of it on each batch of the documents it returns (see scan).
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Hit, error) {
	if err := store.CheckQuery(q); err != nil {
		return nil, err
	}
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	// Scan (a bulk export's pages): nothing drives; the type is read in _id order from the cursor and
	// every chain, _has and range is tested on each batch, so a page costs its batches rather than the
	// practice's whole list of patients again (which, past about 500,000 ids, would not even fit in a
	// command).
	p, err := s.plan(ctx, q, nil, q.Scan && len(q.Sort) == 0)
	if err != nil {
		return nil, err
	}
	proj := append(bson.D{}, projResource...)
	for _, k := range q.Sort {
		if k.Param != store.ParamID && k.Param != store.ParamLastUpdated {
			proj = append(proj, bson.E{Key: sortKeyField(k.Param), Value: 1})
		}
	}
	hits := make([]store.Hit, 0, min(q.Limit, maxBatch))
	err = s.scan(ctx, q, p, proj, q.Limit, func(d *curDoc) {
		hits = append(hits, store.Hit{Resource: d.resource(q.Type), SortValues: sortValues(q.Sort, d)})
	})
	if err != nil {
		return nil, err
	}
	return hits, nil
}

// Count counts matches of the same plan as Search. When every clause is in the find, the server counts.
// Otherwise the candidates are read in batches (ids and references only) and the postponed clauses tested
// on them, as Search does: this costs what the driving clause selects rather than what the postponed
// clauses select, which is the cheaper of the two for the common count, a caller's criterion restricted
// to a practice. A count whose driving clause is broad (every Immunization of a status, restricted) reads
// every candidate's ids, where evaluating the restriction whole would have listed the practice once.
func (s *Store) Count(ctx context.Context, q store.Query) (int, error) {
	if err := store.CheckQuery(store.Query{Type: q.Type, Clauses: q.Clauses}); err != nil {
		return 0, err
	}
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	p, err := s.plan(ctx, q, nil, false)
	if err != nil {
		return 0, err
	}
	if len(p.later) == 0 {
		n, err := s.res(q.Type).CountDocuments(ctx, p.filter)
		if err != nil {
			return 0, translate("count", err)
		}
		return int(n), nil
	}
	q.Sort, q.After = nil, nil
	n := 0
	err = s.scan(ctx, q, p, bson.D{{Key: "_id", Value: 1}}, 0, func(*curDoc) { n++ })
	return n, err
}

// sortValues is d's position in a search sorted by keys: one value per key, then the id.
func sortValues(keys []store.SortKey, d *curDoc) []store.SortValue {
	sv := make([]store.SortValue, 0, len(keys)+1)
	for _, k := range keys {
		switch k.Param {
		case store.ParamID:
			sv = append(sv, store.SortValue{Str: d.ID})
		case store.ParamLastUpdated:
			sv = append(sv, store.SortValue{Int: d.LU, IsInt: true})
		default:
			sv = append(sv, toSortValue(d.Sort[sortField(k.Param)]))
		}
	}
	return append(sv, store.SortValue{Str: d.ID})
}

// sortsByID says whether the id is already a sort key, so the id tie-breaker is redundant (and a
// duplicate key in the sort document).
func sortsByID(keys []store.SortKey) bool {
	for _, k := range keys {
		if k.Param == store.ParamID {
			return true
		}
	}
	return false
}

func sortKeyField(param string) string {
	switch param {
	case store.ParamID:
		return "_id"
	case store.ParamLastUpdated:
		return fLU
	}
	return fSort + "." + sortField(param)
}

func toSortValue(v any) store.SortValue {
	switch x := v.(type) {
	case string:
		return store.SortValue{Str: x}
	case int64:
		return store.SortValue{Int: x, IsInt: true}
	case int32:
		return store.SortValue{Int: int64(x), IsInt: true}
	}
	return store.SortValue{} // no entry
}

// sortArg is the BSON value of a cursor key; ok is false for "no entry".
func sortArg(v store.SortValue) (any, bool) {
	if v.IsInt {
		return v.Int, true
	}
	if v.Str == "" {
		return nil, false
	}
	return v.Str, true
}

// keyset builds the "strictly after" condition for the sort (fields..., _id asc). A missing sort value
// sorts first ascending and last descending, as MongoDB orders missing fields. $gt and $lt compare within
// one BSON type only, so a page cannot step from an integer sort value to a string one: that needs a
// parameter whose entries are dates or numbers on some resources and strings on others, which no FHIR
// search parameter extracts (store.SortValueOf gives an entry with only a system no value, for this).
func keyset(sort []store.SortKey, after []store.SortValue, fields []string) (bson.D, error) {
	if len(after) != len(sort)+1 {
		return nil, fmt.Errorf("%w: cursor has %d values for %d sort keys", store.ErrInvalidQuery, len(after), len(sort)+1)
	}
	eq := func(f string, v store.SortValue) bson.D {
		if a, ok := sortArg(v); ok {
			return bson.D{{Key: f, Value: a}}
		}
		return bson.D{{Key: f, Value: bson.D{{Key: "$exists", Value: false}}}}
	}
	var or bson.A
	prefix := bson.A{}
	for i := 0; i <= len(sort); i++ {
		f, desc, v := "_id", false, after[i]
		if i < len(sort) {
			f, desc = fields[i], sort[i].Desc
		}
		a, ok := sortArg(v)
		var gt bson.D
		switch {
		case !desc && !ok:
			gt = bson.D{{Key: f, Value: bson.D{{Key: "$exists", Value: true}}}}
		case !desc:
			gt = bson.D{{Key: f, Value: bson.D{{Key: "$gt", Value: a}}}}
		case desc && ok:
			gt = bson.D{{Key: "$or", Value: bson.A{
				bson.D{{Key: f, Value: bson.D{{Key: "$lt", Value: a}}}},
				bson.D{{Key: f, Value: bson.D{{Key: "$exists", Value: false}}}},
			}}}
		}
		if gt != nil {
			branch := append(append(bson.A{}, prefix...), gt)
			or = append(or, bson.D{{Key: "$and", Value: branch}})
		}
		prefix = append(prefix, eq(f, v))
	}
	if len(or) == 0 {
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}, nil
	}
	return bson.D{{Key: "$or", Value: or}}, nil
}

// clause compiles one clause for the find on res_<typ>: an $or of its predicates.
func (s *Store) clause(ctx context.Context, typ string, c store.Clause) (bson.D, error) {
	if len(c) == 0 {
		return nil, fmt.Errorf("%w: empty clause", store.ErrInvalidQuery)
	}
	var or bson.A
	for _, p := range c {
		f, err := s.predicate(ctx, typ, p)
		if err != nil {
			return nil, err
		}
		if p.Not {
			f = bson.D{{Key: "$nor", Value: bson.A{f}}}
		}
		or = append(or, f)
	}
	if len(or) == 1 {
		return or[0].(bson.D), nil
	}
	return bson.D{{Key: "$or", Value: or}}, nil
}

var (
	matchAll  = bson.D{{Key: "_id", Value: bson.D{{Key: "$exists", Value: true}}}}
	matchNone = bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: bson.A{}}}}}
)

// predicate compiles the positive form of p (Not is applied by the caller with $nor).
func (s *Store) predicate(ctx context.Context, typ string, p store.Predicate) (bson.D, error) {
	switch p.Param {
	case store.ParamID:
		switch p.Match {
		case store.MatchPresent:
			return matchAll, nil
		case store.MatchExact:
			return bson.D{{Key: "_id", Value: p.Value}}, nil
		case store.MatchToken:
			// An id is a code without a system (store.Matches).
			switch {
			case !p.AnySystem && p.System != "":
				return matchNone, nil
			case !p.AnySystem && p.Value == "":
				return matchAll, nil
			}
			return bson.D{{Key: "_id", Value: p.Value}}, nil
		}
		return nil, fmt.Errorf("%w: match %d on _id", store.ErrInvalidQuery, p.Match)
	case store.ParamLastUpdated:
		switch p.Match {
		case store.MatchPresent:
			return matchAll, nil
		case store.MatchRange:
			b, err := bounds(p.Bounds, fLU, fLU)
			if err != nil {
				return nil, err
			}
			return b, nil
		}
		return nil, fmt.Errorf("%w: match %d on _lastUpdated", store.ErrInvalidQuery, p.Match)
	}
	pre := p.Param + "|"
	switch p.Match {
	case store.MatchPresent:
		return bson.D{{Key: fPresent, Value: p.Param}}, nil
	case store.MatchToken:
		switch {
		case p.AnySystem:
			return bson.D{{Key: fVal, Value: pre + p.Value}}, nil
		case p.Value == "":
			return bson.D{{Key: fTok, Value: prefixRegex(pre + p.System + "|")}}, nil
		default:
			return bson.D{{Key: fTok, Value: pre + p.System + "|" + p.Value}}, nil
		}
	case store.MatchExact:
		return bson.D{{Key: fVal, Value: pre + p.Value}}, nil
	case store.MatchTokenText, store.MatchPrefix:
		return bson.D{{Key: fText, Value: prefixRegex(pre + p.Value)}}, nil
	case store.MatchContains:
		return bson.D{{Key: fText, Value: bson.Regex{Pattern: "^" + quoteRegex(pre) + ".*" + quoteRegex(p.Value), Options: "s"}}}, nil
	case store.MatchRange:
		return s.rangeIDs(ctx, typ, p)
	case store.MatchRefIn:
		if p.Sub == nil || p.Sub.Type == "" {
			return nil, fmt.Errorf("%w: chain without a sub-query type", store.ErrInvalidQuery)
		}
		ids, err := s.subIDs(ctx, *p.Sub)
		if err != nil {
			return nil, err
		}
		refs := make(bson.A, len(ids))
		for i, id := range ids {
			refs[i] = pre + p.Sub.Type + "/" + id
		}
		return bson.D{{Key: fVal, Value: bson.D{{Key: "$in", Value: refs}}}}, nil
	case store.MatchHas:
		if p.Sub == nil || p.Sub.Type == "" || p.HasParam == "" {
			return nil, fmt.Errorf("%w: _has without a sub-query type or parameter", store.ErrInvalidQuery)
		}
		ids, err := s.hasIDs(ctx, typ, p)
		if err != nil {
			return nil, err
		}
		return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, nil
	}
	return nil, fmt.Errorf("%w: unknown match %d", store.ErrInvalidQuery, p.Match)
}

// prefixRegex is an anchored, case-sensitive prefix match, which MongoDB answers with an index range.
func prefixRegex(prefix string) bson.Regex {
	return bson.Regex{Pattern: "^" + quoteRegex(prefix), Options: ""}
}

// quoteRegex makes s a pattern that matches s literally. Beyond regexp.QuoteMeta, a NUL byte becomes the
// escape \x00: a BSON regex is a C string, and a NUL in a search value (family=a%00b) made the driver
// refuse the filter, which answered 500.
func quoteRegex(s string) string {
	return strings.ReplaceAll(regexp.QuoteMeta(s), "\x00", `\x00`)
}

// bounds compiles range bounds onto the fields holding Low and High. No bounds is an empty filter: a
// range without bounds holds for any entry (store.Matches).
func bounds(bs []store.Bound, low, high string) (bson.D, error) {
	byField := map[string]bson.D{}
	var order []string
	for _, b := range bs {
		f := low
		switch b.Field {
		case store.Low:
		case store.High:
			f = high
		default:
			return nil, fmt.Errorf("%w: bound field %d", store.ErrInvalidQuery, b.Field)
		}
		var op string
		switch b.Cmp {
		case store.LT:
			op = "$lt"
		case store.LE:
			op = "$lte"
		case store.GT:
			op = "$gt"
		case store.GE:
			op = "$gte"
		default:
			return nil, fmt.Errorf("%w: bound comparison %d", store.ErrInvalidQuery, b.Cmp)
		}
		if _, ok := byField[f]; !ok {
			order = append(order, f)
		}
		byField[f] = append(byField[f], bson.E{Key: op, Value: b.Value})
	}
	out := bson.D{}
	for _, f := range order {
		out = append(out, bson.E{Key: f, Value: byField[f]})
	}
	return out, nil
}

// rangeIDs evaluates a date/number predicate on the idx collection (index t_p_lo_hi or t_p_hi): the ids
// of resources with one entry satisfying every bound.
func (s *Store) rangeIDs(ctx context.Context, typ string, p store.Predicate) (bson.D, error) {
	hit, err := s.rangeHits(ctx, typ, p)
	if err != nil {
		return nil, err
	}
	ids := make(bson.A, 0, len(hit))
	for id := range hit {
		ids = append(ids, id)
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, nil
}

// rangeHits returns the ids of resources of typ with an idx entry for p satisfying every bound, over the
// whole type (index t_p_lo_hi or t_p_hi).
func (s *Store) rangeHits(ctx context.Context, typ string, p store.Predicate) (map[string]bool, error) {
	b, err := bounds(p.Bounds, "lo", "hi")
	if err != nil {
		return nil, err
	}
	f := append(bson.D{{Key: "t", Value: typ}, {Key: "p", Value: p.Param}}, b...)
	cur, err := s.db.Collection(collIdx).Find(ctx, f, options.Find().SetProjection(bson.D{{Key: "r", Value: 1}, {Key: "_id", Value: 0}}))
	if err != nil {
		return nil, translate("range", err)
	}
	var rows []struct {
		ID string `bson:"r"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, translate("range", err)
	}
	hit := make(map[string]bool, len(rows))
	for _, r := range rows {
		hit[r.ID] = true
	}
	return hit, nil
}

// subIDs evaluates an inner query whole to the ids of its matches (a driving chain).
func (s *Store) subIDs(ctx context.Context, q store.Query) ([]string, error) {
	p, err := s.plan(ctx, q, nil, false)
	if err != nil {
		return nil, err
	}
	var ids []string
	err = s.scan(ctx, q, p, bson.D{{Key: "_id", Value: 1}}, 0, func(d *curDoc) { ids = append(ids, d.ID) })
	return ids, err
}

// hasIDs evaluates a driving _has whole: the ids of typ that some match of p.Sub references through
// p.HasParam.
func (s *Store) hasIDs(ctx context.Context, typ string, p store.Predicate) (bson.A, error) {
	pre := p.HasParam + "|" + typ + "/"
	pl, err := s.plan(ctx, *p.Sub, bson.D{{Key: fVal, Value: prefixRegex(pre)}}, false)
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	ids := bson.A{}
	err = s.scan(ctx, *p.Sub, pl, bson.D{{Key: fVal, Value: 1}}, 0, func(d *curDoc) {
		for _, v := range d.Val {
			if id, ok := strings.CutPrefix(v, pre); ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	})
	if err != nil {
		return nil, err
	}
	return ids, nil
}
