package mongo

import (
	"context"
	"fmt"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/store"
)

// How a query's clauses are evaluated. A chain, a _has or a date/number range is evaluated into a list
// (ids from idx or from the sub-query, then $in), and the list costs what the clause selects on its own,
// whatever else the query says. That is fit for the caller's own, usually selective, criterion; it is not
// for the access clauses the API appends, which select a whole practice's patients (a chain inside a
// chain: Patients whose organization is an Organization with an ODS code) and would make every search
// cost as much as the practice, to be cut down afterwards to the page the caller's criterion selects. So,
// as on SQLite:
//
//   - one clause drives: the first whose predicates are all positive, which is the caller's criterion
//     because restrictions are appended last. It goes into the find, as a list if it is a chain, _has or
//     range (evaluated whole, recursively by these same rules);
//   - every other clause that is a field predicate of the document (token, string, reference, uri,
//     presence, _id, _lastUpdated) goes into the find too, at no extra round trip;
//   - every other clause made only of chains, _has and ranges is postponed: the find's documents are read
//     in sort order in batches (keyset on the sort, as a paged search), and each postponed clause is
//     evaluated on one batch at a time, restricted to what the batch references: a chain runs its
//     sub-query only on the ids the batch's references name, a _has only on the documents that reference
//     the batch, and a range needs no round trip: it reads the batch's own entries (rg). Which documents
//     pass is then decided by store.MatchesPredicate. The sub-query of a restricted chain or _has is
//     pinned to those documents, so none of its clauses drives and its own chains are restricted in turn,
//     at any depth. Batches are read until Limit documents pass or the candidates run out.
//
// A restricted search thus costs a few round trips per level of chain per batch, each as large as the
// batch, instead of one list as large as the practice. The first batch of a search is its Limit, since
// usually every candidate passes; batches then double, so a search that rejects many candidates makes
// few finds, each sorting what the driving clause selects again if the sort key has no index. A clause that mixes a chain with a field predicate
// (rare: FHIR's comma-separated values are of one parameter) is evaluated whole, in the find.
//
// When the driving clause is itself a chain or _has (the caller chains, or a query holds only the access
// clause), it is evaluated whole, and costs what it selects: for an access clause alone, everything of the
// type the caller may see, which is then also the size of the result. A query with no all-positive clause
// has nothing to drive it; every clause goes into the find, chains evaluated whole, as before: the cost
// follows the number of resources of the type and what its chains select.
//
// The trade-off is that of any fixed driving order: when the first clause is broad and a later chain or
// range narrow, batches are read until enough pass, where the narrow list would have found them at once.

// plan is a query split between the find on res_<Type> and the clauses tested on its batches.
type plan struct {
	filter bson.D
	later  []store.Clause
}

const (
	// minBatch is the first batch of a search without a limit; later batches double up to maxBatch,
	// which also bounds the $in lists a batch's references make.
	minBatch = 100
	maxBatch = 1000
)

// postponable says whether every predicate of c is evaluated into a list (chain, _has, range on idx), so
// that c is cheaper tested on candidates than listed whole.
func postponable(c store.Clause) bool {
	for _, p := range c {
		switch {
		case p.Match == store.MatchRefIn, p.Match == store.MatchHas:
		case p.Match == store.MatchRange && p.Param != store.ParamLastUpdated && p.Param != store.ParamID:
		default:
			return false
		}
	}
	return len(c) > 0
}

// plan compiles q. extra, if set, is ANDed into the find; pinned says that extra already confines the
// candidates to a few documents (ids or references of a batch), so that no clause of q drives and every
// postponable one is postponed.
func (s *Store) plan(ctx context.Context, q store.Query, extra bson.D, pinned bool) (plan, error) {
	if q.Type == "" {
		return plan{}, fmt.Errorf("%w: query without a type", store.ErrInvalidQuery)
	}
	and := bson.A{bson.D{{Key: fDeleted, Value: false}}}
	if extra != nil {
		and = append(and, extra)
	}
	d := -1
	if !pinned {
		d = store.DrivingClause(q.Clauses)
	}
	var later []store.Clause
	for i, c := range q.Clauses {
		if i != d && (pinned || d >= 0) && postponable(c) {
			later = append(later, c)
			continue
		}
		f, err := s.clause(ctx, q.Type, c)
		if err != nil {
			return plan{}, err
		}
		and = append(and, f)
	}
	if len(and) == 1 {
		return plan{filter: and[0].(bson.D), later: later}, nil
	}
	return plan{filter: bson.D{{Key: "$and", Value: and}}, later: later}, nil
}

// scan runs p's find on res_<q.Type> in q's order from q.After and calls emit with each document that
// passes p.later, at most limit of them (0: all). proj is what emit needs; scan adds the references the
// postponed clauses need. Without postponed clauses it is one find with the limit.
func (s *Store) scan(ctx context.Context, q store.Query, p plan, proj bson.D, limit int, emit func(*curDoc)) error {
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
	if !sortsByID(q.Sort) {
		sortSpec = append(sortSpec, bson.E{Key: "_id", Value: 1})
	}
	batch := limit
	if len(p.later) > 0 {
		proj = append(append(bson.D{}, proj...), bson.E{Key: fVal, Value: 1})
		if hasRange(p.later) {
			proj = append(proj, bson.E{Key: fRange, Value: 1})
		}
		if batch <= 0 {
			batch = minBatch
		}
		batch = min(batch, maxBatch)
	}
	after := q.After
	kept := 0
	for {
		filter := p.filter
		if len(after) > 0 {
			ks, err := keyset(q.Sort, after, fields)
			if err != nil {
				return err
			}
			filter = bson.D{{Key: "$and", Value: bson.A{filter, ks}}}
		}
		o := options.Find().SetSort(sortSpec).SetProjection(proj)
		if batch > 0 {
			o.SetLimit(int64(batch))
		}
		cur, err := s.res(q.Type).Find(ctx, filter, o)
		if err != nil {
			return translate("search", err)
		}
		var docs []curDoc
		if err := cur.All(ctx, &docs); err != nil {
			return translate("search", err)
		}
		if len(p.later) == 0 {
			for i := range docs {
				emit(&docs[i])
			}
			return nil
		}
		keep, err := s.test(ctx, q.Type, p.later, docs)
		if err != nil {
			return err
		}
		for i := range docs {
			if keep[i] {
				emit(&docs[i])
				if kept++; kept == limit {
					return nil
				}
			}
		}
		if len(docs) < batch {
			return nil
		}
		after = sortValues(q.Sort, &docs[len(docs)-1])
		batch = min(2*batch, maxBatch)
	}
}

