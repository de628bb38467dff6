package conformance

import (
	"strings"
	"time"
)

// searchCase is one search of a type's fixture pair and its answer: which of A and B it must match.
type searchCase struct {
	name  string
	key   string
	value string
	want  string // the variants that must match: "A", "B", "AB" or ""
	// optional marks a feature R4 lets a server leave out (most modifiers, chains, absolute references):
	// a server that refuses it with 400 and an OperationOutcome, or ignores it and says so by leaving it
	// out of the self link, is skipped, not failed. When a server applies it, the answer must be right.
	optional bool
	// ignoreB leaves B out of the judgement (ap, whose reach is the server's choice).
	ignoreB bool
	// extra are further name, value pairs of the query.
	extra []string
}

// paramSpec says how to test one search parameter on the fixtures.
type paramSpec struct {
	gen func(s *suite, typ, p string) ([]searchCase, error)
	// ref, for reference parameters, is what A and B point at; include and revinclude use it too.
	ref *refDef
	// date parameters sort: aEarlier says which of the pair sorts first.
	date     bool
	aEarlier bool
}

// refDef is what a reference parameter of the pair points at.
type refDef struct {
	target string
	// a and b are the target variants; "" is no reference, "home" the organisation patients are
	// registered at.
	a, b string
	// alsoA are further types A points at through the same parameter, each at its variant A.
	alsoA []string
}

func token(system, a, b, text string) paramSpec {
	return paramSpec{gen: func(s *suite, typ, p string) ([]searchCase, error) {
		sa := a
		if system != "" {
			sa = system + "|" + a
		}
		cs := []searchCase{
			{name: "code", key: p, value: a, want: "A"},
			{name: "or", key: p, value: a + "," + b, want: "AB"},
			{name: "not", key: p + ":not", value: sa, want: "B", optional: true},
			{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true},
		}
		if system != "" {
			cs = append(cs,
				searchCase{name: "system-code", key: p, value: sa, want: "A"},
				searchCase{name: "system-any", key: p, value: system + "|", want: "AB"})
		}
		if text != "" {
			cs = append(cs, searchCase{name: "text", key: p + ":text", value: text, want: "A", optional: true})
		}
		return cs, nil
	}}
}

func boolean() paramSpec {
	return paramSpec{gen: func(s *suite, typ, p string) ([]searchCase, error) {
		return []searchCase{
			{name: "true", key: p, value: "true", want: "A"},
			{name: "false", key: p, value: "false", want: "B"},
			{name: "not", key: p + ":not", value: "true", want: "B", optional: true},
			{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true},
		}, nil
	}}
}

func identifier() paramSpec {
	return paramSpec{gen: func(s *suite, typ, p string) ([]searchCase, error) {
		va, vb := s.identifierValue(typ, "A"), s.identifierValue(typ, "B")
		cs := []searchCase{
			{name: "value", key: p, value: va, want: "A"},
			{name: "system-value", key: p, value: IdentifierSystem + "|" + va, want: "A"},
			{name: "system-any", key: p, value: IdentifierSystem + "|", want: "AB"},
			{name: "or", key: p, value: IdentifierSystem + "|" + va + "," + IdentifierSystem + "|" + vb, want: "AB"},
			{name: "not", key: p + ":not", value: IdentifierSystem + "|" + va, want: "B", optional: true},
			{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true},
		}
		if typ == "Patient" {
			cs = append(cs, searchCase{name: "nhs-number", key: p, value: nhsSystem + "|" + s.nhsNumber("A"), want: "A"})
		}
		return cs, nil
	}}
}

func text(a, b, bFolded, contains string) paramSpec {
	return paramSpec{gen: func(s *suite, typ, p string) ([]searchCase, error) {
		prefix := strings.ToLower(firstRunes(a, 3))
		bPrefix := bFolded
		if bPrefix == "" {
			bPrefix = strings.ToLower(firstRunes(b, 3))
		}
		cs := []searchCase{
			{name: "prefix", key: p, value: prefix, want: "A"},
			{name: "case", key: p, value: strings.ToUpper(a), want: "A"},
			{name: "or", key: p, value: prefix + "," + bPrefix, want: "AB"},
			{name: "exact", key: p + ":exact", value: a, want: "A", optional: true},
			{name: "contains", key: p + ":contains", value: contains, want: "A", optional: true},
			{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true},
		}
		if bFolded != "" {
			// R4 search.html: a string matches "after both have been normalized by case and accent".
			cs = append(cs, searchCase{name: "accent", key: p, value: bFolded, want: "B"})
		}
		if l := strings.ToLower(a); l != a {
			cs = append(cs, searchCase{name: "exact-case", key: p + ":exact", value: l, want: "", optional: true})
		}
		return cs, nil
	}}
}

