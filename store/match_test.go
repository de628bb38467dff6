package store

import (
	"errors"
	"slices"
	"testing"
)

// patient is the candidate most cases test: several entries of one parameter, tokens with and without
// a system and a display, strings, a date range and references.
var patient = Candidate{
	Type:        "Patient",
	ID:          "p1",
	LastUpdated: 5000,
	Index: []IndexEntry{
		{Param: "identifier", System: "urn:nhs", Value: "111"},
		{Param: "identifier", System: "urn:mrn", Value: "A1"},
		{Param: "identifier", System: "urn:legacy"}, // a system without a value
		{Param: "gender", Value: "female"},          // a code without a system
		{Param: "language", System: "urn:lang", Value: "en-GB", Text: "english (united kingdom)"},
		{Param: "name", Value: "Alice Smith", Text: "alice smith"},
		{Param: "name", Value: "Ally", Text: "ally"},
		{Param: "birthdate", Low: 1000, High: 1999},
		{Param: "general-practitioner", Value: "Practitioner/dr1"},
		{Param: "general-practitioner", Value: "http://elsewhere.org/fhir/Practitioner/dr2"},
		{Param: "organization", Value: "Organization/"},
	},
}

func tokenP(param, system, value string) Predicate {
	return Predicate{Param: param, Match: MatchToken, System: system, Value: value}
}

func valueP(param string, m Match, v string) Predicate {
	return Predicate{Param: param, Match: m, Value: v}
}

func rangeP(param string, bs ...Bound) Predicate {
	return Predicate{Param: param, Match: MatchRange, Bounds: bs}
}

