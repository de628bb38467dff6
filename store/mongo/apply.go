package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/store"
)

// Apply performs every write or none. See doc.go for the two strategies (transaction or journal).
func (s *Store) Apply(ctx context.Context, writes []store.Write) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	if len(writes) == 0 {
		return nil
	}
	types, err := checkWrites(writes)
	if err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for _, t := range types {
		if err := s.ensureType(ctx, t); err != nil {
			return err
		}
	}
	if s.txn {
		return s.inTxn(ctx, func(ctx context.Context) error { return s.applyTxn(ctx, writes) })
	}
	return s.applyJournal(ctx, writes, nil)
}

// checkWrites checks a group for what can be checked without reading the store (store.CheckWrites) and
// returns the types it writes. It returns ErrInvalidQuery.
func checkWrites(writes []store.Write) ([]string, error) {
	if err := store.CheckWrites(writes); err != nil {
		return nil, err
	}
	var types []string
	for _, w := range writes {
		r := w.Resource
		if !slices.Contains(types, r.Type) {
			types = append(types, r.Type)
		}
	}
	return types, nil
}

// applyTxn makes the writes of a group inside the caller's transaction, which commits or aborts them.
func (s *Store) applyTxn(ctx context.Context, writes []store.Write) error {
	for i, w := range writes {
		if err := s.applyOne(ctx, w, nil, bson.ObjectID{}); err != nil {
			return err
		}
		if s.afterWrite != nil {
			if err := s.afterWrite(i); err != nil {
				return err
			}
		}
	}
	return nil
}

// crash wraps the error of a test hook that stands for the process dying in the middle of a group: it
// is returned as it is, without the compensation that a failure gets.
type crash struct{ error }

func (c crash) Unwrap() error { return c.error }

// applyOne writes one resource. First it claims the new version by inserting it into history: the
// history _id "Type/id/version" is unique, so of several writers expecting the same version exactly one
// gets past this point (the others get duplicate key 11000, a version conflict). This holds even where
// an update's filter is not evaluated atomically with the write (FerretDB 1.x runs an update as a query
// followed by a write). Then the current document is written with compare-and-swap on its version (insert
// with a unique _id when ExpectVersion is 0), and last the idx entries. In journal mode old is the
// document read before (nil when ExpectVersion is 0) and jr the group marker written on every document.
func (s *Store) applyOne(ctx context.Context, w store.Write, old *curDoc, jr bson.ObjectID) error {
	r := w.Resource
	d := newCurDoc(r, w.Index, jr)
	h := histDoc{
		Key: histKey(r.Type, r.ID, r.VersionID), Type: r.Type, ID: r.ID, Version: r.VersionID,
		LU: d.LU, Deleted: r.Deleted, Body: d.Body, Journal: jr,
	}
	hist := s.db.Collection(collHistory)
	if _, err := hist.InsertOne(ctx, h); err != nil {
		if isDuplicate(err) {
			return fmt.Errorf("%w: %s/%s version %d exists already", store.ErrVersionConflict, r.Type, r.ID, r.VersionID)
		}
		return translate("history insert", err)
	}
	// unclaim gives the version back when the compare-and-swap fails (outside a transaction, which
	// would undo it anyway; in journal mode rollback removes it by its marker too).
	unclaim := func(cause error) error {
		if !s.txn && jr.IsZero() {
			_, _ = hist.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: h.Key}})
		}
		return cause
	}
	coll := s.res(r.Type)
	if w.ExpectVersion == 0 {
		if _, err := coll.InsertOne(ctx, d); err != nil {
			if isDuplicate(err) {
				return unclaim(fmt.Errorf("%w: %s/%s already exists", store.ErrVersionConflict, r.Type, r.ID))
			}
			return unclaim(translate("insert", err))
		}
	} else {
		filter := bson.D{{Key: "_id", Value: r.ID}, {Key: fVersion, Value: w.ExpectVersion}}
		if old != nil {
			// Journal mode: the document must still carry the group marker we checked.
			if old.Journal.IsZero() {
				filter = append(filter, bson.E{Key: fJournal, Value: bson.D{{Key: "$exists", Value: false}}})
			} else {
				filter = append(filter, bson.E{Key: fJournal, Value: old.Journal})
			}
		}
		res, err := coll.ReplaceOne(ctx, filter, d)
		if err != nil {
			return unclaim(translate("replace", err))
		}
		if res.MatchedCount == 0 {
			return unclaim(fmt.Errorf("%w: %s/%s is not at version %d", store.ErrVersionConflict, r.Type, r.ID, w.ExpectVersion))
		}
	}
	// In journal mode old is the document as read before the write (nil: there was none), and its idx
	// documents are those of its date and number entries; a transaction did not read it.
	stale := jr.IsZero() || old != nil && len(old.Range) > 0
	return s.syncIdx(ctx, r.Type, r.ID, d.Range, jr, stale)
}

