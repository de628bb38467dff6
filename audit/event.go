package audit

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
)

// The audit trail's AuditEvents follow IHE Basic Audit Log Patterns (BALP) for RESTful interactions:
// type rest, the interaction as subtype, a client agent (DCM 110153, "Source Role ID": the requester),
// a server agent (DCM 110152, "Destination Role ID": this server), the user as the requesting agent with
// the token's jti as policy (BALP OAUTHaccessTokenUse), the X-Request-ID as a transaction entity, the
// patients and every resource touched as entities, and a search's query as a query entity. Only
// references, codes and identifiers go in: never a resource body or free text from a record, so that the
// audit trail does not become a second copy of the clinical data.

// Code systems of the AuditEvent elements.
const (
	AuditEventTypeSystem  = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	RestfulInteraction    = "http://hl7.org/fhir/restful-interaction"
	AuditActionSystem     = "http://hl7.org/fhir/audit-event-action"
	AuditOutcomeSystem    = "http://hl7.org/fhir/audit-event-outcome"
	AuditEntityTypeSystem = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	ObjectRoleSystem      = "http://terminology.hl7.org/CodeSystem/object-role"
	BALPEntityTypeSystem  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	DICOMSystem           = "http://dicom.nema.org/resources/ontology/DCM"
	ParticipationSystem   = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	RoleClassSystem       = "http://terminology.hl7.org/CodeSystem/v3-RoleClass"
	SourceTypeSystem      = "http://terminology.hl7.org/CodeSystem/security-source-type"
	NetworkTypeSystem     = "http://hl7.org/fhir/network-type"
	// OAuthClientSystem names OAuth client ids (BALP OAUTHaccessTokenUse.Comprehensive puts client_id in
	// the client agent's who.identifier).
	OAuthClientSystem = "urn:ietf:params:oauth:client-id"
	// JTIPrefix prefixes the token id in agent.policy, as BALP OAUTHaccessTokenUse does.
	JTIPrefix = "urn:ietf:params:oauth:jti:"
	// AuditPatientDetail is the entity.detail type that names the patient a touched resource belongs to,
	// so that a patient's view of an event can keep their own resources and drop everyone else's.
	AuditPatientDetail = "patient"
)

// User is who made the request, as far as it could be established: nothing for a request without a
// valid token, which is recorded all the same.
type User struct {
	// Kind is the caller's role (patient, system, auditor, commissioner).
	Kind string
	// Issuer and Subject identify the user at their identity provider.
	Issuer, Subject string
	// NHSNumber is a patient's NHS number; PatientID their Patient resource here, when known.
	NHSNumber, PatientID string
	// ProxyFor is the NHS number of the patient a proxy acts for; the user is then the acting agent.
	ProxyFor string
	// JTI is the access token's id.
	JTI string
	// ClientID is the OAuth client (the app or GP system) the token was issued to; ClientName its name.
	ClientID, ClientName string
}

// Entity is one resource an interaction touched (or tried to).
type Entity struct {
	Type, ID string
	// Version is the version touched; 0 for a resource that was named but not reached (a refusal, a 404).
	Version int64
	// PatientIDs are the patients whose record the resource is part of.
	PatientIDs []string
}

// Ref is the entity's reference: Type/id/_history/n, or Type/id without a version.
func (e Entity) Ref() string {
	if e.Version > 0 {
		return e.Type + "/" + e.ID + "/_history/" + strconv.FormatInt(e.Version, 10)
	}
	return e.Type + "/" + e.ID
}

