package main

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/seed"
	"github.com/gpfhir/gpfhir/store"
)

type serveConfig struct {
	addr         string
	baseURL      string
	store        storeConfig
	oidcIssuers  multiFlag
	oidcAudience string
	clientODS    clientODSFlag
	dev          bool
	seed         int64
	devPatients  int
	maxBody      int64
	maxCount     int
	maxEntries   int
	cursorKey    string
	logLevel     string
	shutdownWait time.Duration
	instanceID   string
	retention    ageFlag
	uptakeTarget float64
	dashboard    api.DashboardSignIn

	clientRate        float64
	anonymousRate     float64
	maxInFlight       int
	gcPercent         int
	procs             int
	requestTimeout    time.Duration
	readTimeout       time.Duration
	readHeaderTimeout time.Duration
	metricsAddr       string
	metricsToken      string
	tlsCert, tlsKey   string
	corsOrigins       multiFlag
	clientNames       clientNameFlag
	devRedirects      multiFlag

	// Bulk export ($export).
	exportDir     string
	exportWorkers int
	exportTTL     time.Duration
}

func serveFlags(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.baseURL, "base-url", "", "public base URL of the FHIR endpoint (default http://<addr>)")
	addStoreFlags(fs, &cfg.store, "")
	fs.Var(&cfg.oidcIssuers, "oidc-issuer", "trusted OpenID Connect issuer URL (repeatable)")
	fs.StringVar(&cfg.oidcAudience, "oidc-audience", "", "required audience (aud) of access tokens (default with --dev: the base URL)")
	fs.Var(&cfg.clientODS, "client-ods", "bind a GP-system client to practices: CLIENT=ODS[,ODS] (repeatable; in the environment, separate entries with ;)")
	fs.BoolVar(&cfg.dev, "dev", false, "development mode: built-in identity provider at /dev-idp, demo data seeded into an empty store")
	fs.Int64Var(&cfg.seed, "seed", 1, "random seed of the --dev demo data")
	fs.IntVar(&cfg.devPatients, "dev-patients", seed.DefaultPatients, "how many patients the --dev demo data holds")
	fs.Int64Var(&cfg.maxBody, "max-body", 10<<20, "largest request body accepted, in bytes")
	fs.IntVar(&cfg.maxCount, "max-count", 1000, "largest search page size (_count)")
	fs.IntVar(&cfg.maxEntries, "max-bundle-entries", 1000, "most entries in one batch or transaction Bundle")
	fs.StringVar(&cfg.cursorKey, "cursor-key", "", "hex key that signs paging links; processes sharing a store must share it")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&cfg.shutdownWait, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for requests in flight")
	fs.StringVar(&cfg.instanceID, "instance-id", "", "name of this process in audit records (source Device/<id>; default: generated at start)")
	fs.StringVar(&cfg.exportDir, "export-dir", "", "directory of bulk export ($export) jobs and files with sqlite (default <data-dir>/export); with mongo they are kept in the database, shared by every process")
	fs.IntVar(&cfg.exportWorkers, "export-workers", 2, "bulk export jobs this process runs at once")
	fs.DurationVar(&cfg.exportTTL, "export-ttl", time.Hour, "how long a finished bulk export's files are kept")
	fs.Var(&cfg.retention, "audit-retention", "remove audit records older than this, hourly (like 2190d or 8760h; at least 24h; default 0: keep everything)")
	fs.Func("uptake-target", "the uptake dashboard's target, in percent of registered patients using online services (default 30)", func(v string) error {
		n, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "%")), 64)
		if err != nil {
			return fmt.Errorf("%q is not a percentage such as 30", v)
		}
		cfg.uptakeTarget = n
		return nil
	})
	cfg.uptakeTarget = 30
	fs.StringVar(&cfg.dashboard.Issuer, "dashboard-issuer", "", "OpenID Connect issuer people sign in to the dashboard at (default: the first --oidc-issuer; with --dev, the dev identity provider)")
	fs.StringVar(&cfg.dashboard.ClientID, "dashboard-client-id", "gpfhir-dashboard", "the dashboard's client id at that issuer (authorization code with PKCE; redirect URI <base-url>/dashboard/callback)")
	fs.StringVar(&cfg.dashboard.ClientSecret, "dashboard-client-secret", "", "the dashboard client's secret, if the issuer registered it as a confidential client")
	fs.Float64Var(&cfg.clientRate, "rate-limit", api.DefaultLimits.ClientRate, "requests per second one patient or client may make, with bursts of twice that (0: no limit); over it, 429")
	fs.Float64Var(&cfg.anonymousRate, "anonymous-rate-limit", api.DefaultLimits.AnonymousRate, "requests per second one address may make without a valid token, with bursts of four times that (0: no limit); over it, 429 before any audit write")
	fs.IntVar(&cfg.maxInFlight, "max-in-flight", api.DefaultLimits.MaxInFlight, "most requests served at once; more wait up to 100ms, then 503 (0: no bound)")
	addGCFlag(fs, &cfg.gcPercent)
	addProcsFlag(fs, &cfg.procs)
	fs.DurationVar(&cfg.requestTimeout, "request-timeout", api.DefaultLimits.RequestTimeout, "longest a request may take before it is stopped and answered 503 (0: no limit)")
	fs.DurationVar(&cfg.readTimeout, "read-timeout", 30*time.Second, "longest a client may take to send a whole request, body included")
	fs.DurationVar(&cfg.readHeaderTimeout, "read-header-timeout", 5*time.Second, "longest a client may take to send a request's headers")
	fs.StringVar(&cfg.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics without a token on this separate address (keep it off the public network)")
	fs.StringVar(&cfg.metricsToken, "metrics-token", "", "serve /metrics on the API's address to holders of this bearer token (set it in GPFHIR_METRICS_TOKEN rather than on the command line)")
	fs.StringVar(&cfg.tlsCert, "tls-cert", "", "PEM certificate (chain) to serve HTTPS with, for deployments without a TLS proxy; needs --tls-key")
	fs.StringVar(&cfg.tlsKey, "tls-key", "", "PEM private key of --tls-cert")
	fs.Var(&cfg.corsOrigins, "cors-origin", "browser origin allowed to call the API, like https://app.example.org (repeatable; * opens only /metadata and /.well-known/smart-configuration; --dev allows loopback origins)")
	fs.Var(&cfg.devRedirects, "dev-redirect-uri", "with --dev: a redirect URI of a browser SMART app, registered for the dev identity provider's public client "+devidp.AppClientID+" (repeatable; loopback URIs match on any port)")
	fs.Var(&cfg.clientNames, "client-name", "the name patients see for an app in who accessed their record: CLIENT=NAME (repeatable; in the environment, separate entries with ;)")
	return fs
}

