package audit_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

func TestChainHashCoversEveryHashedField(t *testing.T) {
	base := audit.Record{Seq: 7, ID: "a", Recorded: time.UnixMilli(1_700_000_000_000).UTC(), Body: []byte(`{"x":1}`)}
	prev := []byte("previous")
	want := audit.ChainHash(prev, base)
	changed := []struct {
		name string
		prev []byte
		edit func(r *audit.Record)
	}{
		{"another predecessor", []byte("other"), func(*audit.Record) {}},
		{"no predecessor", nil, func(*audit.Record) {}},
		{"another seq", prev, func(r *audit.Record) { r.Seq = 8 }},
		{"another id", prev, func(r *audit.Record) { r.ID = "b" }},
		{"another millisecond", prev, func(r *audit.Record) { r.Recorded = r.Recorded.Add(time.Millisecond) }},
		{"another body", prev, func(r *audit.Record) { r.Body = []byte(`{"x":2}`) }},
		{"bytes moved from id to body", prev, func(r *audit.Record) { r.ID, r.Body = "a{", []byte(`"x":1}`) }},
	}
	for _, tc := range changed {
		t.Run(tc.name+" changes the hash", func(t *testing.T) {
			r := base
			tc.edit(&r)
			if bytes.Equal(audit.ChainHash(tc.prev, r), want) {
				t.Error("same hash")
			}
		})
	}
	unchanged := []struct {
		name string
		edit func(r *audit.Record)
	}{
		{"the index", func(r *audit.Record) { r.Index = []store.IndexEntry{{Param: "action", Value: "R"}} }},
		{"the stored hash", func(r *audit.Record) { r.Hash = []byte("x") }},
		{"sub-millisecond time", func(r *audit.Record) { r.Recorded = r.Recorded.Add(time.Microsecond) }},
		{"the time zone", func(r *audit.Record) { r.Recorded = r.Recorded.In(time.FixedZone("X", 3600)) }},
	}
	for _, tc := range unchanged {
		t.Run(tc.name+" does not change the hash", func(t *testing.T) {
			r := base
			tc.edit(&r)
			if !bytes.Equal(audit.ChainHash(prev, r), want) {
				t.Error("different hash")
			}
		})
	}
}

func TestChainNumbersAndLinksRecordsFromTheHead(t *testing.T) {
	recs := []audit.Record{{ID: "a", Body: []byte("1")}, {ID: "b", Body: []byte("2")}}
	audit.Chain([]byte("head"), 41, recs)
	if recs[0].Seq != 42 || recs[1].Seq != 43 {
		t.Fatalf("Seq = %d, %d, want 42, 43", recs[0].Seq, recs[1].Seq)
	}
	if !bytes.Equal(recs[0].Hash, audit.ChainHash([]byte("head"), recs[0])) || !bytes.Equal(recs[1].Hash, audit.ChainHash(recs[0].Hash, recs[1])) {
		t.Error("hashes are not linked")
	}
	if err := audit.CheckBatch(recs); err != nil {
		t.Errorf("CheckBatch of a chained batch: %v", err)
	}
	if err := audit.CheckLink(41, []byte("head"), recs[0]); err != nil {
		t.Errorf("CheckLink on its head: %v", err)
	}
}