// Input is everything one AuditEvent records.
type Input struct {
	ID       string
	Recorded time.Time
	// Interaction is the restful-interaction code (read, vread, search-type, history-instance, create,
	// update, patch, delete, operation, ...). Operation names the operation ("$verify").
	Interaction string
	Operation   string
	// Status is the HTTP status answered; Decision the access policy's outcome tag (deny-scope, ...).
	Status   int
	Decision string
	// RequestID is the X-Request-ID (echoed or generated).
	RequestID string
	// User is nil when no identity could be established (a missing or invalid token).
	User *User
	// ClientAddress is the requester's network address.
	ClientAddress string
	// Site is the server's base URL; Instance the id of this server process.
	Site, Instance string
	// Patients are the ids of the patients whose records the interaction concerned.
	Patients []string
	// Entities are the resources touched, in order.
	Entities []Entity
	// Query is the query string of a search, recorded base64-encoded as BALP asks.
	Query string
	// HasQuery records a query entity even when Query is empty (a search without parameters).
	HasQuery bool
	// Withheld says that a successful answer left out items the practice withholds from online access
	// (the searchset carried the confidential-items note). A refusal says so through Decision instead.
	Withheld bool
}

// Action is the BALP action code of an interaction: C, R, U, D, or E for searches, history
// listings and operations (BALP records a query as an execute).
func Action(interaction string) string {
	switch interaction {
	case "create":
		return "C"
	case "read", "vread", "history-instance":
		return "R"
	case "update", "patch":
		return "U"
	case "delete":
		return "D"
	}
	return "E"
}

// Outcome maps an HTTP status to the audit-event-outcome code: 0 success, 4 minor failure (the
// request was refused or wrong: 4xx), 8 serious failure (the server failed: 5xx).
func Outcome(status int) string {
	switch {
	case status < 400:
		return "0"
	case status < 500:
		return "4"
	}
	return "8"
}

type aeCoding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

type aeConcept struct {
	Coding []aeCoding `json:"coding"`
}

type aeIdentifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type aeReference struct {
	Reference  string        `json:"reference,omitempty"`
	Identifier *aeIdentifier `json:"identifier,omitempty"`
	Display    string        `json:"display,omitempty"`
}

type aeNetwork struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type aeAgent struct {
	Type      *aeConcept   `json:"type,omitempty"`
	Role      []aeConcept  `json:"role,omitempty"`
	Who       *aeReference `json:"who,omitempty"`
	AltID     string       `json:"altId,omitempty"`
	Name      string       `json:"name,omitempty"`
	Requestor bool         `json:"requestor"`
	Policy    []string     `json:"policy,omitempty"`
	Network   *aeNetwork   `json:"network,omitempty"`
}

type aeSource struct {
	Site     string      `json:"site,omitempty"`
	Observer aeReference `json:"observer"`
	Type     []aeCoding  `json:"type,omitempty"`
}

type aeDetail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

type aeEntity struct {
	What   *aeReference `json:"what,omitempty"`
	Type   *aeCoding    `json:"type,omitempty"`
	Role   *aeCoding    `json:"role,omitempty"`
	Query  string       `json:"query,omitempty"`
	Detail []aeDetail   `json:"detail,omitempty"`
}

type aeMeta struct {
	VersionID   string `json:"versionId"`
	LastUpdated string `json:"lastUpdated"`
}

type auditEvent struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	Meta         aeMeta     `json:"meta"`
	Type         aeCoding   `json:"type"`
	Subtype      []aeCoding `json:"subtype,omitempty"`
	Action       string     `json:"action"`
	Recorded     string     `json:"recorded"`
	Outcome      string     `json:"outcome"`
	OutcomeDesc  string     `json:"outcomeDesc,omitempty"`
	Agent        []aeAgent  `json:"agent"`
	Source       aeSource   `json:"source"`
	Entity       []aeEntity `json:"entity,omitempty"`
}

const instantLayout = "2006-01-02T15:04:05.000Z07:00"

// serverDisplay names this server in observer and agent references, the only display text an event has.
const serverDisplay = "gpfhir"

