package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/store"
)

// projResource reads only what a store.Resource needs.
var projResource = bson.D{{Key: fVersion, Value: 1}, {Key: fLU, Value: 1}, {Key: fDeleted, Value: 1}, {Key: fBody, Value: 1}}

// Get returns the current version (served by the _id index of res_<Type>).
func (s *Store) Get(ctx context.Context, typ, id string) (store.Resource, error) {
	if err := s.begin(); err != nil {
		return store.Resource{}, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var d curDoc
	err := s.res(typ).FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(projResource)).Decode(&d)
	if err != nil {
		return store.Resource{}, translate("get", err)
	}
	return d.resource(typ), nil
}

// GetVersion returns one version from history (served by history's _id).
func (s *Store) GetVersion(ctx context.Context, typ, id string, version int64) (store.Resource, error) {
	if err := s.begin(); err != nil {
		return store.Resource{}, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var h histDoc
	err := s.db.Collection(collHistory).FindOne(ctx, bson.D{{Key: "_id", Value: histKey(typ, id, version)}}).Decode(&h)
	if err != nil {
		return store.Resource{}, translate("getVersion", err)
	}
	return h.resource(), nil
}

// History lists versions newest first: lastUpdated descending, then type and id ascending, then version
// descending (index lu_t_r_v on history, or t_r_v for one resource).
func (s *Store) History(ctx context.Context, q store.HistoryQuery) ([]store.Resource, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	f := bson.D{}
	if q.Type != "" {
		f = append(f, bson.E{Key: "t", Value: q.Type})
	} else if q.ID != "" {
		return nil, fmt.Errorf("%w: history by id without a type", store.ErrInvalidQuery)
	} else if len(q.Types) > 0 {
		f = append(f, bson.E{Key: "t", Value: bson.D{{Key: "$in", Value: q.Types}}})
	}
	if q.ID != "" {
		f = append(f, bson.E{Key: "r", Value: q.ID})
	}
	lu := bson.D{}
	if !q.Since.IsZero() {
		lu = append(lu, bson.E{Key: "$gte", Value: millis(q.Since)})
	}
	if !q.Before.IsZero() {
		lu = append(lu, bson.E{Key: "$lt", Value: millis(q.Before)})
	}
	if len(lu) > 0 {
		f = append(f, bson.E{Key: "lu", Value: lu})
	}
	if a := q.After; a != nil {
		// Strictly after a in (lu desc, t asc, r asc, v desc) order.
		l := millis(a.LastUpdated)
		f = append(f, bson.E{Key: "$or", Value: bson.A{
			bson.D{{Key: "lu", Value: bson.D{{Key: "$lt", Value: l}}}},
			bson.D{{Key: "lu", Value: l}, {Key: "t", Value: bson.D{{Key: "$gt", Value: a.Type}}}},
			bson.D{{Key: "lu", Value: l}, {Key: "t", Value: a.Type}, {Key: "r", Value: bson.D{{Key: "$gt", Value: a.ID}}}},
			bson.D{{Key: "lu", Value: l}, {Key: "t", Value: a.Type}, {Key: "r", Value: a.ID}, {Key: "v", Value: bson.D{{Key: "$lt", Value: a.VersionID}}}},
		}})
	}
	o := options.Find().SetSort(bson.D{{Key: "lu", Value: -1}, {Key: "t", Value: 1}, {Key: "r", Value: 1}, {Key: "v", Value: -1}})
	if q.Limit > 0 {
		o.SetLimit(int64(q.Limit))
	}
	cur, err := s.db.Collection(collHistory).Find(ctx, f, o)
	if err != nil {
		return nil, translate("history", err)
	}
	var docs []histDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate("history", err)
	}
	out := make([]store.Resource, len(docs))
	for i := range docs {
		out[i] = docs[i].resource()
	}
	return out, nil
}

