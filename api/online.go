package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// Patient online services at the access seam: how a patient's or proxy's caller is resolved
// (practice-set levels, proxy grants), the confidential-items note of a searchset that withheld
// something, and the practice facts the booking rules need. What patients and proxies may see is
// auth.Restriction, applied in policy.go.

// Withheld items. restrict records, for patients and proxies, each top-level query it confined with
// the redaction clauses; a searchset then asks whether any of them would have matched a redacted
// resource, and if so carries the confidential-items note. It says that something was withheld, never
// what or how much.

// screened is a query restrict confined with the redaction clauses, its last screen clauses; answered
// once a search has said whether they withheld something (found).
type screened struct {
	q               store.Query
	screen          int
	answered, found bool
}

func (s *Server) noteRestricted(req *request, r auth.Restriction, q *store.Query) {
	if len(r.Withheld) == 0 || len(q.Clauses) < len(r.Withheld) {
		return
	}
	req.screens = append(req.screens, screened{q: *q, screen: len(r.Withheld)})
}

// searchScreened is the search of q, which restrict confined when the request had noted screens.
// When restrict noted q then, and the store is a store.Screener, the one search also answers whether
// q withheld something, and withheldNotes does not ask again.
func (s *Server) searchScreened(req *request, q store.Query, noted int) ([]store.Hit, error) {
	sc, ok := s.store.(store.Screener)
	if !ok || len(req.screens) != noted+1 {
		return s.store.Search(req.ctx(), q)
	}
	sq := &req.screens[noted]
	hits, found, err := sc.SearchScreened(req.ctx(), q, sq.screen)
	if err != nil {
		return nil, err
	}
	sq.answered, sq.found = true, found
	return hits, nil
}

// withheldNotes returns the confidential-items issue when a query of this request left out a redacted
// resource.
func (s *Server) withheldNotes(req *request) ([]fhir.Issue, error) {
	for _, sq := range req.screens {
		found := sq.found
		if !sq.answered {
			probe, err := store.ScreenProbe(sq.q, sq.screen)
			if err != nil {
				return nil, internal(err)
			}
			hits, err := s.store.Search(req.ctx(), probe)
			if err != nil {
				return nil, err
			}
			found = len(hits) > 0
		}
		if found {
			return []fhir.Issue{confidentialItems()}, nil
		}
	}
	return nil, nil
}

func confidentialItems() fhir.Issue {
	return fhir.Issue{Severity: fhir.SeverityInformation, Code: "suppressed",
		Details: &fhir.IssueDetails{Coding: []fhir.IssueCoding{{System: online.WarningCodeSystem,
			Code: online.ConfidentialItemsCode, Display: online.ConfidentialItemsText}}},
		Diagnostics: "Some items are not shown online. " + online.ConfidentialItemsText +
			" Ask the practice if you think something is missing."}
}

// Resolving a patient's or proxy's caller.

// patientsByNHS returns the current Patient resources that carry an NHS number, and the levels the
// practice set on the first of them (the defaults when there is none).
func (s *Server) patientsByNHS(ctx context.Context, nhs string) ([]store.Resource, online.Access, error) {
	kept, found, keep, err := s.byNHS.lookup(ctx, nhs)
	if err != nil || found {
		return kept.patients, kept.access, err
	}
	hits, err := s.store.Search(ctx, store.Query{
		Type:    "Patient",
		Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: fhir.NHSNumberSystem, Value: nhs}}},
		Limit:   10,
	})
	if err != nil {
		return nil, online.Access{}, err
	}
	a := nhsAnswer{patients: make([]store.Resource, len(hits)), access: online.DefaultAccess}
	for i, h := range hits {
		a.patients[i] = h.Resource
	}
	if len(a.patients) > 0 {
		a.access = practiceAccess(a.patients[0])
	}
	keep(a)
	return slices.Clip(a.patients), a.access, nil
}

// practiceAccess reads the levels a practice set on a Patient; the defaults when it set none.
// Only the extensions are decoded: this runs on every patient request, and the rest of the Patient
// (names, addresses, identifiers) would be built into maps only to be dropped.
func practiceAccess(r store.Resource) online.Access {
	raw, err := fhir.TopLevelElement(r.Body, "extension")
	if err != nil || raw == nil {
		return online.DefaultAccess
	}
	var ext []any
	if json.Unmarshal(raw, &ext) != nil || len(ext) == 0 {
		return online.DefaultAccess
	}
	return online.PracticeAccess(map[string]any{"extension": ext})
}

// grantView is one proxy grant as the proxy sees it.
type grantView struct {
	grant   online.ProxyGrant
	patient store.Resource
	inForce bool
	why     string
}

