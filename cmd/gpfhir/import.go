package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/importer"
)

type importConfig struct {
	store    storeConfig
	baseURL  string
	token    string
	practice string
	ods      multiFlag
	workers  int
	batch    int
	progress string
	// gcPercent is --gc-percent (gc.go).
	gcPercent int
}

// importClientID names the in-process importer in audit records, as a client id names an app.
const importClientID = "gpfhir-import"

// importWALLimit is the WAL size at which an import's SQLite store truncates its WAL, four times a
// server's (sqlite.DefaultWALLimit). An import commits a patient's bundle at a time, tens of megabytes
// of WAL each, so at a server's limit the checkpointer truncated after every two or three commits, and
// a truncate holds the writer while it copies what is left and cuts the file. The background checkpoints
// go on as before, so the WAL still restarts whenever nothing reads an older snapshot. The Synthea
// sample's first import took 121-123 s against 127-135 s at the server's limit (two runs against five,
// in one session; 1 GiB was no faster).
const importWALLimit = 256 << 20

// parseWithPaths parses flags that may come before, between or after the positional paths.
func parseWithPaths(fs *flag.FlagSet, args []string, getenv func(string) string) ([]string, error) {
	var paths []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		paths = append(paths, fs.Arg(0))
		args = fs.Args()[1:]
	}
	return paths, parseFlags(fs, nil, getenv)
}

// importCommand loads FHIR JSON into the configured store through the API's own write path, in
// process, or into a running server with --base-url and a token.
func importCommand(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	var cfg importConfig
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: gpfhir import [flags] PATH... (files, directories, .tgz archives, or - for standard input)")
		fs.PrintDefaults()
	}
	addStoreFlags(fs, &cfg.store, "")
	fs.StringVar(&cfg.baseURL, "base-url", "", "import into the running server at this base URL over HTTP (with --token) instead of into the store directly")
	fs.StringVar(&cfg.token, "token", "", "bearer token for --base-url (a GP system token with system/*.cu, e.g. from gpfhir dev-token)")
	fs.StringVar(&cfg.practice, "practice", "", "ODS code of the practice at which Patients that arrive with no practice are registered (otherwise they are skipped)")
	fs.Var(&cfg.ods, "ods", "in-process import: further ODS codes of practices whose patients it may write (repeatable; --practice is always included)")
	fs.IntVar(&cfg.workers, "workers", importer.DefaultWorkers(), "Bundles posted at once (one more than the cores Go uses)")
	fs.IntVar(&cfg.batch, "batch", 200, "entries per batch Bundle for ndjson and collections")
	fs.StringVar(&cfg.progress, "progress", "auto", "progress display: auto (a bar on a terminal, a line every 5s otherwise), bar, lines or none")
	addGCFlag(fs, &cfg.gcPercent)
	paths, err := parseWithPaths(fs, args, getenv)
	if err != nil {
		return err
	}
	var errs configErrors
	if len(paths) == 0 {
		errs.addf("no PATH given: name files, directories, .tgz archives or - for standard input")
	}
	if cfg.baseURL != "" && cfg.token == "" {
		errs.addf("--base-url needs --token (or GPFHIR_TOKEN)")
	}
	if cfg.baseURL == "" {
		cfg.store.check(&errs, "")
	}
	if cfg.workers < 1 || cfg.workers > 64 {
		errs.addf("--workers must be between 1 and 64")
	}
	if cfg.batch < 1 || cfg.batch > audit.MaxBundleEntries {
		errs.addf("--batch must be between 1 and %d", audit.MaxBundleEntries)
	}
	switch cfg.progress {
	case "auto", "bar", "lines", "none":
	default:
		errs.addf("--progress must be auto, bar, lines or none")
	}
	checkGCFlag(&errs, cfg.gcPercent)
	if err := errs.err(); err != nil {
		return err
	}
	defer setGCPercent(gcTarget(cfg.gcPercent, getenv))()

	var poster importer.Poster
	if cfg.baseURL != "" {
		poster = importer.Remote{BaseURL: cfg.baseURL, Token: cfg.token, Client: &http.Client{Timeout: 5 * time.Minute}}
	} else {
		cfg.store.walLimit = importWALLimit
		st, desc, err := cfg.store.open(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		verifier, err := auth.NewVerifier(auth.Config{Issuers: []string{"https://gpfhir-import.invalid"}, Audience: "gpfhir-import"})
		if err != nil {
			return err
		}
		base := "http://gpfhir.invalid"
		srv, err := api.New(api.Config{Store: st, BaseURL: base, Auth: verifier, Version: version,
			MaxBundleEntries: audit.MaxBundleEntries, Tool: true, Logger: slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return err
		}
		defer srv.Close()
		ods := append([]string(nil), cfg.ods...)
		if cfg.practice != "" {
			ods = append(ods, cfg.practice)
		}
		scopes, _ := auth.ParseScopes("system/*.cruds")
		caller := auth.Caller{Kind: auth.KindSystem, Subject: importClientID, ClientID: importClientID, ODS: ods, Scopes: scopes}
		poster = importer.Handler{H: srv.LocalHandler(caller)}
		fmt.Fprintf(stderr, "importing into the %s store\n", desc)
	}
	opt := importer.Options{Workers: cfg.workers, BatchSize: cfg.batch}
	if cfg.practice != "" {
		id, err := practiceID(ctx, poster, cfg.practice)
		if err != nil {
			return err
		}
		opt.PracticeRef = "Organization/" + id
	}
	switch cfg.progress {
	case "auto":
		opt.Progress, opt.Terminal = stderr, isTerminal(stderr)
	case "bar":
		opt.Progress, opt.Terminal = stderr, true
	case "lines":
		opt.Progress = stderr
	}
	sum, err := importer.Run(ctx, paths, stdin, poster, opt)
	if sum != nil {
		sum.Write(stdout)
	}
	if err != nil {
		return err
	}
	if sum.Failed() {
		return errors.New("import: some entries failed (see the summary above); fix them and run the import again, which stores nothing twice")
	}
	return nil
}

// practiceID finds the Organization that carries an ODS code.
func practiceID(ctx context.Context, p importer.Poster, ods string) (string, error) {
	status, body, err := p.Get(ctx, "/Organization?identifier="+url.QueryEscape(fhir.ODSOrganizationSystem+"|"+ods))
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", fmt.Errorf("--practice %s: looking the practice up answered %d: %s", ods, status, body)
	}
	var b struct {
		Entry []struct {
			Resource struct {
				ID string `json:"id"`
			} `json:"resource"`
			Search struct {
				Mode string `json:"mode"`
			} `json:"search"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		return "", err
	}
	var ids []string
	for _, e := range b.Entry {
		if e.Search.Mode == "match" {
			ids = append(ids, e.Resource.ID)
		}
	}
	switch len(ids) {
	case 0:
		return "", fmt.Errorf("--practice %s: no Organization has this ODS code; create the practice first", ods)
	case 1:
		return ids[0], nil
	}
	return "", fmt.Errorf("--practice %s: %d Organizations have this ODS code (%s)", ods, len(ids), strings.Join(ids, ", "))
}
