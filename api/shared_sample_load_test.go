package api_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// syntheaPatientBundles reads up to n patient bundles of the shared Synthea sample, keeping only the
// entries of served types, and only bundles that then fit in one transaction; it skips when the sample
// is absent. maxEntries bounds a bundle's served entries. Synthea writes no practice registration, so each
// Patient is registered at the test practice, as a GP system's sync would place it.
func syntheaPatientBundles(t *testing.T, n, maxEntries int) (bundles []map[string]any, dropped map[string]int) {
	t.Helper()
	tr := syntheaArchive(t, "loading Synthea records needs it")
	dropped = map[string]int{}
	for len(bundles) < n {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := h.Name[strings.LastIndex(h.Name, "/")+1:]
		if !syntheaPatientFile(h.Name) {
			continue
		}
		var b map[string]any
		if err := json.NewDecoder(tr).Decode(&b); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var kept []any
		skip := map[string]int{}
		for _, e := range b["entry"].([]any) {
			res := e.(map[string]any)["resource"].(map[string]any)
			typ := res["resourceType"].(string)
			if _, ok := fhir.LookupType(typ); !ok {
				skip[typ]++
				continue
			}
			if typ == "Patient" {
				res["managingOrganization"] = ref("Organization", testPracticeID)
			}
			kept = append(kept, e)
		}
		if len(kept) > maxEntries {
			continue
		}
		for typ, c := range skip {
			dropped[typ] += c
		}
		b["entry"] = kept
		bundles = append(bundles, b)
	}
	if len(bundles) == 0 {
		t.Skip("no patient bundle in synthea-r4.tgz fits in one transaction")
	}
	return bundles, dropped
}

// TestSyntheaRecordsAreKeptWhole: Synthea patients loaded through transactions keep every resource of a
// served type: each entry is created, reads back with the same elements, and each type's count for the
// patient is what the bundle held.
func TestSyntheaRecordsAreKeptWhole(t *testing.T) {
	n, maxEntries := 20, 1000 // 1000: the most one transaction may hold
	if os.Getenv(backendEnv) == "mongo" {
		// FerretDB scans whole collections and has no transactions (the journal applies a bundle), so
		// the Mongo pass loads one smaller record (three of up to 150 entries took six minutes there).
		n, maxEntries = 1, 120
	}
	bundles, dropped := syntheaPatientBundles(t, n, maxEntries)
	var ts *testServer
	if os.Getenv(backendEnv) == "mongo" {
		// Without transactions a bundle is applied through the journal, operation by operation, and
		// FerretDB on a shared machine can take longer over one than the store's 10-second default.
		st, err := mongo.Open(context.Background(), mongo.Options{URI: mongotest.Start(t), Database: mongotest.Database(t), Timeout: 2 * time.Minute})
		if err != nil {
			t.Fatalf("open mongo: %v", err)
		}
		ts = newTestServerOn(t, st)
	} else {
		ts = newTestServer(t)
	}
	total := map[string]int{}
	for bi, b := range bundles {
		r := ts.mustStatus(ts.do("POST", "/", b, header{"Prefer": "return=minimal"}), 200)
		responses := responseEntries(t, r, "transaction-response")
		entries := b["entry"].([]any)
		if len(responses) != len(entries) {
			t.Fatalf("bundle %d: %d responses for %d entries", bi, len(responses), len(entries))
		}
		want := map[string]int{}
		var patientID string
		for i, e := range entries {
			sent := e.(map[string]any)["resource"].(map[string]any)
			typ := sent["resourceType"].(string)
			want[typ]++
			total[typ]++
			if got := entryStatus(responses[i]); got != "201 Created" {
				t.Fatalf("bundle %d entry %d (%s): %s", bi, i, typ, got)
			}
			loc := responses[i]["response"].(map[string]any)["location"].(string)
			parts := strings.Split(loc, "/")
			if typ == "Patient" {
				patientID = parts[1]
			}
			if bi >= 3 {
				continue // every entry of the first bundles is read back; the rest are counted
			}
			stored := ts.mustStatus(ts.do("GET", "/"+parts[0]+"/"+parts[1], nil, nil), 200).JSON(t)
			if missing := missingElements(sent, stored); len(missing) > 0 {
				t.Errorf("bundle %d entry %d (%s): elements lost: %v", bi, i, typ, missing)
			}
		}
		for typ, c := range want {
			ti, _ := fhir.LookupType(typ)
			q := "_id=" + patientID
			if typ != "Patient" {
				if _, ok := ti.Param("patient"); !ok {
					continue // Organization, Practitioner: shared, counted below
				}
				q = "patient=Patient/" + patientID
			}
			if got := ts.txCount(typ, q); got != c {
				t.Errorf("bundle %d: %d %s stored for the patient, want %d", bi, got, typ, c)
			}
		}
	}
	var types []string
	for typ := range total {
		types = append(types, typ)
	}
	sort.Strings(types)
	for _, typ := range types {
		if got := ts.txCount(typ, ""); got < total[typ] {
			t.Errorf("%d %s stored, want at least %d", got, typ, total[typ])
		}
	}
	t.Logf("loaded %d Synthea patients: %v; types not served, left out: %v", len(bundles), total, dropped)
	for _, typ := range []string{"Encounter", "Condition", "Observation", "Procedure"} {
		if total[typ] == 0 {
			t.Errorf("no %s in the loaded sample", typ)
		}
	}
}

// missingElements lists the top-level elements of sent that stored lacks.
func missingElements(sent, stored map[string]any) []string {
	var out []string
	for k := range sent {
		if k == "id" || k == "meta" {
			continue
		}
		if _, ok := stored[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}
