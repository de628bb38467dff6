package api_test

import (
	"context"
	"net/http"
	"os"
	"sync"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// openSharedStores opens the backend selected by GPFHIR_TEST_BACKEND twice on the same fresh storage, as
// two gpfhir processes would.
func openSharedStores(t *testing.T) (audit.Backend, audit.Backend) {
	t.Helper()
	var stores [2]audit.Backend
	switch os.Getenv(backendEnv) {
	case "", "sqlite":
		dir := t.TempDir()
		for i := range stores {
			st, err := sqlite.Open(context.Background(), dir)
			if err != nil {
				t.Fatalf("open sqlite: %v", err)
			}
			stores[i] = st
		}
	case "mongo":
		uri, db := mongotest.Start(t), mongotest.Database(t)
		for i := range stores {
			st, err := mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db})
			if err != nil {
				t.Fatalf("open mongo: %v", err)
			}
			stores[i] = st
		}
	default:
		t.Fatalf("%s=%q: want sqlite or mongo", backendEnv, os.Getenv(backendEnv))
	}
	return stores[0], stores[1]
}

// TestServersSharingAStoreKeepOneChain runs two API servers on one store, as two processes, under
// concurrent reads and writes to both: the reads' records go through each server's group committer and
// the writes' records with the writes themselves, all chained on one head that both keep moving. Every
// request must still get exactly one record, in one intact chain.
func TestServersSharingAStoreKeepOneChain(t *testing.T) {
	a, b := openSharedStores(t)
	servers := []*testServer{newTestServerOn(t, a), newTestServerOn(t, b)}
	id := servers[0].create("Patient", patient("Shared", validNHS))
	head0, _, err := a.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	const perClient, writesPerClient, clients = 20, 5, 3
	var wg sync.WaitGroup
	for _, ts := range servers {
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perClient {
					if r := ts.do("GET", "/Patient/"+id, nil, nil); r.Status != http.StatusOK {
						t.Errorf("read: %d %s", r.Status, r.Body)
						return
					}
				}
			}()
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range writesPerClient {
					if r := ts.do("POST", "/Patient", patient("SharedWriter", ""), nil); r.Status != http.StatusCreated {
						t.Errorf("create: %d %s", r.Status, r.Body)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	head, _, err := b.AuditHead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if want := head0 + int64(len(servers)*clients*(perClient+writesPerClient)); head != want {
		t.Errorf("chain head %d, want %d: one record per request", head, want)
	}
	for i, st := range []audit.Backend{a, b} {
		res, err := audit.Verify(context.Background(), st)
		if err != nil || !res.Intact || res.Records != head {
			t.Errorf("VerifyAudit through store %d = %v %v, want intact, %d records", i, res, err, head)
		}
	}
	n, err := a.Count(context.Background(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{
		{{Param: "entity", Match: store.MatchExact, Value: "Patient/" + id}},
		{{Param: "subtype", Match: store.MatchToken, AnySystem: true, Value: "read"}}}})
	if err != nil || n != len(servers)*clients*perClient {
		t.Errorf("AuditEvents of the reads = %d %v, want %d", n, err, len(servers)*clients*perClient)
	}
	n, err = a.Count(context.Background(), store.Query{Type: store.AuditEventType, Clauses: []store.Clause{
		{{Param: "subtype", Match: store.MatchToken, AnySystem: true, Value: "create"}}}})
	if want := 1 + len(servers)*clients*writesPerClient; err != nil || n != want {
		t.Errorf("AuditEvents of the creates = %d %v, want %d", n, err, want)
	}
}