// journalDoc records an unfinished group in journal mode. Deleting it (while still pending) is the
// commit point.
type journalDoc struct {
	ID      bson.ObjectID `bson:"_id"`
	State   string        `bson:"st"`  // "pending" or "rollback"
	Expires int64         `bson:"exp"` // Unix ms after which recovery may roll it back
	// Owner is the Store that runs the group; once the owner's heartbeat stops, the group is rolled
	// back without waiting for Expires.
	Owner  bson.ObjectID  `bson:"own,omitempty"`
	Writes []journalWrite `bson:"w"`
}

type journalWrite struct {
	Type       string  `bson:"t"`
	ID         string  `bson:"r"`
	NewVersion int64   `bson:"nv"`
	Old        *curDoc `bson:"old,omitempty"` // nil: the resource did not exist
}

const (
	jPending  = "pending"
	jRollback = "rollback"
)

// applyJournal is Apply without transactions: check, journal, write, commit by deleting the journal.
// beforeCommit, if not nil, runs between the last write and the commit (ApplyAudited appends the audit
// records there, so that a change is never committed without them); if it fails, the group is rolled
// back and its error returned.
func (s *Store) applyJournal(ctx context.Context, writes []store.Write, beforeCommit func(ctx context.Context) error) error {
	jid := bson.NewObjectID()
	j := journalDoc{ID: jid, State: jPending, Expires: millis(time.Now().Add(s.lease)), Writes: make([]journalWrite, len(writes))}
	if s.hb != nil {
		j.Owner = s.hb.owner()
	}
	olds := make([]*curDoc, len(writes))
	for i, w := range writes {
		r := w.Resource
		j.Writes[i] = journalWrite{Type: r.Type, ID: r.ID, NewVersion: r.VersionID}
		var cur curDoc
		err := s.res(r.Type).FindOne(ctx, bson.D{{Key: "_id", Value: r.ID}}).Decode(&cur)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			if w.ExpectVersion != 0 {
				return fmt.Errorf("%w: %s/%s does not exist", store.ErrVersionConflict, r.Type, r.ID)
			}
			continue
		case err != nil:
			return translate("read current", err)
		}
		if cur.Version != w.ExpectVersion {
			return fmt.Errorf("%w: %s/%s is at version %d, not %d", store.ErrVersionConflict, r.Type, r.ID, cur.Version, w.ExpectVersion)
		}
		if !cur.Journal.IsZero() {
			pending, err := s.journalPending(ctx, cur.Journal)
			if err != nil {
				return err
			}
			if pending {
				return fmt.Errorf("%w: %s/%s is part of an unfinished group", store.ErrVersionConflict, r.Type, r.ID)
			}
		}
		olds[i] = &cur
		j.Writes[i].Old = &cur
	}
	jc := s.db.Collection(collJournal)
	if _, err := jc.InsertOne(ctx, j); err != nil {
		return translate("journal insert", err)
	}
	for i, w := range writes {
		if err := s.applyOne(ctx, w, olds[i], jid); err != nil {
			return s.abort(ctx, j, err)
		}
		if s.afterWrite != nil {
			if err := s.afterWrite(i); err != nil {
				return err // simulated crash: no compensation
			}
		}
	}
	if beforeCommit != nil {
		if err := beforeCommit(ctx); err != nil {
			if errors.As(err, new(crash)) {
				return err
			}
			return s.abort(ctx, j, err)
		}
	}
	res, err := jc.DeleteOne(ctx, bson.D{{Key: "_id", Value: jid}, {Key: "st", Value: jPending}})
	if err != nil {
		return s.abort(ctx, j, translate("journal commit", err))
	}
	if res.DeletedCount == 0 {
		// Recovery claimed the group (its lease ran out): it rolls back; make sure it is rolled back.
		return s.abort(ctx, j, fmt.Errorf("%w: atomic group outlived its journal lease and was rolled back", store.ErrUnavailable))
	}
	return nil
}

// abort compensates a failed group and returns cause. If compensation itself fails, the journal stays
// and recovery finishes the job later. It has the time recovery would have: one timeout was too little
// for a large group on FerretDB, whose rollback then failed on every later attempt too.
func (s *Store) abort(ctx context.Context, j journalDoc, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.rollbackBudget(j))
	defer cancel()
	if err := s.rollback(cctx, j); err != nil {
		return fmt.Errorf("%w (rollback deferred to recovery: %v)", cause, err)
	}
	return cause
}