// limits are the request limits the flags ask for.
func (cfg *serveConfig) limits() api.Limits {
	l := api.DefaultLimits
	l.ClientRate, l.ClientBurst = cfg.clientRate, int(math.Ceil(2*cfg.clientRate))
	l.AnonymousRate, l.AnonymousBurst = cfg.anonymousRate, int(math.Ceil(4*cfg.anonymousRate))
	l.MaxInFlight, l.RequestTimeout = cfg.maxInFlight, cfg.requestTimeout
	return l
}

// validate reports every configuration problem at once.
func (cfg *serveConfig) validate() (cursorKey []byte, level slog.Level, err error) {
	var errs configErrors
	cfg.store.check(&errs, "")
	if _, _, splitErr := net.SplitHostPort(cfg.addr); splitErr != nil {
		errs.addf("--addr %q is not host:port: %v", cfg.addr, splitErr)
	}
	// No accidental open server: without the dev identity provider, tokens must come from somewhere.
	// There is no setting that turns authorisation off.
	if !cfg.dev && (len(cfg.oidcIssuers) == 0 || cfg.oidcAudience == "") {
		errs.addf("authorisation needs at least one --oidc-issuer and an --oidc-audience (GPFHIR_OIDC_ISSUER, GPFHIR_OIDC_AUDIENCE); " +
			"use --dev for the built-in development identity provider. The API never runs without authorisation")
	}
	for _, u := range cfg.oidcIssuers {
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "http://") {
			errs.addf("--oidc-issuer %q must be an http(s) URL", u)
		}
	}
	if cfg.baseURL != "" && !strings.HasPrefix(cfg.baseURL, "http://") && !strings.HasPrefix(cfg.baseURL, "https://") {
		errs.addf("--base-url %q must start with http:// or https://", cfg.baseURL)
	}
	if cfg.maxBody <= 0 {
		errs.addf("--max-body must be positive")
	}
	if cfg.maxEntries <= 0 || cfg.maxEntries > audit.MaxBundleEntries {
		errs.addf("--max-bundle-entries must be from 1 to %d", audit.MaxBundleEntries)
	}
	if cfg.maxCount <= 0 {
		errs.addf("--max-count must be positive")
	}
	if cfg.devPatients < 1 || cfg.devPatients > seed.MaxPatients {
		errs.addf("--dev-patients must be from 1 to %d", seed.MaxPatients)
	}
	if cfg.cursorKey != "" {
		k, err := hex.DecodeString(cfg.cursorKey)
		if err != nil || len(k) < 16 {
			errs.addf("--cursor-key must be at least 16 bytes written in hex")
		}
		cursorKey = k
	}
	if cfg.instanceID != "" && !fhir.ValidID(cfg.instanceID) {
		errs.addf("--instance-id %q must be a FHIR id: 1 to 64 characters from A-Z, a-z, 0-9, '-' and '.'", cfg.instanceID)
	}
	if cfg.exportWorkers < 1 || cfg.exportWorkers > 64 {
		errs.addf("--export-workers must be between 1 and 64")
	}
	if cfg.exportTTL < time.Minute {
		errs.addf("--export-ttl must be at least 1m")
	}
	if r := time.Duration(cfg.retention); r < 0 || (r > 0 && r < minAuditAge) {
		errs.addf("--audit-retention %s must be 0 (keep everything) or at least %s", r, minAuditAge)
	}
	if cfg.uptakeTarget <= 0 || cfg.uptakeTarget > 100 {
		errs.addf("--uptake-target %v must be a percentage above 0 and at most 100", cfg.uptakeTarget)
	}
	if cfg.dashboard.Issuer != "" && !cfg.dev && !slices.Contains(cfg.oidcIssuers, cfg.dashboard.Issuer) {
		errs.addf("--dashboard-issuer %q must be one of the --oidc-issuer values: the dashboard checks the tokens it gets as the API does", cfg.dashboard.Issuer)
	}
	if cfg.clientRate < 0 || cfg.anonymousRate < 0 || cfg.maxInFlight < 0 || cfg.requestTimeout < 0 {
		errs.addf("--rate-limit, --anonymous-rate-limit, --max-in-flight and --request-timeout must not be negative (0 turns each off)")
	}
	checkGCFlag(&errs, cfg.gcPercent)
	checkProcsFlag(&errs, cfg.procs)
	if cfg.readTimeout <= 0 || cfg.readHeaderTimeout <= 0 {
		errs.addf("--read-timeout and --read-header-timeout must be positive: without them a slow client holds a connection for ever")
	}
	if cfg.metricsAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.metricsAddr); err != nil {
			errs.addf("--metrics-addr %q is not host:port: %v", cfg.metricsAddr, err)
		}
	}
	if (cfg.tlsCert == "") != (cfg.tlsKey == "") {
		errs.addf("--tls-cert and --tls-key go together")
	} else if cfg.tlsCert != "" {
		if _, err := tls.LoadX509KeyPair(cfg.tlsCert, cfg.tlsKey); err != nil {
			errs.addf("--tls-cert/--tls-key: %v", err)
		}
	}
	for _, o := range cfg.corsOrigins {
		if _, err := api.NormalizeOrigin(o); o != "*" && err != nil {
			errs.addf("--cors-origin: %v", err)
		}
	}
	if len(cfg.devRedirects) > 0 && !cfg.dev {
		errs.addf("--dev-redirect-uri registers redirect URIs at the development identity provider, which runs only with --dev")
	}
	for _, u := range cfg.devRedirects {
		if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.Fragment != "" {
			errs.addf("--dev-redirect-uri %q must be an absolute http(s) URL without a fragment, like http://127.0.0.1:5173/callback", u)
		}
	}
	if err := level.UnmarshalText([]byte(cfg.logLevel)); err != nil {
		errs.addf("--log-level %q is not one of debug, info, warn, error", cfg.logLevel)
	}
	return cursorKey, level, errs.err()
}

