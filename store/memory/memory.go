package memory

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	// mu guards everything below. Every method holds it for its whole run, so each is atomic with
	// respect to every other: a group of writes, an append and a prune are all-or-nothing by
	// construction, and a search sees one state.
	mu        sync.RWMutex
	closed    bool
	resources map[key]*resource
	// chain holds the audit records after the anchor, in Seq order, without their Index (which lives
	// on the AuditEvent resource, as it is not part of the chain).
	chain  []audit.Record
	anchor audit.Anchor
}

type key struct{ typ, id string }

// resource is every version of one resource, and the index of the current one.
type resource struct {
	versions []store.Resource // versions[i] is version i+1
	index    []store.IndexEntry
}

func (r *resource) current() store.Resource { return r.versions[len(r.versions)-1] }

// The reference implements both the resource store and the audit trail's storage.
var (
	_ store.Store = (*Store)(nil)
	_ audit.Store = (*Store)(nil)
)

// New returns an empty store.
func New() *Store {
	return &Store{resources: map[key]*resource{}}
}

var errClosed = fmt.Errorf("%w: memory store closed", store.ErrUnavailable)

// lock takes the write lock, or returns ErrUnavailable after Close.
func (s *Store) lock() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errClosed
	}
	return nil
}

// rlock takes the read lock, or returns ErrUnavailable after Close.
func (s *Store) rlock() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errClosed
	}
	return nil
}

// copyOut returns r with its own copy of the body, so that a caller changing it changes nothing stored.
func copyOut(r store.Resource) store.Resource {
	r.Body = bytes.Clone(r.Body)
	return r
}

// normalise is r as stored: lastUpdated in UTC at millisecond precision, a private body, none for a
// tombstone.
func normalise(r store.Resource) store.Resource {
	r.LastUpdated = time.UnixMilli(r.LastUpdated.UnixMilli()).UTC()
	r.Body = bytes.Clone(r.Body)
	if r.Deleted {
		r.Body = nil
	}
	return r
}

// Get returns the current version, which may be a tombstone. ErrNotFound if the resource never existed
// (or was a pruned AuditEvent).
func (s *Store) Get(_ context.Context, typ, id string) (store.Resource, error) {
	if err := s.rlock(); err != nil {
		return store.Resource{}, err
	}
	defer s.mu.RUnlock()
	r, ok := s.resources[key{typ, id}]
	if !ok {
		return store.Resource{}, fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
	}
	return copyOut(r.current()), nil
}

// GetVersion returns one version, which may be a tombstone. ErrNotFound if there is no such version.
func (s *Store) GetVersion(_ context.Context, typ, id string, version int64) (store.Resource, error) {
	if err := s.rlock(); err != nil {
		return store.Resource{}, err
	}
	defer s.mu.RUnlock()
	r, ok := s.resources[key{typ, id}]
	if !ok || version < 1 || version > int64(len(r.versions)) {
		return store.Resource{}, fmt.Errorf("%w: %s/%s/_history/%d", store.ErrNotFound, typ, id, version)
	}
	return copyOut(r.versions[version-1]), nil
}

// version is the current version of typ/id, 0 if it never existed.
func (s *Store) version(typ, id string) int64 {
	if r, ok := s.resources[key{typ, id}]; ok {
		return int64(len(r.versions))
	}
	return 0
}

// checkVersions returns ErrVersionConflict unless every write expects the version that is current.
func (s *Store) checkVersions(writes []store.Write) error {
	for _, w := range writes {
		r := w.Resource
		if cur := s.version(r.Type, r.ID); cur != w.ExpectVersion {
			return fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrVersionConflict, r.Type, r.ID, cur, w.ExpectVersion)
		}
	}
	return nil
}

// write stores checked writes.
func (s *Store) write(writes []store.Write) {
	for _, w := range writes {
		v := normalise(w.Resource)
		k := key{v.Type, v.ID}
		r := s.resources[k]
		if r == nil {
			r = &resource{}
			s.resources[k] = r
		}
		r.versions = append(r.versions, v)
		r.index = slices.Clone(w.Index)
		if v.Deleted {
			r.index = nil
		}
	}
}

