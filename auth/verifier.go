package auth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// Algorithms are the only signature algorithms accepted. "none" and every HMAC algorithm are refused:
// an HMAC token could be forged by anyone who knows the (public) key it is checked with.
var Algorithms = []string{oidc.RS256, oidc.RS512, oidc.ES256}

var joseAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.RS512, jose.ES256}

// ClockSkew is how far token times may be off before exp and nbf fail.
const ClockSkew = 60 * time.Second

// Config configures a Verifier.
type Config struct {
	// Issuers are the trusted OpenID Connect issuer URLs, exactly as their tokens' iss says.
	Issuers []string
	// Audience must appear in every token's aud.
	Audience string
	// ClientODS binds GP-system client ids to practice ODS codes.
	ClientODS map[string][]string
	// HTTPClient fetches discovery documents and key sets. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default time.Now.
	Now func() time.Time
	// KeyRefetchInterval is the least time between two key-set fetches of one issuer triggered by an
	// unknown key id, so that tokens with made-up kids cannot make the server hammer an issuer.
	// Default 10 s.
	KeyRefetchInterval time.Duration
	// KeyMaxAge is how long an issuer's keys are used before they are fetched again, so that a key the
	// issuer withdraws stops being accepted. Default DefaultKeyMaxAge.
	KeyMaxAge time.Duration
	// MaxTokenLifetime is the longest a token accepted here may live, from its iat (or from now, when
	// it has none) to its exp. Default DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
}

// DefaultMaxTokenLifetime bounds the tokens the server accepts: NHS login's access tokens live 5 minutes
// and the dev provider's an hour, so a token that claims to live longer than a day was minted wrongly or
// to outlast its withdrawal, and is refused.
const DefaultMaxTokenLifetime = 24 * time.Hour

// DefaultKeyMaxAge is how long fetched signing keys are trusted before they are fetched again.
const DefaultKeyMaxAge = 5 * time.Minute

// TokenError is a missing or unusable token: the API answers 401 with error="invalid_token".
type TokenError struct{ Description string }

func (e *TokenError) Error() string { return e.Description }

// ErrIssuerUnavailable wraps failures to reach a trusted issuer's discovery document or keys: the token
// might be fine, so the API answers 503 rather than 401.
var ErrIssuerUnavailable = errors.New("auth: token issuer unavailable")

// Metadata is what an issuer's discovery document says, for SMART configuration.
type Metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	RevocationEndpoint    string   `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint string   `json:"introspection_endpoint,omitempty"`
	ScopesSupported       []string `json:"scopes_supported,omitempty"`
	GrantTypesSupported   []string `json:"grant_types_supported,omitempty"`
	CodeChallengeMethods  []string `json:"code_challenge_methods_supported,omitempty"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported,omitempty"`
}

// Verifier checks bearer tokens from the trusted issuers.
type Verifier struct {
	cfg     Config
	issuers map[string]*issuer
	order   []string
	cache   *tokenCache
}

