package api

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake/tally"
)

// Config is everything the API needs; cmd/gpfhir builds it from flags and environment.
type Config struct {
	// Store holds the resources and the audit trail: every gpfhir backend implements both interfaces.
	Store audit.Backend
	// BaseURL is the absolute base of the FHIR endpoint, used in fullUrl, Location and paging links.
	BaseURL string
	// MaxBody caps request bodies; larger ones get 413. Default 10 MiB.
	MaxBody int64
	// DefaultCount and MaxCount bound search page sizes. Defaults 20 and 1000.
	DefaultCount int
	MaxCount     int
	// CursorKey protects paging links (and dashboard cookies). Several processes serving one store must share it; when empty a
	// random key is made, so links only work on the process that issued them.
	CursorKey []byte
	Logger    *slog.Logger
	// Now is the clock; tests may fix it.
	Now func() time.Time
	// Version is reported in the CapabilityStatement.
	Version string
	// Auth verifies bearer tokens. It is required: the API never runs without authorisation.
	Auth *auth.Verifier
	// IdentityProvider, when set, is served under IdentityProviderPath (the --dev identity provider at
	// /dev-idp) on the same listener.
	IdentityProvider     http.Handler
	IdentityProviderPath string
	// InstanceID names this server process in audit records (source.observer Device/<id>). When empty an
	// id is made per process, so that records show which process of several served a request.
	InstanceID string
	// ClientNames maps OAuth client ids to the app names that audit records (and patients reading who
	// accessed their record) show; a client without an entry is shown by its id.
	ClientNames map[string]string
	// CORSOrigins are the browser origins (https://app.example.org) that may call the API; "*" lets any
	// origin read only the public /metadata and /.well-known/smart-configuration. CORSLoopback (--dev)
	// allows every http://127.0.0.1:*, http://localhost:* and http://[::1]:* origin too.
	CORSOrigins  []string
	CORSLoopback bool
	// Export turns $export on. Jobs and their files are kept by the store when it implements
	// store.ExportJobs (MongoDB: every process on the database shares them, see bulkjobs.go), else in
	// ExportDir, which a store without them needs; setting ExportDir turns $export on too.
	// ExportWorkers bounds the jobs this process runs at once (default 2) and ExportTTL how long a
	// finished job's files are kept (default 1h).
	Export        bool
	ExportDir     string
	ExportWorkers int
	ExportTTL     time.Duration
	// exportLease, exportPoll, exportExpiry and exportPage replace the claim lease (30s), the idle
	// poll for jobs (2s), the expiry loop's period (a quarter of ExportTTL plus 1s, at most 1m) and the
	// page size (500) of bulk export, and exportAfterPage is called after each page a runner saved:
	// for tests.
	exportLease     time.Duration
	exportPoll      time.Duration
	exportExpiry    time.Duration
	exportPage      int
	exportAfterPage func(ctx context.Context, id string)
	// MaxBundleEntries caps the entries of one batch or transaction Bundle; larger ones get 413.
	// Default and most audit.MaxBundleEntries (1000).
	MaxBundleEntries int
	// AuditRetention, when positive, removes audit records recorded longer ago than this, at start and
	// then hourly (see retention.go). Zero keeps every record.
	AuditRetention time.Duration
	// retentionEvery replaces the hourly period of the retention loop, for tests.
	retentionEvery time.Duration
	// historyScanned, if set, is told how many versions each history page read, for tests, and
	// historyScan replaces the bound on that number (historyScan in auth_history.go).
	historyScanned func(n int)
	historyScan    int
	// UptakeTarget is the share of registered patients using online services that the dashboard
	// measures each practice against (--uptake-target). Default 0.30.
	UptakeTarget float64
	// Dashboard says how people sign in to the uptake dashboard.
	Dashboard DashboardSignIn
	// uptakeLoop replaces the uptake tally's background timings, for tests; censusFresher makes a
	// dashboard answer take a new census of the current month when changes call for one and the last
	// is older than it (negative: leave that to the background loop, as production does).
	uptakeLoop    tally.Loop
	censusFresher time.Duration
	// Limits bound request rates, requests in flight and request time (limits.go). The zero value
	// imposes none; gpfhir serve starts from DefaultLimits.
	Limits Limits
	// MetricsToken, when set, is the bearer token /metrics asks for on the API's listener. When empty,
	// /metrics is not served there: operators serve MetricsHandler on a listener of its own.
	MetricsToken string
	// DisableAudit turns the audit trail off. It exists for one purpose: the benchmark that measures what
	// audit costs, by serving the same workload with and without it. Production always audits: nothing in
	// cmd/gpfhir sets it, and there is no flag or variable for it.
	DisableAudit bool
	// Tool marks a process that serves in-process tools only (gpfhir import through LocalHandler): the
	// uptake tally, which the serving processes keep, is not started there, so that a tool does not
	// compete with them for the store.
	Tool bool
}

