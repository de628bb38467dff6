package devidp

import (
	"context"
	"crypto/rsa"
	"errors"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Token lifetimes. NHS login gives access tokens 5 minutes; the dev provider gives an hour, so that a
// token printed by `gpfhir dev-token` lasts through a curl session.
const (
	accessTokenLifetime  = time.Hour
	refreshTokenLifetime = 30 * 24 * time.Hour
	authRequestLifetime  = 10 * time.Minute
)

// user is someone who signed in on the login page: an NHS number at a chosen proofing level, or the
// development commissioner.
type user struct {
	sub       string
	nhsNumber string
	level     string
	proxyFor  string
	// commissioner is a member of a commissioning organisation's staff: no NHS login identity at all.
	commissioner bool
}

type authRequest struct {
	id            string
	created       time.Time
	clientID      string
	redirectURI   string
	state         string
	nonce         string
	scopes        []string
	responseType  oidc.ResponseType
	responseMode  oidc.ResponseMode
	codeChallenge *oidc.CodeChallenge
	audience      []string

	userID   string
	done     bool
	authTime time.Time
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (a *authRequest) GetAudience() []string                 { return a.audience }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.codeChallenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.userID }
func (a *authRequest) Done() bool                            { return a.done }

type refreshToken struct {
	token    string
	clientID string
	userID   string
	audience []string
	scopes   []string
	authTime time.Time
	expires  time.Time
}

type refreshRequest struct{ *refreshToken }

func (r *refreshRequest) GetAMR() []string            { return []string{"pwd"} }
func (r *refreshRequest) GetAudience() []string       { return r.audience }
func (r *refreshRequest) GetAuthTime() time.Time      { return r.authTime }
func (r *refreshRequest) GetClientID() string         { return r.clientID }
func (r *refreshRequest) GetScopes() []string         { return r.scopes }
func (r *refreshRequest) GetSubject() string          { return r.userID }
func (r *refreshRequest) SetCurrentScopes(s []string) { r.scopes = s }

// ccRequest is a client_credentials grant: the client is the subject.
type ccRequest struct {
	clientID string
	audience []string
	scopes   []string
}

func (r *ccRequest) GetSubject() string    { return r.clientID }
func (r *ccRequest) GetAudience() []string { return r.audience }
func (r *ccRequest) GetScopes() []string   { return r.scopes }

// signingKey is the provider's RS512 key.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS512 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS512 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

// storage is the provider's in-memory state. Everything is lost on restart, which is what a development
// provider should do.
type storage struct {
	audience string
	key      *signingKey
	clients  map[string]*client

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string
	users    map[string]*user
	refresh  map[string]*refreshToken
	// patients maps the demo data's NHS numbers to their Patient ids, for SMART launch context.
	patients map[string]string
}

// launchPatient is the launch context of the user with subject sub: patient, the Patient the app acts
// on (the one a proxy acts for), and self, the user's own Patient ("" when they have none here).
func (s *storage) launchPatient(sub string) (patient, self string) {
	s.mu.Lock()
	u, ok := s.users[sub]
	s.mu.Unlock()
	if !ok || u.commissioner || u.level == "P0" {
		return "", ""
	}
	self = s.patients[u.nhsNumber]
	if u.proxyFor != "" {
		return s.patients[u.proxyFor], self
	}
	return self, self
}

var errNotFound = errors.New("not found")

func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, userID string) (op.AuthRequest, error) {
	if len(r.Prompt) == 1 && r.Prompt[0] == oidc.PromptNone {
		return nil, oidc.ErrLoginRequired()
	}
	req := &authRequest{
		id: uuid.NewString(), created: time.Now(), clientID: r.ClientID, redirectURI: r.RedirectURI,
		state: r.State, nonce: r.Nonce, scopes: r.Scopes, responseType: r.ResponseType,
		responseMode: r.ResponseMode, userID: userID, audience: []string{s.audience, r.ClientID},
	}
	if r.CodeChallenge != "" {
		req.codeChallenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: r.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire()
	s.requests[req.id] = req
	return req, nil
}

// expire drops stale auth requests; the caller holds mu.
func (s *storage) expire() {
	for id, r := range s.requests {
		if time.Since(r.created) > authRequestLifetime {
			delete(s.requests, id)
		}
	}
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.requests[id]; ok {
		return r, nil
	}
	return nil, errNotFound
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("code invalid or expired")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, rid := range s.codes {
		if rid == id {
			delete(s.codes, code)
		}
	}
	return nil
}

// completeLogin records who signed in for an auth request.
func (s *storage) completeLogin(id string, u *user) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return errors.New("the sign-in request has expired; start again from the app")
	}
	s.users[u.sub] = u
	r.userID, r.done, r.authTime = u.sub, true, time.Now()
	return nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	return uuid.NewString(), time.Now().Add(accessTokenLifetime), nil
}

