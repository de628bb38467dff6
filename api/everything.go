package api

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// Patient/[id]/$everything and Patient/$everything: a patient's compartment, type by type in the
// registry's order, plus the resources it references, as a searchset Bundle in pages. Each type is one
// search of the compartment parameter (auth.PatientCompartment) confined by restrict exactly as a search
// of that type is, so the operation returns, counts and pages only what a search would, and a patient at
// summary level gets the summary and the withheld notice. The types are whatever the fhir registry serves
// and the policy puts in the patient compartment, so a type added to both is covered without a change here.

// everythingPosition is where a page of $everything stopped: the index of the type in the registry's
// order and the keyset position inside it.
type everythingPosition struct {
	Type  int   `json:"t"`
	After []any `json:"a,omitempty"`
}

// everythingQuery is a parsed $everything request.
type everythingQuery struct {
	patients []string
	since    time.Time
	types    map[string]bool
	count    int
	applied  url.Values
}

// everything answers GET Patient/[id]/$everything, and GET Patient/$everything for a patient token (their
// own record and those they act for).
func (s *Server) everything(req *request, p pathParams) error {
	c := req.c
	values, aerr := parseQuery(c.Request.URL.RawQuery, "the query string")
	if aerr != nil {
		return aerr
	}
	eq := &everythingQuery{count: s.cfg.DefaultCount, applied: url.Values{}}
	if p.id != "" {
		r, err := s.currentOrGone(req.ctx(), "Patient", p.id)
		if err != nil {
			return err
		}
		if err := s.canRead(req, r); err != nil {
			return err
		}
		eq.patients = []string{p.id}
	} else {
		if req.caller.Kind != auth.KindPatient {
			return fail(kindMissing,
				"Patient/$everything without an id is for patient tokens (their own record); a GP system names the patient (Patient/[id]/$everything) or exports with Patient/$export")
		}
		eq.patients = req.caller.PatientIDs
		if len(eq.patients) == 0 {
			return fail(kindNotFound, "no Patient record on this server is linked to this sign-in")
		}
	}
	if err := s.parseEverything(eq, values); err != nil {
		return err
	}
	scope := "Patient/" + strings.Join(eq.patients, ",") + "/$everything?" + eq.applied.Encode()
	var pos everythingPosition
	if cur := values.Get(cursorParam); cur != "" {
		if err := s.cursors.open(scope, cur, &pos); err != nil {
			return err
		}
	}
	types := s.everythingTypes(req, eq)
	bundle := fhir.NewBundle("searchset")
	link := "Patient/$everything"
	if p.id != "" {
		link = "Patient/" + p.id + "/$everything"
	}
	selfQuery := eq.applied.Encode()
	bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "self", URL: s.cfg.BaseURL + "/" + pageLink(link+"?"+selfQuery, "")})
	var page []store.Resource
	var next *everythingPosition
	for ti := pos.Type; ti < len(types) && next == nil; ti++ {
		q := everythingStore(types[ti], eq)
		if ti == pos.Type && len(pos.After) > 0 {
			after, aerr := sortValuesOf(pos.After)
			if aerr != nil {
				return aerr
			}
			q.After = after
		}
		if err := s.restrict(req, &q); err != nil {
			return err
		}
		want := eq.count - len(page)
		q.Limit = want + 1
		hits, err := s.store.Search(req.ctx(), q)
		if err != nil {
			return err
		}
		if len(hits) > want {
			hits = hits[:want]
			next = &everythingPosition{Type: ti, After: positionOf(hits[len(hits)-1].SortValues)}
		}
		for _, h := range hits {
			page = append(page, h.Resource)
		}
		if len(page) >= eq.count && next == nil && ti+1 < len(types) {
			next = &everythingPosition{Type: ti + 1}
		}
	}
	if next != nil {
		cur, err := s.cursors.sign(scope, next)
		if err != nil {
			return internal(err)
		}
		bundle.Link = append(bundle.Link, fhir.BundleLink{Relation: "next",
			URL: s.cfg.BaseURL + "/" + pageLink(link+"?"+selfQuery, cur)})
	}
	q := &searchQuery{}
	for _, r := range page {
		entry, err := s.searchEntry(s.served(req, r), "match", q, nil)
		if err != nil {
			return err
		}
		bundle.Entry = append(bundle.Entry, entry)
	}
	referenced, err := s.referencedBy(req, page, eq)
	if err != nil {
		return err
	}
	for _, r := range referenced {
		entry, err := s.searchEntry(s.served(req, r), "include", q, nil)
		if err != nil {
			return err
		}
		bundle.Entry = append(bundle.Entry, entry)
	}
	withheld, err := s.withheldNotes(req)
	if err != nil {
		return err
	}
	req.withheld = len(withheld) > 0
	if len(withheld) > 0 {
		bundle.Entry = append(bundle.Entry, fhir.BundleEntry{Resource: fhir.OperationOutcome(withheld...),
			Search: &fhir.EntrySearch{Mode: "outcome"}})
	}
	return s.writeBundle(c, bundle)
}