// proxyGrants lists the grants held for the proxy with NHS number proxyNHS, optionally only those for
// the patients with NHS number forNHS, newest first.
func (s *Server) proxyGrants(ctx context.Context, proxyNHS string, patients []store.Resource) ([]grantView, error) {
	q := store.Query{Type: "RelatedPerson", Limit: 100,
		Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: fhir.NHSNumberSystem, Value: proxyNHS}}}}
	if patients != nil {
		var refs store.Clause
		for _, p := range patients {
			refs = append(refs, store.Predicate{Param: "patient", Match: store.MatchExact, Value: "Patient/" + p.ID})
		}
		if len(refs) == 0 {
			return nil, nil
		}
		q.Clauses = append(q.Clauses, refs)
	}
	hits, err := s.store.Search(ctx, q)
	if err != nil {
		return nil, err
	}
	now := s.cfg.Now()
	var out []grantView
	for _, h := range hits {
		tree, err := fhir.DecodeObject(h.Resource.Body)
		if err != nil {
			return nil, internal(err)
		}
		g, rerr := online.ParseProxyGrant(h.Resource.ID, tree)
		if rerr != nil || g.ProxyNHS != proxyNHS {
			continue
		}
		typ, id, ok := fhir.LocalRef(g.PatientRef, s.cfg.BaseURL)
		if !ok || typ != "Patient" {
			continue
		}
		pt, err := s.store.Get(ctx, "Patient", id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if pt.Deleted {
			continue
		}
		v := grantView{grant: g, patient: pt}
		v.inForce, v.why = g.InForce(now)
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].inForce && !out[j].inForce })
	return out, nil
}

// resolveOnline fills in a P9 patient's caller: the Patient resources of the person acted for, the
// levels their practice set, and for a proxy the grant in force (or why there is none).
func (s *Server) resolveOnline(ctx context.Context, caller *auth.Caller) ([]store.Resource, error) {
	caller.Resolved = true
	target := caller.NHSNumber
	if caller.ProxyFor != "" {
		target = caller.ProxyFor
	}
	pts, access, err := s.patientsByNHS(ctx, target)
	if err != nil {
		return nil, err
	}
	if caller.ProxyFor != "" {
		if len(pts) == 0 {
			caller.ProxyRefusal = "the person you act for has no GP record at this service, so there is nothing to act on"
			return nil, nil
		}
		grants, err := s.proxyGrants(ctx, caller.NHSNumber, pts)
		if err != nil {
			return nil, err
		}
		switch {
		case len(grants) == 0:
			caller.ProxyRefusal = "you have no proxy access for this patient: acting for someone else needs a proxy grant " +
				"that their GP practice sets up. Sign in as yourself to see your own record"
			return nil, nil
		case !grants[0].inForce:
			caller.ProxyRefusal = grants[0].why
			return nil, nil
		}
		g := grants[0]
		caller.ProxyGrant = g.grant.ID
		services := g.grant.Services
		caller.GrantAccess = &services
		pts, access = []store.Resource{g.patient}, practiceAccess(g.patient)
	}
	for _, p := range pts {
		caller.PatientIDs = append(caller.PatientIDs, p.ID)
	}
	if len(pts) > 0 {
		caller.PracticeAccess = &access
	}
	return pts, nil
}

// cancellationCutoff reads the cut-off of the practice that manages a patient.
func (s *Server) cancellationCutoff(ctx context.Context, patientID string) (time.Duration, error) {
	pt, err := s.store.Get(ctx, "Patient", patientID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return online.DefaultCancellationCut, nil
		}
		return 0, err
	}
	entries, err := s.entriesOf(pt.Body, "organization")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Value, "Organization/")
		if e.Param != "organization" || !ok {
			continue
		}
		org, err := s.store.Get(ctx, "Organization", id)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return 0, err
		}
		ot, err := fhir.DecodeObject(org.Body)
		if err != nil {
			return 0, internal(err)
		}
		return online.CancellationCutoff(ot), nil
	}
	return online.DefaultCancellationCut, nil
}

// searchRules checks what a patient's search must say before it runs: a free-slot search names a start
// range of at most 14 days (GP Connect's limit, which keeps a patient's search to one appointment book's
// fortnight rather than a practice's whole diary).
func (s *Server) searchRules(req *request, typ *fhir.TypeInfo, values url.Values) error {
	caller := req.caller
	if caller == nil || caller.Kind != auth.KindPatient || typ.Name != "Slot" {
		return nil
	}
	if e := online.CheckSlotSearchRange(online.SlotSearchRange(values["start"])); e != nil {
		return e
	}
	return nil
}