var (
	entityPerson = &aeCoding{System: AuditEntityTypeSystem, Code: "1", Display: "Person"}
	entityObject = &aeCoding{System: AuditEntityTypeSystem, Code: "2", Display: "System Object"}
	rolePatient  = &aeCoding{System: ObjectRoleSystem, Code: "1", Display: "Patient"}
	roleResource = &aeCoding{System: ObjectRoleSystem, Code: "4", Display: "Domain Resource"}
	roleQuery    = &aeCoding{System: ObjectRoleSystem, Code: "24", Display: "Query"}
	entityXReqID = &aeCoding{System: BALPEntityTypeSystem, Code: "XrequestId", Display: "X-Request-Id"}
)

// The parts of an AuditEvent that never change are shared by every event (the encoder only reads
// them).
var (
	sourceTypeServer = []aeCoding{{System: SourceTypeSystem, Code: "4", Display: "Application Server"}}
	agentTypeClient  = &aeConcept{Coding: []aeCoding{{System: DICOMSystem, Code: "110153", Display: "Source Role ID"}}}
	agentTypeServer  = &aeConcept{Coding: []aeCoding{{System: DICOMSystem, Code: "110152", Display: "Destination Role ID"}}}
	agentTypeUser    = &aeConcept{Coding: []aeCoding{{System: ParticipationSystem, Code: "IRCP", Display: "information recipient"}}}
	agentRoleProxy   = []aeConcept{{Coding: []aeCoding{{System: RoleClassSystem, Code: "AGNT", Display: "agent"}}}}
	agentRolePatient = []aeConcept{{Coding: []aeCoding{{System: RoleClassSystem, Code: "PAT", Display: "patient"}}}}
)

// eventParts holds the pieces of one event that would otherwise each be allocated on their own: the
// event is built from it in one allocation.
type eventParts struct {
	ev     auditEvent
	agents [3]aeAgent
	// entities and whats hold a small event's entities and their references: a read names the request,
	// one patient and one resource.
	entities [6]aeEntity
	whats    [4]aeReference
	refs     [5]aeReference
	ids      [4]aeIdentifier
	nets     [2]aeNetwork
	subtype  [1]aeCoding
	policy   [1]string
	n        struct{ refs, ids, nets int }
}

func (p *eventParts) ref(r aeReference) *aeReference   { return take(p.refs[:], &p.n.refs, r) }
func (p *eventParts) id(id aeIdentifier) *aeIdentifier { return take(p.ids[:], &p.n.ids, id) }
func (p *eventParts) net(n aeNetwork) *aeNetwork       { return take(p.nets[:], &p.n.nets, n) }

// take puts v in the next free slot of arr (*used of them are taken) and returns its address; when
// none is left, v is allocated on its own. That copy is made with new: returning &v would move v to the
// heap on every call, the slots' included.
func take[T any](arr []T, used *int, v T) *T {
	if *used == len(arr) {
		p := new(T)
		*p = v
		return p
	}
	arr[*used] = v
	*used++
	return &arr[*used-1]
}

// deviceRef is the reference to the server's Device, instance. A server is one instance and every record
// names it twice (Event and EventIndex), so the last one made is kept rather than made again.
func deviceRef(instance string) string {
	if p := lastDevice.Load(); p != nil && p[0] == instance {
		return p[1]
	}
	ref := "Device/" + instance
	lastDevice.Store(&[2]string{instance, ref})
	return ref
}

var lastDevice atomic.Pointer[[2]string]

// Event renders one AuditEvent, version 1 with lastUpdated = recorded, exactly as it is stored and
// served. It holds references, codes and identifiers only.
func Event(in Input) []byte {
	return eventOf(in).appendJSON(make([]byte, 0, eventCap(in)))
}

// eventCap is room for Event(in) in one allocation.
func eventCap(in Input) int { return 2048 + 512*(len(in.Entities)+len(in.Patients)) }

