package fhir

import "testing"

func TestSubset(t *testing.T) {
	const pat = `{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"}]},"text":{"status":"generated"},"name":[{"family":"Smith"}],"gender":"female","generalPractitioner":[{"reference":"Practitioner/1"}]}`
	const imm = `{"resourceType":"Immunization","id":"i1","status":"completed","vaccineCode":{"text":"flu"},"patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2024","lotNumber":"A1","note":[{"text":"x"}]}`
	tag := `{"system":"` + SubsettedSystem + `","code":"SUBSETTED"}`
	tests := []struct {
		name     string
		body     string
		mode     SubsetMode
		elements []string
		want     string
	}{
		{"summary keeps summary elements and adds the tag after the resource's own", pat, SummaryTrue, nil,
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"},` + tag + `]},"name":[{"family":"Smith"}],"gender":"female"}`},
		{"text keeps the narrative", pat, SummaryText, nil,
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"},` + tag + `]},"text":{"status":"generated"}}`},
		{"data drops the narrative only", pat, SummaryData, nil,
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"},` + tag + `]},"name":[{"family":"Smith"}],"gender":"female","generalPractitioner":[{"reference":"Practitioner/1"}]}`},
		{"elements keep mandatory elements and add meta when there is none", imm, SubsetElements, []string{"lotNumber"},
			`{"resourceType":"Immunization","id":"i1","status":"completed","vaccineCode":{"text":"flu"},"patient":{"reference":"Patient/p1"},"occurrenceDateTime":"2024","lotNumber":"A1","meta":{"tag":[` + tag + `]}}`},
		{"a dotted element keeps its top-level element", pat, SubsetElements, []string{"name.family"},
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"},` + tag + `]},"name":[{"family":"Smith"}]}`},
		{"an element name that does not exist keeps only the mandatory ones", pat, SubsetElements, []string{"shoeSize"},
			`{"resourceType":"Patient","id":"p1","meta":{"versionId":"2","tag":[{"code":"vip"},` + tag + `]}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Subset([]byte(tt.body), tt.mode, tt.elements)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			again, err := Subset(got, tt.mode, tt.elements)
			if err != nil || string(again) != tt.want {
				t.Errorf("subsetting twice adds a second tag: %s", again)
			}
		})
	}
	if _, err := Subset([]byte(`[1]`), SummaryTrue, nil); err == nil {
		t.Error("a body that is not an object must fail")
	}
}
