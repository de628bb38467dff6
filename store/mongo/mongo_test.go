package mongo

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Stop()
	os.Exit(code)
}

// open opens a Store on a fresh database of uri and drops that database when the test ends.
func open(t testing.TB, uri string, opts Options) *Store {
	t.Helper()
	opts.URI = uri
	if opts.Database == "" {
		opts.Database = mongotest.Database(t)
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		_ = s.Close()
		dropDatabase(t, uri, opts.Database)
	})
	return s
}

func dropDatabase(t testing.TB, uri, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{URI: uri, Database: db, Txn: TxnJournal, JournalLease: time.Hour})
	if err != nil {
		t.Logf("drop %s: %v", db, err)
		return
	}
	defer s.Close()
	if err := s.db.Drop(ctx); err != nil {
		t.Logf("drop %s: %v", db, err)
	}
}

func TestContractFerretDB(t *testing.T) {
	uri := mongotest.Start(t)
	storetest.Run(t, func(t *testing.T) audit.Backend { return open(t, uri, Options{}) })
}

func TestContractMongoDB(t *testing.T) {
	uri := os.Getenv(mongotest.EnvURI)
	if uri == "" {
		t.Skipf("%s is not set; set it to a MongoDB URI (a replica set exercises transactions) to run the contract suite against real MongoDB", mongotest.EnvURI)
	}
	t.Run("auto", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) audit.Backend { return open(t, uri, Options{}) })
	})
	t.Run("journal", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) audit.Backend { return open(t, uri, Options{Txn: TxnJournal}) })
	})
}