// SetIndex replaces the index of the current version in place. With transactions the document and its
// idx entries change together; in journal mode they are two writes, and a crash in between leaves the
// date/number entries of the previous extraction until SetIndex is run again.
func (s *Store) SetIndex(ctx context.Context, typ, id string, version int64, index []store.IndexEntry) error {
	if typ == store.AuditEventType {
		return fmt.Errorf("%w: the index of an AuditEvent is kept as appended", store.ErrInvalidQuery)
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.ensureType(ctx, typ); err != nil {
		return err
	}
	run := func(ctx context.Context) error {
		var cur curDoc
		err := s.res(typ).FindOne(ctx, bson.D{{Key: "_id", Value: id}},
			options.FindOne().SetProjection(bson.D{{Key: fVersion, Value: 1}, {Key: fDeleted, Value: 1}, {Key: fJournal, Value: 1}})).Decode(&cur)
		if err != nil {
			return translate("setIndex", err)
		}
		if cur.Version != version {
			return store.ErrVersionConflict
		}
		if !s.txn && !cur.Journal.IsZero() {
			if pending, err := s.journalPending(ctx, cur.Journal); err != nil {
				return err
			} else if pending {
				return fmt.Errorf("%w: resource is part of an unfinished group", store.ErrVersionConflict)
			}
		}
		var d curDoc
		if !cur.Deleted {
			setIndex(&d, index)
		}
		set := bson.D{}
		unset := bson.D{}
		for _, kv := range []struct {
			k     string
			v     any
			empty bool
		}{
			{fPresent, d.Present, len(d.Present) == 0}, {fTok, d.Tok, len(d.Tok) == 0}, {fVal, d.Val, len(d.Val) == 0},
			{fText, d.Text, len(d.Text) == 0}, {fSort, d.Sort, len(d.Sort) == 0}, {fRange, d.Range, len(d.Range) == 0},
		} {
			if kv.empty {
				unset = append(unset, bson.E{Key: kv.k, Value: ""})
			} else {
				set = append(set, bson.E{Key: kv.k, Value: kv.v})
			}
		}
		upd := bson.D{}
		if len(set) > 0 {
			upd = append(upd, bson.E{Key: "$set", Value: set})
		}
		if len(unset) > 0 {
			upd = append(upd, bson.E{Key: "$unset", Value: unset})
		}
		filter := bson.D{{Key: "_id", Value: id}, {Key: fVersion, Value: version}}
		if !cur.Journal.IsZero() {
			filter = append(filter, bson.E{Key: fJournal, Value: cur.Journal})
		} else {
			filter = append(filter, bson.E{Key: fJournal, Value: bson.D{{Key: "$exists", Value: false}}})
		}
		res, err := s.res(typ).UpdateOne(ctx, filter, upd)
		if err != nil {
			return translate("setIndex", err)
		}
		if res.MatchedCount == 0 {
			return store.ErrVersionConflict
		}
		return s.syncIdx(ctx, typ, id, d.Range, bson.ObjectID{}, true)
	}
	if s.txn {
		return s.inTxn(ctx, run)
	}
	return run(ctx)
}

// syncIdx replaces the idx documents of one resource. stale says whether there may be some to delete
// first; a writer that knows there are none saves the delete, which on FerretDB scans the collection.
func (s *Store) syncIdx(ctx context.Context, typ, id string, rg []rangeEntry, jr bson.ObjectID, stale bool) error {
	c := s.db.Collection(collIdx)
	if stale {
		if _, err := c.DeleteMany(ctx, bson.D{{Key: "t", Value: typ}, {Key: "r", Value: id}}); err != nil {
			return translate("idx delete", err)
		}
	}
	if docs := idxDocs(typ, id, rg, jr); len(docs) > 0 {
		if _, err := c.InsertMany(ctx, docs); err != nil {
			return translate("idx insert", err)
		}
	}
	return nil
}

// inTxn runs fn in a session transaction, retrying transient errors as the driver does.
func (s *Store) inTxn(ctx context.Context, fn func(ctx context.Context) error) error {
	sess, err := s.client.StartSession()
	if err != nil {
		return translate("startSession", err)
	}
	defer sess.EndSession(context.WithoutCancel(ctx))
	_, err = sess.WithTransaction(ctx, func(ctx context.Context) (any, error) {
		return nil, fn(ctx)
	})
	return translate("transaction", err)
}
