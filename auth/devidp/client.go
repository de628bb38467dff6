package devidp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/auth"
)

// This file is the client side of the provider's flows, spoken over real HTTP: what `gpfhir dev-token`
// and the tests use to get tokens. Nothing here mints a token; every token comes from the provider.

// Token is a token endpoint answer.
type Token struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	// Patient is the SMART launch context (scope launch/patient): the Patient the app acts on.
	Patient string `json:"patient"`
}

// TokenError is a token endpoint's refusal (RFC 6749 section 5.2).
type TokenError struct {
	Status      int    `json:"-"`
	Code        string `json:"error"`
	Description string `json:"error_description"`
}

func (e *TokenError) Error() string {
	msg := "the identity provider refused the token request"
	if e.Code != "" {
		msg += " (" + e.Code + ")"
	}
	if e.Description != "" {
		msg += ": " + e.Description
	}
	return msg
}

type discovery struct {
	Issuer                string `json:"issuer"`
	AuthorizationEndpoint string `json:"authorization_endpoint"`
	TokenEndpoint         string `json:"token_endpoint"`
}

// noRedirects is an HTTP client that hands redirects back, so that each step of the browser flow can be
// checked and the code read from the final redirect without anything listening on the redirect URI.
func noRedirects(hc *http.Client) *http.Client {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &c
}

func discover(ctx context.Context, hc *http.Client, issuer string) (*discovery, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(issuer, "/")+"/.well-known/openid-configuration", nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the development identity provider at %s (%w); is `gpfhir serve --dev` running? "+
			"Give its URL, the server's base URL followed by /dev-idp, with --issuer", issuer, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s is not a development identity provider (its discovery document answered %s); "+
			"is that server started with --dev? --issuer is the server's base URL followed by /dev-idp", issuer, resp.Status)
	}
	var d discovery
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		return nil, fmt.Errorf("discovery at %s: %w", issuer, err)
	}
	return &d, nil
}

func postToken(ctx context.Context, hc *http.Client, endpoint string, form url.Values, basicUser, basicPass string) (*Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicUser != "" {
		req.SetBasicAuth(url.QueryEscape(basicUser), url.QueryEscape(basicPass))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		e := &TokenError{Status: resp.StatusCode}
		if json.Unmarshal(body, e) != nil || e.Code == "" {
			e.Description = pageText(body)
		}
		return nil, e
	}
	var t Token
	if err := json.Unmarshal(body, &t); err != nil {
		return nil, err
	}
	if t.AccessToken == "" {
		return nil, errors.New("token endpoint answered without an access token")
	}
	return &t, nil
}

// SystemToken runs client_credentials with a private_key_jwt client assertion (RFC 7523) for a
// GP-system client, signing the assertion with the client's dev key for seed.
func SystemToken(ctx context.Context, hc *http.Client, issuer string, seed int64, clientID string, scopes []string) (*Token, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	d, err := discover(ctx, hc, issuer)
	if err != nil {
		return nil, err
	}
	key := ClientKey(seed, clientID)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: &jose.JSONWebKey{Key: key, KeyID: ClientKeyID(clientID)}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	claims, _ := json.Marshal(map[string]any{
		"iss": clientID, "sub": clientID, "aud": []string{d.TokenEndpoint, d.Issuer},
		"jti": uuid.NewString(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	})
	jws, err := signer.Sign(claims)
	if err != nil {
		return nil, err
	}
	assertion, err := jws.CompactSerialize()
	if err != nil {
		return nil, err
	}
	return postToken(ctx, hc, d.TokenEndpoint, url.Values{
		"grant_type":            {"client_credentials"},
		"scope":                 {strings.Join(scopes, " ")},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion},
	}, "", "")
}

// SecretToken runs client_credentials with a client secret (HTTP Basic), for local tools.
func SecretToken(ctx context.Context, hc *http.Client, issuer, clientID, secret string, scopes []string) (*Token, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	d, err := discover(ctx, hc, issuer)
	if err != nil {
		return nil, err
	}
	return postToken(ctx, hc, d.TokenEndpoint, url.Values{
		"grant_type": {"client_credentials"}, "scope": {strings.Join(scopes, " ")},
	}, clientID, secret)
}

// PatientToken signs in as a patient the way a browser would: authorization request with PKCE, the login
// page's form, the redirect back with a code, and the code exchange.
func PatientToken(ctx context.Context, hc *http.Client, issuer, nhsNumber, level, proxyFor string, scopes []string) (*Token, error) {
	return codeFlow(ctx, hc, issuer, AppClientID, append([]string{"openid", "profile", "offline_access"}, scopes...),
		url.Values{"nhs_number": {nhsNumber}, "level": {level}, "proxy_for": {proxyFor}})
}

