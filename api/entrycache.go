package api

import (
	"bytes"
	"hash/maphash"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gpfhir/gpfhir/fhir"
)

// The policy reads a few index entries of every resource it decides on (entriesOf): a GP system's read
// of a Patient decodes the Patient and then its practice's Organization, and a page of a search decodes
// every hit. pprof of `-bench ReadByID` put a quarter of a read's allocations there, and the same
// Organization is decoded on every request for any of its patients.
//
// entryCache remembers those entries by the body they were computed from, not by the resource's id or
// version: a body always gives the same entries, so an entry can never be stale, whoever changed the
// resource and in whichever process, and a version staged by a transaction that then rolled back (whose
// number a later write reuses with other content) cannot be confused with it. The key is a hash of the
// body; the body itself is kept and compared on a hit, so a hash collision is a miss, never the wrong
// resource's facts.
//
// hashicorp/golang-lru bounds it by count; bodies over entryCacheMaxBody are not kept, so that a few
// very large resources do not hold the memory of thousands of ordinary ones. At worst it holds 4,096
// bodies of 8 KiB (32 MiB, and their entries); ordinary resources of 1-3 KB take 4-12 MiB.
const (
	entryCacheSize    = 4096
	entryCacheMaxBody = 8 << 10
)

type entryKey struct {
	params string
	sum    uint64
}

type entryValue struct {
	body    []byte
	entries []fhir.IndexEntry
}

type entryCache struct {
	seed  maphash.Seed
	cache *lru.Cache[entryKey, entryValue]
}

func newEntryCache() *entryCache {
	c, err := lru.New[entryKey, entryValue](entryCacheSize)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &entryCache{seed: maphash.MakeSeed(), cache: c}
}

// entries returns body's index entries for params, computing them with extract on a miss. The slice
// returned is shared with other requests: it must not be changed (it is clipped, so an append copies).
func (c *entryCache) entries(body []byte, params []string, extract func() ([]fhir.IndexEntry, error)) ([]fhir.IndexEntry, error) {
	if len(body) > entryCacheMaxBody {
		return extract()
	}
	key := entryKey{params: paramsKey(params), sum: maphash.Bytes(c.seed, body)}
	if v, ok := c.cache.Get(key); ok && bytes.Equal(v.body, body) {
		return v.entries, nil
	}
	entries, err := extract()
	if err != nil {
		return nil, err
	}
	entries = slices.Clip(entries)
	c.cache.Add(key, entryValue{body: bytes.Clone(body), entries: entries})
	return entries, nil
}

// paramsKey names a list of parameters; a comma never occurs in a parameter's name.
func paramsKey(params []string) string {
	if len(params) == 1 {
		return params[0]
	}
	return strings.Join(params, ",")
}
