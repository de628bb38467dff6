package auth

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gpfhir/gpfhir/online"
)

// Kind is the role a caller acts in.
type Kind int

const (
	// KindPatient is a person signed in with NHS login (or a compatible provider) through an app.
	KindPatient Kind = iota + 1
	// KindSystem is a GP clinical system calling machine to machine, bound to practices.
	KindSystem
	// KindAuditor reads AuditEvents across practices and no clinical data.
	KindAuditor
	// KindCommissioner sees aggregate uptake figures only.
	KindCommissioner
)

func (k Kind) String() string {
	switch k {
	case KindPatient:
		return "patient"
	case KindSystem:
		return "system"
	case KindAuditor:
		return "auditor"
	case KindCommissioner:
		return "commissioner"
	}
	return "unknown"
}

// Claim names of the claims contract (docs/authorisation.md, "Claims").
const (
	ClaimNHSNumber      = "nhs_number"
	ClaimProofingLevel  = "identity_proofing_level"
	ClaimVoT            = "vot"
	ClaimODSCodes       = "ods_codes"
	ClaimProxyFor       = "proxy_for"
	DashboardScope      = "gpfhir/dashboard.read"
	auditEventType      = "AuditEvent"
	identityLevelNeeded = "P9"
)

// Claims are the token claims gpfhir reads. Standard ones come from RFC 7519 and RFC 9068; nhs_number,
// identity_proofing_level and vot are NHS login's; ods_codes and proxy_for are this server's.
type Claims struct {
	Issuer                string      `json:"iss"`
	Subject               string      `json:"sub"`
	JTI                   string      `json:"jti"`
	ClientID              string      `json:"client_id"`
	AuthorizedParty       string      `json:"azp"`
	Scope                 stringList  `json:"scope"`
	Scp                   stringList  `json:"scp"`
	NHSNumber             string      `json:"nhs_number"`
	IdentityProofingLevel string      `json:"identity_proofing_level"`
	VoT                   string      `json:"vot"`
	ODSCodes              stringList  `json:"ods_codes"`
	ProxyFor              string      `json:"proxy_for"`
	NotBefore             json.Number `json:"nbf"`
}

// stringList accepts a space-separated string or an array of strings, since providers differ.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = strings.Fields(s)
		return nil
	}
	var a []string
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("want a string or an array of strings")
	}
	*l = a
	return nil
}

// Caller is who is calling, worked out from a verified token.
type Caller struct {
	Kind     Kind
	Issuer   string
	Subject  string
	ClientID string
	// JTI is the token id, for audit.
	JTI string
	// NHSNumber and Level (P0, P5 or P9) are set for patients.
	NHSNumber string
	Level     string
	// ProxyFor is the NHS number of a patient the caller says it acts for.
	ProxyFor string
	// ODS is the practices a GP system is bound to.
	ODS    []string
	Scopes []Scope
	Other  []string
	// PatientIDs are the ids of the Patient resources that carry the patient's NHS number. The API fills
	// them in (Resolved) before the policy is asked about record data.
	PatientIDs []string
	Resolved   bool

	// Online services. The API fills these in when it resolves a patient or a proxy grant.
	// PracticeAccess is what the practice has switched on for the patient acted for (nil: the
	// defaults, online.DefaultAccess); GrantAccess is what a proxy's grant allows (nil for a
	// patient acting for themselves).
	PracticeAccess *online.Access
	GrantAccess    *online.Access
	// ProxyGrant is the id of the RelatedPerson grant in force when the caller acts as a proxy, and
	// ProxyPatient the NHS number acted for; ProxyRefusal says why no grant is in force.
	ProxyGrant   string
	ProxyRefusal string
}

// Access is what the caller may use for the patient acted for: the practice's levels, and for a proxy
// no more than the grant allows.
func (c *Caller) Access() online.Access {
	a := online.DefaultAccess
	if c.PracticeAccess != nil {
		a = *c.PracticeAccess
	}
	if c.GrantAccess != nil {
		a = a.Min(*c.GrantAccess)
	}
	return a
}

// IsProxy reports whether the caller acts for someone else.
func (c *Caller) IsProxy() bool { return c.Kind == KindPatient && c.ProxyFor != "" }

// Refusal is a valid token that cannot be used: it names no role this server knows.
type Refusal struct{ Reason string }

func (r *Refusal) Error() string { return r.Reason }

// NewCaller works out the caller from verified claims. clientODS binds GP-system client ids to practice
// ODS codes (--client-ods); it wins over the ods_codes claim, since it is the operator's own word.
func NewCaller(c Claims, clientODS map[string][]string) (*Caller, error) {
	scopeClaim := c.Scope
	if len(scopeClaim) == 0 {
		scopeClaim = c.Scp
	}
	res, other := ParseScopes(strings.Join(scopeClaim, " "))
	clientID := c.ClientID
	if clientID == "" {
		clientID = c.AuthorizedParty
	}
	caller := &Caller{
		Issuer: c.Issuer, Subject: c.Subject, ClientID: clientID, JTI: c.JTI,
		Scopes: res, Other: other, ProxyFor: c.ProxyFor,
	}
	level := strings.ToUpper(c.IdentityProofingLevel)
	if level == "" && c.VoT != "" {
		// A vector of trust such as "P9.Cp.Cd" starts with the identity level.
		level, _, _ = strings.Cut(strings.ToUpper(c.VoT), ".")
	}
	hasSystem := false
	hasAudit := false
	for _, s := range res {
		// A system/AuditEvent scope alone makes an auditor (an audit tool calling machine to machine),
		// not a GP system.
		if s.Context == "system" && s.Type != auditEventType {
			hasSystem = true
		}
		if (s.Type == auditEventType || s.Type == "*" && s.Context == "user") && strings.ContainsAny(s.Perms, "rs") && s.Context != "patient" {
			hasAudit = true
		}
	}
	switch {
	case c.NHSNumber != "" || level != "":
		caller.Kind = KindPatient
		caller.NHSNumber = c.NHSNumber
		caller.Level = level
	case hasSystem && clientID != "":
		caller.Kind = KindSystem
		if ods, ok := clientODS[clientID]; ok {
			caller.ODS = append([]string(nil), ods...)
		} else {
			caller.ODS = append([]string(nil), c.ODSCodes...)
		}
		sort.Strings(caller.ODS)
	case hasAudit:
		caller.Kind = KindAuditor
	case contains(other, DashboardScope):
		caller.Kind = KindCommissioner
	case hasSystem:
		return nil, &Refusal{Reason: "the token has system/ scopes but no client_id, so the GP system cannot be bound to its practices"}
	default:
		return nil, &Refusal{Reason: "the token carries no scope that this server uses: ask for SMART scopes such as " +
			"patient/Immunization.rs (patients), system/Patient.rs (GP systems) or user/AuditEvent.rs (auditors)"}
	}
	return caller, nil
}

// Describe is a log-safe summary: role, subject and client, never an NHS number.
func (c *Caller) Describe() (kind, subject, client string) {
	return c.Kind.String(), c.Subject, c.ClientID
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
