package audit

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/gpfhir/gpfhir/fhir"
)

// Summary is what an AuditEvent written by Event says about the request, read back from its body: the
// facts that counting online-services use needs (package uptake), without the network and token
// details. It is the inverse of Event for those facts, so that whoever counts from the trail reads
// exactly what was written.
type Summary struct {
	ID       string
	Recorded time.Time
	// Interaction is the restful-interaction code; Operation the operation name, if any.
	Interaction string
	Operation   string
	// Status is the HTTP status answered.
	Status int
	// Decision is the policy's outcome tag of a refusal (deny-level, ...); empty for a success.
	Decision string
	// Withheld: a successful answer left out items withheld from online access (Input.Withheld).
	Withheld bool
	// Role is RolePatient for a patient acting for themselves, RoleProxy for a proxy, and empty for
	// every other caller (GP systems, auditors, commissioners, requests without a valid token).
	Role string
	// UserNHS is the NHS number of a patient or proxy user, when their token carried one.
	UserNHS string
	// UserPatient is the Patient id of a patient acting for themselves, when their record was found.
	UserPatient string
	// Patients are the ids of the Patient entities: the patients whose records the request concerned
	// (for a proxy, the patient acted for).
	Patients []string
	// PatientNHS is the NHS number of a patient named by identifier only (a proxy's patient when no
	// grant resolved them).
	PatientNHS string
	// Entities are the resources touched or named, in order.
	Entities []Entity
}

// Roles of the requesting user, as Summary reads them from the user agent's role.
const (
	RolePatient = "patient"
	RoleProxy   = "proxy"
)

// Summarize reads the Summary of an AuditEvent body that Event wrote. A body that is not JSON is an
// error, as is one without a readable recorded time or status; parts of another shape than Event writes
// are passed over, as the facts they would have carried are not there.
func Summarize(body []byte) (Summary, error) {
	if !gjson.ValidBytes(body) {
		return Summary{}, errors.New("audit: the AuditEvent is not valid JSON")
	}
	// The tally reads every record of the trail. gjson walks each level of the body once and hands out
	// its strings as slices of one copy of the body: 13 allocations a record against json-iterator's 124
	// into structs, in about the same time (BenchmarkSummarize).
	var s Summary
	var recorded, desc string
	var agents, entities gjson.Result
	gjson.ParseBytes(body).ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "id":
			s.ID = v.Str
		case "recorded":
			recorded = v.Str
		case "subtype":
			s.Interaction = v.Get("0.code").Str
		case "outcomeDesc":
			desc = v.Str
		case "agent":
			agents = v
		case "entity":
			entities = v
		}
		return true
	})
	t, err := time.Parse(time.RFC3339Nano, recorded)
	if err != nil {
		return s, errors.New("audit: the AuditEvent has no readable recorded time")
	}
	s.Recorded = t.UTC()
	if err := s.readOutcome(desc); err != nil {
		return s, err
	}
	agents.ForEach(func(_, a gjson.Result) bool {
		s.readAgent(a)
		return true
	})
	entities.ForEach(func(_, e gjson.Result) bool {
		s.readEntity(e)
		return true
	})
	return s, nil
}

// MayNameUser reports whether Summarize could find a patient or a proxy as the requesting user of body,
// an AuditEvent that Event wrote: it sets Role only from the role codes PAT and AGNT, so a body that
// spells neither, and escapes no character (JSON may spell any as \uXXXX), cannot. The uptake tally
// reads every record of the trail, and most are GP systems' reads and searches, which it passes over
// without parsing them whole.
func MayNameUser(body []byte) bool {
	return bytes.Contains(body, []byte(`"PAT"`)) || bytes.Contains(body, []byte(`"AGNT"`)) ||
		bytes.Contains(body, []byte(`\u`))
}

// InteractionOf reads body's restful-interaction code as Summarize does (Summary.Interaction), without
// parsing the rest of it.
func InteractionOf(body []byte) string {
	return gjson.GetBytes(body, "subtype.0.code").Str
}

