package api_test

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

// Hostile search values and bodies are data, never query: SQL fragments, LIKE and regular-expression
// wildcards and MongoDB operators, in values and in JSON keys, find only what they literally say, or
// are refused with a 400/422 OperationOutcome, and change nothing stored. newTestServer runs this on
// SQLite and again on MongoDB (FerretDB).
func TestHostileInputNeverAltersAQuery(t *testing.T) {
	ts := newTestServer(t)
	smith := ts.create("Patient", patient("Smith", "9000000009"))
	jones := ts.create("Patient", patient("Jones", "9912003071"))
	// A patient whose name is itself hostile must be stored and found exactly, and only by itself.
	evilName := `O'Brien'); DROP TABLE history;-- $where {"$ne":null}`
	evil := ts.create("Patient", patient(evilName, ""))
	all := []string{smith, jones, evil}

	hostile := []string{
		`' OR '1'='1`, `Smith' --`, `x'); DROP TABLE current; --`, `x"; DROP TABLE idx; --`,
		`%`, `_`, `S_ith`, `.*`, `^S`, `(?i)smith`, `\`, `'`,
		`{"$ne":null}`, `{"$regex":".*"}`, `$where`, `[$ne]`,
		`Smith' UNION SELECT type, id, version, last_updated, deleted, body FROM history --`,
		`Smith` + "\x00" + `' OR 1=1`,
	}
	// A string, a token, a reference, a date and a reverse chain: each kind of index lookup.
	params := []string{"family", "given", "identifier", "_id", "birthdate", "organization", "_has:Immunization:patient:status"}
	for _, p := range params {
		for _, v := range hostile {
			q := url.Values{p: {v}}.Encode()
			r := ts.do("GET", "/Patient?"+q, nil, nil)
			switch {
			case r.Status == 400:
				if r.issue(t)["diagnostics"] == "" {
					t.Errorf("%s: 400 without a diagnostic", q)
				}
			case r.Status == 200:
				if ids := bundleIDs(t, r); len(ids) > 0 && !(len(ids) == 1 && ids[0] == evil) {
					t.Errorf("%s found %v: a hostile value matched more than it says", q, ids)
				}
			default:
				t.Errorf("%s: status %d, want 200 with nothing or 400: %.300s", q, r.Status, r.Body)
			}
		}
	}
	// Operator-shaped parameter names are unknown parameters, not operators.
	for _, q := range []string{"family[$ne]=x", "$where=1", "family.$ne=x", "_id[$gt]=", "family%5B%24regex%5D=.*", "family:$ne=x"} {
		r := ts.do("GET", "/Patient?"+q, nil, header{"Prefer": "handling=strict"})
		if r.Status != 400 {
			t.Errorf("%s with handling=strict: status %d, want 400: %.300s", q, r.Status, r.Body)
		}
		r = ts.do("GET", "/Patient?"+q, nil, nil)
		if r.Status >= 500 {
			t.Errorf("%s: status %d", q, r.Status)
		} else if r.Status == 200 && len(bundleIDs(t, r)) != len(all) {
			// Lenient handling ignores the unknown parameter: everything, not a filtered subset.
			t.Errorf("%s (lenient) found %v, want all %d patients", q, bundleIDs(t, r), len(all))
		}
	}
	// The hostile name is found by itself, exactly, and by no other name.
	for _, v := range []string{evilName, `O'Brien'); DROP`, `o'brien`} {
		r := ts.mustStatus(ts.do("GET", "/Patient?"+url.Values{"family": {v}}.Encode(), nil, nil), 200)
		if ids := bundleIDs(t, r); !slices.Equal(ids, []string{evil}) {
			t.Errorf("family=%q found %v, want only %s", v, ids, evil)
		}
	}

	bodies := []struct{ name, body string }{
		{"operator as a key", `{"resourceType":"Patient","$where":"1"}`},
		{"operator inside an element", `{"resourceType":"Patient","name":[{"family":"x","$set":{"deleted":true}}]}`},
		{"operator object as a value", `{"resourceType":"Patient","name":[{"family":{"$ne":null}}]}`},
		{"dotted key", `{"resourceType":"Patient","meta.versionId":"9"}`},
		{"operator as the type", `{"resourceType":{"$ne":"x"}}`},
		{"operator id", `{"resourceType":"Patient","id":"$ne"}`},
	}
	for _, b := range bodies {
		r := ts.do("POST", "/Patient", b.body, nil)
		if r.Status != 400 && r.Status != 422 {
			t.Errorf("%s: status %d, want 400 or 422: %.300s", b.name, r.Status, r.Body)
			continue
		}
		if r.issue(t)["diagnostics"] == "" && r.issue(t)["expression"] == nil {
			t.Errorf("%s: refusal says nothing about what is wrong: %s", b.name, r.Body)
		}
	}
	for _, p := range []string{"/Patient/$ne", "/Patient/%24where", "/Patient/x'%20OR%20'1'='1"} {
		// An id with '$' names an operation, so 405 is as right an answer as 400.
		if r := ts.do("PUT", p, patient("Smith", ""), nil); r.Status != 400 && r.Status != 405 {
			t.Errorf("PUT %s: status %d, want 400 or 405: %.300s", p, r.Status, r.Body)
		}
		if r := ts.do("GET", p, nil, nil); r.Status >= 500 || r.Status == 200 {
			t.Errorf("GET %s: status %d", p, r.Status)
		}
	}
	// A conditional update whose criteria are hostile must not pick a resource it does not name.
	r := ts.do("PUT", "/Patient?"+url.Values{"family": {`' OR '1'='1`}}.Encode(), patient("Changed", ""), nil)
	if r.Status >= 500 || r.Status == 200 {
		t.Errorf("conditional update on a hostile family: %d %.300s", r.Status, r.Body)
	}

	// Nothing stored changed.
	r = ts.mustStatus(ts.do("GET", "/Patient?_count=100", nil, nil), 200)
	got := bundleIDs(t, r)
	for _, id := range all {
		if !slices.Contains(got, id) {
			t.Errorf("patient %s is gone after the hostile requests", id)
		}
	}
	for _, id := range []string{smith, jones, evil} {
		b := ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200).JSON(t)
		if v := b["meta"].(map[string]any)["versionId"]; v != "1" {
			t.Errorf("patient %s is at version %v after the hostile requests, want 1", id, v)
		}
	}
	if !strings.Contains(string(ts.do("GET", "/Patient/"+evil, nil, nil).Body), `DROP TABLE history;-- $where {\"$ne\":null}`) {
		t.Errorf("the hostile name was not stored as sent")
	}
}
