package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gpfhir/gpfhir/seed"
)

// Config configures the development identity provider.
type Config struct {
	// Dev must be true: the provider signs tokens for anyone who asks, so it only runs when the
	// operator has said --dev.
	Dev bool
	// Issuer is the provider's public URL, such as http://127.0.0.1:8080/dev-idp. Its path is where the
	// handler is mounted.
	Issuer string
	// Audience goes in every access token's aud: the API's --oidc-audience.
	Audience string
	// Seed and People describe the demo data: People's practices get GP-system clients, its patients
	// are listed on the login page, and Seed derives the GP-system client keys.
	Seed   int64
	People seed.Directory
	Logger *slog.Logger
	// DashboardRedirectURIs are where the dashboard client's sign-ins return: the server's
	// /dashboard/callback. AppRedirectURI is always allowed too, for `gpfhir dev-token --commissioner`.
	DashboardRedirectURIs []string
	// AppRedirectURIs are more redirect URIs of the public patient-app client (AppClientID), for browser
	// SMART apps doing a standalone launch (--dev-redirect-uri). Loopback URIs match on any port.
	AppRedirectURIs []string
}

// ErrNotDev is returned by New without Config.Dev.
var ErrNotDev = errors.New("devidp: the development identity provider runs only with --dev; it signs tokens for anyone")

// IdP is the development identity provider.
type IdP struct {
	cfg     Config
	handler http.Handler
	storage *storage
	prefix  string
}

// New builds the provider. It refuses to run unless cfg.Dev is set.
func New(cfg Config) (*IdP, error) {
	if !cfg.Dev {
		return nil, ErrNotDev
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("devidp: issuer %q is not an absolute http(s) URL", cfg.Issuer)
	}
	if cfg.Audience == "" {
		return nil, errors.New("devidp: no audience")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	prefix := strings.TrimRight(u.Path, "/")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	kid := sha256.Sum256(rsaKey.PublicKey.N.Bytes())
	st := &storage{
		audience: cfg.Audience,
		key:      &signingKey{id: "dev-" + base64.RawURLEncoding.EncodeToString(kid[:8]), key: rsaKey},
		clients:  map[string]*client{},
		requests: map[string]*authRequest{}, codes: map[string]string{},
		users: map[string]*user{}, refresh: map[string]*refreshToken{},
	}
	loginURL := func(id string) string { return prefix + "/login?authRequestID=" + url.QueryEscape(id) }
	st.clients[AppClientID] = &client{
		id: AppClientID, appType: op.ApplicationTypeNative, authMethod: oidc.AuthMethodNone,
		grants:    []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken},
		redirects: append([]string{AppRedirectURI, "http://localhost/callback"}, cfg.AppRedirectURIs...), loginURL: loginURL,
		scopeContext: []string{"patient", "user"}, launch: true,
		// Dev mode lets an http redirect URI registered with --dev-redirect-uri be used by a browser
		// app served from a machine on the network; it must still match exactly.
		devMode: len(cfg.AppRedirectURIs) > 0,
	}
	st.patients = map[string]string{}
	for _, p := range cfg.People.Patients {
		if p.PatientID != "" {
			st.patients[p.NHSNumber] = p.PatientID
		}
	}
	st.clients[DashboardClientID] = &client{
		id: DashboardClientID, appType: op.ApplicationTypeWeb, authMethod: oidc.AuthMethodNone,
		grants:    []oidc.GrantType{oidc.GrantTypeCode},
		redirects: append(append([]string(nil), cfg.DashboardRedirectURIs...), AppRedirectURI), loginURL: loginURL,
		dashboard: true,
	}
	var all []string
	for _, p := range cfg.People.Practices {
		id := PracticeClientID(p.ODS)
		st.clients[id] = gpClient(cfg.Seed, id, []string{p.ODS})
		all = append(all, p.ODS)
	}
	st.clients[AllPracticesClientID] = gpClient(cfg.Seed, AllPracticesClientID, all)
	st.clients[LocalToolClientID] = &client{
		id: LocalToolClientID, secret: LocalToolSecret, appType: op.ApplicationTypeWeb, authMethod: oidc.AuthMethodBasic,
		grants: []oidc.GrantType{oidc.GrantTypeClientCredentials}, ods: all,
		scopeContext: []string{"system", "user"}, loginURL: func(string) string { return "" },
	}

	var cryptoKey [32]byte
	if _, err := rand.Read(cryptoKey[:]); err != nil {
		return nil, err
	}
	provider, err := op.NewProvider(&op.Config{
		CryptoKey:                cryptoKey,
		CodeMethodS256:           true,
		AuthMethodPost:           true,
		AuthMethodPrivateKeyJWT:  true,
		GrantTypeRefreshToken:    true,
		DefaultLogoutRedirectURI: prefix + "/logged-out",
	}, st, op.StaticIssuer(cfg.Issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, err
	}
	idp := &IdP{cfg: cfg, storage: st, prefix: prefix}
	srv := &server{LegacyServer: op.NewLegacyServer(provider, provider.Endpoints()), provider: provider, key: st.key, storage: st}
	opHandler := op.RegisterLegacyServer(srv, op.AuthorizeCallbackHandler(provider))
	mux := http.NewServeMux()
	login := &loginPage{idp: idp, callback: op.AuthCallbackURL(provider)}
	interceptor := op.NewIssuerInterceptor(provider.IssuerFromRequest)
	mux.Handle("GET /login", interceptor.Handler(http.HandlerFunc(login.show)))
	mux.Handle("POST /login", interceptor.Handler(http.HandlerFunc(login.submit)))
	mux.HandleFunc("GET /logged-out", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("signed out\n"))
	})
	mux.Handle("GET /authorize", redirectCheck(st, opHandler))
	mux.Handle("/", opHandler)
	idp.handler = http.StripPrefix(prefix, mux)
	return idp, nil
}