// rollback undoes every write of a journal group that is still in place, then deletes the journal.
// Every step is conditional on the group marker, so it is idempotent and safe to repeat.
func (s *Store) rollback(ctx context.Context, j journalDoc) error {
	jc := s.db.Collection(collJournal)
	if _, err := jc.UpdateOne(ctx, bson.D{{Key: "_id", Value: j.ID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: jRollback}}}}); err != nil {
		return translate("journal claim", err)
	}
	for i := len(j.Writes) - 1; i >= 0; i-- {
		w := j.Writes[i]
		coll := s.res(w.Type)
		filter := bson.D{{Key: "_id", Value: w.ID}, {Key: fVersion, Value: w.NewVersion}, {Key: fJournal, Value: j.ID}}
		if w.Old == nil {
			if _, err := coll.DeleteOne(ctx, filter); err != nil {
				return translate("rollback delete", err)
			}
		} else if _, err := coll.ReplaceOne(ctx, filter, w.Old); err != nil {
			return translate("rollback restore", err)
		}
		if _, err := s.db.Collection(collHistory).DeleteOne(ctx, bson.D{{Key: "_id", Value: histKey(w.Type, w.ID, w.NewVersion)}, {Key: fJournal, Value: j.ID}}); err != nil {
			return translate("rollback history", err)
		}
		// Rebuild the idx entries from whatever the current document now is.
		var cur curDoc
		err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: w.ID}}, options.FindOne().SetProjection(bson.D{{Key: fRange, Value: 1}, {Key: fDeleted, Value: 1}})).Decode(&cur)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			cur = curDoc{}
		case err != nil:
			return translate("rollback read", err)
		}
		if err := s.syncIdx(ctx, w.Type, w.ID, cur.Range, bson.ObjectID{}, true); err != nil {
			return err
		}
	}
	if _, err := jc.DeleteOne(ctx, bson.D{{Key: "_id", Value: j.ID}}); err != nil {
		return translate("journal delete", err)
	}
	return nil
}

// journalPending reports whether the group jid is still unfinished (its journal exists). A missing
// journal means the group committed (or was rolled back, in which case the document no longer carries
// its marker). A group whose lease has run out, or whose owner died, is rolled back here, so that its
// resources do not stay locked until the next Open; it still counts as pending, since the caller's view
// of the resource is now stale.
func (s *Store) journalPending(ctx context.Context, jid bson.ObjectID) (bool, error) {
	var j journalDoc
	err := s.db.Collection(collJournal).FindOne(ctx, bson.D{{Key: "_id", Value: jid}}).Decode(&j)
	switch {
	case errors.Is(err, mongo.ErrNoDocuments):
		return false, nil
	case err != nil:
		return false, translate("journal read", err)
	}
	if j.Expires < millis(time.Now()) {
		if err := s.recoverGroup(ctx, j, false); err != nil {
			return true, err
		}
		return true, nil
	}
	if dead, err := s.ownerDead(ctx, j.Owner); err != nil {
		return true, err
	} else if dead {
		if err := s.recoverGroup(ctx, j, true); err != nil {
			return true, err
		}
	}
	return true, nil
}

// recoverJournal rolls back groups whose lease has run out (all of them when force is set); tests
// force it to stand for a lease that has passed. A running Store's heartbeat also ends groups whose
// owner died (sweep).
func (s *Store) recoverJournal(ctx context.Context, force bool) error {
	js, err := s.pendingGroups(ctx)
	if err != nil {
		return err
	}
	now := millis(time.Now())
	for _, j := range js {
		if !force && j.Expires >= now {
			continue
		}
		if err := s.recoverBounded(ctx, j, force); err != nil {
			return err
		}
	}
	return nil
}

// recoverBounded is recoverGroup bounded by the store timeout for each of its operations, when ctx has
// no deadline of its own: a crash can leave several groups, a group's rollback is four operations a
// write, and on FerretDB those that filter on other fields than _id scan the collection.
func (s *Store) recoverBounded(ctx context.Context, j journalDoc, force bool) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.rollbackBudget(j))
		defer cancel()
	}
	return s.recoverGroup(ctx, j, force)
}

// rollbackBudget is the time a group's rollback gets: about the store timeout for each of its operations
// (two on the journal, four or five a write).
func (s *Store) rollbackBudget(j journalDoc) time.Duration {
	return s.timeout * time.Duration(2+4*len(j.Writes))
}

// recoverGroup claims an expired group (any group when force is set) and rolls it back. If another
// Store claimed it first, or its owner committed meanwhile, it does nothing.
func (s *Store) recoverGroup(ctx context.Context, j journalDoc, force bool) error {
	// Claim it: after this the owner's commit (delete while pending) can no longer succeed.
	claim := bson.D{{Key: "_id", Value: j.ID}}
	if !force {
		claim = append(claim, bson.E{Key: "exp", Value: bson.D{{Key: "$lt", Value: millis(time.Now())}}})
	}
	res, err := s.db.Collection(collJournal).UpdateOne(ctx, claim, bson.D{{Key: "$set", Value: bson.D{{Key: "st", Value: jRollback}}}})
	if err != nil {
		return translate("journal claim", err)
	}
	if res.MatchedCount == 0 {
		return nil
	}
	if err := s.rollback(ctx, j); err != nil {
		return fmt.Errorf("store/mongo: recover journal group %s: %w", j.ID.Hex(), err)
	}
	return nil
}
