package devidp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/gpfhir/gpfhir/auth"
)

// Client ids the dev provider registers.
const (
	// AppClientID is the public patient-app client: authorization code with PKCE, refresh tokens.
	AppClientID = "gpfhir-dev-app"
	// AppRedirectURI is where the app client's codes go. Nothing needs to listen there: dev-token reads
	// the code from the redirect without following it.
	AppRedirectURI = "http://127.0.0.1/callback"
	// AllPracticesClientID is the GP-system client bound to every seeded practice.
	AllPracticesClientID = "gp-all-practices"
	// LocalToolClientID and LocalToolSecret are a client_secret client for local tools. Dev only: the
	// secret is public.
	LocalToolClientID = "gpfhir-local-tool"
	LocalToolSecret   = "dev-only-not-a-secret"
	// DashboardClientID is the commissioners' dashboard, a public client (authorization code with
	// PKCE) whose sign-in page offers the development commissioner.
	DashboardClientID = "gpfhir-dashboard"
)

// PracticeClientID is the GP-system client of one practice.
func PracticeClientID(ods string) string { return "gp-" + strings.ToLower(ods) }

type client struct {
	id           string
	secret       string
	appType      op.ApplicationType
	authMethod   oidc.AuthMethod
	grants       []oidc.GrantType
	redirects    []string
	loginURL     func(string) string
	ods          []string
	publicKey    *ecdsa.PublicKey
	keyID        string
	scopeContext []string
	// dashboard marks the dashboard client: it may ask for the dashboard scope, and its sign-in page
	// offers commissioners rather than patients.
	dashboard bool
	// launch marks a SMART app client: it may ask for launch/patient and fhirUser.
	launch  bool
	devMode bool
}

// SMART App Launch scopes the patient-app client may ask for besides the resource scopes.
const (
	ScopeLaunchPatient = "launch/patient"
	ScopeFHIRUser      = "fhirUser"
)

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return c.appType }
func (c *client) AuthMethod() oidc.AuthMethod         { return c.authMethod }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return c.grants }
func (c *client) LoginURL(id string) string            { return c.loginURL(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return c.devMode }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// IsScopeAllowed lets through SMART scopes of the client's contexts, and the role scopes.
func (c *client) IsScopeAllowed(scope string) bool {
	if scope == auth.DashboardScope && (c.secret != "" || c.dashboard) {
		return true
	}
	if (scope == ScopeLaunchPatient || scope == ScopeFHIRUser) && c.launch {
		return true
	}
	sc, ok := auth.ParseScope(scope)
	if !ok {
		return false
	}
	for _, ctx := range c.scopeContext {
		if sc.Context == ctx {
			return true
		}
	}
	return false
}

// ClientKey is the private key of a GP-system client. It is derived from the seed and the client id so
// that `gpfhir dev-token` and the server agree on it without sharing files. That makes it public to
// anyone who reads this code: dev only, never a pattern for real clients.
func ClientKey(seed int64, clientID string) *ecdsa.PrivateKey {
	for counter := uint32(0); ; counter++ {
		h := sha256.New()
		var b [12]byte
		binary.BigEndian.PutUint64(b[:8], uint64(seed))
		binary.BigEndian.PutUint32(b[8:], counter)
		h.Write([]byte("gpfhir dev-idp client key\x00" + clientID + "\x00"))
		h.Write(b[:])
		if k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), h.Sum(nil)); err == nil {
			return k
		}
	}
}

// ClientKeyID is the key id a client's assertions carry.
func ClientKeyID(clientID string) string { return clientID + "-key-1" }

func gpClient(seed int64, id string, ods []string) *client {
	k := ClientKey(seed, id)
	return &client{
		id: id, appType: op.ApplicationTypeWeb, authMethod: oidc.AuthMethodPrivateKeyJWT,
		grants: []oidc.GrantType{oidc.GrantTypeClientCredentials}, ods: ods,
		publicKey: &k.PublicKey, keyID: ClientKeyID(id), scopeContext: []string{"system"},
		loginURL: func(string) string { return "" },
	}
}

// unknownClient says that id is not registered here and which clients are, so that a mistyped --client
// is answered with the list rather than a bare invalid_client.
func (s *storage) unknownClient(id string) string {
	ids := make([]string, 0, len(s.clients))
	for k := range s.clients {
		ids = append(ids, k)
	}
	slices.Sort(ids)
	return fmt.Sprintf("there is no client %q at this development identity provider; its clients are %s (gp-<ods> for each seeded practice)",
		id, strings.Join(ids, ", "))
}

// assertionRefusal says why a GP-system client's assertion was refused. A known client whose assertion
// does not verify was almost always signed with the key of another --seed: the keys derive from it.
func (s *storage) assertionRefusal(assertion string) string {
	iss := ""
	if parts := strings.Split(assertion, "."); len(parts) == 3 {
		if raw, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var claims struct {
				Iss string `json:"iss"`
			}
			if json.Unmarshal(raw, &claims) == nil {
				iss = claims.Iss
			}
		}
	}
	if _, known := s.clients[iss]; !known {
		if iss == "" {
			return "the client assertion names no client (iss)"
		}
		return s.unknownClient(iss)
	}
	return fmt.Sprintf("the client assertion of %s is not signed with the key this server holds for it, or has expired; "+
		"GP-system keys derive from the server's --seed, so give gpfhir dev-token the same --seed as gpfhir serve", iss)
}