// Server is the FHIR HTTP API.
type Server struct {
	cfg   Config
	store store.Store
	// capCache is the served CapabilityStatement (metadata.go).
	capCache atomic.Pointer[capabilityBody]
	// smartCache is the served SMART configuration (auth_smart.go), keyed by the issuer fields it states.
	smartCache atomic.Pointer[capabilityBody]
	// trail is where audit records are appended: the same backend as store, through its audit
	// interface.
	trail   audit.Store
	log     *slog.Logger
	engine  *gin.Engine
	metrics *metrics
	cursors *cursorSigner
	limits  *limiter
	// audit is the group committer of the audit trail; nil only with Config.DisableAudit.
	audit *audit.Committer
	// retention is the audit retention loop; nil unless Config.AuditRetention is set.
	retention *audit.Retention
	// exports runs bulk export jobs; nil when $export is off (Config.Export).
	exports *exports
	// tally keeps the uptake figures from the audit trail; nil without an audit trail.
	tally *tally.Tally
	// sealer seals the dashboard's cookies.
	sealer *sealer
	// corsPolicy says which browser origins may call.
	corsPolicy *corsPolicy
	// entryCache keeps the policy's index entries of bodies it has decoded (entrycache.go).
	entryCache *entryCache
	// byNHS keeps patientsByNHS's answers while the store's Patient count stands still (nhscache.go).
	byNHS *nhsCache
}

// New builds the API. It does not listen; Handler gives the http.Handler to serve.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("api: no store")
	}
	if cfg.BaseURL == "" {
		return nil, errors.New("api: no base URL")
	}
	if cfg.Auth == nil {
		return nil, errors.New("api: no token verifier; the API never runs without authorisation")
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	if cfg.MaxBundleEntries > audit.MaxBundleEntries {
		// A larger transaction could not store its audit records with its writes in one batch.
		return nil, fmt.Errorf("api: at most %d bundle entries, since a transaction's audit records are stored in one batch", audit.MaxBundleEntries)
	}
	if cfg.MaxBody <= 0 {
		cfg.MaxBody = 10 << 20
	}
	if cfg.DefaultCount <= 0 {
		cfg.DefaultCount = 20
	}
	if cfg.MaxCount <= 0 {
		cfg.MaxCount = 1000
	}
	if cfg.DefaultCount > cfg.MaxCount {
		cfg.DefaultCount = cfg.MaxCount
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if len(cfg.CursorKey) == 0 {
		cfg.CursorKey = make([]byte, 32)
		if _, err := rand.Read(cfg.CursorKey); err != nil {
			return nil, err
		}
	}
	if cfg.UptakeTarget < 0 || cfg.UptakeTarget > 1 {
		return nil, fmt.Errorf("api: uptake target %v is not a share between 0 and 1", cfg.UptakeTarget)
	}
	if cfg.censusFresher == 0 {
		cfg.censusFresher = -1
	}
	if cfg.InstanceID == "" {
		cfg.InstanceID = "gpfhir-" + uuid.NewString()[:8]
	}
	if !validID(cfg.InstanceID) {
		return nil, fmt.Errorf("api: instance id %q is not a valid FHIR id", cfg.InstanceID)
	}
	s := &Server{
		cfg:     cfg,
		store:   cfg.Store,
		trail:   cfg.Store,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Store),
		limits:  newLimiter(cfg.Limits),

		entryCache: newEntryCache(),
		byNHS:      newNHSCache(cfg.Store),
	}
	var err error
	if s.cursors, err = newCursorSigner(cfg.CursorKey); err != nil {
		return nil, err
	}
	if s.corsPolicy, err = newCORSPolicy(cfg.CORSOrigins, cfg.CORSLoopback); err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	if s.sealer, err = newSealer(cfg.CursorKey); err != nil {
		return nil, err
	}
	if !cfg.DisableAudit {
		s.audit = audit.NewCommitter(s.trail, cfg.Logger, s.metrics.observeAudit)
		if !cfg.Tool {
			s.tally = tally.New(cfg.Store, cfg.BaseURL, cfg.Logger, cfg.Now)
			s.audit.Notify(s.tally.Offer)
			s.tally.Start(cfg.uptakeLoop)
		}
	}
	s.engine = s.routes()
	if err := s.startExports(); err != nil {
		return nil, err
	}
	s.startRetention()
	return s, nil
}

