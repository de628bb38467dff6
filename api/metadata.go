package api

import (
	"encoding/json"
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
)

type capabilityStatement struct {
	ResourceType string           `json:"resourceType"`
	Status       string           `json:"status"`
	Date         string           `json:"date"`
	Publisher    string           `json:"publisher"`
	Kind         string           `json:"kind"`
	Software     capSoftware      `json:"software"`
	Implement    capImplement     `json:"implementation"`
	FHIRVersion  string           `json:"fhirVersion"`
	Format       []string         `json:"format"`
	PatchFormat  []string         `json:"patchFormat"`
	Rest         []capRest        `json:"rest"`
	Instantiates []string         `json:"instantiates,omitempty"`
	Extension    []map[string]any `json:"extension,omitempty"`
}

type capSoftware struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

type capImplement struct {
	Description string `json:"description"`
	URL         string `json:"url"`
}

type capRest struct {
	Mode        string           `json:"mode"`
	Security    map[string]any   `json:"security,omitempty"`
	Resource    []capResource    `json:"resource"`
	Interaction []capInteraction `json:"interaction"`
	Operation   []capOperation   `json:"operation,omitempty"`
}

// systemOperations are the operations on the base, for the CapabilityStatement.
var systemOperations = []capOperation{{Name: "export", Definition: "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
	Documentation: "Bulk Data v2, GP systems only: Prefer: respond-async, _type, _since, _typeFilter, _outputFormat=application/fhir+ndjson; " +
		"poll the Content-Location; files hold exactly what the client may read."}}

type capInteraction struct {
	Code string `json:"code"`
}

type capResource struct {
	Type              string           `json:"type"`
	Interaction       []capInteraction `json:"interaction"`
	Versioning        string           `json:"versioning"`
	ReadHistory       bool             `json:"readHistory"`
	UpdateCreate      bool             `json:"updateCreate"`
	ConditionalCreate bool             `json:"conditionalCreate"`
	ConditionalRead   string           `json:"conditionalRead"`
	ConditionalUpdate bool             `json:"conditionalUpdate"`
	ConditionalDelete string           `json:"conditionalDelete"`
	SearchInclude     []string         `json:"searchInclude,omitempty"`
	SearchRevInclude  []string         `json:"searchRevInclude,omitempty"`
	SearchParam       []capSearchParam `json:"searchParam"`
	Operation         []capOperation   `json:"operation,omitempty"`
	// Extension lists the type's R4 search parameters that are not supported, each with the reason.
	Extension []capExtension `json:"extension,omitempty"`
}

// UnsupportedSearchParamExtension marks, on a CapabilityStatement resource, an R4 search parameter of
// the type that this server does not support: sub-extensions name (valueString), definition
// (valueCanonical) and reason (valueString).
const UnsupportedSearchParamExtension = "https://gpfhir.example/StructureDefinition/unsupported-search-parameter"

type capExtension struct {
	URL            string         `json:"url"`
	ValueString    string         `json:"valueString,omitempty"`
	ValueCanonical string         `json:"valueCanonical,omitempty"`
	Extension      []capExtension `json:"extension,omitempty"`
}

type capOperation struct {
	Name          string `json:"name"`
	Definition    string `json:"definition"`
	Documentation string `json:"documentation,omitempty"`
}

type capSearchParam struct {
	Name          string `json:"name"`
	Type          string `json:"type"`
	Definition    string `json:"definition,omitempty"`
	Documentation string `json:"documentation,omitempty"`
}

// specSearchParamBase begins the canonical URL of every search parameter the R4 specification defines.
const specSearchParamBase = "http://hl7.org/fhir/SearchParameter/"

// paramDocumentation describes only the parameters gpfhir defines itself. R4 keeps searchParam.documentation
// for "distinct behaviors about how the search parameter is used"; for the specification's own parameters
// the definition URL already leads to the description, and repeating 500 of them was a quarter of the
// document's bytes and of the time every client spends fetching it (docs/operations.md, "gpfhir bench").
func paramDocumentation(sp *fhir.SearchParam) string {
	if strings.HasPrefix(sp.Definition, specSearchParamBase) {
		return ""
	}
	return sp.Description
}

