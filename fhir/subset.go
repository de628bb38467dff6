package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// SubsetMode says which elements Subset keeps, after the R4 _summary and _elements parameters.
type SubsetMode int

const (
	// SummaryTrue keeps the elements the base definition marks isSummary (_summary=true).
	SummaryTrue SubsetMode = iota + 1
	// SummaryText keeps the narrative (_summary=text).
	SummaryText
	// SummaryData drops the narrative and keeps everything else (_summary=data).
	SummaryData
	// SubsetElements keeps the named top-level elements (_elements).
	SubsetElements
)

// Subsetted is the meta.tag that marks a resource served with some of its elements left out, so that a
// client does not mistake it for the whole resource (R4 search.html, _summary).
const (
	SubsettedSystem = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
	SubsettedCode   = "SUBSETTED"
)

// alwaysKept are kept in every subset: without them the result is not a resource, or not this one.
var alwaysKept = []string{"resourceType", "id", "meta", "implicitRules"}

// mandatoryElements returns the top-level elements of typ with a minimum cardinality of 1 in R4, as
// google/fhir/go's R4 descriptors mark them (a choice element is written with "[x]"). Every subset keeps
// them, so that a subsetted resource is still valid.
func mandatoryElements(typ string) []string {
	return mandatory()[typ]
}

var mandatory = sync.OnceValue(func() map[string][]string {
	out := map[string][]string{}
	for typ, md := range resourceDescriptors() {
		fields := md.Fields()
		for i := 0; i < fields.Len(); i++ {
			f := fields.Get(i)
			if r, _ := proto.GetExtension(f.Options(), apb.E_ValidationRequirement).(apb.Requirement); r != apb.Requirement_REQUIRED_BY_FHIR {
				continue
			}
			name := f.JSONName()
			if f.Kind() == protoreflect.MessageKind && isChoice(f.Message()) {
				name += "[x]"
			}
			out[typ] = append(out[typ], name)
		}
	}
	return out
})

// summaryElements are the top-level elements that R4 marks isSummary ("Σ") for each served type.
var summaryElements = map[string][]string{
	"Patient": {"identifier", "active", "name", "telecom", "gender", "birthDate", "deceased[x]", "address",
		"managingOrganization", "link"},
	"Appointment": {"identifier", "status", "cancelationReason", "serviceCategory", "serviceType", "specialty",
		"appointmentType", "start", "end", "participant"},
	"MedicationRequest": {"identifier", "status", "intent", "priority", "doNotPerform", "reported[x]",
		"medication[x]", "subject", "authoredOn", "requester"},
	"Immunization": {"identifier", "status", "vaccineCode", "patient", "occurrence[x]", "primarySource",
		"performer"},
	"Organization": {"identifier", "active", "type", "name", "partOf"},
	"Practitioner": {"identifier", "active", "name", "telecom", "address", "gender", "birthDate"},
	"Schedule": {"identifier", "active", "serviceCategory", "serviceType", "specialty", "actor",
		"planningHorizon"},
	"Slot": {"identifier", "serviceCategory", "serviceType", "specialty", "appointmentType", "schedule",
		"status", "start", "end"},
	"Location": {"identifier", "status", "operationalStatus", "name", "description", "mode", "type",
		"physicalType", "managingOrganization"},
	"AllergyIntolerance": {"identifier", "clinicalStatus", "verificationStatus", "type", "category", "criticality",
		"code", "patient"},
	"MedicationStatement": {"identifier", "basedOn", "partOf", "status", "statusReason", "category", "medication[x]",
		"subject", "context", "effective[x]", "dateAsserted", "informationSource"},
	"Condition": {"identifier", "clinicalStatus", "verificationStatus", "category", "severity", "code", "bodySite",
		"subject", "encounter", "onset[x]", "abatement[x]", "recordedDate"},
	"Observation": {"identifier", "basedOn", "partOf", "status", "category", "code", "subject", "focus", "encounter",
		"effective[x]", "issued", "performer", "value[x]", "dataAbsentReason", "hasMember", "derivedFrom", "component"},
	"Procedure": {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf", "status",
		"statusReason", "category", "code", "subject", "encounter", "performed[x]", "recorder", "asserter", "performer",
		"location", "reasonCode", "reasonReference", "bodySite"},
	"DiagnosticReport": {"identifier", "basedOn", "status", "category", "code", "subject", "encounter", "effective[x]",
		"issued", "performer", "resultsInterpreter", "result"},
	"Encounter": {"identifier", "status", "class", "type", "serviceType", "priority", "subject", "episodeOfCare",
		"basedOn", "participant", "appointment", "period", "reasonCode", "reasonReference", "diagnosis", "account",
		"serviceProvider", "partOf"},
	"ServiceRequest": {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "replaces", "requisition",
		"status", "intent", "category", "priority", "doNotPerform", "code", "orderDetail", "quantity[x]", "subject",
		"encounter", "occurrence[x]", "asNeeded[x]", "authoredOn", "requester", "performerType", "performer",
		"locationCode", "locationReference", "reasonCode", "reasonReference", "insurance", "specimen", "bodySite"},
	"DocumentReference": {"masterIdentifier", "identifier", "status", "docStatus", "type", "category", "subject",
		"date", "author", "authenticator", "custodian", "relatesTo", "description", "securityLabel", "content", "context"},
	"Composition": {"identifier", "status", "type", "category", "subject", "encounter", "date", "author", "title",
		"confidentiality", "attester", "custodian", "relatesTo", "event"},
	"Communication": {"identifier", "instantiatesCanonical", "instantiatesUri", "basedOn", "partOf", "status",
		"statusReason", "category", "priority", "medium", "subject", "topic", "about", "encounter", "sent", "received",
		"recipient", "sender", "reasonCode", "reasonReference"},
}