func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// date tests a date parameter: eqA is a value whose range contains A's (a day, or a year for a period),
// mid a day between A and B.
func date(eqA, mid string, aEarlier bool) paramSpec {
	return paramSpec{date: true, aEarlier: aEarlier, gen: func(s *suite, typ, p string) ([]searchCase, error) {
		lo, hi := "B", "A"
		if aEarlier {
			lo, hi = "A", "B"
		}
		cs := []searchCase{
			{name: "plain", key: p, value: eqA, want: "A"},
			{name: "eq", key: p, value: "eq" + eqA, want: "A"},
			{name: "ne", key: p, value: "ne" + eqA, want: "B"},
			{name: "lt", key: p, value: "lt" + mid, want: lo},
			{name: "le", key: p, value: "le" + mid, want: lo},
			{name: "gt", key: p, value: "gt" + mid, want: hi},
			{name: "ge", key: p, value: "ge" + mid, want: hi},
			{name: "sa", key: p, value: "sa" + mid, want: hi},
			{name: "eb", key: p, value: "eb" + mid, want: lo},
			{name: "ap", key: p, value: "ap" + eqA, want: "A", ignoreB: true},
			// Repeating a parameter ANDs it: after mid and before mid is neither.
			{name: "and", key: p, value: "ge" + mid, extra: []string{p, "lt" + mid}, want: ""},
			{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true},
		}
		if len(eqA) > 4 {
			cs = append(cs, searchCase{name: "year", key: p, value: eqA[:4], want: "A"})
		}
		return cs, nil
	}}
}

func missingOnly() paramSpec {
	return paramSpec{gen: func(s *suite, typ, p string) ([]searchCase, error) {
		return []searchCase{{name: "missing", key: p + ":missing", value: "true", want: "AB", optional: true}}, nil
	}}
}

func ref(target, a, b string, alsoA ...string) paramSpec {
	return paramSpec{ref: &refDef{target: target, a: a, b: b, alsoA: alsoA}}
}

// refTo resolves a reference variant: "" none, "home" the patients' organisation.
func (s *suite) refTo(typ, v string) (string, error) {
	switch v {
	case "":
		return "", nil
	case "home":
		return s.homeOrganization()
	}
	return s.ref(typ, v)
}

func (s *suite) refCases(p string, d *refDef) ([]searchCase, error) {
	ra, err := s.refTo(d.target, d.a)
	if err != nil {
		return nil, err
	}
	rb, err := s.refTo(d.target, d.b)
	if err != nil {
		return nil, err
	}
	same := ra == rb
	one := "A"
	if same {
		one = "AB"
	}
	typ, idA, _ := strings.Cut(ra, "/")
	cs := []searchCase{
		{name: "id", key: p, value: idA, want: one},
		{name: "type-id", key: p, value: ra, want: one},
		{name: "url", key: p, value: s.base + "/" + ra, want: one, optional: true},
		{name: "typed", key: p + ":" + typ, value: idA, want: one, optional: true},
	}
	if rb != "" && !same {
		cs = append(cs, searchCase{name: "or", key: p, value: ra + "," + rb, want: "AB"})
	}
	if rb == "" {
		cs = append(cs,
			searchCase{name: "missing", key: p + ":missing", value: "true", want: "B", optional: true},
			searchCase{name: "present", key: p + ":missing", value: "false", want: "A", optional: true})
	} else {
		cs = append(cs, searchCase{name: "missing", key: p + ":missing", value: "false", want: "AB", optional: true})
	}
	if d.a != "home" {
		if _, ok := s.cs.param(typ, "identifier"); ok && fixtureDefs[typ].build != nil {
			cs = append(cs, searchCase{name: "chain", key: p + ":" + typ + ".identifier",
				value: IdentifierSystem + "|" + s.identifierValue(typ, d.a), want: one, optional: true})
		}
	}
	return cs, nil
}

// commonParams are the parameters of every resource.
var commonParams map[string]paramSpec

// searchTable says, for each type the suite makes fixtures for, how each search parameter is tested.
// The values are those of fixtureDefs.
var searchTable map[string]map[string]paramSpec

