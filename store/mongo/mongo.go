package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readconcern"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// Collection names.
const (
	collPrefix  = "res_"    // + resource type: current versions
	collHistory = "history" // every version
	collIdx     = "idx"     // one document per date/number index entry
	collJournal = "journal" // unfinished atomic groups (journal mode only)
)

// TxnMode selects how Apply makes a group atomic.
type TxnMode int

const (
	// TxnAuto uses multi-document transactions when the deployment supports them (a replica set or a
	// sharded cluster, detected at Open) and the journal otherwise.
	TxnAuto TxnMode = iota
	// TxnJournal always uses the journal with compensation, even where transactions exist.
	TxnJournal
	// TxnRequire fails Open if the deployment does not support transactions.
	TxnRequire
)

// Options configures Open. Zero values select the defaults.
type Options struct {
	// URI is the MongoDB connection string (required).
	URI string
	// Database defaults to the database in URI, then "gpfhir".
	Database string
	// WriteConcern defaults to majority; ReadConcern defaults to majority.
	WriteConcern *writeconcern.WriteConcern
	ReadConcern  *readconcern.ReadConcern
	// Timeout bounds every operation that the caller's context does not bound already, and server
	// selection at Open. Default 10s.
	Timeout time.Duration
	// MaxPoolSize is the driver's connection pool size per server; 0 keeps the driver default (100).
	MaxPoolSize uint64
	// RetryWrites defaults to true (the driver default). Set it to false to disable.
	RetryWrites *bool
	// Txn selects transactions or the journal for Apply. Default TxnAuto.
	Txn TxnMode
	// JournalLease is how long a journal group may stay unfinished before another Store (or this one at
	// its next Open) may roll it back. Default 1 minute. It must exceed the longest Apply.
	JournalLease time.Duration
	// OwnerLease is how long a journal-mode Store stays alive to its peers without renewing; it renews
	// every quarter of it. A group of a Store whose lease passed is rolled back by any peer, and a
	// restarted server waits up to this long at Open for a dead process's groups. Default 10 seconds.
	OwnerLease time.Duration
	// Types lists resource types whose collections and indexes are created at Open. Other types get
	// theirs on first write.
	Types []string

	// assumeTxn (tests only) treats the deployment as transactional: FerretDB has no transactions, and
	// what Open does in that mode is still tested on it.
	assumeTxn bool
}

// Store is the MongoDB implementation of store.Store.
type Store struct {
	client  *mongo.Client
	db      *mongo.Database
	timeout time.Duration
	lease   time.Duration
	txn     bool
	// ownerTTL is Options.OwnerLease with its default: a journal-mode Store's own lease, and in both
	// modes how long Open waits for the groups of owners that may have died.
	ownerTTL time.Duration

	// ensured memoises which per-type collections have had their indexes created by this process.
	// createIndexes is idempotent, so this never needs invalidating across processes.
	ensured  sync.Map
	ensureMu sync.Mutex

	// afterWrite, when set (tests only), is called after write i of a group has been applied. A non-nil
	// error aborts Apply at once, without compensation, as a crash would.
	afterWrite func(i int) error
	// afterAuditChain, when set (tests only), is called after a batch document is inserted in journal
	// mode; a non-nil error makes AppendAudit or ApplyAudited return at once, as a crash would (an
	// audited group is then neither committed nor rolled back).
	afterAuditChain func() error
	// afterPruneAnchor, when set (tests only), is called after a prune step's anchor document is
	// inserted in journal mode; a non-nil error makes PruneAudit return at once, as a crash would.
	afterPruneAnchor func() error
	// pruneChunk is how many records a prune step removes at most; 0 is defaultPruneChunk. Tests set
	// it small.
	pruneChunk int

	// hb is the liveness of a journal-mode Store (nil with transactions).
	hb *heartbeat

	wg     sync.WaitGroup
	mu     sync.RWMutex
	closed bool
}

// The backend implements both the resource store and the audit trail's storage.
var (
	_ store.Store = (*Store)(nil)
	_ audit.Store = (*Store)(nil)
)

