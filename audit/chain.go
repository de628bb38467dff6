package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// The audit trail is one linear hash chain. Record n carries Hash(n) = SHA-256(Hash(n-1), record n), so
// each hash commits to the whole trail before it: editing a record's body, id, time or position breaks
// its own link, deleting one leaves a gap in Seq, and swapping two breaks both, because Seq is hashed.
//
// Why one linear chain rather than a Merkle tree or one chain per process:
//   - Verification is one sequential read and needs no other state; "the first broken link" is a
//     well-defined answer an auditor can act on.
//   - Several gpfhir processes share one store without coordinating among themselves: appends are
//     serialised by the store (SQLite's write lock; a unique key on MongoDB). ApplyAudited chains the
//     records on the head it reads inside its own commit, so under SQLite's lock it never loses; AppendAudit
//     is a compare-and-swap on a head the caller read (records[0].Seq must be head+1), whose loser
//     re-chains and retries. A per-process chain would avoid the contention but leave no total order,
//     and deleting a whole process's chain would go unnoticed.
//   - The single head is a point of serialisation, but one append carries a whole batch: the API's group
//     commit gathers the records of many concurrent requests into one AppendAudit, so the chain costs
//     one CAS per batch, not per request. A Merkle structure would only pay off for inclusion proofs to
//     third parties, which nobody asks for here.
//
// Limits, by design: the chain proves integrity relative to its own head. Removing records from the end
// (truncation) or rewriting the whole tail with fresh hashes is only detectable against a head recorded
// elsewhere: gpfhir audit verify and audit export print the head hash so that operators can keep it
// (anchoring). The Index of a record is derived from its Body and is not hashed.
//
// Retention: PruneAudit removes a prefix of the chain and keeps the last removed record's Seq, Hash and
// Recorded as the anchor. Verification starts there: the first kept record must be anchor.Seq+1 and chain
// on anchor.Hash, so a pruned chain verifies while a record removed any other way (the oldest ones
// included) is still a gap. The anchor is as trustworthy as the head: whoever can rewrite the store can
// rewrite the anchor too, so the prune command prints it for keeping next to the export of what it removed.

// ChainHash returns the hash of r as the successor of a record whose hash is prev (nil for the first
// record). It covers Seq, ID, Recorded (Unix milliseconds) and Body, each length-prefixed so that no two
// different records encode alike; it does not cover Index or r.Hash.
func ChainHash(prev []byte, r Record) []byte {
	h := sha256.New()
	var n [8]byte
	field := func(b []byte) {
		binary.BigEndian.PutUint64(n[:], uint64(len(b)))
		h.Write(n[:])
		h.Write(b)
	}
	num := func(v int64) {
		var b [8]byte // not n: field writes the length prefix there
		binary.BigEndian.PutUint64(b[:], uint64(v))
		field(b[:])
	}
	field([]byte("gpfhir-audit-v1"))
	field(prev)
	num(r.Seq)
	field([]byte(r.ID))
	num(r.Recorded.UnixMilli())
	field(r.Body)
	return h.Sum(nil)
}

// Chain numbers records head+1, head+2, ... and fills their Hash, starting from the head's hash, so that
// they are ready for AppendAudit. It changes records in place.
func Chain(prevHash []byte, head int64, records []Record) {
	prev := prevHash
	for i := range records {
		records[i].Seq = head + 1 + int64(i)
		records[i].Hash = ChainHash(prev, records[i])
		prev = records[i].Hash
	}
}

// AppendChained appends records at the end of s's chain, whatever the head is: it reads the head, chains
// the records on it and appends them, and on store.ErrVersionConflict (another writer appended first) does it
// again, up to attempts times. It fills Seq and Hash of records. Errors other than a conflict are
// returned at once; after the last attempt it returns store.ErrVersionConflict.
func AppendChained(ctx context.Context, s Store, records []Record, attempts int) error {
	var err error
	for range max(attempts, 1) {
		var head int64
		var hash []byte
		if head, hash, err = s.AuditHead(ctx); err != nil {
			return err
		}
		Chain(hash, head, records)
		if err = s.AppendAudit(ctx, records); !errors.Is(err, store.ErrVersionConflict) {
			return err
		}
	}
	return err
}