// NewVerifier checks the configuration. It does not contact the issuers: discovery happens on first
// use, so that the server starts when an issuer is briefly down, and so that the dev identity provider
// can be an issuer on the very server that is starting.
func NewVerifier(cfg Config) (*Verifier, error) {
	if len(cfg.Issuers) == 0 || cfg.Audience == "" {
		return nil, errors.New("auth: at least one trusted issuer and an audience are required")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.MaxTokenLifetime <= 0 {
		cfg.MaxTokenLifetime = DefaultMaxTokenLifetime
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.KeyRefetchInterval <= 0 {
		cfg.KeyRefetchInterval = 10 * time.Second
	}
	if cfg.KeyMaxAge <= 0 {
		cfg.KeyMaxAge = DefaultKeyMaxAge
	}
	v := &Verifier{cfg: cfg, issuers: map[string]*issuer{}, cache: newTokenCache(TokenCacheSize)}
	for _, u := range cfg.Issuers {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			return nil, fmt.Errorf("auth: issuer %q is not an http(s) URL", u)
		}
		if _, dup := v.issuers[u]; dup {
			continue
		}
		v.issuers[u] = &issuer{url: u, v: v}
		v.order = append(v.order, u)
	}
	return v, nil
}

// Audience is the audience tokens must carry.
func (v *Verifier) Audience() string { return v.cfg.Audience }

// Issuers lists the trusted issuers in configuration order.
func (v *Verifier) Issuers() []string { return append([]string(nil), v.order...) }

// Metadata returns the discovery metadata of every issuer that can be reached, in configuration order.
func (v *Verifier) Metadata(ctx context.Context) []Metadata {
	var out []Metadata
	for _, u := range v.order {
		if is, err := v.issuers[u].get(ctx); err == nil {
			out = append(out, is.meta)
		}
	}
	return out
}

// Verify checks a bearer token and works out the caller. Errors are *TokenError (401), *Refusal (a valid
// token with no usable role: 403) or ErrIssuerUnavailable (503).
func (v *Verifier) Verify(ctx context.Context, raw string) (*Caller, error) {
	if raw == "" {
		return nil, &TokenError{Description: "no bearer token: send Authorization: Bearer <access token>"}
	}
	key := sha256.Sum256([]byte(raw))
	if c, ok := v.cache.get(key, v.cfg.Now()); ok {
		return c, nil
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, &TokenError{Description: "the bearer token is not a signed JWT (three dot-separated parts)"}
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if err := decodeSegment(parts[0], &header); err != nil {
		return nil, &TokenError{Description: "the token header is not valid base64url JSON"}
	}
	if !contains(Algorithms, header.Alg) {
		return nil, &TokenError{Description: fmt.Sprintf("signature algorithm %q is not accepted; tokens must be signed with %s",
			header.Alg, strings.Join(Algorithms, ", "))}
	}
	var unverified struct {
		Issuer string `json:"iss"`
	}
	if err := decodeSegment(parts[1], &unverified); err != nil {
		return nil, &TokenError{Description: "the token payload is not valid base64url JSON"}
	}
	is, ok := v.issuers[unverified.Issuer]
	if !ok {
		return nil, &TokenError{Description: "the token's issuer is not trusted by this server"}
	}
	st, err := is.get(ctx)
	if err != nil {
		return nil, err
	}
	snap := st.keys.snap.Load()
	idt, err := st.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, verifyError(err, v.cfg.Audience)
	}
	var claims Claims
	if err := idt.Claims(&claims); err != nil {
		return nil, &TokenError{Description: "the token's claims are malformed: " + err.Error()}
	}
	if claims.NotBefore != "" {
		nbf, err := claims.NotBefore.Float64()
		if err != nil {
			return nil, &TokenError{Description: "the token's nbf is not a number"}
		}
		if time.Unix(int64(nbf), 0).After(v.cfg.Now().Add(ClockSkew)) {
			return nil, &TokenError{Description: "the token is not valid yet (nbf is in the future)"}
		}
	}
	now := v.cfg.Now()
	from, fromName := now, "now"
	if !idt.IssuedAt.IsZero() {
		if idt.IssuedAt.After(now.Add(ClockSkew)) {
			return nil, &TokenError{Description: "the token was issued in the future (iat is ahead of this server's clock)"}
		}
		from, fromName = idt.IssuedAt, "iat"
	}
	if idt.Expiry.Sub(from) > v.cfg.MaxTokenLifetime {
		return nil, &TokenError{Description: fmt.Sprintf("the token lives too long (exp is %s after %s); this server accepts tokens that live at most %s",
			idt.Expiry.Sub(from).Round(time.Second), fromName, v.cfg.MaxTokenLifetime)}
	}
	caller, err := NewCaller(claims, v.cfg.ClientODS)
	if err != nil {
		return nil, err
	}
	// Cached only when the signature was checked against the keys still current, so that the entry can
	// be dropped as soon as those keys are replaced.
	if snap != nil && st.keys.snap.Load() == snap {
		v.cache.put(key, caller, idt.Expiry, now, st.keys, snap)
	}
	return caller, nil
}

func decodeSegment(seg string, dst any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, dst)
}

// issuer is one trusted issuer, discovered lazily.
type issuer struct {
	url string
	v   *Verifier

	mu      sync.Mutex
	state   *issuerState
	lastTry time.Time
	lastErr error
}

type issuerState struct {
	meta     Metadata
	verifier *oidc.IDTokenVerifier
	keys     *keySet
}

// discoveryRetry is how long a failed discovery is remembered before it is tried again.
const discoveryRetry = 5 * time.Second

