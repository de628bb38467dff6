package auth

import (
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// TokenCacheSize bounds the verified-token cache: about 200 bytes an entry, so a few MiB at most.
const TokenCacheSize = 16384

// tokenCache remembers tokens that verified, keyed by the SHA-256 of the raw token (the token itself is
// never kept), until their exp: an app sends the same token with every request, and checking its RSA
// signature again is most of the cost of a read. It holds only what the token itself says (the caller
// before the API resolves it against the store), so there is nothing another gpfhir process could make
// stale: a token's claims cannot change, and no entry outlives the token's own exp. Refusals are not
// cached, so a token is never refused because of an earlier answer.
type tokenCache struct {
	mu      sync.RWMutex
	entries map[[sha256.Size]byte]cachedCaller
	max     int
}

type cachedCaller struct {
	caller Caller
	exp    time.Time
	// keys and snap are the issuer's key set and the snapshot of it the signature was checked with: the
	// entry is used only while that snapshot is current and younger than the key set's maximum age, so a
	// key the issuer withdraws stops working from the cache exactly when it stops working without it.
	keys *keySet
	snap *keySnapshot
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: make(map[[sha256.Size]byte]cachedCaller), max: max}
}

// get returns a copy of the caller for a token seen before and still unexpired at now.
func (tc *tokenCache) get(key [sha256.Size]byte, now time.Time) (*Caller, bool) {
	tc.mu.RLock()
	e, ok := tc.entries[key]
	tc.mu.RUnlock()
	if !ok || !now.Before(e.exp) || e.keys.snap.Load() != e.snap || now.Sub(e.snap.fetched) >= e.keys.maxAge {
		return nil, false
	}
	c := e.caller
	return &c, true
}

// put remembers a verified caller until exp. When the cache is full it first drops expired entries, then,
// if still full, an arbitrary half (map order is random), which bounds memory under a flood of distinct
// valid tokens at the price of re-verifying some.
func (tc *tokenCache) put(key [sha256.Size]byte, c *Caller, exp, now time.Time, keys *keySet, snap *keySnapshot) {
	if tc.max <= 0 || !now.Before(exp) {
		return
	}
	e := cachedCaller{caller: *c, exp: exp, keys: keys, snap: snap}
	// Clipped so that a caller that appends to a copy's slices gets a fresh array, never the cached one.
	e.caller.ODS, e.caller.Scopes, e.caller.Other = slices.Clip(c.ODS), slices.Clip(c.Scopes), slices.Clip(c.Other)
	e.caller.PatientIDs, e.caller.Resolved, e.caller.PracticeAccess, e.caller.GrantAccess = nil, false, nil, nil
	e.caller.ProxyGrant, e.caller.ProxyRefusal = "", ""
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if len(tc.entries) >= tc.max {
		for k, old := range tc.entries {
			if !now.Before(old.exp) {
				delete(tc.entries, k)
			}
		}
		for k := range tc.entries {
			if len(tc.entries) < tc.max/2 {
				break
			}
			delete(tc.entries, k)
		}
	}
	tc.entries[key] = e
}

func (tc *tokenCache) len() int {
	tc.mu.RLock()
	defer tc.mu.RUnlock()
	return len(tc.entries)
}