// The tables are filled in init: their case builders create fixtures through functions that read them.
func init() {
	commonParams = map[string]paramSpec{
		"_id": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
			a, b := s.ensure(typ, "A"), s.ensure(typ, "B")
			return []searchCase{
				{name: "id", key: p, value: a.id, want: "A"},
				{name: "or", key: p, value: a.id + "," + b.id, want: "AB"},
			}, nil
		}},
		"_lastUpdated": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
			before := s.since()
			after := s.serverNow().Add(24 * time.Hour).UTC().Format("2006-01-02T15:04:05Z")
			return []searchCase{
				{name: "ge", key: p, value: "ge" + before, want: "AB"},
				{name: "lt", key: p, value: "lt" + before, want: ""},
				{name: "gt", key: p, value: "gt" + after, want: ""},
			}, nil
		}},
		"_tag": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
			return []searchCase{
				{name: "system-code", key: p, value: s.tagParam(), want: "AB"},
				{name: "code", key: p, value: s.runID, want: "AB"},
				{name: "other", key: p, value: TagSystem + "|" + s.runID + "x", want: ""},
			}, nil
		}},
		"_security": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
			return []searchCase{{name: "system-code", key: p, value: actReason + "|HTEST", want: "AB"}}, nil
		}},
		"_profile": missingOnly(),
	}

	searchTable = map[string]map[string]paramSpec{
		"Organization": {
			"identifier": identifier(),
			"name":       text("Ashdown Medical Centre", "Élan Health Centre", "elan", "down med"),
			"active": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
				return []searchCase{{name: "true", key: p, value: "true", want: "AB"}}, nil
			}},
		},
		"Practitioner": {
			"identifier": identifier(),
			"name":       text("Adebayo", "Bélanger", "belan", "deba"),
			"family":     text("Adebayo", "Bélanger", "belan", "deba"),
			"given":      text("Grace", "Luc", "", "rac"),
			"gender":     token("http://hl7.org/fhir/administrative-gender", "female", "male", ""),
		},
		"Location": {
			"identifier":         identifier(),
			"name":               text("Ashdown Branch Surgery", "Église Road Clinic", "eglis", "branch"),
			"organization":       ref("Organization", "A", "B"),
			"address-postalcode": text("LS2 7AA", "M2 3BB", "", "2 7A"),
			"address-city":       text("Leeds", "Manchester", "", "eed"),
			"status": {gen: func(s *suite, typ, p string) ([]searchCase, error) {
				return []searchCase{{name: "code", key: p, value: "active", want: "AB"}}, nil
			}},
		},
		"Patient": {
			"identifier":           identifier(),
			"name":                 text("Ashcroft", "Ångström", "angst", "shcro"),
			"family":               text("Ashcroft", "Ångström", "angst", "shcro"),
			"given":                text("Amelia", "Bo", "", "meli"),
			"birthdate":            date("1980-05-17", "1986-06-15", true),
			"gender":               token("http://hl7.org/fhir/administrative-gender", "female", "male", ""),
			"address-postalcode":   text("LS1 4AP", "M1 1AE", "", "1 4A"),
			"address-city":         text("Leeds", "Manchester", "", "eed"),
			"telecom":              token("", "01134960001", "01614960002", ""),
			"phone":                token("", "01134960001", "01614960002", ""),
			"email":                token("", "amelia.ashcroft@example.org", "bo.angstrom@example.org", ""),
			"general-practitioner": ref("Practitioner", "A", "B", "Organization"),
			"organization":         ref("Organization", "home", "home"),
			"active":               boolean(),
		},
		"Schedule": {
			"identifier":      identifier(),
			"actor":           ref("Location", "A", "B", "Practitioner"),
			"date":            date("2030", "2030-07-01", true),
			"active":          boolean(),
			"service-type":    token(svcType, "124", "57", "general"),
			"online-bookable": boolean(),
		},
		"Slot": {
			"identifier":      identifier(),
			"schedule":        ref("Schedule", "A", "B"),
			"start":           date("2030-02-04", "2030-07-01", true),
			"status":          token("http://hl7.org/fhir/slotstatus", "free", "busy", ""),
			"service-type":    token(svcType, "124", "57", "general"),
			"online-bookable": boolean(),
		},
		"Appointment": {
			"identifier":       identifier(),
			"patient":          ref("Patient", "A", "B"),
			"actor":            ref("Patient", "A", "B", "Practitioner", "Location"),
			"practitioner":     ref("Practitioner", "A", "B"),
			"location":         ref("Location", "A", ""),
			"slot":             ref("Slot", "X", ""),
			"date":             date("2030-02-04", "2026-01-01", false),
			"status":           token("http://hl7.org/fhir/appointmentstatus", "booked", "fulfilled", ""),
			"service-type":     token(svcType, "124", "57", "general"),
			"appointment-type": token(apptType, "ROUTINE", "FOLLOWUP", "routine"),
		},
		"MedicationRequest": {
			"identifier": identifier(),
			"patient":    ref("Patient", "A", "B"),
			"subject":    ref("Patient", "A", "B"),
			"requester":  ref("Practitioner", "A", "B"),
			"status":     token("http://hl7.org/fhir/CodeSystem/medicationrequest-status", "active", "stopped", ""),
			"intent":     token("http://hl7.org/fhir/CodeSystem/medicationrequest-intent", "order", "plan", ""),
			"authoredon": date("2024-02-01", "2022-09-01", false),
			"code":       token(dmd, "39732311000001104", "39720311000001101", "amlod"),
			"medication": missingOnly(),
		},
		"Immunization": {
			"identifier":   identifier(),
			"patient":      ref("Patient", "A", "B"),
			"date":         date("2024-01-15", "2021-06-01", false),
			"status":       token("http://hl7.org/fhir/event-status", "completed", "not-done", ""),
			"vaccine-code": token(snomed, "39114911000001105", "34680411000001107", "covid"),
			"lot-number":   text("AB1234", "XY9876", "", "B123"),
		},
		"Task": {
			"identifier": identifier(),
			"status":     token("http://hl7.org/fhir/task-status", "requested", "completed", ""),
			// R4's task-intent value set takes order and plan from request-intent (task-intent adds only
			// unknown), so that is their system.
			"intent":      token("http://hl7.org/fhir/request-intent", "order", "plan", ""),
			"code":        token(taskCode, "fulfill", "approve", "fulfill"),
			"focus":       ref("MedicationRequest", "A", "B"),
			"patient":     ref("Patient", "A", "B"),
			"subject":     ref("Patient", "A", "B"),
			"owner":       ref("Organization", "A", "B"),
			"requester":   ref("Practitioner", "A", "B"),
			"authored-on": date("2024-03-01", "2022-01-01", false),
			"modified":    date("2024-03-02", "2022-01-01", false),
		},
		"RelatedPerson": {
			"identifier": identifier(),
			"patient":    ref("Patient", "A", "B"),
			"active":     boolean(),
			"name":       text("Aldridge", "Öberg", "ober", "ldri"),
		},
	}
}

