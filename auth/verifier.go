package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
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
	// MaxTokenLifetime is the longest a token accepted here may live, from its iat (or from now, when
	// it has none) to its exp. Default DefaultMaxTokenLifetime.
	MaxTokenLifetime time.Duration
}

// DefaultMaxTokenLifetime bounds the tokens the server accepts: NHS login's access tokens live 5 minutes
// and the dev provider's an hour, so a token that claims to live longer than a day was minted wrongly or
// to outlast its withdrawal, and is refused.
const DefaultMaxTokenLifetime = 24 * time.Hour

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
	v := &Verifier{cfg: cfg, issuers: map[string]*issuer{}}
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
	return NewCaller(claims, v.cfg.ClientODS)
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
	keys := &keySet{url: meta.JWKSURI, client: is.v.cfg.HTTPClient, now: is.v.cfg.Now, interval: is.v.cfg.KeyRefetchInterval}
	skewed := func() time.Time { return is.v.cfg.Now().Add(-ClockSkew) }
	is.state = &issuerState{
		meta: meta,
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

// keySet is an issuer's JWKS. go-oidc's RemoteKeySet refetches on every unknown kid with no limit, which
// lets anyone make this server fetch an issuer's keys once per request; this one refetches at most once
// per interval.
type keySet struct {
	url      string
	client   *http.Client
	now      func() time.Time
	interval time.Duration

	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time
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
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.keys == nil {
		if err := k.fetch(ctx); err != nil {
			return nil, err
		}
	}
	payload, known, err := k.try(jws, hdr)
	if known {
		if err != nil {
			return nil, &keyError{msg: "the token's signature is not valid"}
		}
		return payload, nil
	}
	// An unknown kid may be a key the issuer has just rotated in.
	if k.now().Sub(k.fetched) >= k.interval {
		if err := k.fetch(ctx); err != nil {
			return nil, err
		}
		payload, known, err = k.try(jws, hdr)
		if known && err == nil {
			return payload, nil
		}
		if known {
			return nil, &keyError{msg: "the token's signature is not valid"}
		}
	}
	// The usual cause in development: gpfhir serve --dev makes new signing keys each time it starts.
	return nil, &keyError{msg: "the token's signing key (kid) is not one the issuer publishes; if the issuer restarted (gpfhir serve --dev makes new keys at each start), get a new token"}
}

// try verifies with the keys matching the header. known is false when no key matches.
func (k *keySet) try(jws *jose.JSONWebSignature, hdr jose.Header) (payload []byte, known bool, err error) {
	err = errors.New("no key")
	for i := range k.keys {
		key := &k.keys[i]
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

func (k *keySet) fetch(ctx context.Context) error {
	k.fetched = k.now()
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(fctx, http.MethodGet, k.url, nil)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrIssuerUnavailable, err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: fetching %s: %v", ErrIssuerUnavailable, k.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: fetching %s: status %d", ErrIssuerUnavailable, k.url, resp.StatusCode)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return fmt.Errorf("%w: %s is not a JSON Web Key Set: %v", ErrIssuerUnavailable, k.url, err)
	}
	var keys []jose.JSONWebKey
	for _, key := range set.Keys {
		// Only public keys: a symmetric key in a JWKS would let HMAC tokens in by the back door.
		if key.Valid() && key.IsPublic() {
			keys = append(keys, key)
		}
	}
	k.keys = keys
	if k.keys == nil {
		k.keys = []jose.JSONWebKey{}
	}
	return nil
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
