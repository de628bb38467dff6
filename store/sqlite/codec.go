package sqlite

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"sync"

	"github.com/klauspost/compress/s2"

	"github.com/gpfhir/gpfhir/store"
)

// Audit records are stored compressed: S2 (a faster Snappy) primed with a dictionary that is a sample of
// what it compresses (two AuditEvents, and their index entries), so that a record of 2 KB shrinks to
// about a tenth, in a couple of microseconds. Bytes are what an append costs on this store: every page a
// commit dirties is written to the WAL and again at the checkpoint, so a record's size, more than its
// count of b-tree inserts, decides how many records a second the chain takes (see doc.go). (zstd with
// the same dictionaries compresses alike but takes five times as long, on the committer's path.)
//
// The dictionaries are frozen: a stored record needs the very dictionary it was compressed with, which
// its first byte names. A better dictionary would take a new marker, and the old ones would stay for
// decoding. A value that starts with no marker is stored as it is: bodies (JSON, starting with '{') and
// index entries (starting with indexVersion) of files upgraded from schema 3, and anything written by
// hand.

//go:embed audit_body.dict
var auditBodyDict []byte

//go:embed audit_index.dict
var auditIndexDict []byte

// The markers of the two dictionaries: neither is '{' nor indexVersion.
const (
	bodyMarker  = 0xb1
	indexMarker = 0xb2
)

var (
	bodyDict  = s2.MakeDict(auditBodyDict, []byte(`{"resourceType":"AuditEvent","id":"`))
	indexDict = s2.MakeDict(auditIndexDict, nil)
)

// packBody is the stored form of an AuditEvent body.
func packBody(body []byte) []byte { return pack(bodyMarker, bodyDict, body) }

// pack is marker followed by b compressed with d. Encode needs room for the worst case
// (MaxEncodedLen), several times what a body compresses to: that room is a pooled scratch buffer, and
// only the compressed bytes are kept, since every audit record is packed (its body and its entries).
func pack(marker byte, d *s2.Dict, b []byte) []byte {
	scratch := packScratch.Get().(*[]byte)
	defer packScratch.Put(scratch)
	if need := s2.MaxEncodedLen(len(b)); cap(*scratch) < need {
		*scratch = make([]byte, need)
	}
	enc := d.Encode((*scratch)[:cap(*scratch)], b)
	out := make([]byte, 1+len(enc))
	out[0] = marker
	copy(out[1:], enc)
	return out
}

var packScratch = sync.Pool{New: func() any { return new([]byte) }}

// unpack is the inverse of packBody and packIndex. A value that starts with no marker is returned as it
// is; one that does but does not decompress (an edit of the file) is returned as stored, so that
// audit.Verify reports the record as not matching its hash rather than failing as a whole.
func unpack(b []byte) []byte {
	var d *s2.Dict
	switch {
	case len(b) > 0 && b[0] == bodyMarker:
		d = bodyDict
	case len(b) > 0 && b[0] == indexMarker:
		d = indexDict
	default:
		return b
	}
	out, err := d.Decode(nil, b[1:])
	if err != nil {
		return b
	}
	return out
}

// packIndex is the stored form of a record's index entries: the encoding below, compressed. It is
// what per-record tests (audit_match, audit_refs, audit_sort) read.
func packIndex(entries []store.IndexEntry) ([]byte, error) {
	b, err := encodeIndex(entries)
	if err != nil {
		return nil, err
	}
	return pack(indexMarker, indexDict, b), nil
}

func unpackIndex(b []byte) ([]store.IndexEntry, error) {
	return decodeIndex(unpack(b))
}

// indexVersion is the first byte of an encoded index. Encoded entries follow it, each as four
// length-prefixed strings (param, system, value, text) and two varints (low, high). Schema 3 stored
// the same encoding, uncompressed.
const indexVersion = 1

// encodeIndex refuses an entry without a parameter, which could never be searched.
func encodeIndex(entries []store.IndexEntry) ([]byte, error) {
	size := 1
	for _, e := range entries {
		size += len(e.Param) + len(e.System) + len(e.Value) + len(e.Text) + 4 + 2*binary.MaxVarintLen64
	}
	b := make([]byte, 1, size)
	b[0] = indexVersion
	for _, e := range entries {
		if e.Param == "" {
			return nil, errors.New("an index entry without a parameter")
		}
		for _, s := range []string{e.Param, e.System, e.Value, e.Text} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		b = binary.AppendVarint(b, e.Low)
		b = binary.AppendVarint(b, e.High)
	}
	return b, nil
}

var errBadIndex = errors.New("sqlite: malformed audit index blob")

func decodeIndex(b []byte) ([]store.IndexEntry, error) {
	if len(b) == 0 || b[0] != indexVersion {
		return nil, errBadIndex
	}
	b = b[1:]
	// One string holds every string of the blob, and the entries' strings are slices of it: a record's
	// entries cost one allocation instead of four each (the copier and the audit SQL functions decode
	// one blob per record).
	whole, pos := string(b), 0
	str := func() (string, bool) {
		n, k := binary.Uvarint(b[pos:])
		if k <= 0 || n > uint64(len(b)-pos-k) {
			return "", false
		}
		s := whole[pos+k : pos+k+int(n)]
		pos += k + int(n)
		return s, true
	}
	num := func() (int64, bool) {
		v, k := binary.Varint(b[pos:])
		if k <= 0 {
			return 0, false
		}
		pos += k
		return v, true
	}
	out := make([]store.IndexEntry, 0, 16) // most AuditEvents have 12 to 16 (audit.EventIndex)
	for pos < len(b) {
		var e store.IndexEntry
		var ok [6]bool
		e.Param, ok[0] = str()
		e.System, ok[1] = str()
		e.Value, ok[2] = str()
		e.Text, ok[3] = str()
		e.Low, ok[4] = num()
		e.High, ok[5] = num()
		if ok != [6]bool{true, true, true, true, true, true} || e.Param == "" {
			return nil, errBadIndex
		}
		out = append(out, e)
	}
	return out, nil
}
