package audit

import (
	"context"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// MaxBundleEntries is the most entries a transaction may have: its writes are stored atomically with
// one record for the bundle and one for each entry, all in one ApplyAudited.
const MaxBundleEntries = 1000

// MaxBatch is the largest number of records one AppendAudit or ApplyAudited takes: a transaction at
// MaxBundleEntries, with its own record. A batch is one atomic write, and on MongoDB without
// transactions one document, which must stay well inside 16 MB (a record is a few kB).
const MaxBatch = MaxBundleEntries + 1

// Record is one link of the audit chain: an AuditEvent and its place in the chain.
type Record struct {
	// Seq is the position in the chain: 1-based and contiguous.
	Seq int64
	// ID is the AuditEvent's logical id.
	ID string
	// Recorded is the AuditEvent's lastUpdated (UTC; the chain keeps milliseconds).
	Recorded time.Time
	// Body is the AuditEvent JSON exactly as it will be served, meta included.
	Body []byte
	// Index holds the search-index entries of the AuditEvent. It is not part of the hash.
	Index []store.IndexEntry
	// Hash is ChainHash(previous record's Hash, this record).
	Hash []byte
	// Summary is what Summarize reads from Body, when the record's writer knew it (NewRecord); nil
	// otherwise. Stores do not keep it: it is for this process's uptake tally (Committer.Notify), which
	// would otherwise read the record back and parse it.
	Summary *Summary
}

// Anchor is where a pruned audit chain starts: the last record PruneAudit removed. Its zero value is
// the start of a chain that was never pruned.
type Anchor struct {
	Seq      int64
	Hash     []byte
	Recorded time.Time
}

// Store is the audit trail's storage: a chain of records, appended in batches, read in Seq order and
// pruned from the front. It sits beside the resource store (store.Store), and every gpfhir backend
// implements both: a record, once appended, is also an AuditEvent resource that store.Store's Get and
// Search serve. store/storetest checks both against every backend.
type Store interface {
	// ApplyAudited is Apply together with the audit records of those writes, so that a change is never
	// stored without its record: the writes and the records are committed together, or neither is and
	// the error is Apply's (store.ErrVersionConflict for a write whose ExpectVersion does not match, and so on).
	// The store chains the records itself on the head it reads inside the commit, in order, and fills
	// their Seq and Hash; the Seq and Hash passed in are ignored. records must not be empty, and must be
	// well-formed as for AppendAudit (ids, bodies, at most MaxBatch). Another process appending at
	// the same time is not an error: the records are chained after it. writes may be empty: the records
	// are then appended wherever the head is, which is what a group committer wants, since chaining on a
	// head read beforehand (AppendChained) loses every race to writers that chain inside their commit.
	//
	// On a backend without multi-document transactions the guarantee is one-sided: a crash in the middle
	// may leave a record of a change that was then rolled back, never a change without its record.
	ApplyAudited(ctx context.Context, writes []store.Write, records []Record) error

	// AppendAudit appends records at the end of the audit chain, all or none. records[i].Seq must be
	// head+1+i and records[i].Hash must be ChainHash of the previous record's hash and records[i] (use
	// Chain to fill both). If another writer appended first (records[0].Seq is not head+1), it returns
	// store.ErrVersionConflict and writes nothing: re-read the head, Chain again and retry (AppendChained does
	// exactly that). store.ErrInvalidQuery if the records are malformed (no id, an id used twice or already
	// stored, a hash that does not chain, a batch over MaxBatch). A nil error means the records are
	// durable; each is then also an ordinary resource of type AuditEventType, version 1, readable by Get,
	// GetVersion and History and found by Search and Count through its Index, by every later call in any
	// process sharing the store, until PruneAudit removes it.
	AppendAudit(ctx context.Context, records []Record) error

	// AuditHead returns the Seq and Hash of the last record in the chain; when PruneAudit has removed
	// every record, the anchor's (the next record chains on it); 0 and nil for a chain never appended to.
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)

	// AuditRange returns at most limit records (limit <= 0: all) with Seq > after, in Seq order, with Seq, ID, Recorded,
	// Body and Hash as stored (Index is not returned: it is derived from Body). Body and Recorded are
	// read from one stored copy of the record; if the backend keeps another (the one Search serves),
	// Verify compares the two, so that an edit of either copy shows up. A record whose stored copy
	// is missing comes back with a nil Body.
	AuditRange(ctx context.Context, after int64, limit int) ([]Record, error)

	// PruneAudit removes the oldest records of the chain, those recorded before before, for retention. It
	// removes a prefix of the chain only: it stops at the first record recorded at or after before (the
	// chain is in append order, and a clock step back must not leave a hole). The last record removed
	// becomes the anchor (Anchor), from which Verify and AuditRange start, so that a pruned
	// chain verifies while a record removed in any other way is still a broken link. It may work in
	// several transactions, each removing records and moving the anchor together, so an interrupted
	// prune leaves a shorter, intact chain. It returns the anchor after pruning and how many records it
	// removed; removed records are no longer readable or searchable.
	PruneAudit(ctx context.Context, before time.Time) (anchor Anchor, removed int64, err error)

	// Anchor returns the anchor of a pruned chain: the Seq, Hash and Recorded of the last record
	// removed by PruneAudit, or the zero Anchor if none ever was. The first record kept has
	// Seq anchor.Seq+1 and chains on anchor.Hash.
	AuditAnchor(ctx context.Context) (Anchor, error)
}

// Backend is a store of both resources and the audit trail, as every gpfhir backend is. The trail's
// verification and the API's writes (a change together with its record) need both.
type Backend interface {
	store.Store
	Store
}
