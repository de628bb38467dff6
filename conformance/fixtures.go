package conformance

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"net/http"
	"strings"
)

// A fixture is a resource the suite creates. Variants A and B of a type are a pair that differ in every
// value the search checks ask about and are never changed, so that each search has a known answer; C is
// the one that update, patch and history change; other variants serve single checks.
type fixture struct {
	typ, variant string
	id           string
	version      string
	// sent is the body as sent; stored is the resource as the server answered (or sent, with the id, when
	// the server answered without a body).
	sent, stored map[string]any
	created      *exchange
	// err says why the fixture could not be created; checks that need it are skipped with it.
	err string
}

func (f *fixture) ref() string { return f.typ + "/" + f.id }

// fixtureDef builds one type's fixtures.
type fixtureDef struct {
	// build returns the body of a variant. It may ask for other fixtures (references), which creates them.
	build func(s *suite, v string) (map[string]any, error)
	// edit is the top-level element update and patch change, and the two values they set.
	edit editSpec
}

type editSpec struct {
	key    string
	v1, v2 any
}

// The values below are fixed so that the search checks know their answers; dates are far apart so
// that every prefix has one clear answer whatever the server's time zone.

const (
	snomed    = "http://snomed.info/sct"
	dmd       = "https://dmd.nhs.uk"
	nhsSystem = "https://fhir.nhs.uk/Id/nhs-number"
	svcType   = "http://terminology.hl7.org/CodeSystem/service-type"
	apptType  = "http://terminology.hl7.org/CodeSystem/v2-0276"
	taskCode  = "http://hl7.org/fhir/CodeSystem/task-code"
	roleCode  = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
	actReason = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	// bookableExt is gpfhir's Schedule and Slot extension for online booking; other servers keep it as
	// any extension.
	bookableExt = "https://gpfhir.example/StructureDefinition/online-bookable"
)

func coding(system, code, display string) map[string]any {
	m := map[string]any{"system": system, "code": code}
	if display != "" {
		m["display"] = display
	}
	return m
}

func concept(system, code, display string) map[string]any {
	return map[string]any{"coding": []any{coding(system, code, display)}}
}

func reference(ref string) map[string]any { return map[string]any{"reference": ref} }

// withRefs sets the reference elements given as name, reference pairs, leaving out empty references
// (a type the server does not let the suite create). generalPractitioner is a list.
func withRefs(body map[string]any, pairs ...string) map[string]any {
	for i := 0; i+1 < len(pairs); i += 2 {
		name, ref := pairs[i], pairs[i+1]
		switch {
		case ref == "":
		case name == "generalPractitioner":
			prev, _ := body[name].([]any)
			body[name] = append([]any{reference(ref)}, prev...)
		default:
			body[name] = reference(ref)
		}
	}
	return body
}

func bookable(b bool) []any {
	return []any{map[string]any{"url": bookableExt, "valueBoolean": b}}
}

// pick returns the value of variant v: a for A, b for B, other for the rest.
func pick[T any](v string, a, b, other T) T {
	switch v {
	case "A":
		return a
	case "B":
		return b
	}
	return other
}

// fixtureDefs is filled in init: its builders create the fixtures they reference, through functions
// that read the table.
var fixtureDefs map[string]fixtureDef