// test evaluates clauses on docs (ids, references and range entries of res_<typ>): which of them pass
// every clause. Each clause is evaluated only on the documents that passed the clauses before it, and
// each predicate of a clause only on those no earlier predicate of the clause has already matched. What a
// predicate needs from other resources is fetched for those documents in one round trip (answers); whether
// each document then matches is decided by store.MatchesPredicate, as on every backend.
func (s *Store) test(ctx context.Context, typ string, clauses []store.Clause, docs []curDoc) ([]bool, error) {
	keep := make([]bool, len(docs))
	for i := range keep {
		keep[i] = true
	}
	cands := candidates(typ, docs, clauses)
	for _, c := range clauses {
		matched := make([]bool, len(docs))
		for _, p := range c {
			var open []int
			for i := range docs {
				if keep[i] && !matched[i] {
					open = append(open, i)
				}
			}
			if len(open) == 0 {
				break
			}
			r, err := s.answers(ctx, typ, p, docs, open)
			if err != nil {
				return nil, err
			}
			for _, i := range open {
				ok, err := store.MatchesPredicate(cands[i], p, r)
				if err != nil {
					return nil, err
				}
				matched[i] = ok
			}
		}
		for i := range keep {
			keep[i] = keep[i] && matched[i]
		}
	}
	return keep, nil
}

// hasRange reports whether a postponed clause has a range predicate, which reads the documents' rg.
func hasRange(clauses []store.Clause) bool {
	for _, c := range clauses {
		for _, p := range c {
			if p.Match == store.MatchRange {
				return true
			}
		}
	}
	return false
}

// batchAnswers is what a postponed chain or _has needs to know about other resources, fetched for one
// batch: the ids of p.Sub.Type that match p.Sub among those the batch references (chain), or the ids of
// the batch's documents that a match of p.Sub references (_has).
type batchAnswers struct {
	typ   string
	refIn map[string]bool
	has   map[string]bool
}

func (a batchAnswers) RefIn(_ *store.Query, id string) (bool, error) { return a.refIn[id], nil }

func (a batchAnswers) Has(_ *store.Query, _, ref string) (bool, error) {
	id, ok := strings.CutPrefix(ref, a.typ+"/")
	return ok && a.has[id], nil
}

// answers fetches what p (a chain, _has or range) needs to be decided on docs[open]: a range needs
// nothing beyond the documents' own entries. Every round trip is bounded by the documents tested.
func (s *Store) answers(ctx context.Context, typ string, p store.Predicate, docs []curDoc, open []int) (store.Resolver, error) {
	a := batchAnswers{typ: typ}
	switch p.Match {
	case store.MatchRefIn:
		// The sub-query runs on the resources the candidates reference, and only those.
		pre := p.Param + "|" + p.Sub.Type + "/"
		var ids bson.A
		seen := map[string]bool{}
		for _, i := range open {
			for _, v := range docs[i].Val {
				if id, ok := strings.CutPrefix(v, pre); ok && !seen[id] {
					seen[id] = true
					ids = append(ids, id)
				}
			}
		}
		if len(ids) == 0 {
			return a, nil
		}
		var err error
		a.refIn, err = s.pinnedIDs(ctx, *p.Sub, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, "")
		return a, err
	case store.MatchHas:
		// The sub-query runs on the resources that reference a candidate through HasParam, and only those.
		pre := p.HasParam + "|" + typ + "/"
		refs := make(bson.A, len(open))
		for k, i := range open {
			refs[k] = pre + docs[i].ID
		}
		var err error
		a.has, err = s.pinnedIDs(ctx, *p.Sub, bson.D{{Key: fVal, Value: bson.D{{Key: "$in", Value: refs}}}}, pre)
		return a, err
	case store.MatchRange:
		return a, nil
	}
	return nil, fmt.Errorf("%w: match %d postponed", store.ErrInvalidQuery, p.Match)
}

// pinnedIDs evaluates q on the documents pin selects (a few: the ids or references of one batch), with
// every clause of q tested on them rather than driving. With pre empty it returns the ids of the matches;
// otherwise the ids their references with prefix pre name (the _has of the outer query).
func (s *Store) pinnedIDs(ctx context.Context, q store.Query, pin bson.D, pre string) (map[string]bool, error) {
	p, err := s.plan(ctx, q, pin, true)
	if err != nil {
		return nil, err
	}
	proj := bson.D{{Key: "_id", Value: 1}}
	if pre != "" {
		proj = bson.D{{Key: fVal, Value: 1}}
	}
	out := map[string]bool{}
	err = s.scan(ctx, store.Query{Type: q.Type}, p, proj, 0, func(d *curDoc) {
		if pre == "" {
			out[d.ID] = true
			return
		}
		for _, v := range d.Val {
			if id, ok := strings.CutPrefix(v, pre); ok {
				out[id] = true
			}
		}
	})
	return out, err
}
