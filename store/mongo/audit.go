package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// collAudit holds the audit chain: one document per appended batch. See doc.go, "Audit chain".
const collAudit = "audit"

// auditDoc is one appended batch of the chain.
type auditDoc struct {
	First int64       `bson:"_id"`  // Seq of the first record: unique, so the insert is the CAS
	Last  int64       `bson:"last"` // Seq of the last record
	Recs  []auditLink `bson:"recs"`
	// Pending is set while the batch's AuditEvent documents may still be missing (journal mode only);
	// Docs then holds them, so that any process can finish writing them.
	Pending bool     `bson:"pend,omitempty"`
	Docs    []curDoc `bson:"m,omitempty"`
}

// auditLink is one record's place in the chain. Its body and time are kept where they are served
// (res_AuditEvent and history), not here.
type auditLink struct {
	Seq  int64  `bson:"s"`
	ID   string `bson:"id"`
	Hash []byte `bson:"h"`
}

// AppendAudit appends a batch to the chain, all or none.
//
// With transactions it reads the head, checks the batch against it, inserts the batch document and the
// AuditEvents' res_AuditEvent, history and idx documents in one transaction.
//
// Without transactions (FerretDB, standalone mongod) the batch document is the commit point: it is one
// document, so its insert is atomic, and its _id (the first Seq) is unique, so of two appenders on the
// same head exactly one succeeds (the other gets ErrVersionConflict and has written nothing). It carries
// the AuditEvent documents in its "m" field while "pend" is set. After the insert they are written with
// inserts that ignore duplicate keys, so writing them twice is harmless, and then "pend" and "m" are
// removed. A crash in between leaves a pending batch at the head of the chain; whoever next reads the
// head (the next AppendAudit in any process, AuditRange, Open) finishes it before going on. A batch is
// therefore never rolled back once chained (a later batch may already chain on it), and at most the head
// batch is ever pending.
func (s *Store) AppendAudit(ctx context.Context, records []audit.Record) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	if len(records) == 0 {
		return nil
	}
	if err := audit.CheckBatch(records); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	if err := s.ensureType(ctx, store.AuditEventType); err != nil {
		return err
	}
	if s.txn {
		return s.inTxn(ctx, func(ctx context.Context) error { return s.appendAuditTxn(ctx, records, false) })
	}
	return s.appendAuditJournal(ctx, records, false)
}

// appendAuditTxn appends a checked batch inside the caller's transaction. With rechain (ApplyAudited)
// it first chains the records on the head it reads there; otherwise they must chain on it already.
func (s *Store) appendAuditTxn(ctx context.Context, records []audit.Record, rechain bool) error {
	if err := s.checkAuditAppend(ctx, records, rechain); err != nil {
		return err
	}
	d, docs := auditBatch(records)
	if _, err := s.db.Collection(collAudit).InsertOne(ctx, d); err != nil {
		return chainInsertError(err)
	}
	return s.writeAuditDocs(ctx, docs, false)
}

// appendAuditJournal appends a checked batch without a transaction: the pending batch document is the
// commit point (see AppendAudit). With rechain (ApplyAudited) it first chains the records on the head it
// reads; otherwise they must chain on it already.
func (s *Store) appendAuditJournal(ctx context.Context, records []audit.Record, rechain bool) error {
	if err := s.checkAuditAppend(ctx, records, rechain); err != nil {
		return err
	}
	d, docs := auditBatch(records)
	d.Pending, d.Docs = true, docs
	if _, err := s.db.Collection(collAudit).InsertOne(ctx, d); err != nil {
		return chainInsertError(err)
	}
	if s.afterAuditChain != nil {
		if err := s.afterAuditChain(); err != nil {
			return crash{err} // simulated crash
		}
	}
	// The batch is chained and durable (write concern); what follows only makes it readable, and is
	// finished by the next reader of the head if it fails here. So its error is not the caller's: a
	// retry would append the records a second time.
	_ = s.finishAudit(context.WithoutCancel(ctx), d)
	return nil
}

