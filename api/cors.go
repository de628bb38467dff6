package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// CORS is served here rather than by github.com/rs/cors (which zitadel/oidc already brings in for the dev
// identity provider) because gpfhir's rules depend on the path and want a readable refusal: the wildcard
// origin opens only the public discovery documents, and a browser app whose origin is not allowed gets a
// 403 OperationOutcome naming its origin and the flag that would allow it, where rs/cors answers 204 with
// no headers and leaves the developer to guess.
//
// No response ever carries Access-Control-Allow-Credentials. SMART apps send their bearer token in the
// Authorization header, which a preflight allows by listing it; cookies (the dashboard's session) are
// never honoured across origins, so no origin, wildcard or not, can read a response made with them.

// corsMethods are the methods a preflight may ask for: every one the FHIR REST API uses.
const corsMethods = "GET, HEAD, POST, PUT, PATCH, DELETE"

// corsHeaders are the request headers a browser app may send: the token, the body's type, the
// conditional and preference headers of FHIR REST, and the request id NHS APIs make mandatory.
const corsHeaders = "Authorization, Content-Type, Accept, If-Match, If-None-Match, If-None-Exist, If-Modified-Since, Prefer, X-Request-ID"

// corsExposed are the response headers a browser app may read besides the CORS-safelisted ones: the
// FHIR REST ones, and those that tell an app why it was refused and when to try again.
const corsExposed = "ETag, Location, Content-Location, Last-Modified, X-Request-ID, X-Progress, WWW-Authenticate, Retry-After"

// corsMaxAge is how long a browser may cache a preflight answer, in seconds: Chromium's own cap.
const corsMaxAge = "7200"

// publicPaths need no token, so the wildcard origin may read them.
var publicPaths = map[string]bool{"/metadata": true, "/.well-known/smart-configuration": true}

// corsPolicy says which browser origins may call the API.
type corsPolicy struct {
	origins  map[string]bool
	wildcard bool
	loopback bool
}

// newCORSPolicy reads Config.CORSOrigins and Config.CORSLoopback.
func newCORSPolicy(origins []string, loopback bool) (*corsPolicy, error) {
	p := &corsPolicy{origins: map[string]bool{}, loopback: loopback}
	for _, o := range origins {
		if o == "*" {
			p.wildcard = true
			continue
		}
		norm, err := NormalizeOrigin(o)
		if err != nil {
			return nil, err
		}
		p.origins[norm] = true
	}
	return p, nil
}

// enabled reports whether any origin may call: the CapabilityStatement's rest.security.cors.
func (p *corsPolicy) enabled() bool {
	return p.wildcard || p.loopback || len(p.origins) > 0
}

// NormalizeOrigin checks that o is a browser origin (scheme, host and optional port: no path, query or
// user) and returns it in the form browsers send, lower case without a trailing slash.
func NormalizeOrigin(o string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(o))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("CORS origin %q is not an origin such as https://app.example.org or http://127.0.0.1:5173 (scheme, host and port only), nor *", o)
	}
	return strings.ToLower(u.Scheme + "://" + u.Host), nil
}

// isLoopbackOrigin reports whether origin is served from this machine (http://127.0.0.1:*,
// http://localhost:*, http://[::1]:*), the origins --dev allows.
func isLoopbackOrigin(origin string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	switch u.Hostname() {
	case "127.0.0.1", "localhost", "::1":
		return true
	}
	return false
}

// allow returns the Access-Control-Allow-Origin value for origin on path, or "" when it may not call.
func (p *corsPolicy) allow(origin, path string) string {
	o := strings.ToLower(origin)
	if p.origins[o] || (p.loopback && isLoopbackOrigin(o)) {
		return origin
	}
	if p.wildcard && publicPaths[path] {
		return "*"
	}
	return ""
}

// corsPath reports whether CORS applies to path: the FHIR REST paths and the SMART discovery document.
// The dev identity provider serves its own CORS, and the dashboard is a same-origin page with a cookie.
func (s *Server) corsPath(path string) bool {
	if path == "/.well-known/smart-configuration" {
		return true
	}
	switch path {
	case "/healthz", "/readyz", "/metrics":
		return false // for load balancers and Prometheus, not browsers
	}
	if _, _, _, _, ok := parsePath(path); !ok || strings.HasPrefix(path, "/dashboard") {
		return false
	}
	idp := s.cfg.IdentityProviderPath
	return idp == "" || (path != idp && !strings.HasPrefix(path, idp+"/"))
}

// cors answers preflights and adds the CORS headers to the answers of allowed origins. It comes before
// the audit: a preflight carries no token and attempts no interaction.
func (s *Server) cors(c *gin.Context) {
	path := c.Request.URL.Path
	if !s.corsPath(path) {
		c.Next()
		return
	}
	h := c.Writer.Header()
	h.Add("Vary", "Origin")
	origin := c.GetHeader("Origin")
	preflight := c.Request.Method == http.MethodOptions && origin != "" && c.GetHeader("Access-Control-Request-Method") != ""
	if preflight {
		h.Add("Vary", "Access-Control-Request-Method")
		h.Add("Vary", "Access-Control-Request-Headers")
	}
	allowed := ""
	if origin != "" {
		allowed = s.corsPolicy.allow(origin, path)
	}
	if !preflight {
		if allowed != "" {
			h.Set("Access-Control-Allow-Origin", allowed)
			h.Set("Access-Control-Expose-Headers", corsExposed)
		}
		c.Next()
		return
	}
	if allowed == "" {
		s.respondError(c, fail(kindForbidden, "%s", s.corsRefusal(origin, path)))
		c.Abort()
		return
	}
	h.Set("Access-Control-Allow-Origin", allowed)
	h.Set("Access-Control-Allow-Methods", corsMethods)
	h.Set("Access-Control-Allow-Headers", corsHeaders)
	h.Set("Access-Control-Max-Age", corsMaxAge)
	c.AbortWithStatus(http.StatusNoContent)
}

// corsRefusal says why a preflight from origin was refused and what would allow it.
func (s *Server) corsRefusal(origin, path string) string {
	p := s.corsPolicy
	switch {
	case !p.enabled():
		return fmt.Sprintf("browser apps may not call this server: no CORS origin is allowed. Start it with --cors-origin %s (or, for development, --dev, which allows loopback origins)", origin)
	case p.wildcard && !publicPaths[path]:
		return fmt.Sprintf("origin %s may not call %s from a browser: the wildcard origin * opens only /metadata and /.well-known/smart-configuration, which need no token. Add --cors-origin %s", origin, path, origin)
	default:
		return fmt.Sprintf("origin %s may not call this server from a browser; add it with --cors-origin %s", origin, origin)
	}
}
