package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
)

// smartConfiguration serves /.well-known/smart-configuration (SMART App Launch 2.x) from the discovery
// documents of the configured issuers. SMART names one authorization server, so the first issuer that
// answers is described; every trusted issuer is listed in gpfhir_trusted_issuers.
func (s *Server) smartConfiguration(c *gin.Context) {
	metas := s.cfg.Auth.Metadata(c.Request.Context())
	if len(metas) == 0 {
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "temporarily_unavailable",
			"error_description": "no configured token issuer can be reached"})
		return
	}
	m := metas[0]
	// The document is fixed while the issuer's discovery document is: built once per version of the
	// fields it is made from, as the CapabilityStatement is.
	key := strings.Join([]string{m.Issuer, m.JWKSURI, m.AuthorizationEndpoint, m.TokenEndpoint, m.RevocationEndpoint,
		m.IntrospectionEndpoint, strings.Join(m.GrantTypesSupported, " "), strings.Join(m.TokenAuthMethods, " ")}, "\n")
	if sb := s.smartCache.Load(); sb != nil && sb.endpoints == key {
		c.Data(http.StatusOK, "application/json", sb.body)
		return
	}
	methods := m.TokenAuthMethods
	if len(methods) == 0 {
		methods = []string{"private_key_jwt"}
	}
	doc := map[string]any{
		"issuer":                                m.Issuer,
		"jwks_uri":                              m.JWKSURI,
		"authorization_endpoint":                m.AuthorizationEndpoint,
		"token_endpoint":                        m.TokenEndpoint,
		"grant_types_supported":                 smartGrants(m.GrantTypesSupported),
		"token_endpoint_auth_methods_supported": methods,
		"token_endpoint_auth_signing_alg_values_supported": auth.Algorithms,
		"scopes_supported": []string{"openid", "fhirUser", "profile", "offline_access", "launch/patient",
			"patient/*.cruds", "patient/*.rs", "patient/*.read", "patient/Immunization.rs",
			"system/*.cruds", "system/*.rs", "system/*.read", "system/AuditEvent.rs",
			"user/AuditEvent.rs", auth.DashboardScope},
		"response_types_supported":         []string{"code"},
		"code_challenge_methods_supported": []string{"S256"},
		"capabilities":                     s.smartCapabilities(m.Issuer),
		"gpfhir_trusted_issuers":           s.cfg.Auth.Issuers(),
		"gpfhir_audience":                  s.cfg.Auth.Audience(),
	}
	if m.RevocationEndpoint != "" {
		doc["revocation_endpoint"] = m.RevocationEndpoint
	}
	if m.IntrospectionEndpoint != "" {
		doc["introspection_endpoint"] = m.IntrospectionEndpoint
	}
	body, _ := json.Marshal(doc)
	s.smartCache.Store(&capabilityBody{endpoints: key, body: body})
	c.Data(http.StatusOK, "application/json", body)
}

// smartCapabilities are what the described issuer offers apps. The dev identity provider (--dev) is
// known to give standalone launches a patient context and an id_token with fhirUser; another issuer's
// discovery document cannot say so, so those are claimed for it only.
func (s *Server) smartCapabilities(issuer string) []string {
	caps := []string{"launch-standalone", "client-public", "client-confidential-asymmetric",
		"permission-offline", "permission-v1", "permission-v2", "permission-patient", "permission-user"}
	if s.cfg.IdentityProvider != nil && issuer == s.cfg.BaseURL+s.cfg.IdentityProviderPath {
		caps = append(caps, "context-standalone-patient", "sso-openid-connect", "client-confidential-symmetric")
	}
	return caps
}

// smartGrants are the issuer's grant types that SMART App Launch 2.0 knows: it removed the implicit
// grant, which an OpenID provider may still offer, so a v2 client is not invited to use it.
func smartGrants(issuer []string) []string {
	if len(issuer) == 0 {
		return []string{"authorization_code", "client_credentials"}
	}
	out := make([]string, 0, len(issuer))
	for _, g := range issuer {
		if g != "implicit" {
			out = append(out, g)
		}
	}
	return out
}

// securitySection is the CapabilityStatement's rest.security: SMART on FHIR with the oauth-uris
// extension naming the first reachable issuer's endpoints.
func (s *Server) securitySection(ctx context.Context) map[string]any {
	sec := map[string]any{
		"cors": s.corsPolicy.enabled(),
		"service": []any{map[string]any{
			"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR"}},
			"text":   "OAuth 2.0 bearer tokens (SMART on FHIR v2 scopes; NHS login claims for patients)",
		}},
		"description": "Bearer JWTs from the trusted issuers " + strings.Join(s.cfg.Auth.Issuers(), ", ") +
			" with audience " + s.cfg.Auth.Audience() + ". See " + s.cfg.BaseURL + "/.well-known/smart-configuration.",
	}
	if metas := s.cfg.Auth.Metadata(ctx); len(metas) > 0 {
		sec["extension"] = []any{map[string]any{
			"url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
			"extension": []any{
				map[string]any{"url": "authorize", "valueUri": metas[0].AuthorizationEndpoint},
				map[string]any{"url": "token", "valueUri": metas[0].TokenEndpoint},
			},
		}}
	}
	return sec
}
