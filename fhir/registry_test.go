package fhir

import (
	"sort"
	"testing"
)

func TestRegistryServesTheMissionTypesSorted(t *testing.T) {
	var names []string
	served := map[string]bool{}
	for _, ti := range Types() {
		names = append(names, ti.Name)
		served[ti.Name] = true
	}
	if !sort.StringsAreSorted(names) {
		t.Errorf("Types() not sorted: %v", names)
	}
	for _, want := range []string{"Appointment", "Immunization", "MedicationRequest", "Organization", "Patient", "Practitioner", "Schedule", "Slot",
		"AllergyIntolerance", "MedicationStatement", "Condition", "Observation", "Procedure", "DiagnosticReport", "Encounter",
		"ServiceRequest", "DocumentReference", "Composition", "Communication", "Group"} {
		if !served[want] {
			t.Errorf("%s is not served (Types() = %v)", want, names)
		}
		if ti, ok := LookupType(want); !ok || ti.Name != want {
			t.Errorf("LookupType(%q) = %v, %v", want, ti, ok)
		}
	}
	if _, ok := LookupType("Claim"); ok {
		t.Error("Claim is not served")
	}
	if _, ok := LookupType("patient"); ok {
		t.Error("LookupType must be case-sensitive")
	}
}

func TestRegistryParamsAreWellFormed(t *testing.T) {
	common := []string{"_id", "_lastUpdated", "_tag", "_profile", "_security"}
	for _, ti := range Types() {
		for _, c := range common {
			if _, ok := ti.Param(c); !ok {
				t.Errorf("%s lacks %s", ti.Name, c)
			}
		}
		for _, p := range ti.Params {
			if p.FromStore != (p.Code == "_id" || p.Code == "_lastUpdated") {
				t.Errorf("%s.%s: FromStore = %v", ti.Name, p.Code, p.FromStore)
			}
			if !p.FromStore && len(p.Paths) == 0 {
				t.Errorf("%s.%s has no paths", ti.Name, p.Code)
			}
			if p.Type == ParamReference && len(p.Targets) == 0 {
				t.Errorf("%s.%s: reference without targets", ti.Name, p.Code)
			}
			if p.Expression == "" || p.Description == "" || p.Definition == "" {
				t.Errorf("%s.%s: missing expression, description or definition", ti.Name, p.Code)
			}
			for _, path := range p.Paths {
				if want := pathTypeFor(p.Type, path.DataType); !want {
					t.Errorf("%s.%s: path %s of datatype %s cannot feed a %s parameter", ti.Name, p.Code, path.Elements, path.DataType, p.Type)
				}
			}
		}
	}
}

func pathTypeFor(pt ParamType, dt string) bool {
	switch pt {
	case ParamToken:
		switch dt {
		case TypeIdentifier, TypeCodeableConcept, TypeCoding, TypeCode, TypeBoolean, TypeContactPoint:
			return true
		}
	case ParamString:
		return dt == TypeString || dt == TypeHumanName || dt == TypeAddress
	case ParamDate:
		return dt == TypeDate || dt == TypePeriod
	case ParamReference:
		return dt == TypeReference
	case ParamURI:
		return dt == TypeURI
	}
	return false
}

func TestRegistryUsesR4Definitions(t *testing.T) {
	tests := []struct {
		typ, code string
		ptype     ParamType
		expr      string
	}{
		{"Patient", "phone", ParamToken, "Patient.telecom.where(system='phone')"},
		{"Patient", "general-practitioner", ParamReference, "Patient.generalPractitioner"},
		{"Patient", "organization", ParamReference, "Patient.managingOrganization"},
		{"Appointment", "patient", ParamReference, "Appointment.participant.actor.where(resolve() is Patient)"},
		{"Appointment", "date", ParamDate, "Appointment.start"},
		{"MedicationRequest", "code", ParamToken, "(MedicationRequest.medication as CodeableConcept)"},
		{"MedicationRequest", "medication", ParamReference, "(MedicationRequest.medication as Reference)"},
		{"Immunization", "date", ParamDate, "Immunization.occurrence"},
		{"Organization", "name", ParamString, "Organization.name | Organization.alias"},
		{"Schedule", "date", ParamDate, "Schedule.planningHorizon"},
		{"Slot", "start", ParamDate, "Slot.start"},
		{"Slot", "_profile", ParamURI, "Slot.meta.profile"},
		{"Group", "managing-entity", ParamReference, "Group.managingEntity"},
		{"Group", "member", ParamReference, "Group.member.entity"},
		{"Group", "actual", ParamToken, "Group.actual"},
	}
	for _, tt := range tests {
		ti, ok := LookupType(tt.typ)
		if !ok {
			t.Fatalf("%s not served", tt.typ)
		}
		p, ok := ti.Param(tt.code)
		if !ok {
			t.Errorf("%s.%s missing", tt.typ, tt.code)
			continue
		}
		if p.Type != tt.ptype || p.Expression != tt.expr {
			t.Errorf("%s.%s = %s %q, want %s %q", tt.typ, tt.code, p.Type, p.Expression, tt.ptype, tt.expr)
		}
	}
}
