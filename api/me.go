package api

import (
	"encoding/json"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// GET /Patient/$me answers "why can't I see my record?": for the signed-in person, their own linked
// record (if any) and every patient they hold a proxy grant for, each with its online services and,
// for anything unavailable, the reason in plain words. Any verified token may ask: it explains refusals
// rather than making them, and it reveals nothing a P9 login does not already prove (a P5 or P0 login
// is told only about its proofing level, not whether a record exists).

// isMe reports whether the path is Patient/$me.
func isMe(p pathParams) bool { return p.typ != nil && p.typ.Name == "Patient" && p.op == "me" }

// param is one parameter of a Parameters resource, as $me and $verify answer.
type param struct {
	Name           string          `json:"name"`
	ValueCode      string          `json:"valueCode,omitempty"`
	ValueString    string          `json:"valueString,omitempty"`
	ValueDate      string          `json:"valueDate,omitempty"`
	ValueBoolean   *bool           `json:"valueBoolean,omitempty"`
	ValueInteger   *int64          `json:"valueInteger,omitempty"`
	ValueReference *meReference    `json:"valueReference,omitempty"`
	ValueIdent     *meIdentifier   `json:"valueIdentifier,omitempty"`
	Part           []param         `json:"part,omitempty"`
	Resource       json.RawMessage `json:"resource,omitempty"`
}

type meReference struct {
	Reference string `json:"reference"`
	Display   string `json:"display,omitempty"`
}

type meIdentifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
}

func boolp(b bool) *bool { return &b }

func (s *Server) me(req *request) error {
	c, ctx := req.c, req.ctx()
	caller := req.caller
	kind, _, _ := caller.Describe()
	who := param{Name: "caller", Part: []param{{Name: "role", ValueCode: kind}}}
	out := []param{who}
	if caller.Kind != auth.KindPatient {
		out[0].Part = append(out[0].Part, param{Name: "reason", ValueString: "this is not a patient's sign-in: $me describes " +
			"a patient's own online access and the patients they may act for"})
		return s.writeParameters(c, out)
	}
	out[0].Part = append(out[0].Part, param{Name: "identityProofingLevel", ValueCode: caller.Level})
	if caller.NHSNumber != "" {
		out[0].Part = append(out[0].Part, param{Name: "nhsNumber", ValueIdent: &meIdentifier{System: fhir.NHSNumberSystem, Value: caller.NHSNumber}})
	}
	if caller.Level != "P9" || caller.NHSNumber == "" {
		reason := auth.LevelRefusal(caller)
		if caller.NHSNumber == "" {
			reason = "the sign-in carries no NHS number, so no GP record can be found for it"
		}
		out = append(out, param{Name: "patient", Part: []param{
			{Name: "relationship", ValueCode: "self"}, {Name: "available", ValueBoolean: boolp(false)},
			{Name: "reason", ValueString: reason}}})
		return s.writeParameters(c, out)
	}
	self, _, err := s.patientsByNHS(ctx, caller.NHSNumber)
	if err != nil {
		return err
	}
	if len(self) == 0 {
		out = append(out, param{Name: "patient", Part: []param{
			{Name: "relationship", ValueCode: "self"}, {Name: "available", ValueBoolean: boolp(false)},
			{Name: "reason", ValueString: auth.NotLinkedReason}}})
	}
	for _, p := range self {
		out = append(out, s.mePatient("self", p, practiceAccess(p), nil, true, ""))
	}
	grants, err := s.proxyGrants(ctx, caller.NHSNumber, nil)
	if err != nil {
		return err
	}
	for _, g := range grants {
		services := g.grant.Services
		out = append(out, s.mePatient("proxy", g.patient, practiceAccess(g.patient), &services, g.inForce, g.why))
	}
	return s.writeParameters(c, out)
}

func (s *Server) mePatient(rel string, p store.Resource, practice online.Access, grant *online.Access, available bool, why string) param {
	part := []param{
		{Name: "relationship", ValueCode: rel},
		{Name: "patient", ValueReference: &meReference{Reference: "Patient/" + p.ID, Display: patientName(p.Body)}},
		{Name: "available", ValueBoolean: boolp(available)},
	}
	if !available {
		part = append(part, param{Name: "reason", ValueString: why})
	}
	for _, st := range auth.ExplainServices(practice, grant) {
		sp := param{Name: "service", Part: []param{{Name: "name", ValueCode: st.Name}, {Name: "level", ValueCode: st.Level}}}
		if !st.From.IsZero() {
			sp.Part = append(sp.Part, param{Name: "from", ValueDate: st.From.Format("2006-01-02")})
		}
		if st.Reason != "" {
			sp.Part = append(sp.Part, param{Name: "reason", ValueString: st.Reason})
		}
		for _, typ := range st.Shows {
			sp.Part = append(sp.Part, param{Name: "shows", ValueCode: typ})
		}
		for _, wt := range st.Withholds {
			sp.Part = append(sp.Part, param{Name: "withheld", Part: []param{
				{Name: "type", ValueCode: wt.Type}, {Name: "needs", ValueCode: wt.Needs}, {Name: "reason", ValueString: wt.Reason}}})
		}
		part = append(part, sp)
	}
	return param{Name: "patient", Part: part}
}

func patientName(body []byte) string {
	var p struct {
		Name []struct {
			Family string   `json:"family"`
			Given  []string `json:"given"`
		} `json:"name"`
	}
	if json.Unmarshal(body, &p) != nil || len(p.Name) == 0 {
		return ""
	}
	n := p.Name[0]
	out := n.Family
	for i := len(n.Given) - 1; i >= 0; i-- {
		out = n.Given[i] + " " + out
	}
	return out
}

func (s *Server) writeParameters(c *gin.Context, params []param) error {
	body, err := json.Marshal(struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []param `json:"parameter"`
	}{"Parameters", params})
	if err != nil {
		return internal(err)
	}
	writeFHIR(c, http.StatusOK, body)
	return nil
}
