package api

import (
	"context"
	"slices"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// Every request of a P9 patient starts by finding their Patient resources by NHS number
// (patientsByNHS): a keyed search of about 20 µs under load, a seventh of a patient's read. The
// answer changes only when a Patient is written, and a store that counts Patient writes
// (store.Generations) says so in one look-up by key: the count moves with every Patient write, by any
// process on the store and in the write's own transaction.
//
// nhsCache keeps each answer with the count read before its search. An answer is used only while the
// count is the same: a write that committed before the count was read is in the search, and one after
// it moves the count. So an answer is never older than a search in the same request would be, however
// many gpfhir processes share the store. Where the store does not count (MongoDB), nothing is kept.
//
// The Patient resources in it are shared between requests, as entryCache's entries are: nothing on
// the request path changes a body in place (served and the views build new ones), and the slices
// handed out are clipped, so an append copies. It holds at most nhsCacheSize answers, hashicorp's LRU
// evicting the least used; a Patient body is 1-3 KB, so about 4-12 MiB.
const nhsCacheSize = 4096

// nhsAnswer is one answer: the Patient resources, and the levels their practice set on the first,
// which every request of the patient reads (practiceAccess decodes them from the body).
type nhsAnswer struct {
	generation int64
	patients   []store.Resource
	access     online.Access
}

type nhsCache struct {
	counts store.Generations // nil: the store does not count, and nothing is kept
	cache  *lru.Cache[string, nhsAnswer]
}

func newNHSCache(st store.Store) *nhsCache {
	c := &nhsCache{}
	if g, ok := st.(store.Generations); ok {
		cache, err := lru.New[string, nhsAnswer](nhsCacheSize)
		if err != nil {
			panic(err) // only for a size below 1
		}
		c.counts, c.cache = g, cache
	}
	return c
}

// lookup returns the answer kept for nhs if the Patient count has not moved since; otherwise keep,
// which the caller calls with the answer of its own search, made after lookup returned.
func (c *nhsCache) lookup(ctx context.Context, nhs string) (a nhsAnswer, found bool, keep func(nhsAnswer), err error) {
	if c.counts == nil {
		return a, false, func(nhsAnswer) {}, nil
	}
	n, counted, err := c.counts.Generation(ctx, "Patient")
	if err != nil || !counted {
		return a, false, func(nhsAnswer) {}, err
	}
	if a, ok := c.cache.Get(nhs); ok && a.generation == n {
		a.patients = slices.Clip(a.patients)
		return a, true, nil, nil
	}
	return a, false, func(a nhsAnswer) {
		a.generation, a.patients = n, slices.Clip(a.patients)
		c.cache.Add(nhs, a)
	}, nil
}