// CheckBatch checks what AppendAudit can check without reading the store: size, ids, Seq
// contiguity within the batch and the links between the batch's own hashes. Backends call it first and
// then check records[0] against their head. It returns store.ErrInvalidQuery.
func CheckBatch(records []Record) error {
	return checkBatch(records, true)
}

// CheckUnchained is CheckBatch for a batch that the store chains itself (ApplyAudited), whose Seq and
// Hash are not yet given: size, ids and bodies. Records are named by their place in the batch.
func CheckUnchained(records []Record) error {
	return checkBatch(records, false)
}

func checkBatch(records []Record, chained bool) error {
	if len(records) > MaxBatch {
		return fmt.Errorf("%w: %d audit records in one batch, at most %d", store.ErrInvalidQuery, len(records), MaxBatch)
	}
	seen := make(map[string]bool, len(records))
	for i, r := range records {
		n := r.Seq
		if !chained {
			n = int64(i + 1)
		}
		switch {
		case r.ID == "":
			return fmt.Errorf("%w: audit record %d has no id", store.ErrInvalidQuery, n)
		case seen[r.ID]:
			return fmt.Errorf("%w: AuditEvent/%s appears twice in one batch", store.ErrInvalidQuery, r.ID)
		case chained && (r.Seq < 1 || (i > 0 && r.Seq != records[i-1].Seq+1)):
			return fmt.Errorf("%w: audit record %d does not follow %d", store.ErrInvalidQuery, r.Seq, records[max(i-1, 0)].Seq)
		case len(r.Body) == 0:
			return fmt.Errorf("%w: audit record %d has no body", store.ErrInvalidQuery, n)
		case chained && i > 0 && !bytes.Equal(r.Hash, ChainHash(records[i-1].Hash, r)):
			return fmt.Errorf("%w: audit record %d does not chain on record %d", store.ErrInvalidQuery, r.Seq, records[i-1].Seq)
		}
		if err := checkPatientEntries(r.Index); err != nil {
			return fmt.Errorf("%w: audit record %d: %w", store.ErrInvalidQuery, n, err)
		}
		seen[r.ID] = true
	}
	return nil
}

// CheckLink checks that first chains on the head (seq, hash) read inside the append. A Seq other
// than head+1 is store.ErrVersionConflict (someone appended first); a hash that does not chain on the head is
// store.ErrInvalidQuery (the caller chained on something that is not the head).
func CheckLink(headSeq int64, headHash []byte, first Record) error {
	if first.Seq != headSeq+1 {
		return fmt.Errorf("%w: audit chain head is %d, batch starts at %d", store.ErrVersionConflict, headSeq, first.Seq)
	}
	if !bytes.Equal(first.Hash, ChainHash(headHash, first)) {
		return fmt.Errorf("%w: audit record %d does not chain on the head", store.ErrInvalidQuery, first.Seq)
	}
	return nil
}

// VerifyResult is the outcome of Verify.
type VerifyResult struct {
	// Intact is true when every link holds.
	Intact bool
	// Records is how many records were verified intact (when broken: how many precede the broken link),
	// counted from the anchor: records removed by PruneAudit are not counted.
	Records int64
	// BrokenAt is the Seq of the first broken link, 0 when intact.
	BrokenAt int64
	// Reason says what is wrong at BrokenAt.
	Reason string
	// Head is the hash of the last intact record, for anchoring outside the store; HeadSeq is its Seq.
	// With no record intact after the anchor they are the anchor's (nil and 0 for a chain never pruned).
	Head    []byte
	HeadSeq int64
	// Anchor is where verification started: the zero Anchor unless the chain was pruned.
	Anchor Anchor
}