// Open connects, checks that the server answers within opts.Timeout, creates indexes, detects
// transaction support and recovers unfinished journal groups.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.URI == "" {
		return nil, errors.New("store/mongo: no MongoDB URI given")
	}
	cs, err := connstring.ParseAndValidate(opts.URI)
	if err != nil {
		return nil, fmt.Errorf("store/mongo: bad MongoDB URI: %v", err)
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.JournalLease <= 0 {
		opts.JournalLease = time.Minute
	}
	dbName := opts.Database
	if dbName == "" {
		dbName = cs.Database
	}
	if dbName == "" {
		dbName = "gpfhir"
	}
	wc := opts.WriteConcern
	if wc == nil {
		wc = writeconcern.Majority()
	}
	rc := opts.ReadConcern
	if rc == nil {
		rc = readconcern.Majority()
	}
	co := options.Client().ApplyURI(opts.URI).
		SetServerSelectionTimeout(opts.Timeout).
		SetConnectTimeout(opts.Timeout).
		SetWriteConcern(wc).
		SetReadConcern(rc).
		SetReadPreference(readpref.Primary())
	if opts.MaxPoolSize > 0 {
		co.SetMaxPoolSize(opts.MaxPoolSize)
	}
	if opts.RetryWrites != nil {
		co.SetRetryWrites(*opts.RetryWrites)
	}
	client, err := mongo.Connect(co)
	if err != nil {
		return nil, fmt.Errorf("store/mongo: connect: %v", err)
	}
	s := &Store{
		client:  client,
		db:      client.Database(dbName),
		timeout: opts.Timeout,
		lease:   opts.JournalLease,
	}
	fail := func(err error) (*Store, error) {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = client.Disconnect(dctx)
		return nil, err
	}
	// Each step of Open gets the whole Timeout, as every operation does later: index creation for
	// every type and the rollback of groups a dead process left in the journal add up to more than one
	// operation's time on a slow server, and a restart after a crash must not fail for that.
	parent := ctx
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(parent, opts.Timeout) }
	ctx, cancel := step()
	defer cancel()
	if err := client.Ping(ctx, readpref.Primary()); err != nil {
		return fail(fmt.Errorf("store/mongo: cannot reach MongoDB at %s within %s: %w",
			redact(cs), opts.Timeout, translate("ping", err)))
	}
	supported, err := s.detectTransactions(ctx)
	if err != nil {
		return fail(err)
	}
	supported = supported || opts.assumeTxn
	switch opts.Txn {
	case TxnAuto:
		s.txn = supported
	case TxnRequire:
		if !supported {
			return fail(errors.New("store/mongo: transactions required, but the deployment is neither a replica set nor a sharded cluster"))
		}
		s.txn = true
	case TxnJournal:
		s.txn = false
	}
	if err := s.ensureBaseIndexes(ctx); err != nil {
		return fail(err)
	}
	for _, t := range opts.Types {
		sctx, scancel := step()
		err := s.ensureType(sctx, t)
		scancel()
		if err != nil {
			return fail(err)
		}
	}
	s.ownerTTL = opts.OwnerLease
	if s.ownerTTL <= 0 {
		s.ownerTTL = 10 * time.Second
	}
	if !s.txn {
		sctx, scancel := step()
		err := s.startHeartbeat(sctx, s.ownerTTL)
		scancel()
		if err != nil {
			return fail(err)
		}
	}
	// With transactions Apply writes no journal, but the database may have been used in journal mode
	// (a standalone since made a replica set, or a peer started with --mongodb-txn journal) and a crash
	// may have left a group; reads in this mode do not look at journal marks, so its partial writes would
	// show. Both modes therefore settle the journal before serving.
	if err := s.awaitDeadOwners(parent); err != nil {
		s.stopHeartbeat(false)
		return fail(err)
	}
	// Finishes the head batch of the audit chain if a process died while writing its AuditEvents, and
	// a prune step if one died while removing records.
	hctx, hcancel := step()
	defer hcancel()
	if _, err := s.auditHeadDoc(hctx); err != nil {
		return fail(err)
	}
	actx, acancel := step()
	defer acancel()
	if _, _, err := s.auditAnchor(actx); err != nil {
		return fail(err)
	}
	return s, nil
}

// redact returns the host list of a connection string, without credentials, for error messages.
func redact(cs *connstring.ConnString) string {
	return fmt.Sprint(cs.Hosts)
}

// Transactions reports whether Apply uses multi-document transactions (true) or the journal (false).
func (s *Store) Transactions() bool { return s.txn }

// detectTransactions asks the server's hello: a replica set member reports setName, a mongos reports
// msg "isdbgrid". Both support multi-document transactions (MongoDB 4.0+/4.2+).
func (s *Store) detectTransactions(ctx context.Context) (bool, error) {
	var hello struct {
		SetName string `bson:"setName"`
		Msg     string `bson:"msg"`
	}
	err := s.client.Database("admin").RunCommand(ctx, bson.D{{Key: "hello", Value: 1}}).Decode(&hello)
	if err != nil {
		return false, fmt.Errorf("store/mongo: hello: %w", translate("hello", err))
	}
	return hello.SetName != "" || hello.Msg == "isdbgrid", nil
}

// opCtx bounds ctx by the store timeout when the caller set no deadline.
func (s *Store) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, s.timeout)
}

// begin registers an operation in progress; Close waits for them.
func (s *Store) begin() error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return fmt.Errorf("%w: store closed", store.ErrUnavailable)
	}
	s.wg.Add(1)
	return nil
}

func (s *Store) res(typ string) *mongo.Collection { return s.db.Collection(collPrefix + typ) }

// Ping checks that the primary answers, for /readyz.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	return translate("ping", s.client.Ping(ctx, readpref.Primary()))
}