// readAgent reads the requesting user's role and identity from an agent, when it is the requestor.
func (s *Summary) readAgent(a gjson.Result) {
	var requestor bool
	var typ, roles, who gjson.Result
	a.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "requestor":
			requestor = v.Type == gjson.True
		case "type":
			typ = v
		case "role":
			roles = v
		case "who":
			who = v
		}
		return true
	})
	if !requestor || typ.Get("coding.0.code").Str != "IRCP" {
		return
	}
	roles.ForEach(func(_, r gjson.Result) bool {
		r.Get("coding").ForEach(func(_, c gjson.Result) bool {
			switch c.Get("code").Str {
			case "PAT":
				s.Role = RolePatient
			case "AGNT":
				s.Role = RoleProxy
			}
			return true
		})
		return true
	})
	if s.Role == "" || !who.IsObject() {
		return
	}
	ref, id := refParts(who)
	if id.Get("system").Str == fhir.NHSNumberSystem {
		s.UserNHS = id.Get("value").Str
	}
	if typ, pid, ok := fhir.LocalRef(ref, ""); ok && typ == "Patient" {
		s.UserPatient = pid
	}
}

// readEntity reads a patient, or a resource touched with its patients, from an entity; the request's id
// and a search's query are passed over.
func (s *Summary) readEntity(e gjson.Result) {
	var what, details gjson.Result
	var query, typeCode, roleCode string
	e.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "what":
			what = v
		case "query":
			query = v.Str
		case "type":
			typeCode = v.Get("code").Str
		case "role":
			roleCode = v.Get("code").Str
		case "detail":
			details = v
		}
		return true
	})
	if !what.IsObject() || query != "" || typeCode == entityXReqID.Code {
		return
	}
	ref, id := refParts(what)
	if roleCode == rolePatient.Code {
		if typ, pid, ok := fhir.LocalRef(ref, ""); ok && typ == "Patient" {
			s.Patients = append(s.Patients, pid)
		} else if id.Get("system").Str == fhir.NHSNumberSystem {
			s.PatientNHS = id.Get("value").Str
		}
		return
	}
	ent, ok := parseEntityRef(ref)
	if !ok {
		return
	}
	details.ForEach(func(_, d gjson.Result) bool {
		if typ, pid, ok := fhir.LocalRef(d.Get("valueString").Str, ""); d.Get("type").Str == AuditPatientDetail && ok && typ == "Patient" {
			ent.PatientIDs = append(ent.PatientIDs, pid)
		}
		return true
	})
	s.Entities = append(s.Entities, ent)
}

// refParts reads a Reference's reference and identifier.
func refParts(r gjson.Result) (ref string, id gjson.Result) {
	r.ForEach(func(k, v gjson.Result) bool {
		switch k.Str {
		case "reference":
			ref = v.Str
		case "identifier":
			id = v
		}
		return true
	})
	return ref, id
}

// readOutcome reads outcomeDesc as outcomeDesc writes it: "[operation: ]status text[ (tag)]".
func (s *Summary) readOutcome(desc string) error {
	if open := strings.LastIndex(desc, " ("); open >= 0 && strings.HasSuffix(desc, ")") {
		tag := desc[open+2 : len(desc)-1]
		desc = desc[:open]
		if tag == WithheldTag {
			s.Withheld = true
		} else {
			s.Decision = tag
		}
	}
	if op, rest, ok := strings.Cut(desc, ": "); ok {
		s.Operation, desc = op, rest
	}
	code, _, _ := strings.Cut(desc, " ")
	n, err := strconv.Atoi(code)
	if err != nil {
		return errors.New("audit: the AuditEvent's outcomeDesc has no status")
	}
	s.Status = n
	if s.Status >= 400 {
		s.Withheld = false
	}
	return nil
}

