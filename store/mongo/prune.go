package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// collAuditAnchor holds the anchor of a pruned audit chain, one document per prune step. See doc.go,
// "Audit retention".
const collAuditAnchor = "audit_anchor"

// defaultPruneChunk is how many records one step of PruneAudit removes at most.
const defaultPruneChunk = 500

// pruneConflicts bounds how many steps in a row PruneAudit lets other pruners take before giving up.
const pruneConflicts = 100

// anchorDoc is one prune step: it moves the anchor to the record Seq (the last one the step removes).
// The current anchor is the document with the largest _id.
type anchorDoc struct {
	Seq      int64  `bson:"_id"`
	Hash     []byte `bson:"h"`
	Recorded int64  `bson:"lu"` // Unix ms
	// Pending is set while the step's records may still be stored (journal mode only); IDs then lists
	// the AuditEvent ids it removes, so that any process can finish it.
	Pending bool     `bson:"pend,omitempty"`
	IDs     []string `bson:"ids,omitempty"`
}

func (d anchorDoc) anchor() audit.Anchor {
	if d.Seq == 0 {
		return audit.Anchor{}
	}
	return audit.Anchor{Seq: d.Seq, Hash: d.Hash, Recorded: fromMillis(d.Recorded)}
}

// AuditAnchor returns the anchor of a pruned chain, the zero AuditAnchor if it was never pruned. It
// finishes a prune step that a crashed (or still running) process left pending first.
func (s *Store) AuditAnchor(ctx context.Context) (audit.Anchor, error) {
	if err := s.begin(); err != nil {
		return audit.Anchor{}, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	d, _, err := s.auditAnchor(ctx)
	return d.anchor(), err
}

// auditAnchor finishes pending prune steps and returns the current anchor (Seq 0: never pruned) and how
// many AuditEvents finishing them deleted.
//
// The anchor is read before the pending steps are looked for: a step that another process inserts in
// between is then newer than the anchor returned, and the anchor returned, if it was pending, is among
// those finished (or was finished by its own process meanwhile). Read after them, such a step came back
// with its records still stored.
func (s *Store) auditAnchor(ctx context.Context) (anchorDoc, int64, error) {
	d, err := s.readAnchor(ctx)
	if err != nil {
		return anchorDoc{}, 0, err
	}
	cur, err := s.db.Collection(collAuditAnchor).Find(ctx, bson.D{{Key: "pend", Value: true}}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return anchorDoc{}, 0, translate("audit anchor", err)
	}
	var pending []anchorDoc
	if err := cur.All(ctx, &pending); err != nil {
		return anchorDoc{}, 0, translate("audit anchor", err)
	}
	var deleted int64
	for _, p := range pending {
		n, err := s.finishPrune(ctx, p)
		deleted += n
		if err != nil {
			return anchorDoc{}, deleted, err
		}
	}
	d.Pending, d.IDs = false, nil
	return d, deleted, nil
}

// readAnchor returns the current anchor as stored, pending or not. Its Seq and Hash are right either
// way: a pending step has already moved the anchor, only its records may still be there.
func (s *Store) readAnchor(ctx context.Context) (anchorDoc, error) {
	var d anchorDoc
	err := s.db.Collection(collAuditAnchor).FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return anchorDoc{}, nil
	}
	if err != nil {
		return anchorDoc{}, translate("audit anchor", err)
	}
	return d, nil
}

// PruneAudit removes the records recorded before before from the start of the chain, in steps of at most
// pruneChunk records. Each step first checks the links of the records it removes (audit.PrunablePrefix:
// a broken link stops the prune before it, with an error), then moves the anchor and removes the records:
//
//   - With transactions: the anchor document and every deletion are one transaction.
//   - Journal mode: the anchor document is inserted first, with pend set and the ids it removes; that
//     insert is the commit point. The AuditEvents' res_AuditEvent, idx and history documents are then
//     deleted, the chain documents whose records are all at or below the anchor, and finally pend.
//     A crash in between leaves the anchor moved and some of its records still stored; the next
//     AuditAnchor, AuditRange, PruneAudit or Open (in any process) deletes them. AuditRange never returns
//     records at or below the anchor, so the chain verifies from the new anchor meanwhile.
//
// The anchor documents' _id is the anchor's Seq, so two processes pruning the same step insert the
// same document (one gets a duplicate key and goes on from the anchor now stored), and two pruning
// different steps both leave a prefix removed and the anchor at the largest: concurrent prunes need no
// coordination. removed counts the records of this call's own steps, whoever deleted their documents (a
// reader of the anchor may finish a step before the step does), and the AuditEvents it deleted in
// finishing a step that another process left pending. Two processes pruning the same step at the same
// moment may both count it.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (audit.Anchor, int64, error) {
	if err := s.begin(); err != nil {
		return audit.Anchor{}, 0, err
	}
	defer s.wg.Done()
	var removed int64
	conflicts := 0
	for {
		d, n, done, err := s.pruneStep(ctx, before)
		removed += n
		switch {
		case errors.Is(err, store.ErrVersionConflict) && conflicts < pruneConflicts:
			// Another process pruned this step first (or wrote into it, with transactions): go on
			// from the anchor it left.
			conflicts++
			continue
		case err != nil:
			a, aerr := s.currentAnchor(ctx)
			if aerr != nil {
				return d.anchor(), removed, err
			}
			return a, removed, err
		case done:
			return d.anchor(), removed, nil
		}
		conflicts = 0
	}
}

