package api_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// appendAuditRecords puts n AuditEvents about patient into the trail directly, as a long-running
// server would have written them, newer than everything else.
func appendAuditRecords(t testing.TB, st audit.Store, n int, patient string) {
	t.Helper()
	now := time.Now().UTC()
	for start := 0; start < n; start += 1000 {
		var recs []audit.Record
		for i := start; i < min(n, start+1000); i++ {
			id := fmt.Sprintf("bulk-%06d", i)
			when := now.Add(time.Duration(i) * time.Millisecond)
			recs = append(recs, audit.Record{ID: id, Recorded: when,
				Body: fmt.Appendf(nil, `{"resourceType":"AuditEvent","id":%q,"meta":{"versionId":"1","lastUpdated":%q},"recorded":%q,"action":"R",`+
					`"type":{"system":"http://terminology.hl7.org/CodeSystem/audit-event-type","code":"rest"},`+
					`"agent":[{"requestor":true}],"source":{"observer":{"display":"test"}},"entity":[{"what":{"reference":"Patient/%s"}}]}`,
					id, when.Format(time.RFC3339Nano), when.Format(time.RFC3339Nano), patient),
				Index: []store.IndexEntry{{Param: "patient", Value: "Patient/" + patient}}})
		}
		if err := audit.AppendChained(context.Background(), st, recs, 10); err != nil {
			t.Fatal(err)
		}
	}
}

// scanLog collects how many versions each history page read.
type scanLog struct {
	mu    sync.Mutex
	pages []int
}

func (l *scanLog) option(bound int) serverOption {
	return serverOption(api.HistoryScanned(func(n int) { l.mu.Lock(); l.pages = append(l.pages, n); l.mu.Unlock() }, bound))
}

func (l *scanLog) take() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pages
	l.pages = nil
	return p
}

// System history used to read every version in history order and check each in Go: with 152,000
// audit records a page of ten took over a minute. Now the store lists only the types the caller may
// read, and a page reads at most 1,000 versions, ending early with a next link when it must.
func TestHistoryPagesCostWhatTheirPageCosts(t *testing.T) {
	// The bound is 1,000 versions; FerretDB, which scans whole collections, gets a tenth of the data
	// and of the bound.
	bound, records, hidden, perBundle := 1000, 3000, 1500, 500
	if os.Getenv(backendEnv) == "mongo" {
		bound, records, hidden, perBundle = 100, 300, 150, 50
	}
	var scans scanLog
	ts := newTestServer(t, scans.option(bound))
	w := newPatientWorld(t, ts)
	appendAuditRecords(t, ts.store, records, w.me)
	// Versions the patient may not see, newer than the patient's own.
	for range hidden / perBundle {
		var entries []obj
		for i := range perBundle {
			entries = append(entries, txPost(fmt.Sprintf("urn:uuid:00000000-0000-4000-8000-%012d", i), obj{"resourceType": "Immunization", "status": "completed",
				"vaccineCode":        obj{"coding": []any{obj{"system": "http://snomed.info/sct", "code": "39114911000001105"}}},
				"patient":            obj{"reference": "Patient/" + w.other},
				"occurrenceDateTime": "2024-01-01"}))
		}
		ts.mustStatus(ts.do("POST", "/", txBundle("transaction", entries...), nil), 200)
	}
	scans.take()

	t.Run("a GP system's page reads no audit records", func(t *testing.T) {
		b := ts.mustStatus(ts.do("GET", "/_history?_count=10", nil, nil), 200).JSON(t)
		if ids := entryIDs(t, b); len(ids) != 10 || strings.HasPrefix(ids[0], "bulk-") {
			t.Errorf("page %v, want ten clinical versions", ids)
		}
		if p := scans.take(); len(p) != 1 || p[0] > min(100, bound) {
			t.Errorf("versions read per page %v, want one page of at most one batch (100)", p)
		}
	})

	t.Run("a patient's pages each read at most the bound and together list all they may see once", func(t *testing.T) {
		p9 := bearer(ts.patientToken(w.meNHS, "P9", ""))
		path := "/_history?_count=10"
		var ids []string
		pages := 0
		for path != "" && pages < 20 {
			b := ts.mustStatus(ts.do("GET", path, nil, p9), 200).JSON(t)
			ids = append(ids, entryIDs(t, b)...)
			next := link(b, "next")
			path = strings.TrimPrefix(next, ts.URL)
			pages++
		}
		if path != "" {
			t.Fatalf("history did not end after %d pages", pages)
		}
		scanned := scans.take()
		for _, n := range scanned {
			if n > bound {
				t.Errorf("a page read %d versions, want at most %d", n, bound)
			}
		}
		t.Logf("%d pages read %v versions", pages, scanned)
		// Their immunisation and themselves, and the practices (public to every patient), newest first.
		if got, want := strings.Join(ids, ","), strings.Join([]string{w.myImm, w.farOrg, w.me, testPracticeID}, ","); got != want {
			t.Errorf("patient's history %v, want %s", got, want)
		}
		if pages < 2 {
			t.Errorf("%d pages: the %d hidden versions should have ended the first page early", pages, hidden)
		}
	})
}