// CommissionerToken signs in as the development commissioner through the dashboard client, as a person
// signing in to the dashboard would, and returns the token that carries the dashboard scope.
func CommissionerToken(ctx context.Context, hc *http.Client, issuer string) (*Token, error) {
	return codeFlow(ctx, hc, issuer, DashboardClientID, []string{"openid", auth.DashboardScope}, url.Values{"role": {"commissioner"}})
}

// codeFlow runs the authorization code flow with PKCE for a public client, submitting form on the login
// page, and reads the code from the redirect to AppRedirectURI without following it.
func codeFlow(ctx context.Context, hc *http.Client, issuer, clientID string, scopes []string, form url.Values) (*Token, error) {
	hc = noRedirects(hc)
	d, err := discover(ctx, hc, issuer)
	if err != nil {
		return nil, err
	}
	verifier := randomString(32)
	sum := sha256.Sum256([]byte(verifier))
	state, nonce := randomString(16), randomString(16)
	q := url.Values{
		"client_id": {clientID}, "redirect_uri": {AppRedirectURI}, "response_type": {"code"},
		"scope": {strings.Join(scopes, " ")},
		"state": {state}, "nonce": {nonce},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	// 1. The authorization request redirects to the login page.
	loc, err := step(ctx, hc, http.MethodGet, d.AuthorizationEndpoint+"?"+q.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("authorization request: %w", err)
	}
	login, err := url.Parse(loc)
	if err != nil {
		return nil, err
	}
	if e := login.Query().Get("error"); e != "" {
		return nil, &TokenError{Code: e, Description: login.Query().Get("error_description")}
	}
	id := login.Query().Get("authRequestID")
	if id == "" {
		return nil, fmt.Errorf("authorization request: redirected to %s, not the login page", loc)
	}
	// 2. The login page is there and renders.
	if _, err := step(ctx, hc, http.MethodGet, loc, nil); err != nil && !errors.Is(err, errNoRedirect) {
		return nil, fmt.Errorf("login page: %w", err)
	}
	// 3. Submitting the form redirects to the provider's callback, which redirects to the app.
	form.Set("authRequestID", id)
	loc, err = step(ctx, hc, http.MethodPost, loc, form)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	for i := 0; i < 5 && !strings.HasPrefix(loc, AppRedirectURI); i++ {
		if loc, err = step(ctx, hc, http.MethodGet, loc, nil); err != nil {
			return nil, fmt.Errorf("callback: %w", err)
		}
	}
	back, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, AppRedirectURI) {
		return nil, fmt.Errorf("the sign-in did not come back to the app: %s", loc)
	}
	if e := back.Query().Get("error"); e != "" {
		return nil, fmt.Errorf("sign-in refused: %s %s", e, back.Query().Get("error_description"))
	}
	if back.Query().Get("state") != state {
		return nil, errors.New("the state came back changed")
	}
	// 4. The code exchange proves possession of the PKCE verifier.
	return postToken(ctx, hc, d.TokenEndpoint, url.Values{
		"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")},
		"redirect_uri": {AppRedirectURI}, "client_id": {clientID}, "code_verifier": {verifier},
	}, "", "")
}

// Refresh exchanges a patient app's refresh token for new tokens.
func Refresh(ctx context.Context, hc *http.Client, issuer, refreshToken string) (*Token, error) {
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	d, err := discover(ctx, hc, issuer)
	if err != nil {
		return nil, err
	}
	return postToken(ctx, hc, d.TokenEndpoint, url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {AppClientID},
	}, "", "")
}

var errNoRedirect = errors.New("no redirect")

// step makes one request of the browser flow and returns the absolute Location it redirects to.
func step(ctx context.Context, hc *http.Client, method, target string, form url.Values) (string, error) {
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode < 300 || resp.StatusCode >= 400 {
		if resp.StatusCode == http.StatusOK {
			return "", errNoRedirect
		}
		return "", fmt.Errorf("%s %s answered %s: %s", method, req.URL.Path, resp.Status, pageText(page))
	}
	loc, err := req.URL.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	return loc.String(), nil
}

// pageText is what an error page says, for a person at a terminal: the login page's alert, or a JSON
// error's description, or the page's text with its markup removed; never raw HTML.
func pageText(page []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(page, &e) == nil && e.Error != "" {
		return strings.TrimSpace(e.Error + " " + e.Description)
	}
	s := string(page)
	if i := strings.Index(s, `role="alert"`); i >= 0 {
		s = s[i:]
		if j := strings.Index(s, "</p>"); j >= 0 {
			s = s[:j]
		}
		s = s[strings.Index(s, ">")+1:]
	}
	var b strings.Builder
	inTag := false
	for _, r := range s {
		switch {
		case r == '<':
			inTag = true
		case r == '>':
			inTag = false
		case !inTag:
			b.WriteRune(r)
		}
	}
	text := html.UnescapeString(strings.Join(strings.Fields(b.String()), " "))
	if len(text) > 300 {
		text = text[:300] + "…"
	}
	return text
}

func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
