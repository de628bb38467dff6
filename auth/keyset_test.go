package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// fakeIssuer is an OpenID provider on loopback whose key set can be changed and slowed down.
type fakeIssuer struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey // kid -> key; the JWKS publishes their public halves
	signing map[string]*rsa.PrivateKey // kid -> key, withdrawn ones too: a withdrawn key can still sign
	delay   time.Duration
	fetches atomic.Int32
}

func newFakeIssuer(t testing.TB) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{keys: map[string]*rsa.PrivateKey{}, signing: map[string]*rsa.PrivateKey{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.srv.URL, "jwks_uri": f.srv.URL + "/jwks",
			"authorization_endpoint": f.srv.URL + "/authorize", "token_endpoint": f.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/jwks", func(w http.ResponseWriter, r *http.Request) {
		f.fetches.Add(1)
		f.mu.Lock()
		delay := f.delay
		var set jose.JSONWebKeySet
		for kid, k := range f.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid, Algorithm: "RS256", Use: "sig"})
		}
		f.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
		_ = json.NewEncoder(w).Encode(set)
	})
	f.srv = httptest.NewServer(mux) // httptest listens on 127.0.0.1 only
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) addKey(t testing.TB, kid string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.keys[kid] = k
	f.signing[kid] = k
	f.mu.Unlock()
}

func (f *fakeIssuer) withdraw(kid string) {
	f.mu.Lock()
	delete(f.keys, kid)
	f.mu.Unlock()
}

func (f *fakeIssuer) setDelay(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

// token signs a GP-system token with kid's key (or a fresh key nobody publishes when kid is unknown).
func (f *fakeIssuer) token(t testing.TB, kid string, now time.Time) string {
	t.Helper()
	f.mu.Lock()
	k := f.signing[kid]
	f.mu.Unlock()
	if k == nil {
		var err error
		if k, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			t.Fatal(err)
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: k},
		(&jose.SignerOptions{}).WithHeader("kid", kid).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{
		"iss": f.srv.URL, "aud": "gpfhir", "sub": "gp-system", "client_id": "gp-system",
		"scope": "system/Patient.rs", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	obj, err := signer.Sign(claims)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// A token whose kid the issuer does not publish makes the server fetch the keys, and the issuer is slow:
// the tokens with known keys must go on being checked meanwhile, not queue behind the fetch.
func TestSlowKeyFetchDoesNotStallOtherTokens(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.addKey(t, "k1")
	v, err := NewVerifier(Config{Issuers: []string{iss.srv.URL}, Audience: "gpfhir", KeyRefetchInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	good := iss.token(t, "k1", time.Now())
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatalf("first verify: %v", err)
	}

	iss.setDelay(3 * time.Second)
	unknown := iss.token(t, "rotated-in", time.Now())
	slow := make(chan error, 1)
	go func() {
		_, err := v.Verify(ctx, unknown)
		slow <- err
	}()
	// Wait until the slow fetch has reached the issuer.
	for deadline := time.Now().Add(2 * time.Second); iss.fetches.Load() < 2; {
		if time.Now().After(deadline) {
			t.Fatal("the unknown kid did not make the server fetch the keys")
		}
		time.Sleep(5 * time.Millisecond)
	}

	const concurrent = 64
	var wg sync.WaitGroup
	var failures atomic.Int32
	done := make(chan struct{})
	for range concurrent {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := v.Verify(ctx, good); err != nil {
				failures.Add(1)
			}
		}()
	}
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case err := <-slow:
		t.Fatalf("the %d good tokens were still being checked when the slow fetch (3 s) ended (%v): they waited for it", concurrent, err)
	}
	if n := failures.Load(); n > 0 {
		t.Fatalf("%d of %d good tokens were refused during a slow key fetch", n, concurrent)
	}
	if err := <-slow; err == nil || !strings.Contains(err.Error(), "kid") {
		t.Fatalf("a token signed with an unpublished key: got %v, want a refusal naming the kid", err)
	}
}

// A key the issuer withdraws stops working once the keys are older than the maximum age.
func TestWithdrawnKeyIsRefusedAfterMaxAge(t *testing.T) {
	iss := newFakeIssuer(t)
	iss.addKey(t, "old")
	iss.addKey(t, "new")
	var clock atomic.Int64
	start := time.Now()
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	v, err := NewVerifier(Config{Issuers: []string{iss.srv.URL}, Audience: "gpfhir", Now: now, KeyMaxAge: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, iss.token(t, "old", now())); err != nil {
		t.Fatalf("before withdrawal: %v", err)
	}
	iss.withdraw("old")
	if _, err := v.Verify(ctx, iss.token(t, "old", now())); err != nil {
		t.Fatalf("within the maximum age the cached key still works, got %v", err)
	}
	fetches := iss.fetches.Load()

	// Past the maximum age: the next check starts a background fetch, and soon the key is gone.
	clock.Add(int64(61 * time.Second))
	refused := false
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_, err := v.Verify(ctx, iss.token(t, "old", now()))
		if err != nil {
			if !strings.Contains(err.Error(), "kid") {
				t.Fatalf("withdrawn key: got %v, want a refusal naming the kid", err)
			}
			refused = true
			break
		}
	}
	if !refused {
		t.Fatal("a key withdrawn by the issuer was still accepted 5 s after the keys passed their maximum age")
	}
	if got := iss.fetches.Load() - fetches; got != 1 {
		t.Errorf("the keys were fetched %d times after they aged; want 1", got)
	}
	if _, err := v.Verify(ctx, iss.token(t, "new", now())); err != nil {
		t.Fatalf("the key the issuer still publishes: %v", err)
	}

	// Keys twice the maximum age are not used without asking: with the issuer unreachable, 503 not 200.
	iss.srv.Close()
	clock.Add(int64(3 * time.Minute))
	if _, err := v.Verify(ctx, iss.token(t, "new", now())); err == nil || !strings.Contains(err.Error(), ErrIssuerUnavailable.Error()) {
		t.Fatalf("keys too old to trust with the issuer unreachable: got %v, want ErrIssuerUnavailable", err)
	}
}
