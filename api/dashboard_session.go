package api

import (
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
)

// Signing in to the dashboard. People sign in with the OpenID Connect authorization code flow and PKCE
// at the configured issuer (Config.Dashboard), as the dashboard client; the access token they get back
// is kept in a session cookie and checked on every view exactly as a bearer token would be, so a
// session ends when its token expires. Both cookies (the session, and the short-lived state of a
// sign-in in progress) are sealed with AES-GCM under a key derived from the cursor key, so that they
// can be neither read nor forged, and any process sharing the cursor key (as processes sharing a store
// must) accepts them: nothing is kept on the server.

const (
	sessionCookie = "gpfhir_dashboard"
	loginCookie   = "gpfhir_dashboard_login"
	// loginLifetime bounds a sign-in in progress.
	loginLifetime = 10 * time.Minute
)

// DashboardSignIn says how people sign in to the dashboard.
type DashboardSignIn struct {
	// Issuer is the OpenID Connect issuer people sign in at; default the first trusted issuer.
	Issuer string
	// ClientID is the dashboard's client at that issuer; default gpfhir-dashboard (the dev provider's).
	ClientID string
	// ClientSecret, when set, authenticates the code exchange (a confidential client); PKCE is used
	// either way.
	ClientSecret string
}

// sealer seals and opens the dashboard's cookies.
type sealer struct{ aead cipher.AEAD }

func newSealer(cursorKey []byte) (*sealer, error) {
	aead, err := derivedAEAD(cursorKey, "gpfhir dashboard cookies v1")
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

// seal encrypts v, bound to the cookie's name so that one cookie cannot be passed off as the other.
func (s *sealer) seal(name string, v any) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(name))), nil
}

func (s *sealer) open(name, value string, v any) error {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return errors.New("malformed cookie")
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(name))
	if err != nil {
		return errors.New("cookie not sealed by this service")
	}
	return json.Unmarshal(plain, v)
}

type session struct {
	Token   string    `json:"t"`
	Expires time.Time `json:"e"`
}

type pendingLogin struct {
	State    string    `json:"s"`
	Verifier string    `json:"v"`
	Next     string    `json:"n"`
	Expires  time.Time `json:"e"`
}

// setCookie sets one of the dashboard's cookies: HttpOnly, SameSite=Lax (sent on the top-level
// navigation back from the identity provider, never on another site's requests), Secure when the
// server is reached over https, and limited to the dashboard's paths.
func (s *Server) setCookie(c *gin.Context, name, value string, maxAge int) {
	http.SetCookie(c.Writer, &http.Cookie{
		Name: name, Value: value, Path: s.dashPath(""), MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: strings.HasPrefix(s.cfg.BaseURL, "https://"),
	})
}

// sessionToken is the access token of the request's session, if it has a live one.
func (s *Server) sessionToken(c *gin.Context) string {
	ck, err := c.Request.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return ""
	}
	var sess session
	if s.sealer.open(sessionCookie, ck.Value, &sess) != nil || !s.cfg.Now().Before(sess.Expires) {
		return ""
	}
	return sess.Token
}

// signInIssuer is where people sign in: its discovery document.
func (s *Server) signInIssuer(ctx context.Context) (auth.Metadata, error) {
	want := s.cfg.Dashboard.Issuer
	if want == "" {
		if is := s.cfg.Auth.Issuers(); len(is) > 0 {
			want = is[0]
		}
	}
	for _, m := range s.cfg.Auth.Metadata(ctx) {
		if m.Issuer == want {
			if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
				return m, fmt.Errorf("the issuer %s offers no authorization code flow", want)
			}
			return m, nil
		}
	}
	return auth.Metadata{}, fmt.Errorf("%w: %s", auth.ErrIssuerUnavailable, want)
}

func (s *Server) dashboardClientID() string {
	if s.cfg.Dashboard.ClientID != "" {
		return s.cfg.Dashboard.ClientID
	}
	return "gpfhir-dashboard"
}

func (s *Server) callbackURL() string {
	return strings.TrimRight(s.cfg.BaseURL, "/") + "/dashboard/callback"
}

// safeNext is where to go after signing in: a dashboard page of this server, never another site.
func (s *Server) safeNext(next string) string {
	home := s.dashPath("")
	u, err := url.Parse(next)
	if next == "" || err != nil || u.IsAbs() || u.Host != "" || strings.HasPrefix(next, "//") ||
		(u.Path != home && !strings.HasPrefix(u.Path, home+"/")) || strings.Contains(next, "\\") {
		return home
	}
	return u.RequestURI()
}