// Handler returns the http.Handler that serves the API.
func (s *Server) Handler() http.Handler { return s.engine }

func (s *Server) routes() *gin.Engine {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	// FHIR paths are dispatched from the interaction table, which also feeds the CapabilityStatement;
	// gin's own redirects would answer paths the table does not know.
	r.RedirectTrailingSlash = false
	r.RedirectFixedPath = false
	r.HandleMethodNotAllowed = false
	r.ContextWithFallback = true
	// The audit middleware comes after the logging ones, so that they see the status actually sent (a 503
	// when the audit record could not be written), and before a second recoverer, so that a handler's
	// panic is answered (500) and audited like any other failure.
	// CORS comes before the limits and the audit: a preflight carries no token and attempts no
	// interaction. The limits come before the audit middleware, so that a refused flood costs no audit
	// write.
	r.Use(s.requestID, s.recoverer, s.hygiene, s.accessLog, s.metrics.middleware, s.cors, s.authLog, s.limit, s.auditMiddleware, s.recoverer)

	r.GET("/healthz", s.healthz)
	r.GET("/.well-known/smart-configuration", s.smartConfiguration)
	if s.cfg.IdentityProvider != nil {
		r.Any(s.cfg.IdentityProviderPath+"/*rest", gin.WrapH(s.cfg.IdentityProvider))
	}
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", s.protectedMetrics)
	s.dashboardRoutes(r)
	r.NoRoute(s.dispatch)
	return r
}

func (s *Server) healthz(c *gin.Context) {
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ok\n"))
}

// readyz checks the store, so that a load balancer stops sending traffic to a process that lost it.
func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		s.logger(c).Warn("readiness check failed", "error", err)
		c.Data(http.StatusServiceUnavailable, "text/plain; charset=utf-8", []byte("store unavailable\n"))
		return
	}
	c.Data(http.StatusOK, "text/plain; charset=utf-8", []byte("ready\n"))
}

// respondError writes an apiError as an OperationOutcome, logging any hidden cause.
func (s *Server) respondError(c *gin.Context, err error) {
	ae := answerOf(err)
	if ae.status() >= 500 && errors.Is(c.Request.Context().Err(), context.DeadlineExceeded) {
		// The store says it failed, but the reason is the request's own timeout (limits.go).
		ae = timedOut().because(err)
	}
	if ae.cause != nil || ae.status() >= 500 {
		s.logger(c).Error("request failed", "status", ae.status(), "error", ae.cause)
	}
	if ae.kind == kindInternal {
		// The caller gets nothing but a handle to quote to support; the detail is in the log line above.
		ae = fail(kindInternal, "internal error (request id %s)", requestIDOf(c))
	}
	for k, v := range ae.header {
		c.Header(k, v)
	}
	c.Header("Content-Type", fhirJSON)
	c.Status(ae.status())
	if c.Request.Method == http.MethodHead {
		return
	}
	body := fhir.OperationOutcome(ae.issues...)
	if pretty(c) {
		body = indent(body)
	}
	_, _ = c.Writer.Write(body)
}