// parseEntityRef reads Type/id or Type/id/_history/n, as Entity.Ref writes them.
func parseEntityRef(ref string) (Entity, bool) {
	parts := strings.Split(ref, "/")
	switch {
	case len(parts) == 2 && parts[0] != "" && parts[1] != "":
		return Entity{Type: parts[0], ID: parts[1]}, true
	case len(parts) == 4 && parts[0] != "" && parts[1] != "" && parts[2] == "_history":
		v, err := strconv.ParseInt(parts[3], 10, 64)
		if err != nil {
			return Entity{}, false
		}
		return Entity{Type: parts[0], ID: parts[1], Version: v}, true
	}
	return Entity{}, false
}

// summaryOf is Summarize(ev rendered), read from the event before it is rendered: what a process that
// writes a record can hand its own tally (NewRecord, Record.Summary) instead of the tally parsing the
// JSON back, which was a tenth of a patient's read (gpfhir bench, pprof). It follows Summarize step by
// step over the fields appendJSON writes, each string as JSON gives it back (jsonString);
// TestSummaryOfMatchesSummarize holds the two together.
func summaryOf(ev *auditEvent) (Summary, error) {
	var s Summary
	s.ID = jsonString(ev.ID)
	if len(ev.Subtype) > 0 {
		s.Interaction = jsonString(ev.Subtype[0].Code)
	}
	t, err := time.Parse(time.RFC3339Nano, ev.Recorded)
	if err != nil {
		return s, errors.New("audit: the AuditEvent has no readable recorded time")
	}
	s.Recorded = t.UTC()
	if err := s.readOutcome(jsonString(ev.OutcomeDesc)); err != nil {
		return s, err
	}
	for i := range ev.Agent {
		s.agentOf(&ev.Agent[i])
	}
	for i := range ev.Entity {
		s.entityOf(&ev.Entity[i])
	}
	return s, nil
}

// agentOf is readAgent over an agent before it is rendered.
func (s *Summary) agentOf(a *aeAgent) {
	if !a.Requestor || a.Type == nil || len(a.Type.Coding) == 0 || jsonString(a.Type.Coding[0].Code) != "IRCP" {
		return
	}
	for _, r := range a.Role {
		for _, c := range r.Coding {
			switch jsonString(c.Code) {
			case "PAT":
				s.Role = RolePatient
			case "AGNT":
				s.Role = RoleProxy
			}
		}
	}
	if s.Role == "" || a.Who == nil {
		return
	}
	if id := a.Who.Identifier; id != nil && jsonString(id.System) == fhir.NHSNumberSystem {
		s.UserNHS = jsonString(id.Value)
	}
	if typ, pid, ok := fhir.LocalRef(jsonString(a.Who.Reference), ""); ok && typ == "Patient" {
		s.UserPatient = pid
	}
}

// entityOf is readEntity over an entity before it is rendered.
func (s *Summary) entityOf(e *aeEntity) {
	var typeCode, roleCode string
	if e.Type != nil {
		typeCode = jsonString(e.Type.Code)
	}
	if e.Role != nil {
		roleCode = jsonString(e.Role.Code)
	}
	if e.What == nil || e.Query != "" || typeCode == entityXReqID.Code {
		return
	}
	ref := jsonString(e.What.Reference)
	if roleCode == rolePatient.Code {
		if typ, pid, ok := fhir.LocalRef(ref, ""); ok && typ == "Patient" {
			s.Patients = append(s.Patients, pid)
		} else if id := e.What.Identifier; id != nil && jsonString(id.System) == fhir.NHSNumberSystem {
			s.PatientNHS = jsonString(id.Value)
		}
		return
	}
	ent, ok := parseEntityRef(ref)
	if !ok {
		return
	}
	for _, d := range e.Detail {
		if typ, pid, ok := fhir.LocalRef(jsonString(d.ValueString), ""); jsonString(d.Type) == AuditPatientDetail && ok && typ == "Patient" {
			ent.PatientIDs = append(ent.PatientIDs, pid)
		}
	}
	s.Entities = append(s.Entities, ent)
}
