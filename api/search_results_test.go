package api_test

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/gpfhir/gpfhir/auth/devidp"
)

// entriesByMode lists "Type/id" of the entries with the given search mode, in bundle order.
func entriesByMode(t *testing.T, bundle map[string]any, mode string) []string {
	t.Helper()
	var out []string
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		em := e.(map[string]any)
		if s, _ := em["search"].(map[string]any); s["mode"] != mode {
			continue
		}
		res := em["resource"].(map[string]any)
		out = append(out, res["resourceType"].(string)+"/"+res["id"].(string))
	}
	return out
}

func TestSearchSortIncludeRevinclude(t *testing.T) {
	ts := newTestServer(t)
	w := newSearchWorld(t, ts)
	P := func(id string) string { return "Patient/" + id }
	tests := []struct {
		name     string
		query    string
		matches  []string // in order
		included []string // any order
	}{
		{"_sort on a string", "/Patient?_sort=family", []string{P(w.pC), P(w.pA), P(w.pB)}, nil},
		{"_sort descending on a date", "/Patient?_sort=-birthdate", []string{P(w.pB), P(w.pC), P(w.pA)}, nil},
		{"_sort on several keys", "/Patient?_sort=gender,-family", []string{P(w.pA), P(w.pC), P(w.pB)}, nil},
		{"_sort ties break on the id", "/Patient?_sort=gender&gender=female", sortedRefs("Patient", w.pA, w.pC), nil},
		{"_sort on _lastUpdated", "/Patient?_sort=-_lastUpdated", []string{P(w.pC), P(w.pB), P(w.pA)}, nil},
		{"_include adds the referenced resource",
			"/Immunization?_id=" + w.iA1 + "&_include=Immunization:patient",
			[]string{"Immunization/" + w.iA1}, []string{P(w.pA)}},
		{"_include adds a referenced resource once for several matches",
			"/Immunization?patient=" + w.pA + "&_include=Immunization:patient",
			sortedRefs("Immunization", w.iA1, w.iA2), []string{P(w.pA)}},
		{"_include with a target type keeps only that type",
			"/Appointment?_include=Appointment:actor:Location", []string{"Appointment/" + w.appt}, []string{"Location/" + w.loc}},
		{"_include of a reference with several targets",
			"/Appointment?_include=Appointment:actor", []string{"Appointment/" + w.appt},
			[]string{P(w.pA), "Practitioner/" + w.prac, "Location/" + w.loc}},
		{"_include does not repeat a match",
			"/Patient?_id=" + w.pA + "&_revinclude=Immunization:patient&_include:iterate=Immunization:patient",
			[]string{P(w.pA)}, []string{"Immunization/" + w.iA1, "Immunization/" + w.iA2}},
		{"_include:iterate follows included resources",
			"/MedicationRequest?_id=" + w.mA + "&_include=MedicationRequest:subject&_include:iterate=Patient:organization",
			[]string{"MedicationRequest/" + w.mA}, []string{P(w.pA), "Organization/" + w.org}},
		{"_include without :iterate does not follow included resources",
			"/MedicationRequest?_id=" + w.mA + "&_include=MedicationRequest:subject&_include=Patient:organization",
			[]string{"MedicationRequest/" + w.mA}, []string{P(w.pA)}},
		{"_revinclude adds resources that point at a match",
			"/Patient?_id=" + w.pA + "&_revinclude=Immunization:patient",
			[]string{P(w.pA)}, []string{"Immunization/" + w.iA1, "Immunization/" + w.iA2}},
		{"_revinclude:iterate follows included resources",
			"/Organization?_id=" + w.org + "&_revinclude=Patient:organization&_revinclude:iterate=MedicationRequest:subject",
			[]string{"Organization/" + w.org}, []string{P(w.pA), "MedicationRequest/" + w.mA}},
		{"_include and _revinclude together",
			"/Slot?_id=" + w.slot2 + "&_include=Slot:schedule&_revinclude=Appointment:slot",
			[]string{"Slot/" + w.slot2}, []string{"Schedule/" + w.sch1, "Appointment/" + w.appt}},
		{"_revinclude finds nothing for a match nobody points at",
			"/Patient?_id=" + w.pC + "&_revinclude=Immunization:patient", []string{P(w.pC)}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK).JSON(t)
			if got := entriesByMode(t, b, "match"); strings.Join(got, ",") != strings.Join(tt.matches, ",") {
				t.Errorf("matches %v, want %v", got, tt.matches)
			}
			got := sortedSlice(entriesByMode(t, b, "include"))
			if strings.Join(got, ",") != strings.Join(sortedSlice(tt.included), ",") {
				t.Errorf("included %v, want %v", got, sortedSlice(tt.included))
			}
			if self := link(b, "self"); strings.Contains(tt.query, "_include") && !strings.Contains(self, "_include") {
				t.Errorf("self link %q lacks the _include it applied", self)
			}
		})
	}
}

