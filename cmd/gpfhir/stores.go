package main

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// storeConfig selects and tunes a backend. serve, reindex and store copy share it.
type storeConfig struct {
	kind         string
	dataDir      string
	mongoURI     string
	mongoDB      string
	mongoTimeout time.Duration
	mongoPool    uint64
	mongoRetry   bool
	mongoWrite   string
	mongoRead    string
	mongoTxn     string
	mongoLease   time.Duration
	mongoOwner   time.Duration
	// walLimit, when not 0, is the SQLite store's WAL limit (sqlite.WithWALLimit) for the command's own
	// kind of work (import); it has no flag.
	walLimit int64
}

// addStoreFlags defines the backend flags. prefix lets store copy define a --from and a --to set.
func addStoreFlags(fs *flag.FlagSet, c *storeConfig, prefix string) {
	fs.StringVar(&c.kind, prefix+"store", "sqlite", "storage backend: sqlite or mongo")
	fs.StringVar(&c.dataDir, prefix+"data-dir", "./data", "directory of the embedded SQLite store")
	fs.StringVar(&c.mongoURI, prefix+"mongodb-uri", "", "MongoDB connection URI (with --store mongo)")
	fs.StringVar(&c.mongoDB, prefix+"mongodb-database", "", "MongoDB database (default: the one in the URI, else gpfhir)")
	fs.DurationVar(&c.mongoTimeout, prefix+"mongodb-timeout", 10*time.Second, "MongoDB operation and server-selection timeout")
	fs.Uint64Var(&c.mongoPool, prefix+"mongodb-max-pool", 100, "MongoDB connection pool size per server")
	fs.BoolVar(&c.mongoRetry, prefix+"mongodb-retry-writes", true, "MongoDB retryable writes")
	fs.StringVar(&c.mongoWrite, prefix+"mongodb-write-concern", "majority", "MongoDB write concern: majority or a number of nodes")
	fs.StringVar(&c.mongoRead, prefix+"mongodb-read-concern", "majority", "MongoDB read concern: majority, local or linearizable")
	fs.StringVar(&c.mongoTxn, prefix+"mongodb-txn", "auto", "atomic groups on MongoDB: auto (transactions when the deployment has them), journal, or require")
	fs.DurationVar(&c.mongoLease, prefix+"mongodb-journal-lease", time.Minute, "journal mode: the longest an unfinished atomic group may stay before it is rolled back, even if its process still beats; must exceed the longest write")
	fs.DurationVar(&c.mongoOwner, prefix+"mongodb-owner-lease", 10*time.Second, "journal mode: a process that has not renewed its liveness for this long is dead, and its unfinished groups are rolled back; a restart waits up to this long for them")
}

// check adds every problem with c to errs, naming flags with prefix.
func (c *storeConfig) check(errs *configErrors, prefix string) {
	switch c.kind {
	case "sqlite":
		if c.dataDir == "" {
			errs.addf("--%sdata-dir must not be empty", prefix)
		}
	case "mongo":
		if c.mongoURI == "" {
			errs.addf("--%sstore mongo needs --%smongodb-uri (or %s)", prefix, prefix, envName(prefix+"mongodb-uri"))
		}
		if _, err := c.writeConcern(); err != nil {
			errs.addf("--%smongodb-write-concern: %v", prefix, err)
		}
		switch c.mongoRead {
		case "majority", "local", "linearizable", "available", "snapshot":
		default:
			errs.addf("--%smongodb-read-concern %q is not majority, local, linearizable, available or snapshot", prefix, c.mongoRead)
		}
		if _, err := c.txnMode(); err != nil {
			errs.addf("--%smongodb-txn: %v", prefix, err)
		}
		if c.mongoTimeout <= 0 {
			errs.addf("--%smongodb-timeout must be positive", prefix)
		}
		if c.mongoLease <= 0 {
			errs.addf("--%smongodb-journal-lease must be positive", prefix)
		}
		if c.mongoOwner < 100*time.Millisecond {
			errs.addf("--%smongodb-owner-lease must be at least 100ms (the process renews it every quarter)", prefix)
		}
	default:
		errs.addf("--%sstore must be sqlite or mongo, not %q", prefix, c.kind)
	}
}

func (c *storeConfig) writeConcern() (*writeconcern.WriteConcern, error) {
	if c.mongoWrite == "majority" {
		return writeconcern.Majority(), nil
	}
	var n int
	if _, err := fmt.Sscanf(c.mongoWrite, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != c.mongoWrite {
		return nil, fmt.Errorf("%q is not majority or a number of nodes", c.mongoWrite)
	}
	return &writeconcern.WriteConcern{W: n}, nil
}

func (c *storeConfig) txnMode() (mongo.TxnMode, error) {
	switch strings.ToLower(c.mongoTxn) {
	case "auto":
		return mongo.TxnAuto, nil
	case "journal":
		return mongo.TxnJournal, nil
	case "require":
		return mongo.TxnRequire, nil
	}
	return 0, fmt.Errorf("%q is not auto, journal or require", c.mongoTxn)
}

// open opens the configured backend. On MongoDB an unreachable server or a bad URI is an error here,
// within --mongodb-timeout, rather than a failure on the first request.
func (c *storeConfig) open(ctx context.Context) (audit.Backend, string, error) {
	switch c.kind {
	case "sqlite":
		st, err := sqlite.Open(ctx, c.dataDir, sqlite.WithWALLimit(c.walLimit))
		if err != nil {
			return nil, "", fmt.Errorf("open the SQLite store in %s: %w", c.dataDir, err)
		}
		return st, "sqlite", nil
	case "mongo":
		wc, _ := c.writeConcern()
		mode, _ := c.txnMode()
		retry := c.mongoRetry
		var types []string
		for _, t := range fhir.Types() {
			types = append(types, t.Name)
		}
		st, err := mongo.Open(ctx, mongo.Options{
			URI:          c.mongoURI,
			Database:     c.mongoDB,
			WriteConcern: wc,
			ReadConcern:  &readconcern.ReadConcern{Level: c.mongoRead},
			Timeout:      c.mongoTimeout,
			MaxPoolSize:  c.mongoPool,
			RetryWrites:  &retry,
			Txn:          mode,
			JournalLease: c.mongoLease,
			OwnerLease:   c.mongoOwner,
			Types:        types,
		})
		if err != nil {
			return nil, "", fmt.Errorf("open the MongoDB store: %w", err)
		}
		atomic := "journal with compensation (no multi-document transactions on this deployment)"
		if st.Transactions() {
			atomic = "multi-document transactions"
		}
		return st, "mongo, atomic groups by " + atomic, nil
	}
	return nil, "", fmt.Errorf("unknown store %q", c.kind)
}