// Apply makes every write or none: ErrInvalidQuery for a malformed group (see store.CheckWrites),
// ErrVersionConflict if a write's ExpectVersion is not current, and nothing is written on either.
func (s *Store) Apply(_ context.Context, writes []store.Write) error {
	if err := store.CheckWrites(writes); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.checkVersions(writes); err != nil {
		return err
	}
	s.write(writes)
	return nil
}

// ApplyAudited is Apply and the append of records, chained on the head, in one step: both or neither.
func (s *Store) ApplyAudited(_ context.Context, writes []store.Write, records []audit.Record) error {
	if len(records) == 0 {
		return fmt.Errorf("%w: ApplyAudited without audit records", store.ErrInvalidQuery)
	}
	if err := store.CheckWrites(writes); err != nil {
		return err
	}
	// Chained on an empty chain to check the batch's own shape; chained again below on the real head.
	audit.Chain(nil, 0, records)
	if err := audit.CheckBatch(records); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if err := s.checkVersions(writes); err != nil {
		return err
	}
	if err := s.checkNewAuditIDs(records); err != nil {
		return err
	}
	head, hash := s.head()
	audit.Chain(hash, head, records)
	s.write(writes)
	s.appendRecords(records)
	return nil
}

// Search returns the current, non-deleted resources of q.Type that store.Matches selects, in
// store.ComparePositions order, after q.After, at most q.Limit. ErrInvalidQuery as store.CheckQuery says.
func (s *Store) Search(_ context.Context, q store.Query) ([]store.Hit, error) {
	if err := store.CheckQuery(q); err != nil {
		return nil, err
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	matches, err := s.matches(q)
	if err != nil {
		return nil, err
	}
	hits := make([]store.Hit, 0, len(matches))
	for _, m := range matches {
		pos := store.Position(m.candidate, q.Sort)
		if q.After != nil && store.ComparePositions(q.Sort, pos, q.After) <= 0 {
			continue
		}
		hits = append(hits, store.Hit{Resource: copyOut(m.resource), SortValues: pos})
	}
	slices.SortFunc(hits, func(a, b store.Hit) int { return store.ComparePositions(q.Sort, a.SortValues, b.SortValues) })
	if q.Limit > 0 && len(hits) > q.Limit {
		hits = hits[:q.Limit]
	}
	return hits, nil
}

// Count returns how many resources Search would return without After and Limit. Sort, After and Limit
// are ignored, even when malformed.
func (s *Store) Count(_ context.Context, q store.Query) (int, error) {
	q = store.Query{Type: q.Type, Clauses: q.Clauses}
	if err := store.CheckQuery(q); err != nil {
		return 0, err
	}
	if err := s.rlock(); err != nil {
		return 0, err
	}
	defer s.mu.RUnlock()
	matches, err := s.matches(q)
	return len(matches), err
}

type match struct {
	resource  store.Resource
	candidate store.Candidate
}

// matches returns the current, non-deleted resources of q.Type that satisfy q's clauses, in no order.
// The caller holds the lock.
func (s *Store) matches(q store.Query) ([]match, error) {
	var out []match
	for k, r := range s.resources {
		if k.typ != q.Type {
			continue
		}
		c, ok := s.candidate(k)
		if !ok {
			continue
		}
		m, err := store.Matches(c, q.Clauses, resolver{s})
		if err != nil {
			return nil, err
		}
		if m {
			out = append(out, match{resource: r.current(), candidate: c})
		}
	}
	return out, nil
}

// candidate is typ/id as a query sees it; false if it does not exist or is deleted.
func (s *Store) candidate(k key) (store.Candidate, bool) {
	r, ok := s.resources[k]
	if !ok || r.current().Deleted {
		return store.Candidate{}, false
	}
	cur := r.current()
	return store.Candidate{Type: k.typ, ID: k.id, LastUpdated: cur.LastUpdated.UnixMilli(), Index: r.index}, true
}

// resolver answers chains and _has from the store's own state, recursively; the caller holds the lock.
type resolver struct{ s *Store }

func (r resolver) RefIn(sub *store.Query, id string) (bool, error) {
	c, ok := r.s.candidate(key{sub.Type, id})
	if !ok {
		return false, nil
	}
	return store.Matches(c, sub.Clauses, r)
}

func (r resolver) Has(sub *store.Query, param, ref string) (bool, error) {
	for k, res := range r.s.resources {
		if k.typ != sub.Type || !refersTo(res.index, param, ref) {
			continue
		}
		c, ok := r.s.candidate(k)
		if !ok {
			continue
		}
		m, err := store.Matches(c, sub.Clauses, r)
		if err != nil || m {
			return m, err
		}
	}
	return false, nil
}

// refersTo reports whether index has an entry for param whose Value is ref, whatever its other fields.
func refersTo(index []store.IndexEntry, param, ref string) bool {
	return slices.ContainsFunc(index, func(e store.IndexEntry) bool { return e.Param == param && e.Value == ref })
}

// historyOrder is HistoryPosition's order: lastUpdated descending, then type, id, and version descending.
func historyOrder(a, b store.Resource) int {
	return cmp.Or(
		b.LastUpdated.Compare(a.LastUpdated),
		cmp.Compare(a.Type, b.Type),
		cmp.Compare(a.ID, b.ID),
		cmp.Compare(b.VersionID, a.VersionID),
	)
}

// History returns the versions q selects in history order. ErrInvalidQuery for an id without a type.
func (s *Store) History(_ context.Context, q store.HistoryQuery) ([]store.Resource, error) {
	if q.ID != "" && q.Type == "" {
		return nil, fmt.Errorf("%w: history of an id without a type", store.ErrInvalidQuery)
	}
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []store.Resource
	for k, r := range s.resources {
		if (q.Type != "" && k.typ != q.Type) || (q.ID != "" && k.id != q.ID) {
			continue
		}
		if q.Type == "" && len(q.Types) > 0 && !slices.Contains(q.Types, k.typ) {
			continue
		}
		for _, v := range r.versions {
			if !q.Since.IsZero() && v.LastUpdated.Before(q.Since) || !q.Before.IsZero() && !v.LastUpdated.Before(q.Before) {
				continue
			}
			if a := q.After; a != nil {
				at := store.Resource{LastUpdated: a.LastUpdated, Type: a.Type, ID: a.ID, VersionID: a.VersionID}
				if historyOrder(v, at) <= 0 {
					continue
				}
			}
			out = append(out, copyOut(v))
		}
	}
	slices.SortFunc(out, historyOrder)
	if q.Limit > 0 && len(out) > q.Limit {
		out = out[:q.Limit]
	}
	return out, nil
}

// SetIndex replaces the current version's index. ErrInvalidQuery for an AuditEvent or an entry without a
// parameter, ErrNotFound for a resource that does not exist or is deleted, ErrVersionConflict if version
// is not current.
func (s *Store) SetIndex(_ context.Context, typ, id string, version int64, index []store.IndexEntry) error {
	if typ == store.AuditEventType {
		return fmt.Errorf("%w: the index of an AuditEvent is kept as appended", store.ErrInvalidQuery)
	}
	if err := store.CheckEntries(typ, id, index); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	r, ok := s.resources[key{typ, id}]
	switch {
	case !ok:
		return fmt.Errorf("%w: %s/%s", store.ErrNotFound, typ, id)
	case int64(len(r.versions)) != version:
		return fmt.Errorf("%w: %s/%s is at version %d, expected %d", store.ErrVersionConflict, typ, id, len(r.versions), version)
	case r.current().Deleted:
		return fmt.Errorf("%w: %s/%s is deleted", store.ErrNotFound, typ, id)
	}
	r.index = slices.Clone(index)
	return nil
}

// head is the Seq and Hash the next record chains on: the last record's, else the anchor's.
func (s *Store) head() (int64, []byte) {
	if n := len(s.chain); n > 0 {
		return s.chain[n-1].Seq, s.chain[n-1].Hash
	}
	return s.anchor.Seq, s.anchor.Hash
}

// checkNewAuditIDs returns ErrInvalidQuery if a record's id is already a stored AuditEvent.
func (s *Store) checkNewAuditIDs(records []audit.Record) error {
	for _, r := range records {
		if _, ok := s.resources[key{store.AuditEventType, r.ID}]; ok {
			return fmt.Errorf("%w: AuditEvent/%s is already stored", store.ErrInvalidQuery, r.ID)
		}
	}
	return nil
}

// appendRecords stores chained, checked records at the end of the chain and as AuditEvents.
func (s *Store) appendRecords(records []audit.Record) {
	for _, rec := range records {
		r := normalise(store.Resource{Type: store.AuditEventType, ID: rec.ID, VersionID: 1, LastUpdated: rec.Recorded, Body: rec.Body})
		s.resources[key{store.AuditEventType, rec.ID}] = &resource{versions: []store.Resource{r}, index: slices.Clone(rec.Index)}
		s.chain = append(s.chain, audit.Record{Seq: rec.Seq, ID: rec.ID, Recorded: r.LastUpdated, Body: r.Body, Hash: bytes.Clone(rec.Hash)})
	}
}

// AppendAudit appends records chained by the caller on the head. ErrVersionConflict if records[0].Seq
// is not head+1; ErrInvalidQuery if the batch is malformed or an id is already stored.
func (s *Store) AppendAudit(_ context.Context, records []audit.Record) error {
	if len(records) == 0 {
		return nil
	}
	if err := audit.CheckBatch(records); err != nil {
		return err
	}
	if err := s.lock(); err != nil {
		return err
	}
	defer s.mu.Unlock()
	head, hash := s.head()
	if err := audit.CheckLink(head, hash, records[0]); err != nil {
		return err
	}
	if err := s.checkNewAuditIDs(records); err != nil {
		return err
	}
	s.appendRecords(records)
	return nil
}

// AuditHead returns the last record's Seq and Hash, the anchor's when every record was pruned, and 0,
// nil for a chain never appended to.
func (s *Store) AuditHead(context.Context) (int64, []byte, error) {
	if err := s.rlock(); err != nil {
		return 0, nil, err
	}
	defer s.mu.RUnlock()
	seq, hash := s.head()
	return seq, bytes.Clone(hash), nil
}

// AuditRange returns at most limit (<= 0: all) records with Seq > after, in Seq order, without Index.
func (s *Store) AuditRange(_ context.Context, after int64, limit int) ([]audit.Record, error) {
	if err := s.rlock(); err != nil {
		return nil, err
	}
	defer s.mu.RUnlock()
	var out []audit.Record
	for _, r := range s.chain {
		if r.Seq <= after {
			continue
		}
		if limit > 0 && len(out) == limit {
			break
		}
		r.Body, r.Hash = bytes.Clone(r.Body), bytes.Clone(r.Hash)
		out = append(out, r)
	}
	return out, nil
}

// PruneAudit removes the prefix of the chain recorded before before, in one step, and makes its last
// record the anchor. It stops before a broken link and returns its error (audit.PrunablePrefix); the
// chain here cannot break, but the rule is the contract's.
func (s *Store) PruneAudit(_ context.Context, before time.Time) (audit.Anchor, int64, error) {
	if err := s.lock(); err != nil {
		return audit.Anchor{}, 0, err
	}
	defer s.mu.Unlock()
	n, err := audit.PrunablePrefix(s.anchor, s.chain, before)
	if n > 0 {
		last := s.chain[n-1]
		for _, r := range s.chain[:n] {
			delete(s.resources, key{store.AuditEventType, r.ID})
		}
		s.anchor = audit.Anchor{Seq: last.Seq, Hash: last.Hash, Recorded: last.Recorded}
		s.chain = slices.Delete(s.chain, 0, n)
	}
	a := s.anchor
	a.Hash = bytes.Clone(a.Hash)
	return a, int64(n), err
}

// AuditAnchor returns the anchor of a pruned chain, or the zero AuditAnchor.
func (s *Store) AuditAnchor(context.Context) (audit.Anchor, error) {
	if err := s.rlock(); err != nil {
		return audit.Anchor{}, err
	}
	defer s.mu.RUnlock()
	a := s.anchor
	a.Hash = bytes.Clone(a.Hash)
	return a, nil
}

// Ping returns ErrUnavailable after Close, else nil.
func (s *Store) Ping(context.Context) error {
	if err := s.rlock(); err != nil {
		return err
	}
	s.mu.RUnlock()
	return nil
}

// Close waits for calls in progress and releases the data; later calls return ErrUnavailable. Closing
// twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.resources, s.chain = nil, nil
	return nil
}