func sortedRefs(typ string, ids ...string) []string {
	var out []string
	for _, id := range sortedSlice(ids) {
		out = append(out, typ+"/"+id)
	}
	return out
}

// resourceOf returns the first match resource of a searchset.
func firstMatch(t *testing.T, b map[string]any) map[string]any {
	t.Helper()
	for _, e := range b["entry"].([]any) {
		em := e.(map[string]any)
		if em["search"].(map[string]any)["mode"] == "match" {
			return em["resource"].(map[string]any)
		}
	}
	t.Fatalf("no match entry")
	return nil
}

func subsetted(res map[string]any) bool {
	meta, _ := res["meta"].(map[string]any)
	tags, _ := meta["tag"].([]any)
	for _, tg := range tags {
		tm := tg.(map[string]any)
		if tm["system"] == "http://terminology.hl7.org/CodeSystem/v3-ObservationValue" && tm["code"] == "SUBSETTED" {
			return true
		}
	}
	return false
}

func TestSearchSummaryElementsAndTotal(t *testing.T) {
	ts := newTestServer(t)
	w := newSearchWorld(t, ts)
	tests := []struct {
		name      string
		query     string
		has, lack []string
		subset    bool
	}{
		{"_summary=true keeps summary elements only", "/Patient?_id=" + w.pA + "&_summary=true",
			[]string{"id", "meta", "name", "identifier", "birthDate", "managingOrganization"}, []string{"text", "generalPractitioner"}, true},
		{"_summary=text keeps the narrative, id and meta", "/Patient?_id=" + w.pA + "&_summary=text",
			[]string{"id", "meta", "text"}, []string{"name", "birthDate"}, true},
		{"_summary=data drops the narrative", "/Patient?_id=" + w.pA + "&_summary=data",
			[]string{"id", "name", "generalPractitioner"}, []string{"text"}, true},
		{"_summary=false is the whole resource", "/Patient?_id=" + w.pA + "&_summary=false",
			[]string{"text", "name", "generalPractitioner"}, nil, false},
		{"_elements keeps the elements asked for", "/Patient?_id=" + w.pA + "&_elements=birthDate,name",
			[]string{"id", "meta", "birthDate", "name"}, []string{"gender", "text", "identifier"}, true},
		{"_elements keeps mandatory elements", "/Immunization?_id=" + w.iA1 + "&_elements=lotNumber",
			[]string{"lotNumber", "status", "vaccineCode", "patient", "occurrenceDateTime"}, []string{"identifier"}, true},
		{"_elements names a choice element without its type", "/MedicationRequest?_id=" + w.mA + "&_elements=medication",
			[]string{"medicationCodeableConcept", "status", "intent", "subject"}, []string{"authoredOn", "requester"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK).JSON(t)
			res := firstMatch(t, b)
			for _, k := range tt.has {
				if _, ok := res[k]; !ok {
					t.Errorf("%s missing from %v", k, res)
				}
			}
			for _, k := range tt.lack {
				if _, ok := res[k]; ok {
					t.Errorf("%s should have been left out", k)
				}
			}
			if subsetted(res) != tt.subset {
				t.Errorf("SUBSETTED tag present = %v, want %v (meta %v)", subsetted(res), tt.subset, res["meta"])
			}
			if tt.subset {
				// The resource's own tags stay.
				if strings.Contains(tt.query, w.pA) && !strings.Contains(fmt.Sprint(res["meta"]), "vip") {
					t.Errorf("the resource's own tag was lost: %v", res["meta"])
				}
			}
		})
	}

	t.Run("_summary applies to included resources", func(t *testing.T) {
		b := ts.mustStatus(ts.get("/Immunization?_id="+w.iA1+"&_include=Immunization:patient&_summary=true", nil), 200).JSON(t)
		for _, e := range b["entry"].([]any) {
			res := e.(map[string]any)["resource"].(map[string]any)
			if !subsetted(res) {
				t.Errorf("%s/%s is not marked SUBSETTED", res["resourceType"], res["id"])
			}
		}
	})

	totals := []struct {
		name    string
		query   string
		total   any // float64 from JSON, or nil when absent
		entries int
	}{
		{"_summary=count gives the total and no entries", "/Patient?_summary=count", 3.0, 0},
		{"_summary=count honours the criteria", "/Patient?_summary=count&gender=female", 2.0, 0},
		{"_total=accurate", "/Patient?_total=accurate&_count=1", 3.0, 1},
		{"_total=estimate", "/Patient?_total=estimate&_count=1", 3.0, 1},
		{"_total=none", "/Patient?_total=none", nil, 3},
		{"no total by default", "/Patient", nil, 3},
		{"_count=0 with a total", "/Patient?_count=0&_total=accurate", 3.0, 0},
	}
	for _, tt := range totals {
		t.Run(tt.name, func(t *testing.T) {
			b := ts.mustStatus(ts.get(tt.query, nil), http.StatusOK).JSON(t)
			if b["total"] != tt.total {
				t.Errorf("total %v, want %v", b["total"], tt.total)
			}
			if n := len(entryIDs(t, b)); n != tt.entries {
				t.Errorf("%d entries, want %d", n, tt.entries)
			}
		})
	}

	t.Run("POST _search takes the same parameters from a form body", func(t *testing.T) {
		form := url.Values{"_id": {w.iA1}, "_include": {"Immunization:patient"}, "_elements": {"status"}}
		r := ts.do("POST", "/Immunization/_search", form.Encode(), header{"Content-Type": "application/x-www-form-urlencoded"})
		b := ts.mustStatus(r, http.StatusOK).JSON(t)
		if got := entriesByMode(t, b, "include"); len(got) != 1 || got[0] != "Patient/"+w.pA {
			t.Errorf("included %v", got)
		}
		if !subsetted(firstMatch(t, b)) {
			t.Errorf("_elements from the form body was not applied")
		}
	})
}