func (s *storage) CreateAccessAndRefreshTokens(_ context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt := &refreshToken{token: uuid.NewString(), userID: req.GetSubject(), audience: req.GetAudience(),
		scopes: req.GetScopes(), expires: time.Now().Add(refreshTokenLifetime)}
	switch r := req.(type) {
	case *authRequest:
		rt.clientID, rt.authTime = r.clientID, r.authTime
	case *refreshRequest:
		rt.clientID, rt.authTime = r.clientID, r.authTime
	}
	if current != "" {
		// Rotation: a refresh token is good for one use.
		old, ok := s.refresh[current]
		if !ok || time.Now().After(old.expires) {
			return "", "", time.Time{}, errors.New("invalid refresh token")
		}
		delete(s.refresh, current)
	}
	s.refresh[rt.token] = rt
	return uuid.NewString(), rt.token, time.Now().Add(accessTokenLifetime), nil
}

func (s *storage) TokenRequestByRefreshToken(_ context.Context, token string) (op.RefreshTokenRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rt, ok := s.refresh[token]
	if !ok || time.Now().After(rt.expires) {
		return nil, op.ErrInvalidRefreshToken
	}
	cp := *rt
	return &refreshRequest{&cp}, nil
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rt := range s.refresh {
		if rt.userID == userID && rt.clientID == clientID {
			delete(s.refresh, k)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, token, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok && rt.clientID == clientID {
		delete(s.refresh, token)
	}
	return nil
}

func (s *storage) GetRefreshTokenInfo(_ context.Context, _ string, token string) (string, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rt, ok := s.refresh[token]; ok {
		return rt.userID, rt.token, nil
	}
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS512}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, errors.New("unknown client")
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || c.secret == "" || c.secret != secret {
		return errors.New("unknown client or wrong secret")
	}
	return nil
}

// ClientCredentials authenticates client_credentials grants that use a client secret (local tools).
// GP-system clients authenticate with private_key_jwt, which the server checks before this is reached.
func (s *storage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if err := s.AuthorizeClientIDSecret(ctx, id, secret); err != nil {
		return nil, err
	}
	return s.clients[id], nil
}

func (s *storage) ClientCredentialsTokenRequest(_ context.Context, id string, scopes []string) (op.TokenRequest, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("unknown client")
	}
	var granted []string
	for _, sc := range scopes {
		if c.IsScopeAllowed(sc) {
			granted = append(granted, sc)
		}
	}
	if len(granted) == 0 {
		return nil, oidc.ErrInvalidScope().WithDescription("client %s may not have any of the scopes asked for (%s)", id, strings.Join(scopes, " "))
	}
	return &ccRequest{clientID: id, audience: []string{s.audience}, scopes: granted}, nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts the NHS login profile claims in the ID token.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	return s.setUserinfo(info, req.GetSubject())
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	return s.setUserinfo(info, subject)
}

func (s *storage) setUserinfo(info *oidc.UserInfo, sub string) error {
	info.Subject = sub
	s.mu.Lock()
	u, ok := s.users[sub]
	s.mu.Unlock()
	if ok {
		for k, v := range userClaims(u) {
			info.AppendClaims(k, v)
		}
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, _, subject, clientID string) error {
	resp.Active = true
	resp.Subject = subject
	resp.ClientID = clientID
	return nil
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

// GetPrivateClaimsFromRequest is what makes the access tokens NHS-login-like: the identity claims of a
// signed-in patient, or the practice binding of a GP-system client, plus the SMART scopes.
func (s *storage) GetPrivateClaimsFromRequest(_ context.Context, req op.TokenRequest, scopes []string) (map[string]any, error) {
	claims := map[string]any{}
	var resource []string
	for _, sc := range scopes {
		if sc != oidc.ScopeOfflineAccess {
			resource = append(resource, sc)
		}
	}
	claims["scope"] = strings.Join(resource, " ")
	sub := req.GetSubject()
	s.mu.Lock()
	u, isUser := s.users[sub]
	s.mu.Unlock()
	switch {
	case isUser:
		for k, v := range userClaims(u) {
			claims[k] = v
		}
	case s.clients[sub] != nil && len(s.clients[sub].ods) > 0:
		claims["ods_codes"] = s.clients[sub].ods
	}
	return claims, nil
}

// userClaims are NHS login's identity claims. P0 users have no verified NHS number, so none is sent. A
// commissioner has none of them: their role comes from the dashboard scope alone.
func userClaims(u *user) map[string]any {
	if u.commissioner {
		return map[string]any{"name": CommissionerName}
	}
	c := map[string]any{
		"identity_proofing_level": u.level,
		"vot":                     u.level + ".Cp.Cd",
		"vtm":                     "https://auth.login.nhs.uk/trustmark/login.nhs.uk",
	}
	if u.level != "P0" {
		c["nhs_number"] = u.nhsNumber
	}
	if u.proxyFor != "" {
		c["proxy_for"] = u.proxyFor
	}
	return c
}

func (s *storage) GetKeyByIDAndClientID(_ context.Context, _, clientID string) (*jose.JSONWebKey, error) {
	c, ok := s.clients[clientID]
	if !ok || c.publicKey == nil {
		return nil, errors.New("client has no registered key")
	}
	return &jose.JSONWebKey{Key: c.publicKey, KeyID: c.keyID, Algorithm: string(jose.ES256), Use: "sig"}, nil
}

func (s *storage) ValidateJWTProfileScopes(_ context.Context, _ string, scopes []string) ([]string, error) {
	return scopes, nil
}

func (s *storage) Health(context.Context) error { return nil }