// elementIn reports whether the JSON member name is one of the element names in list, where "x[x]" names
// every choice member "xString", "xReference", ...
func elementIn(name string, list []string) bool {
	for _, e := range list {
		if base, ok := strings.CutSuffix(e, "[x]"); ok {
			if len(name) > len(base) && strings.HasPrefix(name, base) && name[len(base)] >= 'A' && name[len(base)] <= 'Z' {
				return true
			}
			continue
		}
		if name == e {
			return true
		}
	}
	return false
}

// Subset returns a copy of the resource body with only the elements the mode keeps, plus the mandatory
// ones, and meta.tag SUBSETTED added. For SubsetElements, elements are the names asked for; a dotted
// path keeps its top-level element, and a choice element may be named without its type ("medication").
// Member order is kept. Subset fails only if body is not a JSON object.
func Subset(body []byte, mode SubsetMode, elements []string) ([]byte, error) {
	members, err := objectMembers(body)
	if err != nil {
		return nil, err
	}
	var typ string
	for _, m := range members {
		if m.name == "resourceType" {
			_ = json.Unmarshal(m.value, &typ)
		}
	}
	var asked []string
	for _, e := range elements {
		top, _, _ := strings.Cut(e, ".")
		asked = append(asked, top, top+"[x]")
	}
	keep := func(name string) bool {
		if elementIn(name, alwaysKept) || elementIn(name, mandatoryElements(typ)) {
			return true
		}
		switch mode {
		case SummaryTrue:
			return elementIn(name, summaryElements[typ])
		case SummaryText:
			return name == "text"
		case SummaryData:
			return name != "text"
		case SubsetElements:
			return elementIn(name, asked)
		}
		return true
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	hasMeta := false
	for _, m := range members {
		if !keep(m.name) {
			continue
		}
		value := m.value
		if m.name == "meta" {
			hasMeta = true
			if value, err = tagSubsetted(value); err != nil {
				return nil, err
			}
		}
		writeMember(&buf, m.name, value)
	}
	if !hasMeta {
		meta, _ := tagSubsetted([]byte("{}"))
		writeMember(&buf, "meta", meta)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

var subsettedTag = json.RawMessage(`{"system":"` + SubsettedSystem + `","code":"` + SubsettedCode + `"}`)

// tagSubsetted adds the SUBSETTED tag to a meta object, once.
func tagSubsetted(meta []byte) ([]byte, error) {
	members, err := objectMembers(meta)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.WriteByte('{')
	tagged := false
	for _, m := range members {
		value := m.value
		if m.name == "tag" {
			var tags []json.RawMessage
			if err := json.Unmarshal(value, &tags); err != nil {
				return nil, err
			}
			if !bytes.Contains(value, []byte(`"`+SubsettedCode+`"`)) {
				tags = append(tags, subsettedTag)
			}
			value, _ = json.Marshal(tags)
			tagged = true
		}
		writeMember(&buf, m.name, value)
	}
	if !tagged {
		writeMember(&buf, "tag", []byte("["+string(subsettedTag)+"]"))
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

func writeMember(buf *bytes.Buffer, name string, value []byte) {
	if buf.Len() > 1 {
		buf.WriteByte(',')
	}
	k, _ := json.Marshal(name)
	buf.Write(k)
	buf.WriteByte(':')
	buf.Write(value)
}

type member struct {
	name  string
	value json.RawMessage
}

var errNotObject = errors.New("fhir: not a JSON object")

// objectMembers splits a JSON object into its members, in order.
func objectMembers(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errNotObject
	}
	var out []member
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		name, ok := t.(string)
		if !ok {
			return nil, errNotObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		out = append(out, member{name, v})
	}
	return out, nil
}