func init() {
	fixtureDefs = map[string]fixtureDef{
		"Organization": {
			build: func(s *suite, v string) (map[string]any, error) {
				return map[string]any{
					"active": true,
					"name":   pick(v, "Ashdown Medical Centre", "Élan Health Centre", "Cedar Practice "+v),
				}, nil
			},
			edit: editSpec{"name", "Cedar Practice", "Cedar Practice (renamed)"},
		},
		"Practitioner": {
			build: func(s *suite, v string) (map[string]any, error) {
				return map[string]any{
					"name": []any{pick(v,
						map[string]any{"family": "Adebayo", "given": []any{"Grace"}, "prefix": []any{"Dr"}},
						map[string]any{"family": "Bélanger", "given": []any{"Luc"}},
						map[string]any{"family": "Chowdhury", "given": []any{"Sam"}})},
					"gender": pick(v, "female", "male", "male"),
				}, nil
			},
			edit: editSpec{"gender", "male", "female"},
		},
		"Location": {
			build: func(s *suite, v string) (map[string]any, error) {
				org, err := s.optRef("Organization", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				return withRefs(map[string]any{
					"status":      "active",
					"name":        pick(v, "Ashdown Branch Surgery", "Église Road Clinic", "Cedar Clinic "+v),
					"description": "Conformance location",
					"address":     map[string]any{"city": pick(v, "Leeds", "Manchester", "York"), "postalCode": pick(v, "LS2 7AA", "M2 3BB", "YO1 7HH")},
				}, "managingOrganization", org), nil
			},
			edit: editSpec{"description", "Conformance location", "Conformance location (edited)"},
		},
		"Patient": {
			build: func(s *suite, v string) (map[string]any, error) {
				home, err := s.homeOrganization()
				if err != nil {
					return nil, err
				}
				gp, err := s.optRef("Practitioner", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				p := map[string]any{
					"identifier": []any{
						map[string]any{"system": nhsSystem, "value": s.nhsNumber(v)},
						s.identifier("Patient", v),
					},
					"active": pick(v, true, false, true),
					"name": []any{pick(v,
						map[string]any{"use": "official", "family": "Ashcroft", "given": []any{"Amelia"}},
						map[string]any{"use": "official", "family": "Ångström", "given": []any{"Bo"}},
						map[string]any{"use": "official", "family": "Carter", "given": []any{"Cai"}})},
					"gender":    pick(v, "female", "male", "other"),
					"birthDate": pick(v, "1980-05-17", "1992-11-03", "2001-01-01"),
					"address":   []any{map[string]any{"city": pick(v, "Leeds", "Manchester", "York"), "postalCode": pick(v, "LS1 4AP", "M1 1AE", "YO1 6GA")}},
					"telecom": []any{
						map[string]any{"system": "phone", "value": pick(v, "01134960001", "01614960002", "01904960003"), "use": "home"},
						map[string]any{"system": "email", "value": pick(v, "amelia.ashcroft@example.org", "bo.angstrom@example.org", "cai.carter@example.org")},
					},
				}
				// A's general practitioners are its clinician and its practice, as GP systems record both.
				if v == "A" && home != "" && !strings.HasPrefix(s.home, "existing:") {
					p["generalPractitioner"] = []any{reference(home)}
				}
				return withRefs(p, "managingOrganization", home, "generalPractitioner", gp), nil
			},
			edit: editSpec{"gender", "other", "unknown"},
		},
		"Schedule": {
			build: func(s *suite, v string) (map[string]any, error) {
				locA, err := s.ref("Location", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				actors := []any{reference(locA)}
				if v == "A" {
					prac, err := s.optRef("Practitioner", "A")
					if err != nil {
						return nil, err
					}
					if prac != "" {
						actors = append(actors, reference(prac))
					}
				}
				return map[string]any{
					"active":      pick(v, true, false, true),
					"actor":       actors,
					"serviceType": []any{pick(v, concept(svcType, "124", "General Practice"), concept(svcType, "57", "Immunization"), concept(svcType, "124", "General Practice"))},
					"planningHorizon": pick(v,
						map[string]any{"start": "2030-01-01T00:00:00Z", "end": "2030-03-31T23:59:59Z"},
						map[string]any{"start": "2031-01-01T00:00:00Z", "end": "2031-03-31T23:59:59Z"},
						map[string]any{"start": "2030-01-01T00:00:00Z", "end": "2030-03-31T23:59:59Z"}),
					"comment":   "Conformance schedule",
					"extension": bookable(v == "A"),
				}, nil
			},
			edit: editSpec{"comment", "Conformance schedule", "Conformance schedule (edited)"},
		},
		"Slot": {
			build: func(s *suite, v string) (map[string]any, error) {
				sched, err := s.ref("Schedule", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				start, end := slotTimes(v)
				return map[string]any{
					"schedule":    reference(sched),
					"status":      pick(v, "free", "busy", "free"),
					"start":       start,
					"end":         end,
					"serviceType": []any{pick(v, concept(svcType, "124", "General Practice"), concept(svcType, "57", "Immunization"), concept(svcType, "124", "General Practice"))},
					"comment":     "Conformance slot",
					"extension":   bookable(v != "B"),
				}, nil
			},
			edit: editSpec{"comment", "Conformance slot", "Conformance slot (edited)"},
		},
		"Appointment": {
			build: func(s *suite, v string) (map[string]any, error) {
				pv := pick(v, "A", "B", "A")
				pat, err := s.ref("Patient", pv)
				if err != nil {
					return nil, err
				}
				prac, err := s.optRef("Practitioner", pv)
				if err != nil {
					return nil, err
				}
				part := []any{map[string]any{"actor": reference(pat), "status": "accepted"}}
				if prac != "" {
					part = append(part, map[string]any{"actor": reference(prac), "status": "accepted"})
				}
				body := map[string]any{
					"status":          pick(v, "booked", "fulfilled", "proposed"),
					"description":     "Conformance appointment",
					"serviceType":     []any{pick(v, concept(svcType, "124", "General Practice"), concept(svcType, "57", "Immunization"), concept(svcType, "124", "General Practice"))},
					"appointmentType": pick(v, concept(apptType, "ROUTINE", "Routine appointment"), concept(apptType, "FOLLOWUP", "A follow up visit"), concept(apptType, "ROUTINE", "Routine appointment")),
					"participant":     part,
				}
				switch v {
				case "A":
					// A books slot X, made for it, so that the server may mark it busy without touching the
					// search pair of Slots.
					slot, err := s.ref("Slot", "X")
					if err != nil {
						return nil, err
					}
					loc, err := s.optRef("Location", "A")
					if err != nil {
						return nil, err
					}
					if loc != "" {
						body["participant"] = append(part, map[string]any{"actor": reference(loc), "status": "accepted"})
					}
					body["slot"] = []any{reference(slot)}
					body["start"], body["end"] = slotTimes("X")
				case "B":
					body["start"], body["end"] = "2022-03-10T12:00:00Z", "2022-03-10T12:15:00Z"
				default:
					body["start"], body["end"] = "2030-03-01T12:00:00Z", "2030-03-01T12:15:00Z"
				}
				return body, nil
			},
			edit: editSpec{"description", "Conformance appointment", "Conformance appointment (edited)"},
		},
		"MedicationRequest": {
			build: func(s *suite, v string) (map[string]any, error) {
				pv := pick(v, "A", "B", "A")
				pat, err := s.ref("Patient", pv)
				if err != nil {
					return nil, err
				}
				prac, err := s.optRef("Practitioner", pv)
				if err != nil {
					return nil, err
				}
				med := pick(v,
					map[string]any{"coding": []any{coding(dmd, "39732311000001104", "Amlodipine 5mg tablets")}, "text": "Amlodipine 5mg tablets"},
					map[string]any{"coding": []any{coding(dmd, "39720311000001101", "Paracetamol 500mg tablets")}, "text": "Paracetamol 500mg tablets"},
					map[string]any{"coding": []any{coding(dmd, "39732311000001104", "Amlodipine 5mg tablets")}, "text": "Amlodipine 5mg tablets"})
				return withRefs(map[string]any{
					"status":                    pick(v, "active", "stopped", "active"),
					"intent":                    pick(v, "order", "plan", "order"),
					"medicationCodeableConcept": med,
					"subject":                   reference(pat),
					"authoredOn":                pick(v, "2024-02-01T12:00:00Z", "2021-03-01T12:00:00Z", "2024-06-01T12:00:00Z"),
					"dosageInstruction":         []any{map[string]any{"text": "One a day"}},
				}, "requester", prac), nil
			},
			edit: editSpec{"status", "active", "on-hold"},
		},
		"Immunization": {
			build: func(s *suite, v string) (map[string]any, error) {
				pat, err := s.ref("Patient", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				return map[string]any{
					"status": pick(v, "completed", "not-done", "completed"),
					"vaccineCode": pick(v,
						concept(snomed, "39114911000001105", "COVID-19 Vaccine Vaxzevria"),
						concept(snomed, "34680411000001107", "Boostrix-IPV vaccine"),
						concept(snomed, "39114911000001105", "COVID-19 Vaccine Vaxzevria")),
					"patient":            reference(pat),
					"occurrenceDateTime": pick(v, "2024-01-15T12:00:00Z", "2019-10-02T12:00:00Z", "2023-05-05T12:00:00Z"),
					"primarySource":      v != "B",
					"lotNumber":          pick(v, "AB1234", "XY9876", "C1"),
				}, nil
			},
			edit: editSpec{"lotNumber", "C1", "C2"},
		},
		"Task": {
			build: func(s *suite, v string) (map[string]any, error) {
				pv := pick(v, "A", "B", "A")
				pat, err := s.ref("Patient", pv)
				if err != nil {
					return nil, err
				}
				body := map[string]any{
					"status":      pick(v, "requested", "completed", "draft"),
					"intent":      pick(v, "order", "plan", "order"),
					"code":        pick(v, concept(taskCode, "fulfill", "Fulfill the focal request"), concept(taskCode, "approve", "Activate/approve the focal resource"), concept(taskCode, "fulfill", "")),
					"for":         reference(pat),
					"description": "Conformance task",
					"authoredOn":  pick(v, "2024-03-01T12:00:00Z", "2020-05-05T12:00:00Z", "2024-07-01T12:00:00Z"),
				}
				if v == "A" || v == "B" {
					focus, err := s.optRef("MedicationRequest", v)
					if err != nil {
						return nil, err
					}
					owner, err := s.optRef("Organization", v)
					if err != nil {
						return nil, err
					}
					req, err := s.optRef("Practitioner", v)
					if err != nil {
						return nil, err
					}
					body["lastModified"] = pick(v, "2024-03-02T12:00:00Z", "2020-05-06T12:00:00Z", "")
					return withRefs(body, "focus", focus, "owner", owner, "requester", req), nil
				}
				return body, nil
			},
			edit: editSpec{"description", "Conformance task", "Conformance task (edited)"},
		},
		"RelatedPerson": {
			build: func(s *suite, v string) (map[string]any, error) {
				pat, err := s.ref("Patient", pick(v, "A", "B", "A"))
				if err != nil {
					return nil, err
				}
				return map[string]any{
					"patient": reference(pat),
					"active":  pick(v, true, false, true),
					"name": []any{pick(v,
						map[string]any{"family": "Aldridge", "given": []any{"Ann"}},
						map[string]any{"family": "Öberg", "given": []any{"Olle"}},
						map[string]any{"family": "Cole", "given": []any{"Chris"}})},
					"relationship": []any{pick(v, concept(roleCode, "MTH", "mother"), concept(roleCode, "FTH", "father"), concept(roleCode, "SIB", "sibling"))},
					"gender":       "female",
				}, nil
			},
			edit: editSpec{"gender", "female", "male"},
		},
	}
}

// slotTimes are the start and end of a Slot variant: A and X are adjacent on schedule A (X is booked
// by Appointment A), B is a year later on schedule B.
func slotTimes(v string) (string, string) {
	switch v {
	case "A":
		return "2030-02-04T12:00:00Z", "2030-02-04T12:15:00Z"
	case "X":
		return "2030-02-04T12:15:00Z", "2030-02-04T12:30:00Z"
	case "B":
		return "2031-02-03T12:00:00Z", "2031-02-03T12:15:00Z"
	}
	return "2030-02-05T12:00:00Z", "2030-02-05T12:15:00Z"
}

// fixtureOrder is the order in which types are created and checked: referenced types first.
var fixtureOrder = []string{"Organization", "Practitioner", "Location", "Patient", "Schedule", "Slot",
	"Appointment", "MedicationRequest", "Immunization", "Task", "RelatedPerson"}

// canCreate reports whether the suite can make typ's fixtures on this server.
func (s *suite) canCreate(typ string) bool {
	_, known := fixtureDefs[typ]
	return known && s.cs.supports(typ, "create")
}

func (s *suite) meta() map[string]any {
	return map[string]any{
		"tag":      []any{map[string]any{"system": TagSystem, "code": s.runID, "display": "gpfhir conformance run"}},
		"security": []any{coding(actReason, "HTEST", "test health data")},
	}
}

func (s *suite) tagParam() string { return TagSystem + "|" + s.runID }

func (s *suite) identifierValue(typ, v string) string {
	return s.runID + "-" + strings.ToLower(typ) + "-" + strings.ToLower(v)
}

func (s *suite) identifier(typ, v string) map[string]any {
	return map[string]any{"system": IdentifierSystem, "value": s.identifierValue(typ, v)}
}

// body builds a variant's body with the run's tag, security label and identifier.
func (s *suite) body(typ, v string) (map[string]any, error) {
	def, ok := fixtureDefs[typ]
	if !ok {
		return nil, fmt.Errorf("the suite has no fixture for %s", typ)
	}
	b, err := def.build(s, v)
	if err != nil {
		return nil, err
	}
	b["resourceType"] = typ
	b["meta"] = s.meta()
	if typ != "Patient" { // a Patient has its NHS number and the conformance identifier already
		b["identifier"] = []any{s.identifier(typ, v)}
	}
	if v != "A" && v != "B" {
		if e := def.edit; e.key != "" {
			b[e.key] = e.v1
		}
	}
	return b, nil
}

func (s *suite) key(typ, v string) string { return typ + "/" + v }

// ref creates the fixture if need be and returns its reference.
func (s *suite) ref(typ, v string) (string, error) {
	f := s.ensure(typ, v)
	if f.err != "" {
		return "", fmt.Errorf("needs %s %s: %s", typ, v, f.err)
	}
	return f.ref(), nil
}

// optRef is ref for a reference a resource may leave out: "" when the suite cannot create typ here.
func (s *suite) optRef(typ, v string) (string, error) {
	if !s.canCreate(typ) {
		return "", nil
	}
	return s.ref(typ, v)
}

// ensure creates a fixture once. It is not a check: create/<type> judges how the server answered.
func (s *suite) ensure(typ, v string) *fixture {
	k := s.key(typ, v)
	s.mu.Lock()
	f := s.fixtures[k]
	s.mu.Unlock()
	if f != nil {
		return f
	}
	f = &fixture{typ: typ, variant: v}
	s.mu.Lock()
	s.fixtures[k] = f
	s.mu.Unlock()
	if !s.canCreate(typ) {
		f.err = typ + " cannot be created here (the server does not declare create, or the suite has no fixture for it)"
		return f
	}
	body, err := s.body(typ, v)
	if err != nil {
		f.err = err.Error()
		return f
	}
	e := s.do(request{method: http.MethodPost, target: typ, body: encode(body)})
	if typ == "Patient" && e.status == http.StatusForbidden && s.home != "" && !strings.HasPrefix(s.home, "existing:") {
		// A server that binds clients to practices (gpfhir does, by ODS code) refuses a patient registered
		// at an organisation the client does not serve. Register the suite's patients where a patient the
		// client already sees is registered instead; they are still the suite's own, tagged, resources.
		if org := s.visiblePractice(); org != "" {
			s.home = "existing:" + org
			if body, err = s.body(typ, v); err == nil {
				e = s.do(request{method: http.MethodPost, target: typ, body: encode(body)})
			}
		}
	}
	f.sent, f.created = body, e
	if e.err != nil {
		f.err = "no answer to the create: " + e.err.Error()
		return f
	}
	if e.status != http.StatusCreated && e.status != http.StatusOK {
		f.err = fmt.Sprintf("the create got %d", e.status)
		if d := e.diagnostics(); d != "" {
			f.err += ": " + d
		}
		return f
	}
	id, version := idFromLocation(e.header.Get("Location"), typ)
	if doc := e.json(); str(doc, "resourceType") == typ {
		f.stored = doc
		if id == "" {
			id = str(doc, "id")
		}
		if version == "" {
			version = versionOf(doc)
		}
	}
	if version == "" {
		version = strings.Trim(strings.TrimPrefix(e.header.Get("ETag"), "W/"), `"`)
	}
	if id == "" {
		f.err = "the create answered without a Location header or a body with an id, so the suite cannot find what it made"
		return f
	}
	f.id, f.version = id, version
	if f.stored == nil {
		f.stored = clone(body)
		f.stored["id"] = id
	}
	s.mu.Lock()
	s.order = append(s.order, f)
	s.mu.Unlock()
	return f
}

// idFromLocation reads the id and version from a Location such as [base]/Patient/1/_history/2.
func idFromLocation(loc, typ string) (id, version string) {
	if loc == "" {
		return "", ""
	}
	if i := strings.IndexAny(loc, "?#"); i >= 0 {
		loc = loc[:i]
	}
	parts := strings.Split(strings.TrimRight(loc, "/"), "/")
	for i := len(parts) - 2; i >= 0; i-- {
		if parts[i] == typ {
			id = parts[i+1]
			if i+3 < len(parts) && parts[i+2] == "_history" {
				version = parts[i+3]
			}
			return id, version
		}
	}
	return "", ""
}

// homeOrganization is the Organization the suite's patients are registered at: its own Organization A,
// unless the server refused that (see ensure).
func (s *suite) homeOrganization() (string, error) {
	if org, ok := strings.CutPrefix(s.home, "existing:"); ok {
		return org, nil
	}
	if s.home != "" {
		return s.home, nil
	}
	if !s.canCreate("Organization") {
		return "", nil
	}
	org, err := s.ref("Organization", "A")
	if err != nil {
		return "", err
	}
	s.home = org
	return org, nil
}

// visiblePractice finds the managing organisation of a patient the main token can already see.
func (s *suite) visiblePractice() string {
	e := s.do(request{method: http.MethodGet, target: "Patient?_count=10"})
	if e.status != http.StatusOK {
		return ""
	}
	for _, en := range entries(e.json()) {
		if r := str(en.resource, "managingOrganization", "reference"); strings.HasPrefix(r, "Organization/") {
			return r
		}
	}
	return ""
}

// nhsNumber gives each Patient variant of the run a valid NHS number (Modulus 11) in the 999 range that
// NHS England keeps for testing, so that the suite never names a real person.
func (s *suite) nhsNumber(v string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nhs == nil {
		s.nhs = map[string]string{}
	}
	if n, ok := s.nhs[v]; ok {
		return n
	}
	for {
		n, _ := rand.Int(rand.Reader, big.NewInt(1_000_000))
		digits := fmt.Sprintf("999%06d", n.Int64())
		if check, ok := nhsCheckDigit(digits); ok {
			s.nhs[v] = digits + check
			return s.nhs[v]
		}
	}
}

// nhsCheckDigit is the Modulus 11 check digit of the first nine digits; ok is false when there is none
// (a remainder giving 10, which no NHS number uses).
func nhsCheckDigit(nine string) (string, bool) {
	sum := 0
	for i := 0; i < 9; i++ {
		sum += int(nine[i]-'0') * (10 - i)
	}
	c := 11 - sum%11
	switch c {
	case 11:
		return "0", true
	case 10:
		return "", false
	}
	return fmt.Sprint(c), true
}
