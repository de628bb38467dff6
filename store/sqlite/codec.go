package sqlite

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"errors"

	"github.com/klauspost/compress/zstd"

	"github.com/gpfhir/gpfhir/store"
)

// Audit records are stored compressed: zstd at its fastest level, primed with a dictionary that is a
// sample of what it compresses (two AuditEvents, and their index entries), so that a record of 2 KB
// shrinks to about a tenth. Bytes are what an append costs on this store: every page a commit
// dirties is written to the WAL and again at the checkpoint, so a record's size, more than its
// count of b-tree inserts, decides how many records a second the chain takes (see doc.go).
//
// The dictionaries are frozen: a stored record needs the very dictionary it was compressed with, which
// its zstd frame names by id. A better dictionary would take a new id, and the old ones would stay for
// decoding. A value that does not start with the zstd magic number is stored as it is: bodies of
// files upgraded from schema 3, and anything written by hand.

//go:embed audit_body.dict
var auditBodyDict []byte

//go:embed audit_index.dict
var auditIndexDict []byte

const (
	auditBodyDictID  = 1
	auditIndexDictID = 2
)

var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

var (
	bodyEncoder  = mustEncoder(auditBodyDictID, auditBodyDict)
	indexEncoder = mustEncoder(auditIndexDictID, auditIndexDict)
	auditDecoder = func() *zstd.Decoder {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0),
			zstd.WithDecoderDictRaw(auditBodyDictID, auditBodyDict), zstd.WithDecoderDictRaw(auditIndexDictID, auditIndexDict))
		if err != nil {
			panic(err)
		}
		return d
	}()
)

func mustEncoder(id uint32, dict []byte) *zstd.Encoder {
	e, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderDictRaw(id, dict),
		zstd.WithEncoderCRC(false), zstd.WithZeroFrames(true))
	if err != nil {
		panic(err)
	}
	return e
}

// packBody is the stored form of an AuditEvent body.
func packBody(body []byte) []byte { return bodyEncoder.EncodeAll(body, nil) }

// unpack is the inverse of packBody and packIndex. A value that is not a zstd frame is returned as
// it is; one that is but does not decompress (an edit of the file) is returned as stored, so that
// VerifyAudit reports the record as not matching its hash rather than failing as a whole.
func unpack(b []byte) []byte {
	if !bytes.HasPrefix(b, zstdMagic) {
		return b
	}
	out, err := auditDecoder.DecodeAll(b, nil)
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
	return indexEncoder.EncodeAll(b, nil), nil
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
	str := func() (string, bool) {
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			return "", false
		}
		s := string(b[k : k+int(n)])
		b = b[k+int(n):]
		return s, true
	}
	num := func() (int64, bool) {
		v, k := binary.Varint(b)
		if k <= 0 {
			return 0, false
		}
		b = b[k:]
		return v, true
	}
	var out []store.IndexEntry
	for len(b) > 0 {
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