// eventOf builds the event Event renders.
func eventOf(in Input) *auditEvent {
	parts := &eventParts{}
	recorded := in.Recorded.UTC().Format(instantLayout)
	server := deviceRef(in.Instance)
	parts.subtype[0] = aeCoding{System: RestfulInteraction, Code: in.Interaction}
	ev := &parts.ev
	*ev = auditEvent{
		ResourceType: "AuditEvent",
		ID:           in.ID,
		Meta:         aeMeta{VersionID: "1", LastUpdated: recorded},
		Type:         aeCoding{System: AuditEventTypeSystem, Code: "rest", Display: "Restful Operation"},
		Subtype:      parts.subtype[:],
		Action:       Action(in.Interaction),
		Recorded:     recorded,
		Outcome:      Outcome(in.Status),
		OutcomeDesc:  outcomeDesc(in.Status, in.Decision, in.Operation, in.Withheld),
		Source: aeSource{
			Site:     in.Site,
			Observer: aeReference{Reference: server, Display: serverDisplay},
			Type:     sourceTypeServer,
		},
		Agent: parts.agents[:0],
	}
	if u := in.User; u != nil {
		ev.Agent = append(ev.Agent, userAgent(u, parts))
	}
	client := aeAgent{Type: agentTypeClient, Requestor: in.User == nil}
	if in.User != nil && in.User.ClientID != "" {
		client.Who = parts.ref(aeReference{Identifier: parts.id(aeIdentifier{System: OAuthClientSystem, Value: in.User.ClientID})})
		client.Name = in.User.ClientName
		if client.Name == "" {
			client.Name = in.User.ClientID
		}
	}
	if in.ClientAddress != "" {
		client.Network = parts.net(aeNetwork{Address: in.ClientAddress, Type: "2"}) // 2: IP address
	}
	ev.Agent = append(ev.Agent, client, aeAgent{
		Type:      agentTypeServer,
		Who:       parts.ref(aeReference{Reference: server, Display: serverDisplay}),
		Requestor: false,
		Network:   parts.net(aeNetwork{Address: in.Site, Type: "5"}), // 5: URI
	})
	patients := in.Patients
	if in.User != nil && in.User.ProxyFor != "" && in.User.PatientID != "" {
		// The patient a proxy acts for is always an entity, even when the request touched none of their
		// resources (an empty search, a refusal): it is how the patient's own trail finds the event.
		patients = append(patients[:len(patients):len(patients)], in.User.PatientID)
	}
	patients = uniqueSorted(patients)
	ev.Entity = parts.entities[:0]
	if n := 3 + len(patients) + len(in.Entities); n > len(parts.entities) {
		ev.Entity = make([]aeEntity, 0, n)
	}
	if in.RequestID != "" {
		ev.Entity = append(ev.Entity, aeEntity{
			What: parts.ref(aeReference{Identifier: parts.id(aeIdentifier{Value: in.RequestID})}),
			Type: entityXReqID,
		})
	}
	whats := parts.whats[:]
	if n := len(patients) + len(in.Entities); n <= len(whats) {
		whats = whats[:n]
	} else {
		whats = make([]aeReference, n)
	}
	for i, p := range patients {
		whats[i] = aeReference{Reference: "Patient/" + p}
		ev.Entity = append(ev.Entity, aeEntity{What: &whats[i], Type: entityPerson, Role: rolePatient})
	}
	if in.User != nil && in.User.ProxyFor != "" && in.User.PatientID == "" {
		// A proxy's patient is named by NHS number until proxy grants resolve it to a Patient.
		ev.Entity = append(ev.Entity, aeEntity{
			What: parts.ref(aeReference{Identifier: parts.id(aeIdentifier{System: fhir.NHSNumberSystem, Value: in.User.ProxyFor})}),
			Type: entityPerson, Role: rolePatient,
		})
	}
	for i, e := range in.Entities {
		what := &whats[len(patients)+i]
		*what = aeReference{Reference: e.Ref()}
		ent := aeEntity{What: what, Type: entityObject, Role: roleResource}
		if ids := uniqueSorted(e.PatientIDs); len(ids) > 0 {
			ent.Detail = make([]aeDetail, len(ids))
			for k, p := range ids {
				ent.Detail[k] = aeDetail{Type: AuditPatientDetail, ValueString: "Patient/" + p}
			}
		}
		ev.Entity = append(ev.Entity, ent)
	}
	if in.Query != "" || in.HasQuery {
		ev.Entity = append(ev.Entity, aeEntity{
			Type: entityObject, Role: roleQuery,
			Query: base64.StdEncoding.EncodeToString([]byte(in.Query)),
		})
	}
	return ev
}