func TestMatchesPredicateOnEntries(t *testing.T) {
	cases := []struct {
		name string
		p    Predicate
		want bool
	}{
		{"present", Predicate{Param: "name", Match: MatchPresent}, true},
		{"present on a parameter without entries", Predicate{Param: "deceased", Match: MatchPresent}, false},
		{"missing=true is present negated", Predicate{Param: "deceased", Match: MatchPresent, Not: true}, true},

		{"token system|code", tokenP("identifier", "urn:nhs", "111"), true},
		{"token system|code matches any of several entries", tokenP("identifier", "urn:mrn", "A1"), true},
		{"token system|code in another system", tokenP("identifier", "urn:mrn", "111"), false},
		{"token code in any system", Predicate{Param: "identifier", Match: MatchToken, AnySystem: true, Value: "A1"}, true},
		{"token code in any system, including none", Predicate{Param: "gender", Match: MatchToken, AnySystem: true, Value: "female"}, true},
		{"token |code needs no system", tokenP("gender", "", "female"), true},
		{"token |code does not match a code with a system", tokenP("identifier", "", "111"), false},
		{"token system| matches every code of the system", tokenP("identifier", "urn:mrn", ""), true},
		{"token system| matches an entry of the system without a code", tokenP("identifier", "urn:legacy", ""), true},
		{"token system| of another system", tokenP("identifier", "urn:other", ""), false},
		{"token not", Predicate{Param: "identifier", Match: MatchToken, System: "urn:nhs", Value: "111", Not: true}, false},
		{"token not on a parameter without entries", Predicate{Param: "deceased", Match: MatchToken, AnySystem: true, Value: "true", Not: true}, true},

		{"token text is a prefix of the display", valueP("language", MatchTokenText, "english"), true},
		{"token text is not a substring", valueP("language", MatchTokenText, "united"), false},

		{"exact is the raw value", valueP("name", MatchExact, "Alice Smith"), true},
		{"exact is case-sensitive", valueP("name", MatchExact, "alice smith"), false},
		{"exact is not a prefix", valueP("name", MatchExact, "Alice"), false},
		{"exact on a reference", valueP("general-practitioner", MatchExact, "Practitioner/dr1"), true},

		{"prefix of the normalised text", valueP("name", MatchPrefix, "al"), true},
		{"prefix as long as the text", valueP("name", MatchPrefix, "ally"), true},
		{"prefix longer than every text", valueP("name", MatchPrefix, "allyx"), false},
		{"prefix is not the middle", valueP("name", MatchPrefix, "smith"), false},
		{"contains the middle", valueP("name", MatchContains, "ce sm"), true},
		{"contains does not see the raw value", valueP("name", MatchContains, "Smith"), false},

		{"range low ge", rangeP("birthdate", Bound{Low, GE, 1000}), true},
		{"range low gt", rangeP("birthdate", Bound{Low, GT, 1000}), false},
		{"range low le", rangeP("birthdate", Bound{Low, LE, 1000}), true},
		{"range low lt", rangeP("birthdate", Bound{Low, LT, 1000}), false},
		{"range high le", rangeP("birthdate", Bound{High, LE, 1999}), true},
		{"range high lt", rangeP("birthdate", Bound{High, LT, 1999}), false},
		{"range high gt", rangeP("birthdate", Bound{High, GT, 1998}), true},
		{"range within", rangeP("birthdate", Bound{Low, GE, 500}, Bound{High, LE, 2000}), true},
		{"range within, one bound failing", rangeP("birthdate", Bound{Low, GE, 500}, Bound{High, LE, 1500}), false},
		{"range without bounds is any entry of the parameter", rangeP("birthdate"), true},
		{"range without bounds on a parameter without entries", rangeP("deathdate"), false},
		{"range not", Predicate{Param: "birthdate", Match: MatchRange, Bounds: []Bound{{Low, GE, 1500}}, Not: true}, true},

		{"_id exact", valueP(ParamID, MatchExact, "p1"), true},
		{"_id exact of another", valueP(ParamID, MatchExact, "p2"), false},
		{"_id exact empty", valueP(ParamID, MatchExact, ""), false},
		{"_id token in any system", Predicate{Param: ParamID, Match: MatchToken, AnySystem: true, Value: "p1"}, true},
		{"_id token without a system", tokenP(ParamID, "", "p1"), true},
		{"_id token with a system: an id has none", tokenP(ParamID, "urn:x", "p1"), false},
		{"_id present", Predicate{Param: ParamID, Match: MatchPresent}, true},
		{"_id not", Predicate{Param: ParamID, Match: MatchExact, Value: "p1", Not: true}, false},
		{"_lastUpdated range", rangeP(ParamLastUpdated, Bound{Low, GE, 5000}, Bound{High, LE, 5000}), true},
		{"_lastUpdated range after", rangeP(ParamLastUpdated, Bound{High, GT, 5000}), false},
		{"_lastUpdated present negated", Predicate{Param: ParamLastUpdated, Match: MatchPresent, Not: true}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MatchesPredicate(patient, tc.p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("MatchesPredicate = %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeResolver answers chains from a set of matching ids and _has from a set of referenced refs, and
// records what it was asked.
type fakeResolver struct {
	matching   map[string]bool // "Type/id" that match any sub-query
	referenced map[string]bool // "param ref" that some match of any sub-query has
	asked      []string
}

func (f *fakeResolver) RefIn(sub *Query, id string) (bool, error) {
	f.asked = append(f.asked, sub.Type+"/"+id)
	return f.matching[sub.Type+"/"+id], nil
}

func (f *fakeResolver) Has(sub *Query, param, ref string) (bool, error) {
	f.asked = append(f.asked, sub.Type+" "+param+" "+ref)
	return f.referenced[param+" "+ref], nil
}

func TestMatchesChainAndHas(t *testing.T) {
	practitioners := &Query{Type: "Practitioner"}
	orgs := &Query{Type: "Organization"}
	cases := []struct {
		name      string
		p         Predicate
		r         fakeResolver
		want      bool
		wantAsked []string
	}{
		{"a chain follows relative references to the sub-query's type",
			Predicate{Param: "general-practitioner", Match: MatchRefIn, Sub: practitioners},
			fakeResolver{matching: map[string]bool{"Practitioner/dr1": true}}, true, []string{"Practitioner/dr1"}},
		{"a chain whose target does not match",
			Predicate{Param: "general-practitioner", Match: MatchRefIn, Sub: practitioners},
			fakeResolver{matching: map[string]bool{"Practitioner/dr2": true}}, false, []string{"Practitioner/dr1"}},
		{"a chain does not follow references to another type",
			Predicate{Param: "general-practitioner", Match: MatchRefIn, Sub: orgs},
			fakeResolver{matching: map[string]bool{"Organization/dr1": true}}, false, nil},
		{"a chain does not follow a reference without an id",
			Predicate{Param: "organization", Match: MatchRefIn, Sub: orgs},
			fakeResolver{}, false, nil},
		{"a chain negated holds when no target matches",
			Predicate{Param: "general-practitioner", Match: MatchRefIn, Sub: practitioners, Not: true},
			fakeResolver{}, true, []string{"Practitioner/dr1"}},
		{"a has asks for references to the candidate",
			Predicate{Param: "_has", Match: MatchHas, Sub: &Query{Type: "Observation"}, HasParam: "subject"},
			fakeResolver{referenced: map[string]bool{"subject Patient/p1": true}}, true, []string{"Observation subject Patient/p1"}},
		{"a has negated",
			Predicate{Param: "_has", Match: MatchHas, Sub: &Query{Type: "Observation"}, HasParam: "subject", Not: true},
			fakeResolver{referenced: map[string]bool{"subject Patient/p1": true}}, false, []string{"Observation subject Patient/p1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := MatchesPredicate(patient, tc.p, &tc.r)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("MatchesPredicate = %v, want %v", got, tc.want)
			}
			if !slices.Equal(tc.r.asked, tc.wantAsked) {
				t.Errorf("asked the resolver %v, want %v", tc.r.asked, tc.wantAsked)
			}
		})
	}
}

func TestMatchesClausesAreAndsOfOrs(t *testing.T) {
	female := tokenP("gender", "", "female")
	male := tokenP("gender", "", "male")
	ali := valueP("name", MatchPrefix, "ali")
	bob := valueP("name", MatchPrefix, "bob")
	cases := []struct {
		name    string
		clauses []Clause
		want    bool
	}{
		{"no clauses", nil, true},
		{"one clause of one predicate", []Clause{{female}}, true},
		{"an OR with one predicate holding", []Clause{{male, ali}}, true},
		{"an OR with none holding", []Clause{{male, bob}}, false},
		{"an AND with both holding", []Clause{{female}, {ali}}, true},
		{"an AND with one failing", []Clause{{female}, {bob}}, false},
		{"an OR of a negation", []Clause{{bob, Predicate{Param: "deceased", Match: MatchPresent, Not: true}}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Matches(patient, tc.clauses, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("Matches = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestInvalidQueries(t *testing.T) {
	cases := []struct {
		name string
		q    Query
	}{
		{"no type", Query{}},
		{"an empty clause", Query{Type: "Patient", Clauses: []Clause{{}}}},
		{"an unknown match", Query{Type: "Patient", Clauses: []Clause{{{Param: "name", Match: Match(99)}}}}},
		{"no parameter", Query{Type: "Patient", Clauses: []Clause{{{Match: MatchPresent}}}}},
		{"prefix on _id", Query{Type: "Patient", Clauses: []Clause{{valueP(ParamID, MatchPrefix, "p")}}}},
		{"exact on _lastUpdated", Query{Type: "Patient", Clauses: []Clause{{valueP(ParamLastUpdated, MatchExact, "1")}}}},
		{"a bound on no field", Query{Type: "Patient", Clauses: []Clause{{rangeP("birthdate", Bound{Field(9), LT, 1})}}}},
		{"a bound without a comparison", Query{Type: "Patient", Clauses: []Clause{{rangeP("birthdate", Bound{Low, Cmp(0), 1})}}}},
		{"a chain without a sub-query", Query{Type: "Patient", Clauses: []Clause{{{Param: "organization", Match: MatchRefIn}}}}},
		{"a chain whose sub-query has no type", Query{Type: "Patient", Clauses: []Clause{{{Param: "organization", Match: MatchRefIn, Sub: &Query{}}}}}},
		{"a has without a parameter", Query{Type: "Patient", Clauses: []Clause{{{Param: "_has", Match: MatchHas, Sub: &Query{Type: "Observation"}}}}}},
		{"a malformed predicate inside a chain", Query{Type: "Patient", Clauses: []Clause{{{Param: "organization", Match: MatchRefIn,
			Sub: &Query{Type: "Organization", Clauses: []Clause{{{Param: "name", Match: Match(99)}}}}}}}}},
		{"a sort key without a parameter", Query{Type: "Patient", Sort: []SortKey{{}}}},
		{"an After of the wrong length", Query{Type: "Patient", Sort: []SortKey{{Param: "name"}}, After: []SortValue{{Str: "p1"}}}},
	}
	for _, tc := range cases {
		t.Run(tc.name+" is refused by CheckQuery", func(t *testing.T) {
			if err := CheckQuery(tc.q); !errors.Is(err, ErrInvalidQuery) {
				t.Errorf("CheckQuery = %v, want ErrInvalidQuery", err)
			}
		})
	}
	t.Run("a valid query nesting a chain and a has passes", func(t *testing.T) {
		q := Query{Type: "Patient", Sort: []SortKey{{Param: "name"}}, After: []SortValue{{Str: "x"}, {Str: "p1"}}, Clauses: []Clause{
			{{Param: "organization", Match: MatchRefIn, Sub: &Query{Type: "Organization", Clauses: []Clause{{tokenP("identifier", "urn:ods", "A1")}}}}},
			{{Match: MatchHas, Sub: &Query{Type: "Observation"}, HasParam: "subject"}},
		}}
		if err := CheckQuery(q); err != nil {
			t.Errorf("CheckQuery = %v", err)
		}
	})
	t.Run("a chain evaluated without a resolver is refused, not answered", func(t *testing.T) {
		p := Predicate{Param: "general-practitioner", Match: MatchRefIn, Sub: &Query{Type: "Practitioner"}}
		if _, err := MatchesPredicate(patient, p, nil); !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("MatchesPredicate = %v, want ErrInvalidQuery", err)
		}
	})
}

func TestSortValueOf(t *testing.T) {
	c := Candidate{ID: "x1", LastUpdated: 42, Index: []IndexEntry{
		{Param: "name", Value: "Zed", Text: "zed"},
		{Param: "name", Value: "Bob", Text: "bob"},
		{Param: "gender", System: "urn:g", Value: "male"},
		{Param: "language", System: "urn:l", Value: "fr", Text: "french"},
		{Param: "birthdate", Low: 300, High: 399},
		{Param: "birthdate", Low: 100, High: 199},
		{Param: "identifier", System: "urn:legacy"},
		{Param: "identifier", System: "urn:mrn", Value: "Z9"},
		{Param: "telecom", System: "urn:phone"},
	}}
	cases := []struct {
		param string
		want  SortValue
	}{
		{"name", SortValue{Str: "bob"}},        // the lowest normalised text
		{"gender", SortValue{Str: "male"}},     // a code, by its value
		{"language", SortValue{Str: "french"}}, // a coding with a display, by its display
		{"birthdate", SortValue{Int: 100, IsInt: true}},
		{"deathdate", SortValue{}},
		{"identifier", SortValue{Str: "Z9"}}, // an identifier without a value has nothing to sort by
		{"telecom", SortValue{}},
		{ParamID, SortValue{Str: "x1"}},
		{ParamLastUpdated, SortValue{Int: 42, IsInt: true}},
	}
	for _, tc := range cases {
		t.Run(tc.param, func(t *testing.T) {
			if got := SortValueOf(c, tc.param); got != tc.want {
				t.Errorf("SortValueOf = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestSortOrder(t *testing.T) {
	none, one, two := SortValue{}, SortValue{Int: 1, IsInt: true}, SortValue{Int: 2, IsInt: true}
	negative := SortValue{Int: -5, IsInt: true}
	a, b := SortValue{Str: "a"}, SortValue{Str: "b"}
	ascending := []SortValue{none, negative, one, two, a, b}
	for i := range ascending {
		for j := range ascending {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := CompareSortValues(ascending[i], ascending[j]); got != want {
				t.Errorf("CompareSortValues(%+v, %+v) = %d, want %d", ascending[i], ascending[j], got, want)
			}
		}
	}

	keys := []SortKey{{Param: "family"}, {Param: "birthdate", Desc: true}}
	pos := func(family SortValue, born SortValue, id string) []SortValue {
		return []SortValue{family, born, {Str: id}}
	}
	// In the documented order: family ascending with the missing first, then birthdate descending with
	// the missing last, then the id.
	ordered := [][]SortValue{
		pos(none, two, "p9"),
		pos(none, none, "p1"),
		pos(a, two, "p5"),
		pos(a, one, "p2"),
		pos(a, one, "p3"),
		pos(a, none, "p0"),
		pos(b, one, "p4"),
	}
	shuffled := slices.Clone(ordered)
	slices.Reverse(shuffled)
	slices.SortFunc(shuffled, func(x, y []SortValue) int { return ComparePositions(keys, x, y) })
	if !slices.EqualFunc(shuffled, ordered, slices.Equal) {
		t.Errorf("sorted as %v, want %v", shuffled, ordered)
	}
	if got := Position(Candidate{ID: "p7", Index: []IndexEntry{{Param: "family", Value: "A", Text: "a"}}}, keys); !slices.Equal(got, pos(a, none, "p7")) {
		t.Errorf("Position = %v, want %v", got, pos(a, none, "p7"))
	}
}
