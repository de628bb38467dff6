package api_test

import (
	"strconv"
	"strings"
	"testing"
)

// committed reads gpfhir_audit_batch_records_sum: how many records the group committer has appended.
// Records stored with their writes do not pass through it.
func (ts *testServer) committed() float64 {
	ts.t.Helper()
	body := string(ts.mustStatus(ts.do("GET", "/metrics", nil, metricsHeader), 200).Body)
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, "gpfhir_audit_batch_records_sum "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				ts.t.Fatal(err)
			}
			return n
		}
	}
	return 0
}

// TestWritesStoreTheirRecordInTheirOwnTransaction: a write's AuditEvent is stored in the write's own
// transaction (store.ApplyAudited), not appended afterwards by the group committer, so a change cannot
// stand without its record. Each write still has exactly one record, naming the version it wrote, with
// the answer the client got.
func TestWritesStoreTheirRecordInTheirOwnTransaction(t *testing.T) {
	ts := newTestServer(t)
	id := ts.create("Patient", patient("Atomic", ""))
	patchType := header{"Content-Type": "application/json-patch+json"}
	tests := []struct {
		name, method, path string
		body               any
		h                  header
		status             int
		desc               string
		entity             string // the written version, as the record names it
	}{
		{"create", "POST", "/Patient", patient("Atomic", ""), nil, 201, "201 Created", ""},
		{"update", "PUT", "/Patient/" + id, withID(patient("Atomic", ""), id), nil, 200, "200 OK", "Patient/" + id + "/_history/2"},
		{"patch", "PATCH", "/Patient/" + id, `[{"op":"replace","path":"/gender","value":"male"}]`, patchType, 200, "200 OK", "Patient/" + id + "/_history/3"},
		{"update as create", "PUT", "/Patient/made-by-put", withID(patient("Atomic", ""), "made-by-put"), nil, 201, "201 Created", "Patient/made-by-put/_history/1"},
		{"delete", "DELETE", "/Patient/" + id, nil, nil, 204, "204 No Content", "Patient/" + id + "/_history/4"},
		{"delete with an outcome", "DELETE", "/Patient/made-by-put", nil, header{"Prefer": "return=OperationOutcome"}, 200, "200 OK", "Patient/made-by-put/_history/2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := ts.committed()
			h := header{"X-Request-ID": "atomic-" + strings.ReplaceAll(tc.name, " ", "-")}
			for k, v := range tc.h {
				h[k] = v
			}
			r := ts.mustStatus(ts.do(tc.method, tc.path, tc.body, h), tc.status)
			if got := ts.committed() - before; got != 0 {
				t.Errorf("the group committer appended %v records for the write; its record belongs in the write's transaction", got)
			}
			f := factsOf(ts.auditEvent(h["X-Request-ID"]))
			if f.outcome != "0" || !strings.HasPrefix(f.desc, tc.desc) {
				t.Errorf("outcome %s %q, want 0 and %q", f.outcome, f.desc, tc.desc)
			}
			want := tc.entity
			if want == "" {
				want = "Patient/" + r.JSON(t)["id"].(string) + "/_history/1"
			}
			found := false
			for _, e := range f.entities {
				found = found || e == want
			}
			if !found {
				t.Errorf("entities %v do not name the written version %s", f.entities, want)
			}
		})
	}

	// A read still goes through the committer: the metric above does count.
	before := ts.committed()
	ts.mustStatus(ts.do("GET", "/Patient?family=Atomic", nil, nil), 200)
	if ts.committed()-before != 1 {
		t.Errorf("a search's record was not appended by the group committer")
	}
}

// TestBundlesStoreTheirRecordsWithTheirWrites: a transaction's records (the bundle's and each entry's)
// are stored in the transaction's own commit; a batch stores each entry's record with that entry's
// writes, and only the bundle's own record is appended afterwards.
func TestBundlesStoreTheirRecordsWithTheirWrites(t *testing.T) {
	ts := newTestServer(t)
	before := ts.committed()
	ts.mustStatus(ts.do("POST", "/", txBundle("transaction",
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-0000000000a1", patient("Bundled", "")),
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-0000000000a2", patient("Bundled", ""))),
		header{"X-Request-ID": "atomic-tx"}), 200)
	if got := ts.committed() - before; got != 0 {
		t.Errorf("the group committer appended %v records for a transaction", got)
	}
	before = ts.committed()
	ts.mustStatus(ts.do("POST", "/", txBundle("batch",
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-0000000000b1", patient("Batched", "")),
		txPost("urn:uuid:6f1b2a3c-0000-4000-8000-0000000000b2", patient("Batched", ""))),
		header{"X-Request-ID": "atomic-batch"}), 200)
	if got := ts.committed() - before; got != 1 {
		t.Errorf("the group committer appended %v records for a batch of two creates, want 1 (the bundle's own)", got)
	}
	for _, req := range []string{"atomic-tx", "atomic-batch"} {
		subtypes := map[string]int{}
		for _, ev := range ts.auditEvents(req) {
			subtypes[factsOf(ev).subtype]++
		}
		bundle := strings.TrimPrefix(req, "atomic-")
		if bundle == "tx" {
			bundle = "transaction"
		}
		if subtypes[bundle] != 1 || subtypes["create"] != 2 || len(subtypes) != 2 {
			t.Errorf("request %s: AuditEvents by subtype %v, want one %s and two create", req, subtypes, bundle)
		}
	}
	if n := ts.txCount("Patient", "family=Bundled"); n != 2 {
		t.Errorf("%d Patients from the transaction", n)
	}
}