// userAgent is the requesting person or system. A proxy is the acting agent (role AGNT) and the patient
// they act for is an entity.
func userAgent(u *User, parts *eventParts) aeAgent {
	a := aeAgent{Type: agentTypeUser, Requestor: true, AltID: u.Subject}
	var who aeReference
	switch {
	case u.NHSNumber != "":
		who.Identifier = parts.id(aeIdentifier{System: fhir.NHSNumberSystem, Value: u.NHSNumber})
	case u.Subject != "":
		who.Identifier = parts.id(aeIdentifier{System: u.Issuer, Value: u.Subject})
	}
	if u.PatientID != "" && u.ProxyFor == "" {
		who.Reference = "Patient/" + u.PatientID
	}
	if who.Identifier != nil || who.Reference != "" {
		a.Who = parts.ref(who)
	}
	switch {
	case u.ProxyFor != "":
		a.Role = agentRoleProxy
	case u.Kind == "patient":
		a.Role = agentRolePatient
	}
	if u.JTI != "" {
		parts.policy[0] = JTIPrefix + u.JTI
		a.Policy = parts.policy[:]
	}
	return a
}

// WithheldTag ends the outcomeDesc of a successful answer that left out items withheld from online
// access, in the place where a refusal names the policy's outcome tag.
const WithheldTag = "withheld-confidential"

// outcomeDesc is the HTTP status and, for refusals, the policy's outcome tag (for a success that withheld
// items, WithheldTag): codes only, because error diagnostics may quote submitted values. Summarize reads
// it back.
func outcomeDesc(status int, decision, operation string, withheld bool) string {
	s := strconv.Itoa(status) + " " + http.StatusText(status)
	if operation != "" {
		s = operation + ": " + s
	}
	switch {
	case decision != "" && status >= 400:
		s += " (" + decision + ")"
	case withheld && status < 400:
		s += " (" + WithheldTag + ")"
	}
	return s
}

// NewRecord is the audit record of in, ready to append: its AuditEvent and that event's search index.
func NewRecord(in Input, base string) Record {
	ev := eventOf(in)
	rec := Record{ID: in.ID, Recorded: in.Recorded, Body: ev.appendJSON(make([]byte, 0, eventCap(in))), Index: EventIndex(in, base)}
	if s, err := summaryOf(ev); err == nil {
		rec.Summary = &s
	}
	return rec
}

func uniqueSorted(ids []string) []string {
	if len(ids) < 2 {
		return ids
	}
	out := append([]string(nil), ids...)
	sort.Strings(out)
	n := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}

// Patients returns the ids of the patients an AuditEvent concerns: the Patient references of its
// agents and entities, which is what the AuditEvent "patient" search parameter indexes. Access rules use
// it so that what a patient may read and what their search finds agree.
func Patients(body []byte) ([]string, error) {
	var ev struct {
		Agent  []struct{ Who *aeReference }  `json:"agent"`
		Entity []struct{ What *aeReference } `json:"entity"`
	}
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	var ids []string
	add := func(r *aeReference) {
		if r == nil {
			return
		}
		if typ, id, ok := fhir.LocalRef(r.Reference, ""); ok && typ == "Patient" {
			ids = append(ids, id)
		}
	}
	for _, a := range ev.Agent {
		add(a.Who)
	}
	for _, e := range ev.Entity {
		add(e.What)
	}
	return uniqueSorted(ids), nil
}

