package online

import (
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// ProxyGrant is a practice-managed grant, held as a RelatedPerson: patient is who is acted for,
// identifier (NHS number system) is the proxy's NHS number, period is when it applies, active turns it
// off, and the online-access extension names the services it allows (a service it does not name is not
// granted).
type ProxyGrant struct {
	ID         string
	PatientRef string // "Patient/id"
	ProxyNHS   string
	Active     bool
	Start, End time.Time // zero: open
	Services   Access
}

// ParseProxyGrant reads a RelatedPerson tree.
func ParseProxyGrant(id string, tree map[string]any) (ProxyGrant, *RuleError) {
	g := ProxyGrant{ID: id, Active: true}
	if pt, ok := tree["patient"].(map[string]any); ok {
		g.PatientRef = str(pt, "reference")
	}
	if a, ok := tree["active"].(bool); ok {
		g.Active = a
	}
	for _, v := range fhir.Walk(tree, "identifier") {
		m, _ := v.(map[string]any)
		if str(m, "system") == fhir.NHSNumberSystem {
			g.ProxyNHS = str(m, "value")
		}
	}
	if p, ok := tree["period"].(map[string]any); ok {
		if s := str(p, "start"); s != "" {
			if lo, _, err := fhir.ParseDateRange(s); err == nil {
				g.Start = time.UnixMilli(lo).UTC()
			}
		}
		if s := str(p, "end"); s != "" {
			if _, hi, err := fhir.ParseDateRange(s); err == nil {
				g.End = time.UnixMilli(hi).UTC()
			}
		}
	}
	var rerr *RuleError
	g.Services, rerr = ParseAccess(tree, NoAccess)
	return g, rerr
}

// InForce says whether the grant lets its proxy act at now; if not, why, in words for the proxy.
func (g ProxyGrant) InForce(now time.Time) (bool, string) {
	switch {
	case !g.Active:
		return false, "the practice has withdrawn your proxy access for this patient"
	case !g.Start.IsZero() && now.Before(g.Start):
		return false, "your proxy access for this patient starts on " + g.Start.Format("2 January 2006")
	case !g.End.IsZero() && now.After(g.End):
		return false, "your proxy access for this patient ended on " + g.End.Format("2 January 2006") +
			"; ask the patient's GP practice to renew it"
	}
	return true, ""
}