// serve runs the server until ctx is cancelled (SIGTERM or SIGINT), then drains requests in flight and
// closes the store. listening, when not nil, receives the base URL once the listener is open.
func serve(ctx context.Context, args []string, getenv func(string) string, logOut io.Writer, listening chan<- string) error {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	cursorKey, level, err := cfg.validate()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(logOut, &slog.HandlerOptions{Level: level}))
	gcPercent := gcTarget(cfg.gcPercent, getenv)
	defer setGCPercent(gcPercent)()
	procs := procsTarget(cfg.procs, getenv)
	defer setProcs(procs)()

	st, storeDesc, err := cfg.store.open(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("closing the store", "error", err)
		}
	}()

	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	baseURL := cfg.baseURL
	if baseURL == "" {
		scheme := "http://"
		if cfg.tlsCert != "" {
			scheme = "https://"
		}
		baseURL = scheme + ln.Addr().String()
	}
	// With MongoDB the store keeps export jobs and files, shared by every process on the database; the
	// directory is for SQLite, whose data directory belongs to one process anyway.
	switch {
	case cfg.store.kind == "sqlite" && cfg.exportDir == "":
		cfg.exportDir = filepath.Join(cfg.store.dataDir, "export")
	case cfg.store.kind != "sqlite" && cfg.exportDir != "":
		log.Warn("--export-dir is not used with this store: bulk export jobs and their files are kept in the database", "export_dir", cfg.exportDir)
		cfg.exportDir = ""
	}
	apiCfg := api.Config{
		Store:            st,
		BaseURL:          baseURL,
		MaxBody:          cfg.maxBody,
		MaxCount:         cfg.maxCount,
		MaxBundleEntries: cfg.maxEntries,
		CursorKey:        cursorKey,
		Logger:           log,
		Version:          version,
		InstanceID:       cfg.instanceID,
		AuditRetention:   time.Duration(cfg.retention),
		Export:           true,
		ExportDir:        cfg.exportDir,
		ExportWorkers:    cfg.exportWorkers,
		ExportTTL:        cfg.exportTTL,
		UptakeTarget:     cfg.uptakeTarget / 100,
		Dashboard:        cfg.dashboard,
		Limits:           cfg.limits(),
		MetricsToken:     cfg.metricsToken,
		CORSOrigins:      cfg.corsOrigins,
		CORSLoopback:     cfg.dev,
		ClientNames:      cfg.clientNames.m,
	}
	if err := buildAuth(&cfg, &apiCfg, log); err != nil {
		ln.Close()
		return err
	}
	srv, err := api.New(apiCfg)
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.dev {
		if err := seedIfEmpty(ctx, st, srv, seed.Options{Seed: cfg.seed, Patients: cfg.devPatients}, baseURL, log); err != nil {
			ln.Close()
			return err
		}
	}

	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: cfg.readHeaderTimeout,
		ReadTimeout:       cfg.readTimeout,
		WriteTimeout:      cfg.readTimeout + max(cfg.requestTimeout, 60*time.Second),
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 2)
	go func() {
		if cfg.tlsCert != "" {
			errc <- hs.ServeTLS(ln, cfg.tlsCert, cfg.tlsKey)
			return
		}
		errc <- hs.Serve(ln)
	}()
	var ms *http.Server
	if cfg.metricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.metricsAddr)
		if err != nil {
			_ = hs.Close()
			return fmt.Errorf("listen on --metrics-addr %s: %w", cfg.metricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", srv.MetricsHandler())
		ms = &http.Server{Handler: mux, ReadHeaderTimeout: cfg.readHeaderTimeout, ReadTimeout: cfg.readTimeout}
		go func() { errc <- ms.Serve(mln) }()
		log.Info("metrics listening", "addr", mln.Addr().String())
	}
	retention := "keep everything"
	if apiCfg.AuditRetention > 0 {
		retention = apiCfg.AuditRetention.String()
	}
	log.Info("gpfhir listening", "base_url", baseURL, "store", storeDesc, "dev", cfg.dev,
		"oidc_issuers", apiCfg.Auth.Issuers(), "oidc_audience", apiCfg.Auth.Audience(), "audit_retention", retention,
		"gc_percent", gcPercentDesc(gcPercent, getenv), "gomaxprocs", procsDesc(procs, getenv))
	if listening != nil {
		listening <- baseURL
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	sctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownWait)
	defer cancel()
	shutdownErr := hs.Shutdown(sctx)
	if ms != nil {
		_ = ms.Close()
	}
	// Requests are done (or cut off): write the audit records still waiting before the store closes.
	_ = srv.Close()
	if shutdownErr != nil {
		return fmt.Errorf("shutdown: %w", shutdownErr)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// seedIfEmpty loads the demo dataset through the API's own write path (validation, references, index), so
// the demo data obeys every rule that client data does; then a year of patients' online activity into the
// audit trail (seed.Activity), and a census of each of those months, so that the uptake dashboard has
// trends the first time it is opened.
func seedIfEmpty(ctx context.Context, st audit.Backend, srv *api.Server, opts seed.Options, baseURL string, log *slog.Logger) error {
	existing, err := st.History(ctx, store.HistoryQuery{Limit: 1})
	if err != nil {
		return fmt.Errorf("check whether the store is empty: %w", err)
	}
	if len(existing) > 0 {
		log.Info("store is not empty; demo data not seeded")
		return nil
	}
	opts.Now = time.Now()
	resources := seed.Generate(opts)
	for _, r := range resources {
		if err := srv.Import(ctx, r.Type, r.ID, r.Body); err != nil {
			return fmt.Errorf("seed %s/%s: %w", r.Type, r.ID, err)
		}
	}
	history := seed.Activity(opts, baseURL)
	activity := len(history)
	for len(history) > 0 {
		n := min(len(history), audit.MaxBatch)
		recs := make([]audit.Record, n)
		for i, in := range history[:n] {
			recs[i] = audit.NewRecord(in, baseURL)
		}
		if err := st.ApplyAudited(ctx, nil, recs); err != nil {
			return fmt.Errorf("seed the year's activity: %w", err)
		}
		history = history[n:]
	}
	if err := srv.TakeCensuses(ctx, 12); err != nil {
		return fmt.Errorf("seed the year's census: %w", err)
	}
	log.Info("seeded demo data", "resources", len(resources), "activity_records", activity, "seed", opts.Seed)
	return nil
}

// buildAuth makes the token verifier and, with --dev, the development identity provider at /dev-idp on
// the same listener, which the verifier then trusts too.
func buildAuth(cfg *serveConfig, apiCfg *api.Config, log *slog.Logger) error {
	issuers := append([]string(nil), cfg.oidcIssuers...)
	audience := cfg.oidcAudience
	if cfg.dev {
		if audience == "" {
			audience = apiCfg.BaseURL
		}
		issuer := apiCfg.BaseURL + "/dev-idp"
		idp, err := devidp.New(devidp.Config{
			Dev: true, Issuer: issuer, Audience: audience, Seed: cfg.seed,
			People: seed.People(seed.Options{Seed: cfg.seed, Patients: cfg.devPatients}), Logger: log,
			DashboardRedirectURIs: []string{strings.TrimRight(apiCfg.BaseURL, "/") + "/dashboard/callback"},
			AppRedirectURIs:       cfg.devRedirects,
		})
		if err != nil {
			return err
		}
		apiCfg.IdentityProvider, apiCfg.IdentityProviderPath = idp.Handler(), idp.Prefix()
		issuers = append(issuers, issuer)
		log.Warn("development identity provider enabled: it signs tokens for anyone who asks; never use --dev with real data",
			"issuer", issuer)
	}
	v, err := auth.NewVerifier(auth.Config{Issuers: issuers, Audience: audience, ClientODS: cfg.clientODS.m})
	if err != nil {
		return err
	}
	apiCfg.Auth = v
	return nil
}

// clientODSFlag is --client-ods CLIENT=ODS[,ODS], repeatable. Commas separate ODS codes, so entries in
// the environment variable are separated by semicolons.
type clientODSFlag struct{ m map[string][]string }

func (f *clientODSFlag) String() string {
	var parts []string
	for k, v := range f.m {
		parts = append(parts, k+"="+strings.Join(v, ","))
	}
	return strings.Join(parts, ";")
}

func (f *clientODSFlag) Set(v string) error {
	for _, entry := range strings.Split(v, ";") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		client, codes, ok := strings.Cut(entry, "=")
		client = strings.TrimSpace(client)
		if !ok || client == "" {
			return fmt.Errorf("%q is not CLIENT=ODS[,ODS]", entry)
		}
		var ods []string
		for _, c := range strings.Split(codes, ",") {
			if c = strings.TrimSpace(c); c != "" {
				ods = append(ods, c)
			}
		}
		if len(ods) == 0 {
			return fmt.Errorf("%q binds client %s to no ODS code", entry, client)
		}
		if f.m == nil {
			f.m = map[string][]string{}
		}
		f.m[client] = append(f.m[client], ods...)
	}
	return nil
}

// clientNameFlag is --client-name CLIENT=NAME, repeatable. App names may hold commas, so entries in the
// environment variable are separated by semicolons.
type clientNameFlag struct{ m map[string]string }

func (f *clientNameFlag) String() string {
	var parts []string
	for k, v := range f.m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ";")
}

func (f *clientNameFlag) Set(v string) error {
	for _, entry := range strings.Split(v, ";") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		client, name, ok := strings.Cut(entry, "=")
		client, name = strings.TrimSpace(client), strings.TrimSpace(name)
		if !ok || client == "" || name == "" {
			return fmt.Errorf("%q is not CLIENT=NAME, like gpfhir-dev-app=My GP App", entry)
		}
		if f.m == nil {
			f.m = map[string]string{}
		}
		f.m[client] = name
	}
	return nil
}
