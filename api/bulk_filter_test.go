package api_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
)

// filtered is an export path with the _typeFilter values given.
func filtered(path string, filters ...string) string {
	q := url.Values{"_type": {"Immunization"}, "_typeFilter": filters}
	return path + "?" + q.Encode()
}

func TestBulkExportWithSeveralFiltersForOneType(t *testing.T) {
	exportDir := t.TempDir()
	st := openTestStore(t)
	ts := newTestServerOn(t, st, func(c *apiConfig) { c.ExportDir = exportDir })
	w := newServicesWorld(t, ts)
	day := func(d int) time.Time { return time.Date(2024, 1, d, 9, 0, 0, 0, time.UTC) }
	d1 := ts.create("Immunization", immunization(w.me, day(1)))
	d2 := ts.create("Immunization", immunization(w.me, day(2)))
	d3 := ts.create("Immunization", immunization(w.me, day(3)))
	// Matched by no filter below: another vaccine, and another patient's entry before the 2nd.
	otherVaccine := immunization(w.me, day(5))
	otherVaccine["vaccineCode"] = obj{"coding": arr{coding("http://snomed.info/sct", "871751000000104", "MMR vaccine")}}
	ts.create("Immunization", otherVaccine)
	othersD1 := ts.create("Immunization", immunization(w.other, day(1)))
	own := bearer(ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))

	upTo2nd := "Immunization?date=le2024-01-02&patient=Patient/" + w.me           // d1, d2
	from2ndFlu := "Immunization?date=ge2024-01-02&vaccine-code=34680411000001107" // d2, d3
	ofOther := "Immunization?patient.family=Other"                                // othersD1, through a chain

	cases := []struct {
		name    string
		filters []string
		want    []string
	}{
		{"two overlapping filters give their union, each resource once", []string{upTo2nd, from2ndFlu}, []string{d1, d2, d3}},
		{"the order of the filters does not matter", []string{from2ndFlu, upTo2nd}, []string{d1, d2, d3}},
		{"a third filter through a chain adds its matches", []string{upTo2nd, from2ndFlu, ofOther}, []string{d1, d2, d3, othersD1}},
		{"one filter alone", []string{upTo2nd}, []string{d1, d2}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, _ := kickOff(t, ts, filtered("/Patient/$export", tc.filters...), own)
			got := exported(t, ts, m, own)["Immunization"]
			slices.Sort(got)
			want := slices.Sorted(slices.Values(tc.want))
			if !slices.Equal(got, want) {
				t.Errorf("exported %v, want %v", got, want)
			}
		})
	}
	t.Run("an invalid second filter is refused, named", func(t *testing.T) {
		bad := "Immunization?bogus=1"
		r := ts.do("GET", filtered("/$export", upTo2nd, bad), nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]})
		if r.Status != http.StatusBadRequest {
			t.Fatalf("status %d %s, want 400", r.Status, r.Body)
		}
		if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, bad) {
			t.Errorf("diagnostics %q do not name the filter %s", d, bad)
		}
	})
	t.Run("filters whose combination is too large are refused", func(t *testing.T) {
		// Each filter of five ANDed conditions: ten such filters would make 5^10 combined conditions.
		wide := "Immunization?status=completed&date=ge2000-01-01&date=le2100-01-01&vaccine-code=34680411000001107&lot-number=x"
		var fs []string
		for range 10 {
			fs = append(fs, wide)
		}
		r := ts.do("GET", filtered("/$export", fs...), nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]})
		if r.Status != http.StatusBadRequest {
			t.Fatalf("status %d %s, want 400", r.Status, r.Body)
		}
		if d, _ := r.issue(t)["diagnostics"].(string); !strings.Contains(d, "_typeFilter") || !strings.Contains(d, "combine") {
			t.Errorf("diagnostics %q do not name _typeFilter", d)
		}
	})
	t.Run("a job written with one filter per type still runs after a restart", func(t *testing.T) {
		_, status := kickOff(t, ts, filtered("/Patient/$export", upTo2nd), own)
		id := status[strings.LastIndex(status, "/")+1:]
		jobFile := filepath.Join(exportDir, id, "job.json")
		raw, err := os.ReadFile(jobFile)
		if os.IsNotExist(err) {
			// Only jobs kept as files have a job.json written by an older server to read.
			t.Skipf("this backend keeps export jobs elsewhere than in %s", jobFile)
		}
		if err != nil {
			t.Fatal(err)
		}
		var job map[string]any
		if err := json.Unmarshal(raw, &job); err != nil {
			t.Fatal(err)
		}
		job["status"], job["output"] = "in-progress", nil
		job["filters"] = map[string]string{"Immunization": strings.TrimPrefix(upTo2nd, "Immunization?")}
		raw, _ = json.Marshal(job)
		if err := os.WriteFile(jobFile, raw, 0o600); err != nil {
			t.Fatal(err)
		}
		ts2 := newTestServerOn(t, st, func(c *apiConfig) { c.ExportDir = exportDir })
		own2 := bearer(ts2.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := ts2.do("GET", "/$export-poll/"+id, nil, own2)
			if r.Status == http.StatusOK {
				var m manifest
				if err := json.Unmarshal(r.Body, &m); err != nil {
					t.Fatal(err)
				}
				if len(m.Output) != 1 || m.Output[0].Count != 2 {
					t.Errorf("the old job's output %+v, want the 2 Immunizations its filter matches", m.Output)
				}
				return
			}
			if r.Status != http.StatusAccepted || time.Now().After(deadline) {
				t.Fatalf("the old job answers %d: %s", r.Status, r.Body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
