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

// Search compiles q into one find on res_<Type>. Date/number predicates, chains (MatchRefIn) and _has
// (MatchHas) are first evaluated into id or reference sets, which become $in/$nin lists.
func (s *Store) Search(ctx context.Context, q store.Query) ([]store.Hit, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	filter, err := s.compile(ctx, q)
	if err != nil {
		return nil, err
	}
	sortSpec := bson.D{}
	fields := make([]string, 0, len(q.Sort))
	for _, k := range q.Sort {
		f := sortKeyField(k.Param)
		fields = append(fields, f)
		dir := 1
		if k.Desc {
			dir = -1
		}
		sortSpec = append(sortSpec, bson.E{Key: f, Value: dir})
	}
	if len(q.After) > 0 {
		after, err := keyset(q, fields)
		if err != nil {
			return nil, err
		}
		filter = bson.D{{Key: "$and", Value: bson.A{filter, after}}}
	}
	if !sortsByID(q.Sort) {
		sortSpec = append(sortSpec, bson.E{Key: "_id", Value: 1})
	}
	proj := append(bson.D{}, projResource...)
	for _, k := range q.Sort {
		if k.Param != store.ParamID && k.Param != store.ParamLastUpdated {
			proj = append(proj, bson.E{Key: sortKeyField(k.Param), Value: 1})
		}
	}
	o := options.Find().SetSort(sortSpec).SetProjection(proj)
	if q.Limit > 0 {
		o.SetLimit(int64(q.Limit))
	}
	cur, err := s.res(q.Type).Find(ctx, filter, o)
	if err != nil {
		return nil, translate("search", err)
	}
	var docs []curDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate("search", err)
	}
	hits := make([]store.Hit, len(docs))
	for i := range docs {
		d := &docs[i]
		sv := make([]store.SortValue, 0, len(q.Sort)+1)
		for _, k := range q.Sort {
			switch k.Param {
			case store.ParamID:
				sv = append(sv, store.SortValue{Str: d.ID})
			case store.ParamLastUpdated:
				sv = append(sv, store.SortValue{Int: d.LU, IsInt: true})
			default:
				sv = append(sv, toSortValue(d.Sort[sortField(k.Param)]))
			}
		}
		sv = append(sv, store.SortValue{Str: d.ID})
		hits[i] = store.Hit{Resource: d.resource(q.Type), SortValues: sv}
	}
	return hits, nil
}

// Count counts matches with the same filter as Search.
func (s *Store) Count(ctx context.Context, q store.Query) (int, error) {
	if err := s.begin(); err != nil {
		return 0, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	filter, err := s.compile(ctx, q)
	if err != nil {
		return 0, err
	}
	n, err := s.res(q.Type).CountDocuments(ctx, filter)
	if err != nil {
		return 0, translate("count", err)
	}
	return int(n), nil
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

// keyset builds the "strictly after q.After" condition for the sort (fields..., _id asc). A missing sort
// value sorts first ascending and last descending, as MongoDB orders missing fields.
func keyset(q store.Query, fields []string) (bson.D, error) {
	if len(q.After) != len(q.Sort)+1 {
		return nil, fmt.Errorf("%w: cursor has %d values for %d sort keys", store.ErrInvalidQuery, len(q.After), len(q.Sort)+1)
	}
	eq := func(f string, v store.SortValue) bson.D {
		if a, ok := sortArg(v); ok {
			return bson.D{{Key: f, Value: a}}
		}
		return bson.D{{Key: f, Value: bson.D{{Key: "$exists", Value: false}}}}
	}
	var or bson.A
	prefix := bson.A{}
	for i := 0; i <= len(q.Sort); i++ {
		f, desc, v := "_id", false, q.After[i]
		if i < len(q.Sort) {
			f, desc = fields[i], q.Sort[i].Desc
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

// compile turns a Query into a filter on res_<Type>: live documents, every clause, each clause an $or
// of its predicates.
func (s *Store) compile(ctx context.Context, q store.Query) (bson.D, error) {
	if q.Type == "" {
		return nil, fmt.Errorf("%w: query without a type", store.ErrInvalidQuery)
	}
	and := bson.A{bson.D{{Key: fDeleted, Value: false}}}
	for _, c := range q.Clauses {
		if len(c) == 0 {
			return nil, fmt.Errorf("%w: empty clause", store.ErrInvalidQuery)
		}
		var or bson.A
		for _, p := range c {
			f, err := s.predicate(ctx, q.Type, p)
			if err != nil {
				return nil, err
			}
			if p.Not {
				f = bson.D{{Key: "$nor", Value: bson.A{f}}}
			}
			or = append(or, f)
		}
		if len(or) == 1 {
			and = append(and, or[0])
		} else {
			and = append(and, bson.D{{Key: "$or", Value: or}})
		}
	}
	if len(and) == 1 {
		return and[0].(bson.D), nil
	}
	return bson.D{{Key: "$and", Value: and}}, nil
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
			if p.AnySystem || p.System == "" {
				return bson.D{{Key: "_id", Value: p.Value}}, nil
			}
			return matchNone, nil
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
		return bson.D{{Key: fText, Value: bson.Regex{Pattern: "^" + regexp.QuoteMeta(pre) + ".*" + regexp.QuoteMeta(p.Value), Options: "s"}}}, nil
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
	return bson.Regex{Pattern: "^" + regexp.QuoteMeta(prefix), Options: ""}
}

// bounds compiles range bounds onto the fields holding Low and High.
func bounds(bs []store.Bound, low, high string) (bson.D, error) {
	if len(bs) == 0 {
		return nil, fmt.Errorf("%w: range without bounds", store.ErrInvalidQuery)
	}
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
	seen := make(map[string]bool, len(rows))
	ids := bson.A{}
	for _, r := range rows {
		if !seen[r.ID] {
			seen[r.ID] = true
			ids = append(ids, r.ID)
		}
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, nil
}

// subIDs evaluates an inner query to the ids of its matches.
func (s *Store) subIDs(ctx context.Context, q store.Query) ([]string, error) {
	filter, err := s.compile(ctx, q)
	if err != nil {
		return nil, err
	}
	cur, err := s.res(q.Type).Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, translate("sub-query", err)
	}
	var rows []struct {
		ID string `bson:"_id"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, translate("sub-query", err)
	}
	ids := make([]string, len(rows))
	for i, r := range rows {
		ids[i] = r.ID
	}
	return ids, nil
}

// hasIDs evaluates _has: the ids of typ that some match of p.Sub references through p.HasParam.
func (s *Store) hasIDs(ctx context.Context, typ string, p store.Predicate) (bson.A, error) {
	filter, err := s.compile(ctx, *p.Sub)
	if err != nil {
		return nil, err
	}
	pre := p.HasParam + "|" + typ + "/"
	filter = bson.D{{Key: "$and", Value: bson.A{filter, bson.D{{Key: fVal, Value: prefixRegex(pre)}}}}}
	cur, err := s.res(p.Sub.Type).Find(ctx, filter, options.Find().SetProjection(bson.D{{Key: fVal, Value: 1}}))
	if err != nil {
		return nil, translate("_has", err)
	}
	var rows []struct {
		Val []string `bson:"vx"`
	}
	if err := cur.All(ctx, &rows); err != nil {
		return nil, translate("_has", err)
	}
	seen := map[string]bool{}
	ids := bson.A{}
	for _, r := range rows {
		for _, v := range r.Val {
			if id, ok := strings.CutPrefix(v, pre); ok && !seen[id] {
				seen[id] = true
				ids = append(ids, id)
			}
		}
	}
	return ids, nil
}