func TestSearchPagingUnderConcurrentWrites(t *testing.T) {
	ts := newTestServer(t)
	const existing = 24
	original := map[string]bool{}
	for i := 0; i < existing; i++ {
		p := patient(fmt.Sprintf("Paging%02d", i%5), "")
		p["birthDate"] = fmt.Sprintf("19%02d", 50+i%7)
		original[ts.create("Patient", p)] = true
	}
	for _, order := range []string{"", "&_sort=-birthdate,family", "&_sort=_lastUpdated"} {
		t.Run("order"+order, func(t *testing.T) {
			// Writers create and delete other matching patients for as long as the pages are read.
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			var writeErrs []string
			for g := 0; g < 2; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						select {
						case <-stop:
							return
						default:
						}
						p := patient("Paging99", "")
						r := ts.do("POST", "/Patient", p, nil)
						if r.Status != http.StatusCreated {
							mu.Lock()
							writeErrs = append(writeErrs, fmt.Sprintf("create: %d", r.Status))
							mu.Unlock()
							return
						}
						id := r.JSON(t)["id"].(string)
						if d := ts.do("DELETE", "/Patient/"+id, nil, nil); d.Status != http.StatusNoContent {
							mu.Lock()
							writeErrs = append(writeErrs, fmt.Sprintf("delete: %d", d.Status))
							mu.Unlock()
							return
						}
					}
				}()
			}
			seen := map[string]int{}
			next := "/Patient?family=paging&_count=5" + order
			for pages := 0; next != ""; pages++ {
				if pages > 40 {
					t.Fatal("paging does not end")
				}
				b := ts.mustStatus(ts.get(next, nil), http.StatusOK).JSON(t)
				for _, id := range entryIDs(t, b) {
					seen[id]++
				}
				next = link(b, "next")
			}
			close(stop)
			wg.Wait()
			if len(writeErrs) > 0 {
				t.Fatalf("concurrent writes failed: %v", writeErrs)
			}
			for id := range original {
				if seen[id] != 1 {
					t.Errorf("%s existed throughout and was served %d times, want once", id, seen[id])
				}
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("%s served %d times", id, n)
				}
			}
		})
	}
}