// Close waits for operations in progress and disconnects.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	s.stopHeartbeat(false)
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	return translate("disconnect", s.client.Disconnect(ctx))
}

// indexSpec is one index: a name (used to find out whether it exists) and its keys.
type indexSpec struct {
	name string
	keys bson.D
}

// ensureBaseIndexes creates the indexes of the shared collections. createIndexes with the same
// specification is a no-op, so this is safe on every start and from several processes.
func (s *Store) ensureBaseIndexes(ctx context.Context) error {
	sets := map[string][]indexSpec{
		collHistory: {
			indexSpec{"t_r_v", bson.D{{Key: "t", Value: 1}, {Key: "r", Value: 1}, {Key: "v", Value: -1}}},
			indexSpec{"lu_t_r_v", bson.D{{Key: "lu", Value: -1}, {Key: "t", Value: 1}, {Key: "r", Value: 1}, {Key: "v", Value: -1}}},
			indexSpec{"t_lu", bson.D{{Key: "t", Value: 1}, {Key: "lu", Value: -1}}},
		},
		collIdx: {
			indexSpec{"t_p_lo_hi", bson.D{{Key: "t", Value: 1}, {Key: "p", Value: 1}, {Key: "lo", Value: 1}, {Key: "hi", Value: 1}}},
			indexSpec{"t_p_hi", bson.D{{Key: "t", Value: 1}, {Key: "p", Value: 1}, {Key: "hi", Value: 1}}},
			indexSpec{"t_r", bson.D{{Key: "t", Value: 1}, {Key: "r", Value: 1}}},
		},
		collJournal: {
			indexSpec{"exp", bson.D{{Key: "exp", Value: 1}}},
		},
		collOwners: {
			indexSpec{"exp", bson.D{{Key: "exp", Value: 1}}},
		},
		collAudit: {
			indexSpec{"last", bson.D{{Key: "last", Value: 1}}},
		},
		collExportJobs: {
			indexSpec{"fin_lease", bson.D{{Key: "fin", Value: 1}, {Key: "lease", Value: 1}}},
		},
		collExportClaims: {
			indexSpec{"job", bson.D{{Key: "job", Value: 1}}},
		},
	}
	for _, c := range []string{collHistory, collIdx, collJournal, collOwners, collAudit, collExportJobs, collExportClaims} {
		if err := createIndexes(ctx, s.db.Collection(c), sets[c]); err != nil {
			return err
		}
	}
	return nil
}

// createIndexes creates the indexes of models that the collection does not have yet (by name). Asking
// first keeps a restart from re-sending existing specifications, which FerretDB 1.24 may fail on.
func createIndexes(ctx context.Context, c *mongo.Collection, specs []indexSpec) error {
	cur, err := c.Indexes().List(ctx)
	if err != nil {
		return fmt.Errorf("store/mongo: list indexes on %s: %w", c.Name(), translate("listIndexes", err))
	}
	var have []struct {
		Name string `bson:"name"`
	}
	if err := cur.All(ctx, &have); err != nil {
		return fmt.Errorf("store/mongo: list indexes on %s: %w", c.Name(), translate("listIndexes", err))
	}
	var missing []mongo.IndexModel
	for _, sp := range specs {
		if !slices.ContainsFunc(have, func(h struct {
			Name string `bson:"name"`
		}) bool {
			return h.Name == sp.name
		}) {
			missing = append(missing, mongo.IndexModel{Keys: sp.keys, Options: options.Index().SetName(sp.name)})
		}
	}
	if len(missing) == 0 {
		return nil
	}
	if _, err := c.Indexes().CreateMany(ctx, missing); err != nil {
		return fmt.Errorf("store/mongo: create indexes on %s: %w", c.Name(), translate("createIndexes", err))
	}
	return nil
}

// ensureType creates the collection of one resource type and its indexes, once per process.
func (s *Store) ensureType(ctx context.Context, typ string) error {
	if _, ok := s.ensured.Load(typ); ok {
		return nil
	}
	// One createIndexes at a time: concurrent ones on a new collection race (FerretDB drops the
	// connection), and the memo makes this a one-off per type anyway.
	s.ensureMu.Lock()
	defer s.ensureMu.Unlock()
	if _, ok := s.ensured.Load(typ); ok {
		return nil
	}
	models := []indexSpec{
		indexSpec{"tk", bson.D{{Key: fTok, Value: 1}}},
		indexSpec{"vx", bson.D{{Key: fVal, Value: 1}}},
		indexSpec{"tx", bson.D{{Key: fText, Value: 1}}},
		indexSpec{"p", bson.D{{Key: fPresent, Value: 1}}},
		indexSpec{"lu_id", bson.D{{Key: fLU, Value: 1}, {Key: "_id", Value: 1}}},
	}
	if err := createIndexes(ctx, s.res(typ), models); err != nil {
		return err
	}
	s.ensured.Store(typ, true)
	return nil
}