// auditBatch returns the chain document of a chained batch and its records' res_AuditEvent documents.
func auditBatch(records []audit.Record) (auditDoc, []curDoc) {
	d := auditDoc{First: records[0].Seq, Last: records[len(records)-1].Seq, Recs: make([]auditLink, len(records))}
	docs := make([]curDoc, len(records))
	for i, r := range records {
		d.Recs[i] = auditLink{Seq: r.Seq, ID: r.ID, Hash: r.Hash}
		docs[i] = newCurDoc(store.Resource{Type: store.AuditEventType, ID: r.ID, VersionID: 1, LastUpdated: r.Recorded, Body: r.Body}, r.Index, bson.ObjectID{})
	}
	return d, docs
}

// chainInsertError translates the failure of the batch insert: a duplicate _id means another appender
// took this position first.
func chainInsertError(err error) error {
	if isDuplicate(err) {
		return fmt.Errorf("%w: another batch was appended at this position first", store.ErrVersionConflict)
	}
	return translate("audit insert", err)
}

// checkAuditAppend checks the batch against the head (finishing a pending head batch first, so that its
// ids are visible) and that none of its ids is stored already. With rechain it first chains the records
// on that head (audit.Chain: their links within the batch then hold by construction).
func (s *Store) checkAuditAppend(ctx context.Context, records []audit.Record, rechain bool) error {
	head, err := s.auditHeadDoc(ctx)
	if err != nil {
		return err
	}
	seq, hash, err := s.headOrAnchor(ctx, head)
	if err != nil {
		return err
	}
	if rechain {
		audit.Chain(hash, seq, records)
	}
	if err := audit.CheckLink(seq, hash, records[0]); err != nil {
		return err
	}
	ids := make([]string, len(records))
	for i, r := range records {
		ids[i] = r.ID
	}
	n, err := s.res(store.AuditEventType).CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}})
	if err != nil {
		return translate("audit ids", err)
	}
	if n > 0 {
		return fmt.Errorf("%w: %d of the batch's AuditEvent ids exist already", store.ErrInvalidQuery, n)
	}
	return nil
}

// auditHeadDoc reads the last batch, finishing it if it is pending. nil for an empty chain.
func (s *Store) auditHeadDoc(ctx context.Context) (*auditDoc, error) {
	var d auditDoc
	err := s.db.Collection(collAudit).FindOne(ctx, bson.D{}, options.FindOne().SetSort(bson.D{{Key: "_id", Value: -1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, translate("audit head", err)
	}
	if d.Pending {
		if err := s.finishAudit(ctx, d); err != nil {
			return nil, err
		}
	}
	return &d, nil
}

// finishAudit writes the AuditEvent documents of a pending batch and clears its pending state. It may
// run in several processes at once for the same batch: every step is idempotent.
func (s *Store) finishAudit(ctx context.Context, d auditDoc) error {
	if err := s.ensureType(ctx, store.AuditEventType); err != nil {
		return err
	}
	if err := s.writeAuditDocs(ctx, d.Docs, true); err != nil {
		return err
	}
	_, err := s.db.Collection(collAudit).UpdateOne(ctx, bson.D{{Key: "_id", Value: d.First}, {Key: "pend", Value: true}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "pend", Value: ""}, {Key: "m", Value: ""}}}})
	return translate("audit finish", err)
}

// writeAuditDocs inserts the history, res_AuditEvent and idx documents of a batch. With
// ignoreDuplicates (finishing a pending batch) documents that exist already are left as they are; idx
// documents then have a deterministic _id for the same reason.
func (s *Store) writeAuditDocs(ctx context.Context, docs []curDoc, ignoreDuplicates bool) error {
	var hist, cur, idx []any
	for _, d := range docs {
		hist = append(hist, histDoc{Key: histKey(store.AuditEventType, d.ID, 1), Type: store.AuditEventType, ID: d.ID, Version: 1, LU: d.LU, Body: d.Body})
		cur = append(cur, d)
		for i, e := range d.Range {
			idx = append(idx, bson.D{{Key: "_id", Value: fmt.Sprintf("%s/%s/%d", store.AuditEventType, d.ID, i)},
				{Key: "t", Value: store.AuditEventType}, {Key: "r", Value: d.ID}, {Key: "p", Value: e.Param}, {Key: "lo", Value: e.Low}, {Key: "hi", Value: e.High}})
		}
	}
	for _, w := range []struct {
		c    *mongo.Collection
		docs []any
	}{{s.db.Collection(collHistory), hist}, {s.res(store.AuditEventType), cur}, {s.db.Collection(collIdx), idx}} {
		if len(w.docs) == 0 {
			continue
		}
		_, err := w.c.InsertMany(ctx, w.docs, options.InsertMany().SetOrdered(!ignoreDuplicates))
		if err != nil && !(ignoreDuplicates && onlyDuplicates(err)) {
			return translate("audit write "+w.c.Name(), err)
		}
	}
	return nil
}