// String is the report of gpfhir audit verify and $verify.
func (v VerifyResult) String() string {
	pruned := ""
	if v.Anchor.Seq > 0 {
		pruned = fmt.Sprintf("records 1–%d, recorded up to %s, were pruned; the chain starts from anchor hash %s",
			v.Anchor.Seq, v.Anchor.Recorded.UTC().Format(time.RFC3339), hexPrefix(v.Anchor.Hash))
	}
	switch {
	case v.Intact && pruned == "":
		return fmt.Sprintf("intact, %d records", v.Records)
	case v.Intact:
		return fmt.Sprintf("intact, %d records (%s)", v.Records, pruned)
	case pruned == "":
		return fmt.Sprintf("broken at record %d: %s (%d records before it are intact)", v.BrokenAt, v.Reason, v.Records)
	}
	return fmt.Sprintf("broken at record %d: %s (%d records before it are intact; %s)", v.BrokenAt, v.Reason, v.Records, pruned)
}

// hexPrefix is the first 16 hex digits of a hash, enough to recognise it in a report.
func hexPrefix(h []byte) string {
	return hex.EncodeToString(h[:min(len(h), 8)])
}

// verifyPage is how many records Verify reads at a time; it also bounds the _id list of the
// search that checks the served copies.
const verifyPage = 200

// verifyAttempts bounds how often Verify starts again because a prune moved the anchor under it.
const verifyAttempts = 3

// Verify walks the whole chain in Seq order, from the anchor (s.Anchor) to the head, and reports
// whether it is intact or where it first breaks: a missing record (a gap in Seq, also right after the
// anchor), a record out of order, a record that does not match its hash (its body, id, time or position
// changed, or its predecessor did; the first kept record must chain on the anchor's hash), a record that
// Search does not serve as chained, or AuditEvents served that are not in the chain. The error is for a
// store that cannot be read, never for a broken chain. Records appended while it runs may or may not be
// included; if a prune moves the anchor while it runs, it starts again from the new anchor.
func Verify(ctx context.Context, s Backend) (VerifyResult, error) {
	for attempt := 1; ; attempt++ {
		anchor, err := s.AuditAnchor(ctx)
		if err != nil {
			return VerifyResult{}, err
		}
		res, err := verifyFrom(ctx, s, anchor)
		if err != nil || attempt == verifyAttempts {
			return res, err
		}
		// A prune that ran meanwhile removes records (and their served copies) under the walk: the
		// answer is only meaningful if the anchor is still the one it started from.
		now, err := s.AuditAnchor(ctx)
		if err != nil {
			return VerifyResult{}, err
		}
		if now.Seq == anchor.Seq {
			return res, nil
		}
	}
}

// verifyFrom is Verify from a given anchor.
func verifyFrom(ctx context.Context, s Backend, anchor Anchor) (VerifyResult, error) {
	// Counted before the walk: every AuditEvent counted now is in the chain by the time the walk ends,
	// so a count above the walk's total means records that were never appended (or that were pruned
	// without the anchor moving past them).
	served, err := s.Count(ctx, store.Query{Type: store.AuditEventType})
	if err != nil {
		return VerifyResult{}, err
	}
	res := VerifyResult{Anchor: anchor, Head: anchor.Hash, HeadSeq: anchor.Seq}
	broken := func(at int64, format string, args ...any) (VerifyResult, error) {
		res.BrokenAt, res.Reason = at, fmt.Sprintf(format, args...)
		return res, nil
	}
	for {
		page, err := s.AuditRange(ctx, res.HeadSeq, verifyPage)
		if err != nil {
			return VerifyResult{}, err
		}
		if len(page) == 0 {
			break
		}
		// k is the first record of the page whose link is broken, and why.
		k, why := len(page), ""
		prev := res.Head
		for j, r := range page {
			want := res.HeadSeq + 1 + int64(j)
			switch {
			case r.Seq > want:
				why = fmt.Sprintf("record %d is missing (the next stored record is %d)", want, r.Seq)
			case r.Seq < want:
				why = fmt.Sprintf("record %d is out of order (after record %d)", r.Seq, want-1)
			case r.Body == nil:
				why = fmt.Sprintf("AuditEvent/%s is missing from the store", r.ID)
			case !bytes.Equal(r.Hash, ChainHash(prev, r)) && want == anchor.Seq+1 && anchor.Seq > 0:
				why = fmt.Sprintf("AuditEvent/%s does not chain on the anchor (record %d, hash %s): it, its hash or the anchor was changed",
					r.ID, anchor.Seq, hexPrefix(anchor.Hash))
			case !bytes.Equal(r.Hash, ChainHash(prev, r)):
				why = fmt.Sprintf("AuditEvent/%s does not match its hash: it was changed or moved, or the record before it was", r.ID)
			}
			if why != "" {
				k = j
				break
			}
			prev = r.Hash
		}
		// The records before k are chained; now check that they are what Search and Get serve. A backend
		// may keep more than one copy of a body (MongoDB keeps the current document and the history
		// version): AuditRange reads one, Search the other.
		i, msg, err := servedAsChained(ctx, s, page[:k])
		if err != nil {
			return VerifyResult{}, err
		}
		if i > 0 {
			res.Records += int64(i)
			res.HeadSeq, res.Head = page[i-1].Seq, page[i-1].Hash
		}
		if msg != "" {
			return broken(page[i].Seq, "%s", msg)
		}
		if why != "" {
			return broken(res.HeadSeq+1, "%s", why)
		}
	}
	if int64(served) > res.Records {
		return broken(res.HeadSeq+1, "%d AuditEvents are served that are not in the chain", int64(served)-res.Records)
	}
	res.Intact = true
	return res, nil
}

