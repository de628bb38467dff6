package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
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

// mandatoryElements are the top-level elements with a minimum cardinality of 1 in R4. A choice element is
// written with "[x]". Every subset keeps them, so that a subsetted resource is still valid.
var mandatoryElements = map[string][]string{
	"Appointment":       {"status", "participant"},
	"MedicationRequest": {"status", "intent", "medication[x]", "subject"},
	"Immunization":      {"status", "vaccineCode", "patient", "occurrence[x]"},
	"Schedule":          {"actor"},
	"Slot":              {"schedule", "status", "start", "end"},
}

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
		if elementIn(name, alwaysKept) || elementIn(name, mandatoryElements[typ]) {
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
