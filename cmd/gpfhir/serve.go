package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/seed"
	"github.com/gpfhir/gpfhir/store"
)

type serveConfig struct {
	addr         string
	baseURL      string
	store        storeConfig
	oidcIssuers  multiFlag
	oidcAudience string
	dev          bool
	seed         int64
	maxBody      int64
	maxCount     int
	cursorKey    string
	logLevel     string
	shutdownWait time.Duration
}

func serveFlags(cfg *serveConfig) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.StringVar(&cfg.baseURL, "base-url", "", "public base URL of the FHIR endpoint (default http://<addr>)")
	addStoreFlags(fs, &cfg.store, "")
	fs.Var(&cfg.oidcIssuers, "oidc-issuer", "trusted OpenID Connect issuer URL (repeatable)")
	fs.StringVar(&cfg.oidcAudience, "oidc-audience", "", "required audience of access tokens")
	fs.BoolVar(&cfg.dev, "dev", false, "development mode: seed demo data into an empty store")
	fs.Int64Var(&cfg.seed, "seed", 1, "random seed of the --dev demo data")
	fs.Int64Var(&cfg.maxBody, "max-body", 10<<20, "largest request body accepted, in bytes")
	fs.IntVar(&cfg.maxCount, "max-count", 1000, "largest search page size (_count)")
	fs.StringVar(&cfg.cursorKey, "cursor-key", "", "hex key that signs paging links; processes sharing a store must share it")
	fs.StringVar(&cfg.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.DurationVar(&cfg.shutdownWait, "shutdown-timeout", 20*time.Second, "how long SIGTERM waits for requests in flight")
	return fs
}

// validate reports every configuration problem at once.
func (cfg *serveConfig) validate() (cursorKey []byte, level slog.Level, err error) {
	var errs configErrors
	cfg.store.check(&errs, "")
	host, _, splitErr := net.SplitHostPort(cfg.addr)
	if splitErr != nil {
		errs.addf("--addr %q is not host:port: %v", cfg.addr, splitErr)
	} else if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		// Authorisation is not built yet, so the API is open; it must not be reachable from elsewhere.
		errs.addf("--addr %q is not a loopback address: until authorisation is configured the API is open, so it only listens on 127.0.0.1 or localhost", cfg.addr)
	}
	if cfg.baseURL != "" && !strings.HasPrefix(cfg.baseURL, "http://") && !strings.HasPrefix(cfg.baseURL, "https://") {
		errs.addf("--base-url %q must start with http:// or https://", cfg.baseURL)
	}
	if cfg.maxBody <= 0 {
		errs.addf("--max-body must be positive")
	}
	if cfg.maxCount <= 0 {
		errs.addf("--max-count must be positive")
	}
	if cfg.cursorKey != "" {
		k, err := hex.DecodeString(cfg.cursorKey)
		if err != nil || len(k) < 16 {
			errs.addf("--cursor-key must be at least 16 bytes written in hex")
		}
		cursorKey = k
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
		baseURL = "http://" + ln.Addr().String()
	}
	srv, err := api.New(api.Config{
		Store:     st,
		BaseURL:   baseURL,
		MaxBody:   cfg.maxBody,
		MaxCount:  cfg.maxCount,
		CursorKey: cursorKey,
		Logger:    log,
		Version:   version,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if cfg.dev {
		if err := seedIfEmpty(ctx, st, srv, cfg.seed, log); err != nil {
			ln.Close()
			return err
		}
	}

	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      120 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("gpfhir listening", "base_url", baseURL, "store", storeDesc, "dev", cfg.dev)
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
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// seedIfEmpty loads the demo dataset through the API's own write path (validation, references, index), so
// the demo data obeys every rule that client data does.
func seedIfEmpty(ctx context.Context, st store.Store, srv *api.Server, seedValue int64, log *slog.Logger) error {
	existing, err := st.History(ctx, store.HistoryQuery{Limit: 1})
	if err != nil {
		return fmt.Errorf("check whether the store is empty: %w", err)
	}
	if len(existing) > 0 {
		log.Info("store is not empty; demo data not seeded")
		return nil
	}
	resources := seed.Generate(seed.Options{Seed: seedValue, Now: time.Now()})
	for _, r := range resources {
		if err := srv.Import(ctx, r.Type, r.ID, r.Body); err != nil {
			return fmt.Errorf("seed %s/%s: %w", r.Type, r.ID, err)
		}
	}
	log.Info("seeded demo data", "resources", len(resources), "seed", seedValue)
	return nil
}
