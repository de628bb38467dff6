package fhir

import (
	"reflect"
	"strings"
	"testing"
)

func TestTranslateReadsTheR4Definitions(t *testing.T) {
	requestIntent := "http://hl7.org/fhir/request-intent"
	tests := []struct {
		name, typ  string
		pt         ParamType
		expr       string
		want       []Path
		wantTarget []string
	}{
		{"a plain element and its datatype", "Patient", ParamString, "Patient.name.family",
			[]Path{{Elements: "name.family", DataType: TypeString}}, nil},
		{"a code bound to one code system takes it as its system", "Patient", ParamToken, "Patient.gender",
			[]Path{{Elements: "gender", DataType: TypeCode, CodeSystem: "http://hl7.org/fhir/administrative-gender"}}, nil},
		{"a value set drawing on several code systems gives each code's", "Task", ParamToken, "Task.intent",
			[]Path{{Elements: "intent", DataType: TypeCode, CodeSystems: map[string]string{"unknown": "http://hl7.org/fhir/task-intent",
				"proposal": requestIntent, "plan": requestIntent, "order": requestIntent, "original-order": requestIntent,
				"reflex-order": requestIntent, "filler-order": requestIntent, "instance-order": requestIntent, "option": requestIntent}}}, nil},
		{"a cast choice is the element with its type suffix", "MedicationRequest", ParamToken, "(MedicationRequest.medication as CodeableConcept)",
			[]Path{{Elements: "medicationCodeableConcept", DataType: TypeCodeableConcept}}, nil},
		{"as() casts too", "Condition", ParamDate, "Condition.onset.as(dateTime) | Condition.onset.as(Period)",
			[]Path{{Elements: "onsetDateTime", DataType: TypeDate}, {Elements: "onsetPeriod", DataType: TypePeriod}}, nil},
		{"an uncast choice keeps the types the parameter can match", "Immunization", ParamDate, "Immunization.occurrence",
			[]Path{{Elements: "occurrenceDateTime", DataType: TypeDate}}, nil},
		{"resolve() is T narrows a reference and its targets", "Appointment", ParamReference, "Appointment.participant.actor.where(resolve() is Patient)",
			[]Path{{Elements: "participant.actor", DataType: TypeReference, RefType: "Patient"}}, []string{"Patient"}},
		{"a reference's targets come from its definition", "Condition", ParamReference, "Condition.subject",
			[]Path{{Elements: "subject", DataType: TypeReference}}, []string{"Patient", "Group"}},
		{"a where on a child value", "Patient", ParamToken, "Patient.telecom.where(system='phone')",
			[]Path{{Elements: "telecom", DataType: TypeContactPoint, WhereField: "system", WhereValue: "phone"}}, nil},
		{"terms of other types are skipped in a shared expression", "Condition", ParamDate,
			"AllergyIntolerance.recordedDate | Condition.recordedDate | Observation.effective",
			[]Path{{Elements: "recordedDate", DataType: TypeDate}}, nil},
		{"an element named after a reserved word", "Encounter", ParamToken, "Encounter.class",
			[]Path{{Elements: "class", DataType: TypeCoding}}, nil},
		{"a token on a string matches it as a code", "AuditEvent", ParamToken, "AuditEvent.agent.altId",
			[]Path{{Elements: "agent.altId", DataType: TypeCode}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Translate(tt.typ, tt.pt, tt.expr)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got.Paths, tt.want) {
				t.Errorf("paths\n got %+v\nwant %+v", got.Paths, tt.want)
			}
			if tt.wantTarget != nil && !reflect.DeepEqual(got.Targets, tt.wantTarget) {
				t.Errorf("targets %v, want %v", got.Targets, tt.wantTarget)
			}
		})
	}
}

func TestTranslateRefusesWhatTheIndexCannotHold(t *testing.T) {
	tests := []struct {
		name, typ string
		pt        ParamType
		expr      string
		says      string
	}{
		{"an unknown element", "Patient", ParamString, "Patient.nickname", "has no element nickname"},
		{"a quantity for a date", "Observation", ParamDate, "(Observation.value as Quantity)", "Quantity values are not indexed"},
		{"an unsupported function", "Patient", ParamToken, "Patient.name.first()", "not supported"},
		{"an unserved R4 type", "Spaceship", ParamToken, "Spaceship.id", "not an R4 resource type"},
		{"a choice cast to a type it cannot hold", "Condition", ParamDate, "Condition.onset.as(Quantity)", "no choice of type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Translate(tt.typ, tt.pt, tt.expr)
			if err == nil || !strings.Contains(err.Error(), tt.says) {
				t.Errorf("error %v, want one saying %q", err, tt.says)
			}
		})
	}
}