// currentAnchor reads the anchor with the store's operation timeout.
func (s *Store) currentAnchor(ctx context.Context) (audit.Anchor, error) {
	ctx, cancel := s.opCtx(context.WithoutCancel(ctx))
	defer cancel()
	d, err := s.readAnchor(ctx)
	return d.anchor(), err
}

// pruneStep removes at most one chunk of records recorded before before from the start of the chain. It
// returns the anchor after the step, how many AuditEvents it deleted and whether the prune is done.
func (s *Store) pruneStep(ctx context.Context, before time.Time) (anchorDoc, int64, bool, error) {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	// A step that a crashed process left pending is finished here, and counted as this call's.
	a, finished, err := s.auditAnchor(ctx)
	if err != nil {
		return a, finished, false, err
	}
	chunk := s.pruneChunk
	if chunk <= 0 {
		chunk = defaultPruneChunk
	}
	page, err := s.auditRange(ctx, a.Seq, chunk)
	if err != nil {
		return a, finished, false, err
	}
	n, broken := audit.PrunablePrefix(a.anchor(), page, before)
	if broken != nil {
		// Records that another pruner deletes while they are read look like a broken link: only a
		// link broken under an anchor that stayed put is one.
		now, err := s.readAnchor(ctx)
		if err != nil {
			return a, finished, false, err
		}
		if now.Seq != a.Seq {
			return a, finished, false, fmt.Errorf("%w: another prune moved the audit anchor", store.ErrVersionConflict)
		}
	}
	if n == 0 {
		return a, finished, true, broken
	}
	last := page[n-1]
	d := anchorDoc{Seq: last.Seq, Hash: last.Hash, Recorded: millis(last.Recorded), IDs: make([]string, n)}
	for i, r := range page[:n] {
		d.IDs[i] = r.ID
	}
	var deleted int64
	if s.txn {
		err = s.inTxn(ctx, func(ctx context.Context) error {
			if _, err := s.db.Collection(collAuditAnchor).InsertOne(ctx, anchorDoc{Seq: d.Seq, Hash: d.Hash, Recorded: d.Recorded}); err != nil {
				return translate("audit prune anchor", err)
			}
			var err error
			deleted, err = s.removePruned(ctx, d)
			return err
		})
	} else {
		d.Pending = true
		if _, err = s.db.Collection(collAuditAnchor).InsertOne(ctx, d); err != nil {
			err = translate("audit prune anchor", err)
		} else if s.afterPruneAnchor != nil {
			err = s.afterPruneAnchor() // a simulated crash, or a reader finishing the step
			if err != nil {
				return d, finished, false, err
			}
		}
		if err == nil {
			deleted, err = s.finishPrune(ctx, d)
		}
		if err == nil {
			// The step's records count as this call's even when a reader of the anchor (the uptake
			// tally's AuditRange, say) finished the step between its anchor and its deletions and
			// deleted them itself: this call removed them from the chain, and the retention's log line
			// says so. (It said "removed 0" while the anchor moved past them.)
			deleted = int64(n)
		}
	}
	if err != nil {
		return a, finished + deleted, false, err
	}
	done := broken != nil || n < len(page) || len(page) < chunk
	return d, finished + deleted, done, broken
}

// finishPrune deletes what a pending prune step removes and clears its pending state. It may run in
// several processes at once for the same step: every deletion is idempotent. It returns how many
// AuditEvents it deleted.
func (s *Store) finishPrune(ctx context.Context, d anchorDoc) (int64, error) {
	deleted, err := s.removePruned(ctx, d)
	if err != nil {
		return deleted, err
	}
	_, err = s.db.Collection(collAuditAnchor).UpdateOne(ctx, bson.D{{Key: "_id", Value: d.Seq}, {Key: "pend", Value: true}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "pend", Value: ""}, {Key: "ids", Value: ""}}}})
	if err != nil {
		return deleted, translate("audit prune finish", err)
	}
	// Earlier steps are superseded by this one once it is done; a pending one is left for its own finish.
	_, err = s.db.Collection(collAuditAnchor).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: d.Seq}}},
		{Key: "pend", Value: bson.D{{Key: "$ne", Value: true}}}})
	return deleted, translate("audit prune superseded anchors", err)
}

// removePruned deletes the AuditEvents of step d (their served copy, date index entries and history
// version) and the chain documents whose records are all at or below its anchor. A chain document that
// straddles the anchor stays until a later step passes its last record: its links at or below the
// anchor (Seq, id and hash, no body) are skipped by AuditRange.
func (s *Store) removePruned(ctx context.Context, d anchorDoc) (int64, error) {
	var deleted int64
	if len(d.IDs) > 0 {
		keys := make([]string, len(d.IDs))
		for i, id := range d.IDs {
			keys[i] = histKey(store.AuditEventType, id, 1)
		}
		res, err := s.res(store.AuditEventType).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: d.IDs}}}})
		if err != nil {
			return 0, translate("audit prune "+collPrefix+store.AuditEventType, err)
		}
		deleted = res.DeletedCount
		if _, err := s.db.Collection(collIdx).DeleteMany(ctx, bson.D{{Key: "t", Value: store.AuditEventType},
			{Key: "r", Value: bson.D{{Key: "$in", Value: d.IDs}}}}); err != nil {
			return deleted, translate("audit prune idx", err)
		}
		if _, err := s.db.Collection(collHistory).DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}}); err != nil {
			return deleted, translate("audit prune history", err)
		}
	}
	if _, err := s.db.Collection(collAudit).DeleteMany(ctx, bson.D{{Key: "last", Value: bson.D{{Key: "$lte", Value: d.Seq}}}}); err != nil {
		return deleted, translate("audit prune chain", err)
	}
	return deleted, nil
}