// Handler serves the provider. Mount it at the issuer URL's path (/dev-idp).
func (p *IdP) Handler() http.Handler { return p.handler }

// Prefix is the path the handler must be mounted at.
func (p *IdP) Prefix() string { return p.prefix }

// server is zitadel's LegacyServer with the two things NHS-login-style tokens need that it does not do:
// client_credentials authenticated with private_key_jwt, and access tokens typed at+jwt (RFC 9068).
type server struct {
	*op.LegacyServer
	provider *op.Provider
	key      *signingKey
	storage  *storage
}

// VerifyClient authenticates client_credentials grants by their RFC 7523 client assertion, which the
// LegacyServer would ignore in favour of a client secret.
func (s *server) VerifyClient(ctx context.Context, r *op.Request[op.ClientCredentials]) (op.Client, error) {
	if oidc.GrantType(r.Form.Get("grant_type")) == oidc.GrantTypeClientCredentials &&
		r.Data.ClientAssertionType == oidc.ClientAssertionTypeJWTAssertion {
		c, err := op.AuthorizePrivateJWTKey(ctx, r.Data.ClientAssertion, s.provider)
		if err != nil {
			return nil, oidc.ErrInvalidClient().WithDescription("%s", s.storage.assertionRefusal(r.Data.ClientAssertion)).WithParent(err)
		}
		return c, nil
	}
	c, err := s.LegacyServer.VerifyClient(ctx, r)
	if err != nil {
		id := r.Data.ClientID
		if u, _, ok := (&http.Request{Header: r.Header}).BasicAuth(); ok && id == "" {
			id, _ = url.QueryUnescape(u)
		}
		if _, known := s.storage.clients[id]; !known && id != "" {
			return nil, oidc.ErrInvalidClient().WithDescription("%s", s.storage.unknownClient(id)).WithParent(err)
		}
	}
	return c, err
}