func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// dashboardLogin starts a sign-in: GET /dashboard/login?next=... redirects to the issuer's authorization
// endpoint with a fresh state and PKCE challenge, which a sealed cookie keeps until the callback.
func (s *Server) dashboardLogin(c *gin.Context) {
	req := requestOf(c)
	m, err := s.signInIssuer(req.ctx())
	if err != nil {
		s.dashboardError(req, fail(kindUnavailable, "signing in is not possible now: the identity provider cannot be reached; try again shortly").because(err))
		return
	}
	p := pendingLogin{State: randomToken(), Verifier: randomToken(), Next: s.safeNext(c.Query("next")), Expires: s.cfg.Now().Add(loginLifetime)}
	sealed, err := s.sealer.seal(loginCookie, p)
	if err != nil {
		s.dashboardError(req, internal(err))
		return
	}
	s.setCookie(c, loginCookie, sealed, int(loginLifetime/time.Second))
	challenge := sha256.Sum256([]byte(p.Verifier))
	q := url.Values{
		"client_id": {s.dashboardClientID()}, "redirect_uri": {s.callbackURL()}, "response_type": {"code"},
		"scope": {"openid " + auth.DashboardScope}, "state": {p.State},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(challenge[:])}, "code_challenge_method": {"S256"},
	}
	sep := "?"
	if strings.Contains(m.AuthorizationEndpoint, "?") {
		sep = "&"
	}
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusFound, m.AuthorizationEndpoint+sep+q.Encode())
}

// dashboardCallback finishes a sign-in: it checks the state, exchanges the code with the PKCE verifier,
// checks the access token as every view will (a commissioner's, with the dashboard scope), and keeps it
// in the session cookie until it expires.
func (s *Server) dashboardCallback(c *gin.Context) {
	req := requestOf(c)
	var p pendingLogin
	ck, err := c.Request.Cookie(loginCookie)
	if err != nil || s.sealer.open(loginCookie, ck.Value, &p) != nil || !s.cfg.Now().Before(p.Expires) {
		s.dashboardError(req, fail(kindInvalid, "this sign-in has expired or was started in another browser; sign in again"))
		return
	}
	s.setCookie(c, loginCookie, "", -1)
	if e := c.Query("error"); e != "" {
		s.dashboardError(req, fail(kindForbidden, "the identity provider did not sign you in (%s)", e))
		return
	}
	if subtleDiffer(c.Query("state"), p.State) || c.Query("code") == "" {
		s.dashboardError(req, fail(kindInvalid, "this sign-in answer does not match the sign-in started here; sign in again"))
		return
	}
	ctx := req.ctx()
	m, err := s.signInIssuer(ctx)
	if err != nil {
		s.dashboardError(req, fail(kindUnavailable, "the identity provider cannot be reached; try again shortly").because(err))
		return
	}
	token, expiresIn, err := s.exchangeCode(ctx, m.TokenEndpoint, c.Query("code"), p.Verifier)
	if err != nil {
		s.dashboardError(req, fail(kindForbidden, "the identity provider did not accept the sign-in; sign in again").because(err))
		return
	}
	caller, err := s.cfg.Auth.Verify(ctx, token)
	if err != nil {
		s.dashboardError(req, err)
		return
	}
	if d := auth.AuthorizeDashboard(caller); !d.Allow() {
		s.dashboardError(req, fail(kindForbidden, "%s", d.Reason))
		return
	}
	sess := session{Token: token, Expires: s.cfg.Now().Add(time.Duration(expiresIn) * time.Second)}
	sealed, err := s.sealer.seal(sessionCookie, sess)
	if err != nil {
		s.dashboardError(req, internal(err))
		return
	}
	s.setCookie(c, sessionCookie, sealed, expiresIn)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, p.Next)
}

func subtleDiffer(a, b string) bool { return !hmac.Equal([]byte(a), []byte(b)) }

// exchangeCode redeems an authorization code at the token endpoint.
func (s *Server) exchangeCode(ctx context.Context, endpoint, code, verifier string) (token string, expiresIn int, err error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {s.callbackURL()},
		"client_id": {s.dashboardClientID()}, "code_verifier": {verifier}}
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	hr.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if s.cfg.Dashboard.ClientSecret != "" {
		hr.SetBasicAuth(url.QueryEscape(s.dashboardClientID()), url.QueryEscape(s.cfg.Dashboard.ClientSecret))
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return "", 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", 0, fmt.Errorf("token endpoint answered %s", resp.Status)
	}
	var t struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		return "", 0, errors.New("token endpoint answered without an access token")
	}
	if t.ExpiresIn <= 0 || t.ExpiresIn > 12*3600 {
		t.ExpiresIn = 3600
	}
	return t.AccessToken, t.ExpiresIn, nil
}

// dashboardLogout ends the session: POST, so that a link elsewhere cannot sign anyone out.
func (s *Server) dashboardLogout(c *gin.Context) {
	s.setCookie(c, sessionCookie, "", -1)
	c.Header("Cache-Control", "no-store")
	c.Redirect(http.StatusSeeOther, s.dashPath("?signed-out=1"))
}
