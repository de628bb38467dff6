package audit

import (
	"strconv"
	"unicode/utf8"

	"github.com/gpfhir/gpfhir/fhir"
)

// Every request renders an AuditEvent, and encoding/json took 19 µs and 48 allocations for one
// (BenchmarkAuditEvent), most of it reflection over these few fixed types. They are written here by
// hand instead: each type's fields in declaration order, omitempty where its tag says so, and strings
// escaped exactly as encoding/json does with HTML escaping off (fhir.MarshalNoEscape), so that the
// bytes, and with them the chain's hashes, are what encoding/json gives. TestEventJSONIsEncodingJSONs
// holds the two to that.

func (ev *auditEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"resourceType":`...)
	b = appendString(b, ev.ResourceType)
	b = append(b, `,"id":`...)
	b = appendString(b, ev.ID)
	b = append(b, `,"meta":{"versionId":`...)
	b = appendString(b, ev.Meta.VersionID)
	b = append(b, `,"lastUpdated":`...)
	b = appendString(b, ev.Meta.LastUpdated)
	b = append(b, `},"type":`...)
	b = ev.Type.appendJSON(b)
	if len(ev.Subtype) > 0 {
		b = append(b, `,"subtype":`...)
		b = appendCodings(b, ev.Subtype)
	}
	b = append(b, `,"action":`...)
	b = appendString(b, ev.Action)
	b = append(b, `,"recorded":`...)
	b = appendString(b, ev.Recorded)
	b = append(b, `,"outcome":`...)
	b = appendString(b, ev.Outcome)
	if ev.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = appendString(b, ev.OutcomeDesc)
	}
	b = append(b, `,"agent":`...)
	if ev.Agent == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range ev.Agent {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Agent[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"source":`...)
	b = ev.Source.appendJSON(b)
	if len(ev.Entity) > 0 {
		b = append(b, `,"entity":[`...)
		for i := range ev.Entity {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Entity[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (c *aeCoding) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if c.System != "" {
		b = append(b, `"system":`...)
		b = appendString(b, c.System)
		b = append(b, ',')
	}
	b = append(b, `"code":`...)
	b = appendString(b, c.Code)
	if c.Display != "" {
		b = append(b, `,"display":`...)
		b = appendString(b, c.Display)
	}
	return append(b, '}')
}

func appendCodings(b []byte, cs []aeCoding) []byte {
	if cs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = cs[i].appendJSON(b)
	}
	return append(b, ']')
}

func (c *aeConcept) appendJSON(b []byte) []byte {
	b = append(b, `{"coding":`...)
	b = appendCodings(b, c.Coding)
	return append(b, '}')
}

func (r *aeReference) appendJSON(b []byte) []byte {
	b = append(b, '{')
	sep := false
	if r.Reference != "" {
		b = append(b, `"reference":`...)
		b = appendString(b, r.Reference)
		sep = true
	}
	if r.Identifier != nil {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"identifier":`...)
		b = r.Identifier.appendJSON(b)
		sep = true
	}
	if r.Display != "" {
		if sep {
			b = append(b, ',')
		}
		b = append(b, `"display":`...)
		b = appendString(b, r.Display)
	}
	return append(b, '}')
}

func (id *aeIdentifier) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if id.System != "" {
		b = append(b, `"system":`...)
		b = appendString(b, id.System)
		b = append(b, ',')
	}
	b = append(b, `"value":`...)
	b = appendString(b, id.Value)
	return append(b, '}')
}

func (a *aeAgent) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if a.Type != nil {
		b = append(b, `"type":`...)
		b = a.Type.appendJSON(b)
		b = append(b, ',')
	}
	if len(a.Role) > 0 {
		b = append(b, `"role":[`...)
		for i := range a.Role {
			if i > 0 {
				b = append(b, ',')
			}
			b = a.Role[i].appendJSON(b)
		}
		b = append(b, "],"...)
	}
	if a.Who != nil {
		b = append(b, `"who":`...)
		b = a.Who.appendJSON(b)
		b = append(b, ',')
	}
	if a.AltID != "" {
		b = append(b, `"altId":`...)
		b = appendString(b, a.AltID)
		b = append(b, ',')
	}
	if a.Name != "" {
		b = append(b, `"name":`...)
		b = appendString(b, a.Name)
		b = append(b, ',')
	}
	b = append(b, `"requestor":`...)
	b = strconv.AppendBool(b, a.Requestor)
	if len(a.Policy) > 0 {
		b = append(b, `,"policy":[`...)
		for i, p := range a.Policy {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, p)
		}
		b = append(b, ']')
	}
	if a.Network != nil {
		b = append(b, `,"network":{"address":`...)
		b = appendString(b, a.Network.Address)
		b = append(b, `,"type":`...)
		b = appendString(b, a.Network.Type)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (s *aeSource) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if s.Site != "" {
		b = append(b, `"site":`...)
		b = appendString(b, s.Site)
		b = append(b, ',')
	}
	b = append(b, `"observer":`...)
	b = s.Observer.appendJSON(b)
	if len(s.Type) > 0 {
		b = append(b, `,"type":`...)
		b = appendCodings(b, s.Type)
	}
	return append(b, '}')
}

func (e *aeEntity) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if e.What != nil {
		b = append(b, `"what":`...)
		b = e.What.appendJSON(b)
		b = append(b, ',')
	}
	if e.Type != nil {
		b = append(b, `"type":`...)
		b = e.Type.appendJSON(b)
		b = append(b, ',')
	}
	if e.Role != nil {
		b = append(b, `"role":`...)
		b = e.Role.appendJSON(b)
		b = append(b, ',')
	}
	if e.Query != "" {
		b = append(b, `"query":`...)
		b = appendString(b, e.Query)
		b = append(b, ',')
	}
	if len(e.Detail) > 0 {
		b = append(b, `"detail":[`...)
		for i, d := range e.Detail {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"type":`...)
			b = appendString(b, d.Type)
			b = append(b, `,"valueString":`...)
			b = appendString(b, d.ValueString)
			b = append(b, '}')
		}
		b = append(b, "],"...)
	}
	// Every field ended with a comma, which the last one does not keep.
	if b[len(b)-1] == ',' {
		b = b[:len(b)-1]
	}
	return append(b, '}')
}

// appendString appends s as a JSON string. Printable ASCII other than the quote and the backslash is
// written as it is; anything else (control characters, non-ASCII, invalid UTF-8) is left to
// encoding/json, whose rules (\u2028, U+FFFD for invalid bytes) are then followed exactly.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
			return append(b, fhir.MarshalNoEscape(s)...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