// paramSpecFor returns how to test typ's parameter p, if the suite knows.
func paramSpecFor(typ, p string) (paramSpec, bool) {
	if spec, ok := searchTable[typ][p]; ok {
		return spec, true
	}
	if _, known := searchTable[typ]; !known {
		return paramSpec{}, false
	}
	spec, ok := commonParams[p]
	return spec, ok
}

// casesFor builds the cases of one parameter, creating the fixtures they name.
func (s *suite) casesFor(typ, p string, spec paramSpec) ([]searchCase, error) {
	if spec.ref != nil {
		return s.refCases(p, spec.ref)
	}
	return spec.gen(s, typ, p)
}

// refsOf is what the A (or B) fixture points at through a reference parameter: "Type/id" values.
func (s *suite) refsOf(typ, p, v string) []string {
	spec, ok := paramSpecFor(typ, p)
	if !ok || spec.ref == nil {
		return nil
	}
	d := spec.ref
	tv := d.a
	if v == "B" {
		tv = d.b
	}
	f := s.ensure(typ, v)
	if f.err != "" {
		return nil
	}
	// Only what the body sent holds: a fixture leaves out references the server would refuse.
	sent := string(encode(f.sent))
	var out []string
	add := func(r string) {
		if r != "" && strings.Contains(sent, `"reference":"`+r+`"`) {
			out = append(out, r)
		}
	}
	if r, err := s.refTo(d.target, tv); err == nil {
		add(r)
	}
	if v == "A" {
		for _, t := range d.alsoA {
			if s.canCreate(t) {
				if r, err := s.ref(t, "A"); err == nil {
					add(r)
				}
			}
		}
	}
	return out
}

func describeWant(want string) string {
	switch want {
	case "":
		return "neither fixture"
	case "AB":
		return "both fixtures A and B"
	}
	return "only fixture " + want
}