func TestVerifyResultReports(t *testing.T) {
	pruned := audit.Anchor{Seq: 7, Hash: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, Recorded: time.Date(2025, 6, 1, 13, 0, 0, 0, time.FixedZone("BST", 3600))}
	cases := []struct {
		res  audit.VerifyResult
		want string
	}{
		{audit.VerifyResult{Intact: true, Records: 12}, "intact, 12 records"},
		{audit.VerifyResult{Records: 4, BrokenAt: 5, Reason: "record 5 is missing"}, "broken at record 5: record 5 is missing (4 records before it are intact)"},
		{audit.VerifyResult{Intact: true, Records: 3, Anchor: pruned}, "intact, 3 records (records 1–7, recorded up to 2025-06-01T12:00:00Z, were pruned; the chain starts from anchor hash 0102030405060708)"},
		{audit.VerifyResult{Intact: true, Anchor: pruned}, "intact, 0 records (records 1–7, recorded up to 2025-06-01T12:00:00Z, were pruned; the chain starts from anchor hash 0102030405060708)"},
		{audit.VerifyResult{Records: 1, BrokenAt: 9, Reason: "record 9 is missing", Anchor: pruned},
			"broken at record 9: record 9 is missing (1 records before it are intact; records 1–7, recorded up to 2025-06-01T12:00:00Z, were pruned; the chain starts from anchor hash 0102030405060708)"},
	}
	for _, tc := range cases {
		if got := tc.res.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestPrunablePrefixStopsAtTheFirstRecordNotBeforeTheCutOff(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	rec := func(id string, min int) audit.Record {
		return audit.Record{ID: id, Recorded: t0.Add(time.Duration(min) * time.Minute), Body: []byte(`{"id":"` + id + `"}`)}
	}
	anchor := audit.Anchor{Seq: 10, Hash: []byte("anchor")}
	// The clock stepped back at c: it is older than b but comes after it in the chain.
	page := chainFrom(anchor, rec("a", 1), rec("b", 5), rec("c", 3), rec("d", 9))
	cases := []struct {
		name   string
		before time.Time
		want   int
	}{
		{"nothing is older than the cut-off", t0, 0},
		{"the cut-off is exclusive", t0.Add(time.Minute), 0},
		{"a prefix", t0.Add(2 * time.Minute), 1},
		{"an older record after a newer one stays", t0.Add(4 * time.Minute), 1},
		{"past the step back", t0.Add(6 * time.Minute), 3},
		{"the whole page", t0.Add(time.Hour), 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := audit.PrunablePrefix(anchor, page, tc.before)
			if err != nil || n != tc.want {
				t.Errorf("PrunablePrefix = %d, %v; want %d", n, err, tc.want)
			}
		})
	}
}

func TestPrunablePrefixRefusesABrokenLink(t *testing.T) {
	t0 := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	anchor := audit.Anchor{Seq: 4, Hash: []byte("anchor")}
	fresh := func() []audit.Record {
		var recs []audit.Record
		for i, id := range []string{"a", "b", "c"} {
			recs = append(recs, audit.Record{ID: id, Recorded: t0.Add(time.Duration(i) * time.Minute), Body: []byte(`{"id":"` + id + `"}`)})
		}
		return chainFrom(anchor, recs...)
	}
	cases := []struct {
		name   string
		edit   func(p []audit.Record) []audit.Record
		anchor audit.Anchor
		want   int
		reason string
	}{
		{"an edited body", func(p []audit.Record) []audit.Record { p[1].Body = []byte(`{"id":"x"}`); return p }, anchor, 1, "record 6: AuditEvent/b does not match its hash"},
		{"a missing stored copy", func(p []audit.Record) []audit.Record { p[2].Body = nil; return p }, anchor, 2, "record 7: AuditEvent/c is missing"},
		{"a gap", func(p []audit.Record) []audit.Record { return append(p[:1], p[2]) }, anchor, 1, "record 6 is missing"},
		{"a first record that does not chain on the anchor", func(p []audit.Record) []audit.Record { return p },
			audit.Anchor{Seq: 4, Hash: []byte("another anchor")}, 0, "record 5: AuditEvent/a does not match its hash"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, err := audit.PrunablePrefix(tc.anchor, tc.edit(fresh()), t0.Add(time.Hour))
			if n != tc.want || err == nil || !strings.Contains(err.Error(), tc.reason) {
				t.Errorf("PrunablePrefix = %d, %v; want %d and an error saying %q", n, err, tc.want, tc.reason)
			}
		})
	}
}

func chainFrom(anchor audit.Anchor, recs ...audit.Record) []audit.Record {
	audit.Chain(anchor.Hash, anchor.Seq, recs)
	return recs
}

// A batch the store chains itself is checked for what it carries, not for the Seq and Hash it has not
// been given yet.
func TestCheckUnchainedChecksWhatTheBatchCarries(t *testing.T) {
	rec := func(id, body string) audit.Record { return audit.Record{ID: id, Body: []byte(body)} }
	if err := audit.CheckUnchained([]audit.Record{rec("a", "{}"), rec("b", "{}")}); err != nil {
		t.Errorf("a batch without Seq and Hash: %v", err)
	}
	// What EventIndex writes for a patient reading their own record, and references that are no local
	// Patient: an absolute URL elsewhere, another type, a Patient's history.
	named := withIndex(rec("a", "{}"), store.IndexEntry{Param: "patient", Value: "Patient/p1"},
		store.IndexEntry{Param: "agent", Value: "Patient/p1"}, store.IndexEntry{Param: "entity", Value: "Patient/p1"},
		store.IndexEntry{Param: "entity", Value: "https://elsewhere.example/Patient/p9"},
		store.IndexEntry{Param: "entity", Value: "Practitioner/p1"}, store.IndexEntry{Param: "entity", Value: "Patient/p1/_history/2"})
	if err := audit.CheckUnchained([]audit.Record{named}); err != nil {
		t.Errorf("a record naming its patient as agent and entity: %v", err)
	}
	for name, batch := range map[string][]audit.Record{
		"no id":       {rec("a", "{}"), rec("", "{}")},
		"an id twice": {rec("a", "{}"), rec("a", "{}")},
		"no body":     {rec("a", "{}"), rec("b", "")},
		"too many":    make([]audit.Record, audit.MaxBatch+1),
		"a Patient as entity without its patient entry": {rec("a", "{}"), withIndex(rec("b", "{}"),
			store.IndexEntry{Param: "patient", Value: "Patient/p2"}, store.IndexEntry{Param: "entity", Value: "Patient/p1"})},
		"a Patient as agent without its patient entry": {withIndex(rec("a", "{}"), store.IndexEntry{Param: "agent", Value: "Patient/p1"})},
		"a Patient as entity with a system": {withIndex(rec("a", "{}"),
			store.IndexEntry{Param: "patient", Value: "Patient/p1"}, store.IndexEntry{Param: "entity", System: "urn:s", Value: "Patient/p1"})},
	} {
		if err := audit.CheckUnchained(batch); !errors.Is(err, store.ErrInvalidQuery) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := audit.CheckBatch([]audit.Record{rec("a", "{}"), rec("b", "{}")}); !errors.Is(err, store.ErrInvalidQuery) {
		t.Errorf("CheckBatch let an unchained batch through: %v", err)
	}
}

func withIndex(r audit.Record, entries ...store.IndexEntry) audit.Record {
	r.Index = entries
	return r
}
