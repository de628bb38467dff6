package store

import (
	"context"
	"errors"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// Sentinel errors. Backends translate their driver errors into these in one place each, so that callers
// never see a driver type.
var (
	// ErrNotFound: the resource (or the version asked for) never existed.
	ErrNotFound = errors.New("store: not found")
	// ErrVersionConflict: a compare-and-swap write found a current version other than the one expected.
	ErrVersionConflict = errors.New("store: version conflict")
	// ErrInvalidQuery: a Query or Write that no backend could execute (an unknown Match, a Sub without
	// a type). It signals a programming error above the store, not bad user input.
	ErrInvalidQuery = errors.New("store: invalid query")
	// ErrUnavailable: the backend cannot be reached or timed out. Callers answer 503.
	ErrUnavailable = errors.New("store: unavailable")
)

// AuditEventType is the resource type of audit records. Apply and SetIndex refuse it; records of this
// type are written only by AppendAudit.
const AuditEventType = "AuditEvent"

// MaxAuditBatch is the largest number of records one AppendAudit takes. A batch is one atomic write, and
// on MongoDB without transactions one document, which must stay well inside 16 MB.
const MaxAuditBatch = 1000

// AuditRecord is one link of the audit chain: an AuditEvent and its place in the chain.
type AuditRecord struct {
	// Seq is the position in the chain: 1-based and contiguous.
	Seq int64
	// ID is the AuditEvent's logical id.
	ID string
	// Recorded is the AuditEvent's lastUpdated (UTC; the chain keeps milliseconds).
	Recorded time.Time
	// Body is the AuditEvent JSON exactly as it will be served, meta included.
	Body []byte
	// Index holds the search-index entries of the AuditEvent. It is not part of the hash.
	Index []IndexEntry
	// Hash is ChainHash(previous record's Hash, this record).
	Hash []byte
}

// AuditAnchor is where a pruned audit chain starts: the last record PruneAudit removed. Its zero value is
// the start of a chain that was never pruned.
type AuditAnchor struct {
	Seq      int64
	Hash     []byte
	Recorded time.Time
}

// Resource is one stored version of a FHIR resource.
type Resource struct {
	Type        string
	ID          string
	VersionID   int64
	LastUpdated time.Time // UTC, millisecond precision
	// Deleted marks a tombstone version: the resource was deleted at this version, and Body is empty.
	Deleted bool
	// Body is the validated JSON exactly as it will be served, meta included. The store never parses it.
	Body []byte
}

// Write is one element of an atomic group of writes.
type Write struct {
	// Resource is the new version. VersionID must be ExpectVersion+1. For a delete, set Resource.Deleted
	// and leave Body empty; the tombstone is kept in history.
	Resource Resource
	// ExpectVersion is the compare-and-swap condition: the version that must be current when the write is
	// applied (a tombstone counts as current). 0 means the resource must not exist at all.
	ExpectVersion int64
	// Index holds the search-index entries of the new version. It replaces the previous version's entries;
	// a tombstone has none.
	Index []IndexEntry
}

// IndexEntry is one search-index value of a resource. It is defined, and computed at write time, by
// package fhir; see fhir.IndexEntry for which fields each parameter type uses.
type IndexEntry = fhir.IndexEntry

// Match says how a Predicate compares against a parameter's index entries.
type Match int

const (
	// MatchPresent: the resource has at least one entry for Param. With Not, it is ":missing=true".
	MatchPresent Match = iota + 1
	// MatchToken: Value equals the entry's Value, and System equals its System unless AnySystem is set.
	// An empty Value with AnySystem false matches every code in System ("system|").
	MatchToken
	// MatchTokenText: the entry's Text starts with Value (already normalised).
	MatchTokenText
	// MatchExact: the entry's Value equals Value (string :exact, reference, uri).
	MatchExact
	// MatchPrefix: the entry's Text starts with Value (already normalised).
	MatchPrefix
	// MatchContains: the entry's Text contains Value (already normalised).
	MatchContains
	// MatchRange: every Bound holds for one entry.
	MatchRange
	// MatchRefIn: the entry's Value is "Type/id" of a resource matched by Sub (chaining).
	MatchRefIn
	// MatchHas: some resource matched by Sub has an entry for HasParam whose Value is this resource's
	// "Type/id" (reverse chaining, _has).
	MatchHas
)

// Special parameter names that the store answers from its own columns rather than index entries.
const (
	ParamID          = "_id"          // MatchExact on the logical id
	ParamLastUpdated = "_lastUpdated" // MatchRange on lastUpdated (Unix milliseconds)
)

// Field names a bound of a date or number range.
type Field int

const (
	Low Field = iota + 1
	High
)

// Cmp is a comparison operator.
type Cmp int

const (
	LT Cmp = iota + 1
	LE
	GT
	GE
)

// Bound is one comparison "entry.Field Cmp Value".
type Bound struct {
	Field Field
	Cmp   Cmp
	Value int64
}

// Predicate is one condition on a parameter. Not negates the whole predicate: the resource matches when it
// has no entry satisfying the rest (this is the FHIR meaning of :not and :missing).
type Predicate struct {
	Param     string
	Match     Match
	Not       bool
	System    string
	AnySystem bool
	Value     string
	Bounds    []Bound
	// Sub is the inner query of MatchRefIn and MatchHas.
	Sub *Query
	// HasParam is the reference parameter of Sub's type that must point at the outer resource (MatchHas).
	HasParam string
}

// Clause is a disjunction: a resource matches when any predicate matches (comma-separated values).
type Clause []Predicate

// DrivingClause returns the index of the clause that should drive the evaluation of cs: the first whose
// predicates are all positive, or -1 if there is none. Callers put their own criterion first and the
// access restriction last, so the caller's criterion selects the candidates and every later clause is
// tested on those candidates only. Both backends plan by this one rule, so that a query costs the same
// shape of work on either.
func DrivingClause(cs []Clause) int {
	for i, c := range cs {
		positive := len(c) > 0
		for _, p := range c {
			if p.Not {
				positive = false
			}
		}
		if positive {
			return i
		}
	}
	return -1
}

// SortKey orders results by a parameter. ParamID and ParamLastUpdated are allowed. Each entry is valued
// by its Text, else its Value, else (a date or number, with no System) its Low; for a parameter with
// several entries the lowest is used, integers before strings; a resource without a value sorts first
// ascending. store.SortValueOf is the rule in code.
type SortKey struct {
	Param string
	Desc  bool
}

// Query selects current, non-deleted resources of one type. Clauses are ANDed.
type Query struct {
	Type    string
	Clauses []Clause
	// Sort is applied before the final tie-breaker, which is always the logical id ascending.
	Sort []SortKey
	// After continues a keyset page: the SortValues of the last result of the previous page.
	After []SortValue
	// Limit caps the number of results; 0 means no limit.
	Limit int
}

// SortValue is one key of a result's position in a sorted search: a string or an int64. The last
// SortValue of a Hit is always the logical id.
type SortValue struct {
	Str string
	Int int64
	// IsInt says which of Str and Int holds the value.
	IsInt bool
}

// Hit is one search result with its position, for building the next page's cursor.
type Hit struct {
	Resource   Resource
	SortValues []SortValue
}

// HistoryQuery lists versions, newest first. An empty Type means every type; an empty ID every resource of
// Type. Since and Before bound lastUpdated (Since inclusive, Before exclusive); zero values leave them open.
type HistoryQuery struct {
	Type   string
	ID     string
	Since  time.Time
	Before time.Time
	// After continues a page: versions strictly older, in history order, than this one.
	After *HistoryPosition
	Limit int
}

// HistoryPosition identifies a version's place in history order: lastUpdated descending, then type, id
// and version descending.
type HistoryPosition struct {
	LastUpdated time.Time
	Type        string
	ID          string
	VersionID   int64
}

// Store holds FHIR resources, their versions and their search index. Implementations are safe for
// concurrent use by many goroutines and by several processes sharing one database.
type Store interface {
	// Get returns the current version of a resource, which may be a tombstone (Deleted set).
	// It returns ErrNotFound if the resource never existed.
	Get(ctx context.Context, typ, id string) (Resource, error)

	// GetVersion returns one version, which may be a tombstone. ErrNotFound if there is no such version.
	GetVersion(ctx context.Context, typ, id string, version int64) (Resource, error)

	// Apply performs every write or none of them, atomically. It refuses (ErrInvalidQuery) any write of
	// type AuditEventType: audit records are appended with AppendAudit and never changed. If any write's ExpectVersion does not match
	// the current version, nothing is written and ErrVersionConflict is returned. The same resource may
	// not appear twice in one group. A nil error means the group is durable.
	Apply(ctx context.Context, writes []Write) error

	// ApplyAudited is Apply together with the audit records of those writes, so that a change is never
	// stored without its record: the writes and the records are committed together, or neither is and
	// the error is Apply's (ErrVersionConflict for a write whose ExpectVersion does not match, and so on).
	// The store chains the records itself on the head it reads inside the commit, in order, and fills
	// their Seq and Hash; the Seq and Hash passed in are ignored. records must not be empty, and must be
	// well-formed as for AppendAudit (ids, bodies, at most MaxAuditBatch). Another process appending at
	// the same time is not an error: the records are chained after it. writes may be empty: the records
	// are then appended wherever the head is, which is what a group committer wants, since chaining on a
	// head read beforehand (AppendChained) loses every race to writers that chain inside their commit.
	//
	// On a backend without multi-document transactions the guarantee is one-sided: a crash in the middle
	// may leave a record of a change that was then rolled back, never a change without its record.
	ApplyAudited(ctx context.Context, writes []Write, records []AuditRecord) error

	// Search returns current, non-deleted resources matching q, in q's order, at most q.Limit of them.
	Search(ctx context.Context, q Query) ([]Hit, error)

	// Count returns how many current, non-deleted resources match q (Sort, After and Limit are ignored).
	Count(ctx context.Context, q Query) (int, error)

	// History returns versions (tombstones included) in history order.
	History(ctx context.Context, q HistoryQuery) ([]Resource, error)

	// SetIndex replaces the index entries of the current version without creating a new version, for
	// reindexing after an extraction rule changes. ErrVersionConflict if version is no longer current,
	// ErrNotFound if the resource does not exist. ErrInvalidQuery for type AuditEventType: audit records
	// keep the index they were appended with (reindexing them is not supported).
	SetIndex(ctx context.Context, typ, id string, version int64, index []IndexEntry) error

	// AppendAudit appends records at the end of the audit chain, all or none. records[i].Seq must be
	// head+1+i and records[i].Hash must be ChainHash of the previous record's hash and records[i] (use
	// Chain to fill both). If another writer appended first (records[0].Seq is not head+1), it returns
	// ErrVersionConflict and writes nothing: re-read the head, Chain again and retry (AppendChained does
	// exactly that). ErrInvalidQuery if the records are malformed (no id, an id used twice or already
	// stored, a hash that does not chain, a batch over MaxAuditBatch). A nil error means the records are
	// durable; each is then also an ordinary resource of type AuditEventType, version 1, readable by Get,
	// GetVersion and History and found by Search and Count through its Index, by every later call in any
	// process sharing the store, until PruneAudit removes it.
	AppendAudit(ctx context.Context, records []AuditRecord) error

	// AuditHead returns the Seq and Hash of the last record in the chain; when PruneAudit has removed
	// every record, the anchor's (the next record chains on it); 0 and nil for a chain never appended to.
	AuditHead(ctx context.Context) (seq int64, hash []byte, err error)

	// AuditRange returns at most limit records (limit <= 0: all) with Seq > after, in Seq order, with Seq, ID, Recorded,
	// Body and Hash as stored (Index is not returned: it is derived from Body). Body and Recorded are
	// read from one stored copy of the record; if the backend keeps another (the one Search serves),
	// VerifyAudit compares the two, so that an edit of either copy shows up. A record whose stored copy
	// is missing comes back with a nil Body.
	AuditRange(ctx context.Context, after int64, limit int) ([]AuditRecord, error)

	// PruneAudit removes the oldest records of the chain, those recorded before before, for retention. It
	// removes a prefix of the chain only: it stops at the first record recorded at or after before (the
	// chain is in append order, and a clock step back must not leave a hole). The last record removed
	// becomes the anchor (AuditAnchor), from which VerifyAudit and AuditRange start, so that a pruned
	// chain verifies while a record removed in any other way is still a broken link. It may work in
	// several transactions, each removing records and moving the anchor together, so an interrupted
	// prune leaves a shorter, intact chain. It returns the anchor after pruning and how many records it
	// removed; removed records are no longer readable or searchable.
	PruneAudit(ctx context.Context, before time.Time) (anchor AuditAnchor, removed int64, err error)

	// AuditAnchor returns the anchor of a pruned chain: the Seq, Hash and Recorded of the last record
	// removed by PruneAudit, or the zero AuditAnchor if none ever was. The first record kept has
	// Seq anchor.Seq+1 and chains on anchor.Hash.
	AuditAnchor(ctx context.Context) (AuditAnchor, error)

	// Ping checks that the backend is reachable, for /readyz.
	Ping(ctx context.Context) error

	// Close releases the backend. It waits for writes in progress.
	Close() error
}
