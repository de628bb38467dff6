package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
// type are written only through audit.Store.
const AuditEventType = "AuditEvent"

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
	// Scan is a hint for reading a whole type page after page (a bulk export): walk the type's resources
	// in id order from After and test every clause on each, instead of selecting the candidates with one
	// clause. A broad clause (the practice a GP system is confined to) would otherwise be selected whole
	// again for every page, which makes reading N resources cost N²/page. The results are the same
	// either way, and a backend may ignore it; it has no effect with Sort.
	Scan bool
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
	Type string
	// Types, with Type empty, confines the listing to versions of these types (AuditEventType among
	// them for audit records); empty means every type. It lets a caller's history read only the types
	// the caller may read, instead of reading and discarding the rest (a clinical caller's system
	// history once read 152,000 AuditEvents to fill a page of ten).
	Types  []string
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

// Screener is a Store that can say, with a search's own rows, whether the search withheld something:
// SearchScreened(ctx, q, screen) returns what Search(ctx, q) returns, and whether
// Search(ctx, ScreenProbe(q, screen)) would find anything. A patient's compartment search is screened
// by the labels the patient may not see, and the answer must say when it left something out; the
// probe for it was a second statement on every such search (34 µs under load, beside the search's
// 59). api runs the probe itself when the store is not a Screener.
type Screener interface {
	SearchScreened(ctx context.Context, q Query, screen int) ([]Hit, bool, error)
}

// Generations is a Store that counts the writes of some types: Generation(ctx, typ) moves whenever a
// resource of typ is written, by this process or any other writing the same store, and in the write's
// own transaction, so that whoever sees the write sees the count moved. A caller may keep what it read
// of typ while the count stands still: api keeps the Patient resources found by NHS number, looked up on
// every patient request, and a second gpfhir process's write of a Patient moves the count they are
// checked against. ok is false for a type the store does not count.
type Generations interface {
	Generation(ctx context.Context, typ string) (n int64, ok bool, err error)
}

// ScreenProbe returns the query of the resources that q's last screen clauses withhold: those that
// match q's other clauses and not the screen. Each screen clause must be one negated predicate
// (ErrInvalidQuery otherwise); the probe has q's other clauses, then one clause of the screen's
// predicates un-negated, and no sort, cursor or page beyond one result, since whether there is any is
// all it asks.
func ScreenProbe(q Query, screen int) (Query, error) {
	if err := CheckScreen(q, screen); err != nil {
		return Query{}, err
	}
	n := len(q.Clauses) - screen
	var withheld Clause
	for _, c := range q.Clauses[n:] {
		p := c[0]
		p.Not = false
		withheld = append(withheld, p)
	}
	return Query{Type: q.Type, Clauses: append(slices.Clip(q.Clauses[:n]), withheld), Limit: 1}, nil
}

// CheckScreen returns ErrInvalidQuery unless q's last screen clauses, at least one, are each one
// negated predicate.
func CheckScreen(q Query, screen int) error {
	n := len(q.Clauses) - screen
	if screen <= 0 || n < 0 {
		return fmt.Errorf("%w: a screen of %d of %d clauses", ErrInvalidQuery, screen, len(q.Clauses))
	}
	for _, c := range q.Clauses[n:] {
		if len(c) != 1 || !c[0].Not {
			return fmt.Errorf("%w: a screen clause is one negated predicate", ErrInvalidQuery)
		}
	}
	return nil
}

// SearchThenProbe answers as a Screener must, with two searches of s: q, then ScreenProbe(q, screen).
// It is how a Screener answers what its one statement cannot, and what a caller does without one.
func SearchThenProbe(ctx context.Context, s Store, q Query, screen int) ([]Hit, bool, error) {
	probe, err := ScreenProbe(q, screen)
	if err != nil {
		return nil, false, err
	}
	hits, err := s.Search(ctx, q)
	if err != nil {
		return nil, false, err
	}
	found, err := s.Search(ctx, probe)
	return hits, len(found) > 0, err
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
	// type AuditEventType: audit records are appended through audit.Store and never changed. If any
	// write's ExpectVersion does not match the current version, nothing is written and
	// ErrVersionConflict is returned. The same resource may not appear twice in one group. A nil error
	// means the group is durable.
	Apply(ctx context.Context, writes []Write) error

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

	// Ping checks that the backend is reachable, for /readyz.
	Ping(ctx context.Context) error

	// Close releases the backend. It waits for writes in progress.
	Close() error
}
