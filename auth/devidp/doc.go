// Package devidp is gpfhir's development identity provider, built on github.com/zitadel/oidc/v3. It
// behaves like NHS login for patients (authorization code with PKCE, an accessible login page listing
// the seeded test users, P9/P5/P0 identity levels, refresh tokens) and like the NHS API platform for GP
// systems (client_credentials with private_key_jwt), and issues RS512-signed JWT access tokens typed
// at+jwt (RFC 9068) carrying nhs_number, identity_proofing_level, vot, jti, ods_codes and SMART scopes.
//
// It signs tokens for anyone who asks, so New refuses to build it unless Config.Dev is set; gpfhir
// mounts it at /dev-idp only with `serve --dev`. The client side of its flows (used by `gpfhir
// dev-token` and the tests) is in client.go.
package devidp
