package auth

import (
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
)

// Scope is one SMART on FHIR resource scope, such as patient/Immunization.rs.
type Scope struct {
	// Context is "patient", "user" or "system".
	Context string
	// Type is a resource type or "*".
	Type string
	// Perms is the set of SMART v2 permissions it grants, a subset of "cruds" in that order.
	Perms string
}

func (s Scope) String() string { return s.Context + "/" + s.Type + "." + s.Perms }

// ParseScope reads a SMART v2 scope (patient/Immunization.rs, system/*.cruds) or a v1 one, whose .read,
// .write and .* are aliases of .rs, .cud and .cruds. ok is false for anything else, including v2 scopes
// with query restrictions (patient/Observation.rs?category=...): this server cannot honour the narrower
// grant, so it does not treat them as granting anything.
func ParseScope(s string) (Scope, bool) {
	ctx, rest, ok := strings.Cut(s, "/")
	if !ok {
		return Scope{}, false
	}
	switch ctx {
	case "patient", "user", "system":
	default:
		return Scope{}, false
	}
	typ, perms, ok := strings.Cut(rest, ".")
	if !ok || typ == "" || strings.ContainsAny(perms, "?&=") {
		return Scope{}, false
	}
	if typ != "*" && !fhir.ValidTypeName(typ) {
		return Scope{}, false
	}
	switch perms {
	case "read":
		perms = "rs"
	case "write":
		perms = "cud"
	case "*":
		perms = "cruds"
	default:
		// v2 permissions must appear in the order c, r, u, d, s, each at most once.
		last := -1
		for i := 0; i < len(perms); i++ {
			pos := strings.IndexByte("cruds", perms[i])
			if pos <= last {
				return Scope{}, false
			}
			last = pos
		}
		if perms == "" {
			return Scope{}, false
		}
	}
	return Scope{Context: ctx, Type: typ, Perms: perms}, true
}

// ParseScopes splits a space-separated scope claim into the resource scopes it grants and the other
// scopes (openid, profile, the dashboard scope, ...).
func ParseScopes(claim string) (resource []Scope, other []string) {
	for _, s := range strings.Fields(claim) {
		if sc, ok := ParseScope(s); ok {
			resource = append(resource, sc)
		} else {
			other = append(other, s)
		}
	}
	return resource, other
}

// Permission is the SMART v2 permission letter an interaction needs.
func Permission(in Interaction) byte {
	switch in {
	case Create:
		return 'c'
	case Read, VRead, HistoryInstance:
		return 'r'
	case Update, Patch:
		return 'u'
	case Delete:
		return 'd'
	}
	// Searches and type or system history list resources the caller names no id for: that is 's'.
	return 's'
}

// grants reports whether any of scopes in one of the contexts grants perm on typ.
func grants(scopes []Scope, contexts []string, typ string, perm byte) bool {
	for _, s := range scopes {
		if (s.Type == "*" || s.Type == typ) && strings.IndexByte(s.Perms, perm) >= 0 {
			for _, c := range contexts {
				if s.Context == c {
					return true
				}
			}
		}
	}
	return false
}
