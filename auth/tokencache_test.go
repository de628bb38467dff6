package auth

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A token that verified is answered from the cache with a caller of its own, and refused once its exp
// has passed: the cache never lets a token outlive itself.
func TestVerifiedTokenCacheServesRepeatsAndNeverOutlivesExp(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.addKey(t, "k1")
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	v, err := NewVerifier(Config{Issuers: []string{iss.srv.URL}, Audience: "gpfhir", Now: now, KeyMaxAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tok := iss.token(t, "k1", now())
	// The first check fetches the keys, so only the second is cached: entries are tied to a key snapshot
	// that was current before and after the check.
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	first, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if v.cache.len() != 1 {
		t.Fatalf("cache holds %d entries after one verified token, want 1", v.cache.len())
	}
	// The API fills in the caller it is given; that must not leak into the next request's caller.
	first.PatientIDs = append(first.PatientIDs, "someone")
	first.Resolved = true
	again, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	if again == first || again.Resolved || len(again.PatientIDs) != 0 || again.ClientID != first.ClientID {
		t.Fatalf("cached caller shares or keeps state: %+v", again)
	}
	// exp is iat + 5 minutes; past it the cached entry must not answer (go-oidc then refuses too).
	clock.Add(int64(5*time.Minute + ClockSkew + time.Second))
	if _, err := v.Verify(ctx, tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Fatalf("an expired token was accepted or refused for the wrong reason: %v", err)
	}
}

// The cache is bounded however many distinct valid tokens arrive.
func TestVerifiedTokenCacheIsBounded(t *testing.T) {
	tc := newTokenCache(8)
	ks := &keySet{maxAge: time.Hour}
	snap := &keySnapshot{fetched: time.Now()}
	ks.snap.Store(snap)
	now := time.Now()
	for i := range 100 {
		tc.put(sha256.Sum256(fmt.Appendf(nil, "token-%d", i)), &Caller{ClientID: "c"}, now.Add(time.Minute), now, ks, snap)
		if n := tc.len(); n > 8 {
			t.Fatalf("after %d tokens the cache holds %d entries, more than its bound of 8", i+1, n)
		}
	}
	last := sha256.Sum256([]byte("token-99"))
	if _, ok := tc.get(last, now); !ok {
		t.Fatal("the token just cached is not found")
	}
	// Replaced keys (a refresh) invalidate every entry checked with the old ones.
	ks.snap.Store(&keySnapshot{fetched: time.Now()})
	if _, ok := tc.get(last, now); ok {
		t.Fatal("an entry verified with replaced keys was still served")
	}
}
