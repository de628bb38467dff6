package mongo

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// collOwners holds one document per running journal-mode Store, renewed by its heartbeat. A journal
// group names its owner, so a group whose owner stopped beating is known to belong to a dead process
// long before the group's own lease runs out: without this, a server restarted within the lease showed
// the dead process's half-applied group until the lease ended.
const collOwners = "journal_owners"

type ownerDoc struct {
	ID  bson.ObjectID `bson:"_id"`
	Exp int64         `bson:"exp"` // Unix ms; once passed, the owner is dead for good
}

// heartbeat is a Store's liveness in journal mode.
type heartbeat struct {
	ttl time.Duration

	mu sync.Mutex
	id bson.ObjectID
	// mine holds every owner id this Store has used. Its own sweep never rolls back their groups by
	// liveness (they may still be running after a missed beat made peers think the id dead); only
	// their lease ends them.
	mine map[bson.ObjectID]bool

	stop chan struct{}
	done chan struct{}
}

func (h *heartbeat) owner() bson.ObjectID {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.id
}

func (h *heartbeat) isMine(id bson.ObjectID) bool {
	if h == nil { // a Store with transactions owns no groups
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.mine[id]
}

// register takes a new owner id and announces it.
func (s *Store) register(ctx context.Context) error {
	id := bson.NewObjectID()
	if _, err := s.db.Collection(collOwners).InsertOne(ctx, ownerDoc{ID: id, Exp: millis(time.Now().Add(s.hb.ttl))}); err != nil {
		return translate("owner register", err)
	}
	s.hb.mu.Lock()
	s.hb.id = id
	s.hb.mine[id] = true
	s.hb.mu.Unlock()
	return nil
}

// beat renews the owner's lease. The renewal only applies while the lease still runs: an owner that
// missed its beats is dead to its peers, who may already be rolling back its groups, and must not come
// back to life under the same id, so it takes a new one instead.
func (s *Store) beat(ctx context.Context) error {
	now := time.Now()
	res, err := s.db.Collection(collOwners).UpdateOne(ctx,
		bson.D{{Key: "_id", Value: s.hb.owner()}, {Key: "exp", Value: bson.D{{Key: "$gte", Value: millis(now)}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "exp", Value: millis(now.Add(s.hb.ttl))}}}})
	if err != nil {
		return translate("owner heartbeat", err)
	}
	if res.MatchedCount == 0 {
		return s.register(ctx)
	}
	return nil
}

// liveOwners returns the owners whose lease still runs, with its end.
func (s *Store) liveOwners(ctx context.Context) (map[bson.ObjectID]int64, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := s.db.Collection(collOwners).Find(ctx, bson.D{{Key: "exp", Value: bson.D{{Key: "$gte", Value: millis(time.Now())}}}})
	if err != nil {
		return nil, translate("owner scan", err)
	}
	var docs []ownerDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, translate("owner scan", err)
	}
	live := make(map[bson.ObjectID]int64, len(docs))
	for _, d := range docs {
		live[d.ID] = d.Exp
	}
	return live, nil
}

// ownerDead reports whether a group's owner is known to be dead: its lease has passed or it is gone.
// Groups written before owners existed name none and are ended by their lease only.
func (s *Store) ownerDead(ctx context.Context, id bson.ObjectID) (bool, error) {
	if id.IsZero() || s.hb.isMine(id) {
		return false, nil
	}
	var d ownerDoc
	err := s.db.Collection(collOwners).FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return true, nil
	case err != nil:
		return false, translate("owner read", err)
	}
	return d.Exp < millis(time.Now()), nil
}

// pendingGroups lists the journal's groups.
func (s *Store) pendingGroups(ctx context.Context) ([]journalDoc, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	cur, err := s.db.Collection(collJournal).Find(ctx, bson.D{})
	if err != nil {
		return nil, translate("journal scan", err)
	}
	var js []journalDoc
	if err := cur.All(ctx, &js); err != nil {
		return nil, translate("journal scan", err)
	}
	return js, nil
}