func (s *server) ClientCredentialsExchange(ctx context.Context, r *op.ClientRequest[oidc.ClientCredentialsRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.ClientCredentialsExchange(ctx, r)
	return s.typed(resp, err)
}

func (s *server) CodeExchange(ctx context.Context, r *op.ClientRequest[oidc.AccessTokenRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.CodeExchange(ctx, r)
	return s.withLaunch(s.typed(resp, err))
}

func (s *server) RefreshToken(ctx context.Context, r *op.ClientRequest[oidc.RefreshTokenRequest]) (*op.Response, error) {
	resp, err := s.LegacyServer.RefreshToken(ctx, r)
	return s.withLaunch(s.typed(resp, err))
}

// smartTokenResponse is a token response with the SMART App Launch context: patient, the id of the
// Patient the app was launched for (scope launch/patient).
type smartTokenResponse struct {
	*oidc.AccessTokenResponse
	Patient string `json:"patient,omitempty"`
}

// withLaunch adds the launch context to a token response whose scopes ask for it, and fhirUser to its
// ID token (scope fhirUser). The context comes from the demo data: the Patient id of the NHS number
// that signed in, or of the patient a proxy acts for. A number the demo data does not hold, or a P0
// sign-in (no verified NHS number), gets no context, as SMART allows.
func (s *server) withLaunch(resp *op.Response, err error) (*op.Response, error) {
	if err != nil {
		return resp, err
	}
	tr, ok := resp.Data.(*oidc.AccessTokenResponse)
	if !ok || tr.AccessToken == "" {
		return resp, nil
	}
	scopes := []string(tr.Scope)
	wantPatient, wantUser := slices.Contains(scopes, ScopeLaunchPatient), slices.Contains(scopes, ScopeFHIRUser)
	if !wantPatient && !wantUser {
		return resp, nil
	}
	claims, err := payload(tr.AccessToken)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	sub, _ := claims["sub"].(string)
	patient, self := s.storage.launchPatient(sub)
	if wantUser && self != "" && tr.IDToken != "" {
		fhirUser := strings.TrimRight(s.storage.audience, "/") + "/Patient/" + self
		id, err := s.resign(tr.IDToken, "JWT", func(c map[string]any) { c["fhirUser"] = fhirUser })
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		tr.IDToken = id
	}
	if wantPatient && patient != "" {
		resp.Data = &smartTokenResponse{AccessTokenResponse: tr, Patient: patient}
	}
	return resp, nil
}

// payload decodes a compact JWS's claims without verifying it: the provider reads back a token it has
// just signed itself.
func payload(token string) (map[string]any, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("devidp: issued token is not a compact JWS")
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	return claims, json.Unmarshal(raw, &claims)
}

// redirectCheck answers an authorization request whose redirect URI is not registered for its client
// with a page that says how to register it, where zitadel/oidc would only say that it is missing.
func redirectCheck(st *storage, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		c, known := st.clients[q.Get("client_id")]
		uri := q.Get("redirect_uri")
		if known && uri != "" && c.loginURL("") != "" {
			if err := op.ValidateAuthReqRedirectURI(c, uri, oidc.ResponseTypeCode); err != nil {
				w.Header().Set("Content-Type", "text/plain; charset=utf-8")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = fmt.Fprintf(w, "The redirect URI %s is not registered for the client %s at this development identity provider.\n"+
					"Registered: %s (a loopback URI matches on any port).\n"+
					"Start the server with --dev-redirect-uri %s to register it.\n",
					uri, c.id, strings.Join(c.redirects, ", "), uri)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

// typed re-signs the access token with the header typ "at+jwt", which zitadel/oidc does not let a
// provider set, and updates the ID token's at_hash to match the re-signed access token.
func (s *server) typed(resp *op.Response, err error) (*op.Response, error) {
	if err != nil {
		return resp, err
	}
	tr, ok := resp.Data.(*oidc.AccessTokenResponse)
	if !ok || tr.AccessToken == "" {
		return resp, nil
	}
	at, err := s.resign(tr.AccessToken, "at+jwt", nil)
	if err != nil {
		return nil, oidc.ErrServerError().WithParent(err)
	}
	tr.AccessToken = at
	if tr.IDToken != "" {
		hash, err := oidc.ClaimHash(at, jose.RS512)
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		id, err := s.resign(tr.IDToken, "JWT", func(c map[string]any) { c["at_hash"] = hash })
		if err != nil {
			return nil, oidc.ErrServerError().WithParent(err)
		}
		tr.IDToken = id
	}
	return resp, nil
}

func (s *server) resign(token, typ string, edit func(map[string]any)) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", errors.New("devidp: issued token is not a compact JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	if edit != nil {
		dec := json.NewDecoder(strings.NewReader(string(payload)))
		dec.UseNumber()
		var claims map[string]any
		if err := dec.Decode(&claims); err != nil {
			return "", err
		}
		edit(claims)
		if payload, err = json.Marshal(claims); err != nil {
			return "", err
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS512, Key: &jose.JSONWebKey{Key: s.key.key, KeyID: s.key.id}},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)))
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}