// capabilityStatement is derived from routeTable and the fhir type registry, the same tables that route
// requests and index resources, so it cannot advertise what the server does not do.
func (s *Server) capabilityStatement() capabilityStatement {
	cs := capabilityStatement{
		ResourceType: "CapabilityStatement",
		Status:       "active",
		Date:         s.now().Format("2006-01-02T15:04:05Z07:00"),
		Publisher:    "gpfhir",
		Kind:         "instance",
		Software:     capSoftware{Name: "gpfhir", Version: s.cfg.Version},
		Implement:    capImplement{Description: "gpfhir: FHIR R4 API for GP practice data", URL: s.cfg.BaseURL},
		FHIRVersion:  "4.0.1",
		Format:       []string{"application/fhir+json", "json"},
		PatchFormat:  []string{jsonPatchType},
	}
	rest := capRest{Mode: "server"}
	seen := map[string]bool{}
	for _, r := range routeTable {
		if !r.typeLevel && !seen[r.interaction] && r.interaction != "capabilities" && r.interaction != "operation" {
			seen[r.interaction] = true
			rest.Interaction = append(rest.Interaction, capInteraction{Code: r.interaction})
		}
	}
	for _, t := range fhir.Types() {
		res := capResource{
			Type:            t.Name,
			Versioning:      "versioned",
			ConditionalRead: "modified-since", // If-Modified-Since and If-None-Match on read
		}
		have := map[string]bool{}
		for _, r := range routeTable {
			// Operations are listed under operation, not as an interaction code.
			if r.typeLevel && r.interaction != "operation" && typeAllows(t, r.interaction) && !have[r.interaction] {
				have[r.interaction] = true
				res.Interaction = append(res.Interaction, capInteraction{Code: r.interaction})
			}
		}
		res.ReadHistory = have["vread"]
		res.UpdateCreate = have["update"]
		res.ConditionalCreate = have["create"]
		res.ConditionalUpdate = have["update"]
		res.ConditionalDelete = "not-supported"
		if have["delete"] {
			res.ConditionalDelete = "single"
		}
		if have["search-type"] {
			for _, sp := range t.Params {
				res.SearchParam = append(res.SearchParam, capSearchParam{
					Name: sp.Code, Type: string(sp.Type), Definition: sp.Definition, Documentation: paramDocumentation(sp),
				})
			}
			res.SearchInclude, res.SearchRevInclude = includeValues(t)
			for _, u := range t.Unsupported {
				res.Extension = append(res.Extension, capExtension{URL: UnsupportedSearchParamExtension, Extension: []capExtension{
					{URL: "name", ValueString: u.Code},
					{URL: "definition", ValueCanonical: specSearchParamBase + t.Name + "-" + u.Code},
					{URL: "reason", ValueString: u.Reason},
				}})
			}
		}
		if typeAllows(t, "operation") {
			res.Operation = typeOperations[t.Name]
		}
		rest.Resource = append(rest.Resource, res)
	}
	rest.Operation = systemOperations
	cs.Rest = []capRest{rest}
	return cs
}

// capabilityBody is the CapabilityStatement as served, and the issuers' endpoints it was built with.
type capabilityBody struct {
	endpoints string
	body      []byte
	gz        []byte // body gzipped, for clients that accept it: a tenth of the bytes
}

// capabilities serves the CapabilityStatement. It is a fixed document once the issuers' discovery
// documents are in, so its bytes are built once and rebuilt only when the endpoints it names change (its
// date is then when this server last changed what it states, as CapabilityStatement.date means);
// it depends on nothing in the store, so no other process can make it stale.
func (s *Server) capabilities(req *request, _ pathParams) error {
	c := req.c
	var endpoints string
	if metas := s.cfg.Auth.Metadata(c.Request.Context()); len(metas) > 0 {
		endpoints = metas[0].AuthorizationEndpoint + " " + metas[0].TokenEndpoint
	}
	s.unaudited(req)
	cb := s.capCache.Load()
	if cb == nil || cb.endpoints != endpoints {
		cs := s.capabilityStatement()
		cs.Rest[0].Security = s.securitySection(c.Request.Context())
		body, err := json.Marshal(cs)
		if err != nil {
			return internal(err)
		}
		gz, err := gzipped(body)
		if err != nil {
			return internal(err)
		}
		cb = &capabilityBody{endpoints: endpoints, body: body, gz: gz}
		s.capCache.Store(cb)
	}
	writeFixed(c, cb.body, cb.gz)
	return nil
}

// includeValues lists the _include values a search of t accepts (its own reference parameters, with
// :iterate allowed on each) and the _revinclude values (every served type's reference parameters that may
// point at t), from the same registry that include parsing reads.
func includeValues(t *fhir.TypeInfo) (include, revinclude []string) {
	for _, sp := range t.Params {
		if sp.Type == fhir.ParamReference {
			include = append(include, t.Name+":"+sp.Code)
		}
	}
	for _, src := range fhir.Types() {
		for _, sp := range src.Params {
			if sp.Type == fhir.ParamReference && contains(sp.Targets, t.Name) {
				revinclude = append(revinclude, src.Name+":"+sp.Code)
			}
		}
	}
	return include, revinclude
}
