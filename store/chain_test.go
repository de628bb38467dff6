package store_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

func TestChainHashCoversEveryHashedField(t *testing.T) {
	base := store.AuditRecord{Seq: 7, ID: "a", Recorded: time.UnixMilli(1_700_000_000_000).UTC(), Body: []byte(`{"x":1}`)}
	prev := []byte("previous")
	want := store.ChainHash(prev, base)
	changed := []struct {
		name string
		prev []byte
		edit func(r *store.AuditRecord)
	}{
		{"another predecessor", []byte("other"), func(*store.AuditRecord) {}},
		{"no predecessor", nil, func(*store.AuditRecord) {}},
		{"another seq", prev, func(r *store.AuditRecord) { r.Seq = 8 }},
		{"another id", prev, func(r *store.AuditRecord) { r.ID = "b" }},
		{"another millisecond", prev, func(r *store.AuditRecord) { r.Recorded = r.Recorded.Add(time.Millisecond) }},
		{"another body", prev, func(r *store.AuditRecord) { r.Body = []byte(`{"x":2}`) }},
		{"bytes moved from id to body", prev, func(r *store.AuditRecord) { r.ID, r.Body = "a{", []byte(`"x":1}`) }},
	}
	for _, tc := range changed {
		t.Run(tc.name+" changes the hash", func(t *testing.T) {
			r := base
			tc.edit(&r)
			if bytes.Equal(store.ChainHash(tc.prev, r), want) {
				t.Error("same hash")
			}
		})
	}
	unchanged := []struct {
		name string
		edit func(r *store.AuditRecord)
	}{
		{"the index", func(r *store.AuditRecord) { r.Index = []store.IndexEntry{{Param: "action", Value: "R"}} }},
		{"the stored hash", func(r *store.AuditRecord) { r.Hash = []byte("x") }},
		{"sub-millisecond time", func(r *store.AuditRecord) { r.Recorded = r.Recorded.Add(time.Microsecond) }},
		{"the time zone", func(r *store.AuditRecord) { r.Recorded = r.Recorded.In(time.FixedZone("X", 3600)) }},
	}
	for _, tc := range unchanged {
		t.Run(tc.name+" does not change the hash", func(t *testing.T) {
			r := base
			tc.edit(&r)
			if !bytes.Equal(store.ChainHash(prev, r), want) {
				t.Error("different hash")
			}
		})
	}
}

func TestChainNumbersAndLinksRecordsFromTheHead(t *testing.T) {
	recs := []store.AuditRecord{{ID: "a", Body: []byte("1")}, {ID: "b", Body: []byte("2")}}
	store.Chain([]byte("head"), 41, recs)
	if recs[0].Seq != 42 || recs[1].Seq != 43 {
		t.Fatalf("Seq = %d, %d, want 42, 43", recs[0].Seq, recs[1].Seq)
	}
	if !bytes.Equal(recs[0].Hash, store.ChainHash([]byte("head"), recs[0])) || !bytes.Equal(recs[1].Hash, store.ChainHash(recs[0].Hash, recs[1])) {
		t.Error("hashes are not linked")
	}
	if err := store.CheckAuditBatch(recs); err != nil {
		t.Errorf("CheckAuditBatch of a chained batch: %v", err)
	}
	if err := store.CheckAuditLink(41, []byte("head"), recs[0]); err != nil {
		t.Errorf("CheckAuditLink on its head: %v", err)
	}
}

func TestVerifyResultReports(t *testing.T) {
	cases := []struct {
		res  store.VerifyResult
		want string
	}{
		{store.VerifyResult{Intact: true, Records: 12}, "intact, 12 records"},
		{store.VerifyResult{Records: 4, BrokenAt: 5, Reason: "record 5 is missing"}, "broken at record 5: record 5 is missing (4 records before it are intact)"},
	}
	for _, tc := range cases {
		if got := tc.res.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}
