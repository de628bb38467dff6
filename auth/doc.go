// Package auth is gpfhir's access-token verification and access policy.
//
// Verifier checks bearer JWTs against every trusted OpenID Connect issuer (discovery, a JWKS cache that
// refetches on an unknown key id at most once per interval, RS256/RS512/ES256 only, iss, aud, exp and nbf
// with 60 seconds of clock skew) and turns their claims into a Caller: a patient (NHS login claims), a GP
// system (client credentials with system/ scopes, bound to practice ODS codes), an auditor or a
// commissioner.
//
// The policy (Authorize, CanAccess, Compartment) is plain Go with no HTTP types, so that it is tested as a
// table of (caller, interaction, resource) cases. Package api adapts it to requests and queries. Its
// online-services part (online.go) applies the access levels and proxy grants of package online to a
// patient or proxy, and says in plain words which access a refusal lacks.
//
// auth/devidp is the development identity provider that `gpfhir serve --dev` mounts at /dev-idp.
package auth