func (is *issuer) get(ctx context.Context) (*issuerState, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.state != nil {
		return is.state, nil
	}
	now := is.v.cfg.Now()
	if is.lastErr != nil && now.Sub(is.lastTry) < discoveryRetry {
		return nil, is.lastErr
	}
	is.lastTry = now
	// Discovery must not be cut short by one client giving up on its request.
	dctx, cancel := context.WithTimeout(oidc.ClientContext(context.WithoutCancel(ctx), is.v.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(dctx, is.url)
	if err != nil {
		is.lastErr = fmt.Errorf("%w: discovery of %s failed: %v", ErrIssuerUnavailable, is.url, err)
		return nil, is.lastErr
	}
	var meta Metadata
	if err := p.Claims(&meta); err != nil || meta.JWKSURI == "" {
		is.lastErr = fmt.Errorf("%w: the discovery document of %s has no jwks_uri", ErrIssuerUnavailable, is.url)
		return nil, is.lastErr
	}
	keys := &keySet{url: meta.JWKSURI, client: is.v.cfg.HTTPClient, now: is.v.cfg.Now,
		interval: is.v.cfg.KeyRefetchInterval, maxAge: is.v.cfg.KeyMaxAge}
	skewed := func() time.Time { return is.v.cfg.Now().Add(-ClockSkew) }
	is.state = &issuerState{
		meta: meta,
		keys: keys,
		verifier: oidc.NewVerifier(is.url, keys, &oidc.Config{
			ClientID:             is.v.cfg.Audience,
			SupportedSigningAlgs: Algorithms,
			Now:                  skewed,
		}),
	}
	is.lastErr = nil
	return is.state, nil
}

// keyError is a signature that could not be checked, with the reason to give the caller.
type keyError struct{ msg string }

func (e *keyError) Error() string { return e.msg }

// keySet is an issuer's JWKS. Signatures are checked against an immutable snapshot of the keys, with no
// lock held, so that one slow check or one key fetch never holds up the other requests of the issuer. At
// most one fetch runs at a time, and only the request that needs it (an unknown kid, or keys too old to
// trust) waits for it. go-oidc's RemoteKeySet refetches on every unknown kid with no limit, which lets
// anyone make this server fetch an issuer's keys once per request; this one refetches for unknown kids at
// most once per interval.
type keySet struct {
	url      string
	client   *http.Client
	now      func() time.Time
	interval time.Duration
	// maxAge is how long fetched keys are used before they are fetched again in the background, so that
	// a key the issuer withdraws stops working within maxAge (or twice that, when the issuer cannot be
	// reached and the request must wait for the fetch).
	maxAge time.Duration

	snap atomic.Pointer[keySnapshot]

	mu       sync.Mutex // guards the fields below
	inflight *keyFetch
	lastTry  time.Time
}

type keySnapshot struct {
	keys    []jose.JSONWebKey
	fetched time.Time
}

// keyFetch is one fetch of the key set; done is closed when err is set.
type keyFetch struct {
	done chan struct{}
	err  error
}

func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, joseAlgorithms)
	if err != nil {
		return nil, &keyError{msg: "the token's signature is malformed or uses an algorithm that is not accepted"}
	}
	if len(jws.Signatures) != 1 {
		return nil, &keyError{msg: "the token must carry exactly one signature"}
	}
	hdr := jws.Signatures[0].Header
	snap := k.snap.Load()
	// Keys older than twice maxAge may include one the issuer has withdrawn (the background fetch
	// failed): they are not used without asking again.
	if snap == nil || k.now().Sub(snap.fetched) >= 2*k.maxAge {
		if snap, err = k.refetch(ctx); errors.Is(err, errTooSoon) {
			return nil, fmt.Errorf("%w: the keys of %s could not be fetched a moment ago", ErrIssuerUnavailable, k.url)
		} else if err != nil {
			return nil, err
		}
	} else if k.now().Sub(snap.fetched) >= k.maxAge {
		k.start()
	}
	payload, known, err := try(snap.keys, jws, hdr)
	if known {
		if err != nil {
			return nil, &keyError{msg: "the token's signature is not valid"}
		}
		return payload, nil
	}
	// An unknown kid may be a key the issuer has just rotated in.
	if fresh, ferr := k.refetch(ctx); ferr == nil && fresh != snap {
		payload, known, err = try(fresh.keys, jws, hdr)
		if known && err == nil {
			return payload, nil
		}
		if known {
			return nil, &keyError{msg: "the token's signature is not valid"}
		}
	} else if ferr != nil && !errors.Is(ferr, errTooSoon) {
		return nil, ferr
	}
	// The usual cause in development: gpfhir serve --dev makes new signing keys each time it starts.
	return nil, &keyError{msg: "the token's signing key (kid) is not one the issuer publishes; if the issuer restarted (gpfhir serve --dev makes new keys at each start), get a new token"}
}

