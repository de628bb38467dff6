package api

import (
	"strconv"
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// includeSpec is one _include or _revinclude value, "Source:param[:Target]".
type includeSpec struct {
	rev     bool // _revinclude: resources of Source whose param points at a page resource
	iterate bool // also applies to resources that were themselves included
	source  *fhir.TypeInfo
	param   *fhir.SearchParam
	target  string // a single target type, or "" for every served target of param
}

// maxIncludeRounds bounds :iterate: the first round works from the page, each further round from what
// the previous round added.
const maxIncludeRounds = 3

func parseInclude(key string, rev bool, modifier, v string) (includeSpec, error) {
	switch modifier {
	case "", "iterate", "recurse": // recurse is the R3 name of iterate
	default:
		return includeSpec{}, fail(kindBadValue, "%s=%s: the modifier :%s is not valid here; use :iterate", key, v, modifier).at(key)
	}
	parts := strings.Split(v, ":")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return includeSpec{}, badValue(key, v, "takes the form SourceType:searchParameter[:TargetType]")
	}
	src, ok := fhir.LookupType(parts[0])
	if !ok {
		return includeSpec{}, &unsupported{key: key + "=" + v, why: parts[0] + " is not a resource type served here"}
	}
	if parts[1] == "*" {
		return includeSpec{}, &unsupported{key: key + "=" + v, why: "the wildcard * is not supported; name the reference parameter"}
	}
	sp, ok := src.Param(parts[1])
	if !ok || sp.Type != fhir.ParamReference {
		return includeSpec{}, badValue(key, v, parts[1]+" is not a reference search parameter of "+src.Name)
	}
	spec := includeSpec{rev: rev, iterate: modifier != "", source: src, param: sp}
	if len(parts) == 3 {
		if !contains(sp.Targets, parts[2]) {
			return includeSpec{}, badValue(key, v, parts[2]+" is not a target type of "+src.Name+"."+sp.Code)
		}
		spec.target = parts[2]
	}
	return spec, nil
}

// targets are the served types the spec's reference may point at.
func (sp includeSpec) targets() []string {
	if sp.target != "" {
		if _, ok := fhir.LookupType(sp.target); ok {
			return []string{sp.target}
		}
		return nil
	}
	var out []string
	for _, t := range sp.param.Targets {
		if _, ok := fhir.LookupType(t); ok {
			out = append(out, t)
		}
	}
	return out
}

// includes returns the resources that the _include and _revinclude parameters add to a page, each once
// and none that is already on the page. Every lookup is an index query that goes through restrict, and
// every resource found must pass canRead: what the caller may not read is silently left out. The total
// is capped at MaxCount, with a note when the cap cut the list.
func (s *Server) includes(req *request, specs []includeSpec, page []store.Resource) ([]store.Resource, []fhir.Issue, error) {
	seen := make(map[string]bool, len(page))
	for _, r := range page {
		seen[r.Type+"/"+r.ID] = true
	}
	limit := s.cfg.MaxCount
	var out []store.Resource
	sources := page
	for round := 0; round < maxIncludeRounds && len(sources) > 0; round++ {
		var added []store.Resource
		for _, spec := range specs {
			if round > 0 && !spec.iterate {
				continue
			}
			found, err := s.include(req, spec, sources, limit-len(out)+1)
			if err != nil {
				return nil, nil, err
			}
			for _, r := range found {
				k := r.Type + "/" + r.ID
				if seen[k] {
					continue
				}
				if len(out) == limit {
					return out, []fhir.Issue{{Severity: "warning", Code: "too-costly",
						Diagnostics: "_include and _revinclude found more than " + strconv.Itoa(limit) + " resources; only the first " + strconv.Itoa(limit) + " are included"}}, nil
				}
				seen[k] = true
				out = append(out, r)
				added = append(added, r)
			}
		}
		sources = added
	}
	return out, nil, nil
}

// include runs one spec against sources, returning at most limit readable resources.
func (s *Server) include(req *request, spec includeSpec, sources []store.Resource, limit int) ([]store.Resource, error) {
	var queries []store.Query
	if spec.rev {
		// Resources of Source whose param is one of the sources' "Type/id".
		var refs store.Clause
		for _, r := range sources {
			if (spec.target == "" || spec.target == r.Type) && contains(spec.param.Targets, r.Type) {
				refs = append(refs, store.Predicate{Param: spec.param.Code, Match: store.MatchExact, Value: r.Type + "/" + r.ID})
			}
		}
		for _, refs := range chunks(refs) {
			queries = append(queries, store.Query{Type: spec.source.Name, Clauses: []store.Clause{refs}})
		}
	} else {
		// Resources of each target type that a source points at through param: a _has over the sources'
		// ids, so that the references come from the index rather than from parsing the bodies.
		var ids store.Clause
		for _, r := range sources {
			if r.Type == spec.source.Name {
				ids = append(ids, store.Predicate{Param: store.ParamID, Match: store.MatchExact, Value: r.ID})
			}
		}
		for _, ids := range chunks(ids) {
			for _, t := range spec.targets() {
				sub := store.Query{Type: spec.source.Name, Clauses: []store.Clause{ids}}
				queries = append(queries, store.Query{Type: t, Clauses: []store.Clause{{{
					Param: "_has", Match: store.MatchHas, HasParam: spec.param.Code, Sub: &sub}}}})
			}
		}
	}
	var out []store.Resource
	for _, q := range queries {
		if len(out) >= limit {
			break
		}
		q.Limit = limit - len(out)
		if err := s.restrict(req, &q); err != nil {
			return nil, err
		}
		hits, err := s.store.Search(req.ctx(), q)
		if err != nil {
			return nil, err
		}
		for _, h := range hits {
			if s.canRead(req, h.Resource) != nil {
				continue
			}
			out = append(out, h.Resource)
		}
	}
	return out, nil
}

// includeChunk bounds the sources one include query names. A page may hold up to --max-count
// resources, and a clause of that many terms is more than SQLite takes in one expression; the page's
// sources are looked up in chunks of the size a search may name itself (maxOrValues), and includes
// drops what two chunks both find.
const includeChunk = maxOrValues

func chunks(cl store.Clause) []store.Clause {
	var out []store.Clause
	for len(cl) > includeChunk {
		out = append(out, cl[:includeChunk:includeChunk])
		cl = cl[includeChunk:]
	}
	if len(cl) > 0 {
		out = append(out, cl)
	}
	return out
}