// parseEverything reads _since, _type and _count; any other parameter is refused, since ignoring it
// would return more than the client asked for.
func (s *Server) parseEverything(eq *everythingQuery, values url.Values) error {
	for key, vals := range values {
		v := vals[len(vals)-1]
		switch key {
		case cursorParam, "_format", "_pretty":
		case "_since":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return fail(kindBadValue, "_since=%s is not an instant such as 2024-01-01T00:00:00Z", v).at("_since")
			}
			eq.since = t
			eq.applied.Set("_since", v)
		case "_type":
			eq.types = map[string]bool{}
			for _, t := range strings.Split(strings.Join(vals, ","), ",") {
				t = strings.TrimSpace(t)
				if _, ok := fhir.LookupType(t); !ok {
					return fail(kindBadValue, "_type: %q is not a resource type served here", t).at("_type")
				}
				eq.types[t] = true
			}
			eq.applied.Set("_type", strings.Join(vals, ","))
		case "_count":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fail(kindBadValue, "_count=%s is not a whole number of 1 or more", v).at("_count")
			}
			eq.count = min(n, s.cfg.MaxCount)
			eq.applied.Set("_count", strconv.Itoa(eq.count))
		default:
			return fail(kindUnsupported, "%s is not a parameter of $everything here; it takes _since, _type and _count", key).at(key)
		}
	}
	return nil
}

// everythingTypes are the compartment types the caller may search, Patient first, then by name.
func (s *Server) everythingTypes(req *request, eq *everythingQuery) []string {
	var out []string
	for _, t := range fhir.Types() {
		if _, ok := auth.PatientCompartment(t.Name); !ok || t.Name == "Patient" {
			continue
		}
		out = append(out, t.Name)
	}
	out = append([]string{"Patient"}, out...)
	kept := out[:0]
	for _, t := range out {
		if eq.types != nil && !eq.types[t] {
			continue
		}
		if !auth.Authorize(req.caller, auth.Search, t).Allow() {
			continue
		}
		kept = append(kept, t)
	}
	return kept
}

// everythingStore is the store query of one type's part of the compartment, in id order.
func everythingStore(typ string, eq *everythingQuery) store.Query {
	def, _ := auth.PatientCompartment(typ)
	var cl store.Clause
	for _, id := range eq.patients {
		if def.Param == store.ParamID {
			cl = append(cl, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: id})
		} else {
			cl = append(cl, store.Predicate{Param: def.Param, Match: store.MatchExact, Value: "Patient/" + id})
		}
	}
	q := store.Query{Type: typ, Clauses: []store.Clause{cl}}
	if !eq.since.IsZero() {
		q.Clauses = append(q.Clauses, store.Clause{{Param: store.ParamLastUpdated, Match: store.MatchRange,
			Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: eq.since.UnixMilli()}}}})
	}
	return q
}

// referencedBy are the resources outside the compartment that a page references (the practice, the
// practitioner, the slot), each once, and only those the caller may read.
func (s *Server) referencedBy(req *request, page []store.Resource, eq *everythingQuery) ([]store.Resource, error) {
	seen := map[string]bool{}
	for _, r := range page {
		seen[r.Type+"/"+r.ID] = true
	}
	var out []store.Resource
	for _, r := range page {
		res, err := fhir.Parse(r.Body)
		if err != nil {
			continue
		}
		for _, ref := range fhir.References(res, s.cfg.BaseURL) {
			key := ref.Type + "/" + ref.ID
			if seen[key] {
				continue
			}
			seen[key] = true
			if _, inCompartment := auth.PatientCompartment(ref.Type); inCompartment {
				// The compartment's own resources come as matches, each on its page.
				continue
			}
			if eq.types != nil && !eq.types[ref.Type] {
				continue
			}
			target, ok, err := s.live(req, ref.Type, ref.ID)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			d, err := s.mayRead(req, req.caller, target)
			if err != nil {
				return nil, err
			}
			if d.Allow() {
				out = append(out, target)
			}
		}
	}
	return out, nil
}

// positionOf and sortValuesOf carry a keyset position through a signed cursor.
func positionOf(vals []store.SortValue) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		if v.IsInt {
			out[i] = v.Int
		} else {
			out[i] = v.Str
		}
	}
	return out
}

func sortValuesOf(vals []any) ([]store.SortValue, *apiError) {
	out := make([]store.SortValue, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case string:
			out[i] = store.SortValue{Str: x}
		case float64:
			out[i] = store.SortValue{Int: int64(x), IsInt: true}
		case json.Number:
			n, err := x.Int64()
			if err != nil {
				return nil, badCursor()
			}
			out[i] = store.SortValue{Int: n, IsInt: true}
		default:
			return nil, badCursor()
		}
	}
	return out, nil
}