// sweep rolls back every group whose lease ran out or whose owner is dead, and forgets owners dead for
// a whole lease (a group of theirs left behind still counts as dead: its owner is gone). It returns
// the groups left, which belong to live owners.
func (s *Store) sweep(ctx context.Context) ([]journalDoc, error) {
	js, err := s.pendingGroups(ctx)
	if err != nil {
		return nil, err
	}
	var left []journalDoc
	if len(js) > 0 {
		live, err := s.liveOwners(ctx)
		if err != nil {
			return nil, err
		}
		now := millis(time.Now())
		for _, j := range js {
			expired := j.Expires < now
			_, alive := live[j.Owner]
			dead := !j.Owner.IsZero() && !alive && !s.hb.isMine(j.Owner)
			if !expired && !dead {
				left = append(left, j)
				continue
			}
			if err := s.recoverBounded(ctx, j, true); err != nil {
				return nil, err
			}
		}
	}
	fctx, cancel := s.opCtx(ctx)
	defer cancel()
	if _, err := s.db.Collection(collOwners).DeleteMany(fctx,
		bson.D{{Key: "exp", Value: bson.D{{Key: "$lt", Value: millis(time.Now().Add(-s.ownerTTL))}}}}); err != nil {
		return nil, translate("owner forget", err)
	}
	return left, nil
}

// awaitDeadOwners runs at Open. Groups of live peers are normal and commit within moments; a group of a
// process that died recently (a restart, typically) has an owner whose lease has not passed yet. Open
// waits until each group it found at the start has committed, or its owner has proved alive by
// renewing its lease, or has died and the group is rolled back: at most one owner lease. So a restarted
// server never serves a dead process's half-applied group.
func (s *Store) awaitDeadOwners(ctx context.Context) error {
	first, err := s.sweep(ctx)
	if err != nil || len(first) == 0 {
		return err
	}
	live, err := s.liveOwners(ctx)
	if err != nil {
		return err
	}
	watch := map[bson.ObjectID]int64{} // group -> its owner's lease end when first seen
	for _, j := range first {
		watch[j.ID] = live[j.Owner]
	}
	deadline := time.Now().Add(s.ownerTTL + s.ownerTTL/4)
	pause := max(s.ownerTTL/8, 20*time.Millisecond)
	for len(watch) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pause):
		}
		left, err := s.sweep(ctx)
		if err != nil {
			return err
		}
		live, err := s.liveOwners(ctx)
		if err != nil {
			return err
		}
		still := map[bson.ObjectID]int64{}
		for _, j := range left {
			seen, ok := watch[j.ID]
			if ok && live[j.Owner] <= seen {
				still[j.ID] = seen
			}
		}
		watch = still
	}
	return nil
}

// startHeartbeat registers the Store as an owner and beats, and sweeps, every quarter of the owner
// lease until Close.
func (s *Store) startHeartbeat(ctx context.Context, ttl time.Duration) error {
	s.hb = &heartbeat{ttl: ttl, mine: map[bson.ObjectID]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	if err := s.register(ctx); err != nil {
		return err
	}
	go func() {
		defer close(s.hb.done)
		t := time.NewTicker(ttl / 4)
		defer t.Stop()
		for {
			select {
			case <-s.hb.stop:
				return
			case <-t.C:
			}
			// Each step is bounded by the store timeout, a rollback by its size. A failed beat or sweep is tried again at
			// the next tick: a missed beat costs at worst peers rolling back this Store's groups,
			// which then fail cleanly at their commit.
			bctx, cancel := context.WithTimeout(context.Background(), s.timeout)
			_ = s.beat(bctx)
			cancel()
			_, _ = s.sweep(context.Background())
		}
	}()
	return nil
}

// stopHeartbeat ends the beats; with leave, the owner document stays (tests stand for a dead process
// that way), otherwise it is removed, since a closed Store has no groups in progress.
func (s *Store) stopHeartbeat(leave bool) {
	if s.hb == nil {
		return
	}
	select {
	case <-s.hb.stop:
		return
	default:
	}
	close(s.hb.stop)
	<-s.hb.done
	if leave {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	s.hb.mu.Lock()
	ids := make([]bson.ObjectID, 0, len(s.hb.mine))
	for id := range s.hb.mine {
		ids = append(ids, id)
	}
	s.hb.mu.Unlock()
	_, _ = s.db.Collection(collOwners).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
}