// onlyDuplicates reports whether every error of a bulk insert is a duplicate key.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if we.Code != 11000 {
			return false
		}
	}
	return true
}

// AuditHead returns the last record's Seq and Hash (0, nil for an empty chain).
func (s *Store) AuditHead(ctx context.Context) (int64, []byte, error) {
	if err := s.begin(); err != nil {
		return 0, nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	d, err := s.auditHeadDoc(ctx)
	if err != nil {
		return 0, nil, err
	}
	return s.headOrAnchor(ctx, d)
}

// headOrAnchor returns the Seq and hash of the last record of head, the last chain document; without
// one (an empty chain, or one pruned to its end) the anchor's, so that appends go on after it.
func (s *Store) headOrAnchor(ctx context.Context, head *auditDoc) (int64, []byte, error) {
	if head != nil {
		return head.Last, head.Recs[len(head.Recs)-1].Hash, nil
	}
	a, err := s.readAnchor(ctx)
	if err != nil || a.Seq == 0 {
		return 0, nil, err
	}
	return a.Seq, a.Hash, nil
}

// AuditRange returns records with Seq > after in Seq order, at most limit (0: no limit), and never one at
// or below the anchor of a pruned chain (finishing a pending prune step first). The batches come from the
// audit collection (index last), bodies and times from history, where GetVersion and History serve them;
// a record whose history document is gone has a nil Body. (Search serves the copy in res_AuditEvent;
// audit.Verify compares the two.)
func (s *Store) AuditRange(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	if err := s.begin(); err != nil {
		return nil, err
	}
	defer s.wg.Done()
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	a, _, err := s.auditAnchor(ctx)
	if err != nil {
		return nil, err
	}
	return s.auditRange(ctx, max(after, a.Seq), limit)
}

// auditRange is AuditRange without the anchor: records with Seq > after.
func (s *Store) auditRange(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	cur, err := s.db.Collection(collAudit).Find(ctx, bson.D{{Key: "last", Value: bson.D{{Key: "$gt", Value: after}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "m", Value: 0}}))
	if err != nil {
		return nil, translate("audit range", err)
	}
	defer cur.Close(context.WithoutCancel(ctx))
	var out []audit.Record
	for cur.Next(ctx) && (limit <= 0 || len(out) < limit) {
		var d auditDoc
		if err := cur.Decode(&d); err != nil {
			return nil, translate("audit range", err)
		}
		if d.Pending {
			// Only the head can be pending; finish it so that its records read like the others.
			if _, err := s.auditHeadDoc(ctx); err != nil {
				return nil, err
			}
		}
		for _, l := range d.Recs {
			if l.Seq > after && (limit <= 0 || len(out) < limit) {
				out = append(out, audit.Record{Seq: l.Seq, ID: l.ID, Hash: l.Hash})
			}
		}
	}
	if err := cur.Err(); err != nil {
		return nil, translate("audit range", err)
	}
	if len(out) == 0 {
		return nil, nil
	}
	keys := make([]string, len(out))
	for i, r := range out {
		keys[i] = histKey(store.AuditEventType, r.ID, 1)
	}
	hc, err := s.db.Collection(collHistory).Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}})
	if err != nil {
		return nil, translate("audit range bodies", err)
	}
	var hs []histDoc
	if err := hc.All(ctx, &hs); err != nil {
		return nil, translate("audit range bodies", err)
	}
	byID := make(map[string]*histDoc, len(hs))
	for i := range hs {
		byID[hs[i].ID] = &hs[i]
	}
	for i := range out {
		if h, ok := byID[out[i].ID]; ok && h.Type == store.AuditEventType && h.Version == 1 {
			out[i].Body, out[i].Recorded = h.Body, fromMillis(h.LU)
		}
	}
	return out, nil
}