// errTooSoon is a refetch refused because the last one was less than an interval ago.
var errTooSoon = errors.New("auth: key set fetched recently")

// refetch fetches the keys (or joins the fetch already running) and waits for it, as long as ctx allows.
// A fetch is started at most once per interval, so that neither made-up kids nor an unreachable issuer
// make every request fetch.
func (k *keySet) refetch(ctx context.Context) (*keySnapshot, error) {
	f := k.start()
	if f == nil {
		return nil, errTooSoon
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for the keys of %s: %v", ErrIssuerUnavailable, k.url, ctx.Err())
	}
	if f.err != nil {
		return nil, f.err
	}
	return k.snap.Load(), nil
}

// start starts a fetch unless one is running, and returns the running one. It returns nil when the last
// fetch began less than an interval ago.
func (k *keySet) start() *keyFetch {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.inflight != nil {
		return k.inflight
	}
	now := k.now()
	if !k.lastTry.IsZero() && now.Sub(k.lastTry) < k.interval {
		return nil
	}
	k.lastTry = now
	f := &keyFetch{done: make(chan struct{})}
	k.inflight = f
	go func() {
		keys, err := k.fetch()
		if err == nil {
			k.snap.Store(&keySnapshot{keys: keys, fetched: now})
		}
		k.mu.Lock()
		k.inflight = nil
		k.mu.Unlock()
		f.err = err
		close(f.done)
	}()
	return f
}

// try verifies with the keys matching the header. known is false when no key matches.
func try(keys []jose.JSONWebKey, jws *jose.JSONWebSignature, hdr jose.Header) (payload []byte, known bool, err error) {
	err = errors.New("no key")
	for i := range keys {
		key := &keys[i]
		if hdr.KeyID != "" && key.KeyID != hdr.KeyID || key.Use == "enc" {
			continue
		}
		if key.Algorithm != "" && key.Algorithm != hdr.Algorithm {
			continue
		}
		known = true
		if payload, err = jws.Verify(key); err == nil {
			return payload, true, nil
		}
	}
	return nil, known, err
}

// fetch reads the key set. It runs on its own, not on behalf of one request, so that a client giving up
// does not fail the fetch for the others waiting on it.
func (k *keySet) fetch() ([]jose.JSONWebKey, error) {
	fctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: fetching %s: %v", ErrIssuerUnavailable, k.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: fetching %s: status %d", ErrIssuerUnavailable, k.url, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("%w: %s is not a JSON Web Key Set: %v", ErrIssuerUnavailable, k.url, err)
	}
	keys := []jose.JSONWebKey{}
	for _, key := range set.Keys {
		// Only public keys: a symmetric key in a JWKS would let HMAC tokens in by the back door.
		if key.Valid() && key.IsPublic() {
			keys = append(keys, key)
		}
	}
	return keys, nil
}

// verifyError maps go-oidc's errors to what the caller is told.
func verifyError(err error, audience string) error {
	var expired *oidc.TokenExpiredError
	if errors.As(err, &expired) {
		return &TokenError{Description: "the token has expired"}
	}
	msg := err.Error()
	// go-oidc flattens key-set errors into text ("failed to verify signature: <ours>").
	if rest, ok := strings.CutPrefix(msg, "failed to verify signature: "); ok {
		if strings.Contains(rest, ErrIssuerUnavailable.Error()) {
			return fmt.Errorf("%w: %s", ErrIssuerUnavailable, rest)
		}
		return &TokenError{Description: rest}
	}
	switch {
	case strings.Contains(msg, "expected audience"):
		return &TokenError{Description: "the token is not meant for this server (aud does not include " + audience + ")"}
	case strings.Contains(msg, "issued by a different provider"):
		return &TokenError{Description: "the token's issuer does not match the trusted issuer"}
	}
	return &TokenError{Description: "the token could not be verified"}
}
