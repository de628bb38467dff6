package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

type reindexConfig struct {
	store       storeConfig
	baseURL     string
	addr        string
	types       multiFlag
	batch       int
	checkpoint  string
	resumeAfter string
	restart     bool
}

// reindex rebuilds the search index of every current resource from its stored body with this build's
// extraction rules, so that changing a parameter never needs a hand-written migration. It walks each type
// in id order through store.Search (keyset pages, so it works the same on every backend) and replaces
// each resource's entries with store.SetIndex, which is a compare-and-swap on the version: a resource
// written meanwhile was indexed by its writer and is skipped.
//
// It is resumable: after every page it records the last "Type/id" done in a checkpoint file, and a later
// run continues after it. The file is removed when a run completes. --resume-after gives the position by
// hand (for instance from the last progress line), and --restart ignores a checkpoint.
func reindex(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg reindexConfig
	fs := flag.NewFlagSet("reindex", flag.ContinueOnError)
	addStoreFlags(fs, &cfg.store, "")
	fs.StringVar(&cfg.baseURL, "base-url", "", "public base URL of the server (default http://<addr>): absolute references under it are indexed as Type/id")
	fs.StringVar(&cfg.addr, "addr", "127.0.0.1:8080", "the server's listen address, for the default --base-url")
	fs.Var(&cfg.types, "type", "reindex only this resource type (repeatable; default every served type)")
	fs.IntVar(&cfg.batch, "batch", 500, "resources read per page")
	fs.StringVar(&cfg.checkpoint, "checkpoint", "", "checkpoint file (default <data-dir>/reindex.checkpoint with sqlite, ./gpfhir-reindex.checkpoint otherwise)")
	fs.StringVar(&cfg.resumeAfter, "resume-after", "", "continue after this Type/id instead of the checkpoint")
	fs.BoolVar(&cfg.restart, "restart", false, "start from the beginning, ignoring a checkpoint")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var errs configErrors
	cfg.store.check(&errs, "")
	if cfg.batch <= 0 {
		errs.addf("--batch must be positive")
	}
	// AuditEvents keep the index they were appended with: the store refuses SetIndex on them, since the
	// audit trail is changed by no path. They are left out.
	var types []*fhir.TypeInfo
	for _, ti := range fhir.Types() {
		if ti.Name != store.AuditEventType {
			types = append(types, ti)
		}
	}
	if len(cfg.types) > 0 {
		types = nil
		for _, name := range cfg.types {
			ti, ok := fhir.LookupType(name)
			switch {
			case !ok:
				errs.addf("--type %q is not a served resource type", name)
				continue
			case ti.Name == store.AuditEventType:
				errs.addf("--type AuditEvent: audit records keep the index they were appended with and are not reindexed")
				continue
			}
			types = append(types, ti)
		}
	}
	if cfg.resumeAfter != "" && cfg.restart {
		errs.addf("--resume-after and --restart contradict each other")
	}
	if err := errs.err(); err != nil {
		return err
	}
	base := cfg.baseURL
	if base == "" {
		base = "http://" + cfg.addr
	}
	base = strings.TrimRight(base, "/")
	if cfg.checkpoint == "" {
		cfg.checkpoint = "gpfhir-reindex.checkpoint"
		if cfg.store.kind == "sqlite" {
			cfg.checkpoint = filepath.Join(cfg.store.dataDir, "reindex.checkpoint")
		}
	}
	after := cfg.resumeAfter
	if after == "" && !cfg.restart {
		raw, err := os.ReadFile(cfg.checkpoint)
		switch {
		case err == nil:
			after = strings.TrimSpace(string(raw))
			fmt.Fprintf(stderr, "resuming after %s (from %s)\n", after, cfg.checkpoint)
		case !errors.Is(err, os.ErrNotExist):
			return fmt.Errorf("read the checkpoint: %w", err)
		}
	}
	var afterType, afterID string
	if after != "" {
		var ok bool
		if afterType, afterID, ok = strings.Cut(after, "/"); !ok || afterID == "" {
			return fmt.Errorf("resume position %q is not Type/id", after)
		}
		if _, ok := fhir.LookupType(afterType); !ok {
			return fmt.Errorf("resume position %q: %s is not a served type", after, afterType)
		}
	}

	st, desc, err := cfg.store.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()

	r := reindexer{st: st, base: base, batch: cfg.batch, checkpoint: cfg.checkpoint, progress: stderr}
	total := 0
	for _, ti := range types {
		if afterType != "" && ti.Name < afterType {
			continue // done before the checkpoint: types are walked in name order
		}
		from := ""
		if ti.Name == afterType {
			from = afterID
		}
		n, err := r.reindexType(ctx, ti.Name, from)
		total += n
		if err != nil {
			return fmt.Errorf("reindex %s (resume with --resume-after, or rerun to use %s): %w", ti.Name, cfg.checkpoint, err)
		}
	}
	if err := os.Remove(cfg.checkpoint); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the checkpoint: %w", err)
	}
	fmt.Fprintf(stdout, "reindexed %d resources in the %s store (skipped %d written meanwhile)\n", total, desc, r.skipped)
	return nil
}

type reindexer struct {
	st         store.Store
	base       string
	batch      int
	checkpoint string
	progress   io.Writer
	skipped    int
}

// reindexType reindexes the resources of typ with ids after from, in id order, and returns how many.
func (r *reindexer) reindexType(ctx context.Context, typ, from string) (int, error) {
	n := 0
	for {
		q := store.Query{Type: typ, Limit: r.batch}
		if from != "" {
			q.After = []store.SortValue{{Str: from}}
		}
		hits, err := r.st.Search(ctx, q)
		if err != nil {
			return n, err
		}
		for _, h := range hits {
			entries, err := fhir.ExtractBody(h.Resource.Body, r.base)
			if err != nil {
				return n, fmt.Errorf("%s/%s: %w", typ, h.Resource.ID, err)
			}
			err = r.st.SetIndex(ctx, typ, h.Resource.ID, h.Resource.VersionID, entries)
			switch {
			case errors.Is(err, store.ErrVersionConflict), errors.Is(err, store.ErrNotFound):
				r.skipped++ // changed or gone since the page was read; its writer indexed it
			case err != nil:
				return n, fmt.Errorf("%s/%s: %w", typ, h.Resource.ID, err)
			default:
				n++
			}
		}
		if len(hits) == 0 {
			return n, nil
		}
		from = hits[len(hits)-1].Resource.ID
		if err := writeCheckpoint(r.checkpoint, typ+"/"+from); err != nil {
			return n, err
		}
		fmt.Fprintf(r.progress, "reindexed %s up to %s/%s\n", typ, typ, from)
		if len(hits) < r.batch {
			return n, nil
		}
	}
}

// writeCheckpoint replaces the checkpoint atomically, so that a crash leaves the old or the new one.
func writeCheckpoint(path, pos string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(pos+"\n"), 0o600); err != nil {
		return fmt.Errorf("write the checkpoint: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write the checkpoint: %w", err)
	}
	return nil
}