// PatientView is what a patient (or their proxy) sees of an AuditEvent about their record: who
// accessed it (the user and the app's name), when, what was done and with what outcome, and which of
// their own resources were touched. Internal details are left out: network addresses, this server's
// instance, the token id, the request id, the query string, and every entity that belongs to another
// patient (a GP system's search may touch many patients' records in one event).
//
// names maps OAuth client ids to app names (the server's --client-name): a record written before its
// client had a name, which shows the bare id, shows the name now, since "gpfhir-dev-app" tells a patient
// nothing.
func PatientView(body []byte, own []string, names map[string]string) ([]byte, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(body, &ev); err != nil {
		return nil, err
	}
	var agents []aeAgent
	if err := json.Unmarshal(ev["agent"], &agents); err != nil {
		return nil, err
	}
	kept := agents[:0]
	for _, a := range agents {
		if a.Type != nil && len(a.Type.Coding) > 0 && a.Type.Coding[0].Code == "110152" {
			continue // the server agent: internal
		}
		a.Network, a.Policy, a.AltID = nil, nil, ""
		if w := a.Who; w != nil && w.Identifier != nil && w.Identifier.System == OAuthClientSystem &&
			(a.Name == "" || a.Name == w.Identifier.Value) && names[w.Identifier.Value] != "" {
			a.Name = names[w.Identifier.Value]
		}
		if a.Who != nil && a.Who.Reference != "" && !ownRef(a.Who.Reference, own) {
			a.Who.Reference = "" // another patient's record (a proxy's own): keep the identity, not the link
		}
		kept = append(kept, a)
	}
	var entities []aeEntity
	if raw, ok := ev["entity"]; ok {
		if err := json.Unmarshal(raw, &entities); err != nil {
			return nil, err
		}
	}
	var keptEntities []aeEntity
	for _, e := range entities {
		switch {
		case e.Query != "" || (e.Role != nil && e.Role.Code == roleQuery.Code):
			continue
		case e.What == nil || e.What.Reference == "":
			continue // the request id, or a patient named by identifier only
		case ownRef(e.What.Reference, own):
		case len(e.Detail) > 0 && ownDetail(e.Detail, own):
		default:
			continue
		}
		e.Detail = nil
		keptEntities = append(keptEntities, e)
	}
	set := func(k string, v any) error {
		raw, err := json.Marshal(v)
		ev[k] = raw
		return err
	}
	if err := set("agent", kept); err != nil {
		return nil, err
	}
	if len(keptEntities) > 0 {
		if err := set("entity", keptEntities); err != nil {
			return nil, err
		}
	} else {
		delete(ev, "entity")
	}
	if err := set("source", aeSource{Observer: aeReference{Display: serverDisplay}}); err != nil {
		return nil, err
	}
	return marshalOrdered(ev, auditFieldOrder), nil
}

var auditFieldOrder = []string{"resourceType", "id", "meta", "type", "subtype", "action", "recorded", "outcome",
	"outcomeDesc", "agent", "source", "entity"}

// marshalOrdered writes an object with the given keys first, in order, then any others sorted, so that a
// rewritten resource keeps the familiar order (resourceType first).
func marshalOrdered(m map[string]json.RawMessage, order []string) []byte {
	var b strings.Builder
	b.WriteByte('{')
	first := true
	write := func(k string) {
		v, ok := m[k]
		if !ok {
			return
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		kb, _ := json.Marshal(k)
		b.Write(kb)
		b.WriteByte(':')
		b.Write(v)
	}
	seen := map[string]bool{}
	for _, k := range order {
		write(k)
		seen[k] = true
	}
	var rest []string
	for k := range m {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		write(k)
	}
	b.WriteByte('}')
	return []byte(b.String())
}

func ownRef(ref string, own []string) bool {
	typ, id, ok := fhir.LocalRef(ref, "")
	if !ok || typ != "Patient" {
		return false
	}
	for _, o := range own {
		if o == id {
			return true
		}
	}
	return false
}

func ownDetail(details []aeDetail, own []string) bool {
	for _, d := range details {
		if d.Type == AuditPatientDetail && ownRef(d.ValueString, own) {
			return true
		}
	}
	return false
}