func TestSearchTamperedPagingLinks(t *testing.T) {
	ts := newTestServer(t)
	for i := 0; i < 5; i++ {
		ts.create("Patient", patient("Tamper", ""))
	}
	ts.create("Patient", patient("Other", ""))
	first := ts.mustStatus(ts.get("/Patient?family=tamper&_count=2&_sort=family", nil), 200).JSON(t)
	next := link(first, "next")
	if next == "" {
		t.Fatal("no next link")
	}
	u, _ := url.Parse(next)
	cursor := u.Query().Get("_cursor")
	if len(cursor) > 140 { // a sort value, a UUID id, a 96-bit nonce and a 128-bit tag
		t.Errorf("cursor %q is %d bytes; keyset positions should stay compact", cursor, len(cursor))
	}
	// Opaque: the sort value (a family name here) is not in the link, in clear or merely encoded.
	for _, part := range strings.Split(cursor, ".") {
		raw, _ := base64.RawURLEncoding.DecodeString(part)
		if strings.Contains(strings.ToLower(string(raw)), "tamper") || strings.Contains(strings.ToLower(part), "tamper") {
			t.Errorf("the cursor carries the family name it sorted by: %q", raw)
		}
	}
	edited := []byte(cursor)
	edited[len(edited)/2] ^= 1
	if edited[len(edited)/2] == '-' || edited[len(edited)/2] == '_' || edited[len(edited)/2] > 'z' {
		edited[len(edited)/2] = 'A'
	}
	tests := []struct{ name, url string }{
		{"a criterion widened", strings.Replace(next, "family=tamper", "family=t", 1)},
		{"a criterion removed", strings.Replace(next, "family=tamper&", "", 1)},
		{"a criterion added", next + "&gender=female"},
		{"the sort changed", strings.Replace(next, "_sort=family", "_sort=-family", 1)},
		{"the page size changed", strings.Replace(next, "_count=2", "_count=3", 1)},
		{"the cursor moved to another search", "/Patient?family=other&_count=2&_sort=family&_cursor=" + cursor},
		{"the position edited", strings.Replace(next, "_cursor="+cursor, "_cursor="+string(edited), 1)},
		{"the signature cut", strings.TrimSuffix(next, cursor[len(cursor)-3:])},
		{"not a cursor at all", strings.Replace(next, "_cursor="+cursor, "_cursor=garbage", 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ts.mustStatus(ts.get(tt.url, nil), http.StatusBadRequest)
			iss := r.issue(t)
			if d, _ := iss["diagnostics"].(string); iss["code"] != "invalid" || !strings.Contains(d, "paging link") {
				t.Errorf("issue %v", iss)
			}
		})
	}
	// Another caller cannot use the link: it is bound to the caller it was issued to.
	other := ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs")
	r := ts.mustStatus(ts.get(next, header{"Authorization": "Bearer " + other}), http.StatusBadRequest)
	if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "another caller") {
		t.Errorf("another caller's link: %s", d)
	}
	// The untouched link still works, from any process sharing the key: nothing is kept per search.
	ts.mustStatus(ts.get(next, nil), http.StatusOK)
}

func TestCapabilityStatementListsSearchParametersAndIncludes(t *testing.T) {
	ts := newTestServer(t)
	cs := ts.mustStatus(ts.get("/metadata", nil), 200).JSON(t)
	byType := map[string]map[string]any{}
	for _, r := range cs["rest"].([]any)[0].(map[string]any)["resource"].([]any) {
		rm := r.(map[string]any)
		byType[rm["type"].(string)] = rm
	}
	has := func(list any, want string) bool {
		items, _ := list.([]any)
		for _, it := range items {
			if it == want {
				return true
			}
		}
		return false
	}
	param := func(typ, name string) map[string]any {
		for _, sp := range byType[typ]["searchParam"].([]any) {
			spm := sp.(map[string]any)
			if spm["name"] == name {
				return spm
			}
		}
		return map[string]any{}
	}
	paramType := func(typ, name string) string {
		s, _ := param(typ, name)["type"].(string)
		return s
	}
	// The specification's parameters are described at their definition URL; gpfhir's own need it here.
	described := func(typ, name string) bool {
		_, ok := param(typ, name)["documentation"]
		return ok
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"Immunization includes its patient", has(byType["Immunization"]["searchInclude"], "Immunization:patient")},
		{"Patient revincludes immunisations", has(byType["Patient"]["searchRevInclude"], "Immunization:patient")},
		{"Patient revincludes appointments by actor", has(byType["Patient"]["searchRevInclude"], "Appointment:actor")},
		{"Slot revincludes appointments", has(byType["Slot"]["searchRevInclude"], "Appointment:slot")},
		{"Patient name is a string", paramType("Patient", "name") == "string"},
		{"Patient birthdate is a date", paramType("Patient", "birthdate") == "date"},
		{"Appointment actor is a reference", paramType("Appointment", "actor") == "reference"},
		{"every type has _tag", paramType("Slot", "_tag") == "token"},
		{"every type has _profile", paramType("Schedule", "_profile") == "uri"},
		{"every type has _security", paramType("Organization", "_security") == "token"},
		{"Patient name leads to its R4 definition", param("Patient", "name")["definition"] == "http://hl7.org/fhir/SearchParameter/Patient-name"},
		{"an R4 parameter is not described again", paramType("Patient", "birthdate") != "" && !described("Patient", "birthdate") && !described("Slot", "_id")},
		{"gpfhir's own Slot parameter is described", paramType("Slot", "online-bookable") == "token" && described("Slot", "online-bookable")},
	}
	for _, tt := range tests {
		if !tt.ok {
			t.Errorf("%s: the CapabilityStatement says otherwise", tt.name)
		}
	}
}