// PrunablePrefix returns how many records at the start of page PruneAudit may remove: those recorded
// before before, up to the first one that is not (a prefix only, whatever the times of later records).
// page must be what AuditRange returns right after the anchor. It checks each record's link on the way
// (its Seq follows, its stored copy is there, its hash chains on its predecessor, the first on the
// anchor): a broken link stops the prefix before it and is returned as the error, so that pruning never
// erases the evidence of a broken chain nor anchors on a record that does not verify.
func PrunablePrefix(anchor Anchor, page []Record, before time.Time) (int, error) {
	prev, want := anchor.Hash, anchor.Seq+1
	for i, r := range page {
		if !r.Recorded.Before(before) {
			return i, nil
		}
		var why string
		switch {
		case r.Seq != want:
			why = fmt.Sprintf("record %d is missing or out of place (the next stored record is %d)", want, r.Seq)
		case r.Body == nil:
			why = fmt.Sprintf("AuditEvent/%s is missing from the store", r.ID)
		case !bytes.Equal(r.Hash, ChainHash(prev, r)):
			why = fmt.Sprintf("AuditEvent/%s does not match its hash", r.ID)
		}
		if why != "" {
			return i, fmt.Errorf("the audit chain is broken at record %d: %s; nothing from there on is pruned (see gpfhir audit verify)", want, why)
		}
		prev, want = r.Hash, want+1
	}
	return len(page), nil
}

// servedAsChained checks that Search serves each record of page with the same body, lastUpdated and
// version 1. It returns the index of the first record that is not, with the reason, or len(page) and "".
func servedAsChained(ctx context.Context, s store.Store, page []Record) (int, string, error) {
	if len(page) == 0 {
		return 0, "", nil
	}
	c := make(store.Clause, 0, len(page))
	for _, r := range page {
		c = append(c, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: r.ID})
	}
	hits, err := s.Search(ctx, store.Query{Type: store.AuditEventType, Clauses: []store.Clause{c}})
	if err != nil {
		return 0, "", err
	}
	got := make(map[string]store.Resource, len(hits))
	for _, h := range hits {
		got[h.Resource.ID] = h.Resource
	}
	for i, r := range page {
		g, ok := got[r.ID]
		switch {
		case !ok:
			return i, fmt.Sprintf("AuditEvent/%s is chained but not served by search", r.ID), nil
		case !bytes.Equal(g.Body, r.Body):
			return i, fmt.Sprintf("AuditEvent/%s is served with a body other than the chained one", r.ID), nil
		case g.LastUpdated.UnixMilli() != r.Recorded.UnixMilli() || g.VersionID != 1:
			return i, fmt.Sprintf("AuditEvent/%s is served with a time or version other than the chained one", r.ID), nil
		}
	}
	return len(page), "", nil
}
