package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake/tally"
)

// storeCommand dispatches "gpfhir store <subcommand>".
func storeCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: gpfhir store copy --from sqlite|mongo [flags] --to sqlite|mongo [flags]"
	if len(args) > 0 && isHelp(args[0]) {
		fmt.Fprintln(stdout, usage)
		return nil
	}
	if len(args) == 0 || args[0] != "copy" {
		return errors.New(usage)
	}
	return storeCopy(ctx, args[1:], getenv, stdout, stderr)
}

// copyStats is what a copy reports and verifies.
type copyStats struct {
	resources int // distinct resources
	versions  int // versions in the source
	copied    int // versions written by this run
	skipped   int // versions the target already had (an earlier, interrupted run)
}

// storeCopy copies every version of every resource from one backend to another, keeping ids, version
// numbers, lastUpdated and body bytes, and rebuilding index entries from the bodies. The audit chain is
// copied after the other resources, record by record in Seq order with its hashes (audit.Copy), and
// checked with audit.Verify on the target at the end.
//
// It is resumable without a checkpoint file: each resource continues from the target's current version,
// which compare-and-swap writes keep exact, so an interrupted copy is finished by running it again.
func storeCopy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var from, to storeConfig
	var baseURL string
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	addStoreFlags(fs, &from, "from-")
	addStoreFlags(fs, &to, "to-")
	// --from and --to are the documented short forms of --from-store and --to-store.
	fs.Func("from", "source backend: sqlite or mongo", func(v string) error { from.kind = v; return nil })
	fs.Func("to", "target backend: sqlite or mongo", func(v string) error { to.kind = v; return nil })
	fs.StringVar(&baseURL, "base-url", "", "the server's base URL, so that absolute references to it index as local ones")
	progressEvery := fs.Int("progress-every", 500, "report progress every N resources")
	// The unprefixed forms (--data-dir, --mongodb-uri, --mongodb-database) apply to whichever side uses
	// that backend, so that "--from sqlite --data-dir ./data --to mongo --mongodb-uri ..." reads naturally.
	var shared storeConfig
	fs.StringVar(&shared.dataDir, "data-dir", "", "SQLite directory, for the side that is sqlite")
	fs.StringVar(&shared.mongoURI, "mongodb-uri", "", "MongoDB URI, for the side that is mongo")
	fs.StringVar(&shared.mongoDB, "mongodb-database", "", "MongoDB database, for the side that is mongo")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, side := range []struct {
		c      *storeConfig
		prefix string
	}{{&from, "from-"}, {&to, "to-"}} {
		if side.c.kind == "sqlite" && shared.dataDir != "" && !set[side.prefix+"data-dir"] {
			side.c.dataDir = shared.dataDir
		}
		if side.c.kind == "mongo" && shared.mongoURI != "" && !set[side.prefix+"mongodb-uri"] {
			side.c.mongoURI = shared.mongoURI
		}
		if side.c.kind == "mongo" && shared.mongoDB != "" && !set[side.prefix+"mongodb-database"] {
			side.c.mongoDB = shared.mongoDB
		}
	}
	var errs configErrors
	from.check(&errs, "from-")
	to.check(&errs, "to-")
	if from == to {
		errs.addf("--from and --to are the same store")
	}
	if err := errs.err(); err != nil {
		return err
	}
	src, srcDesc, err := from.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, dstDesc, err := to.open(ctx)
	if err != nil {
		return err
	}
	defer dst.Close()
	fmt.Fprintf(stderr, "copying from %s to %s\n", srcDesc, dstDesc)

	start := time.Now()
	stats, err := copyAll(ctx, src, dst, baseURL, *progressEvery, stderr)
	if err != nil {
		return fmt.Errorf("copy stopped after %d versions (run the same command again to resume): %w", stats.copied, err)
	}
	auditCopied, auditHad, err := audit.Copy(ctx, src, dst, baseURL, stderr)
	if err != nil {
		return fmt.Errorf("copy stopped after %d audit records (run the same command again to resume): %w", auditCopied, err)
	}
	if err := verifyCopy(ctx, src, dst, stats); err != nil {
		return err
	}
	chain, err := audit.Verify(ctx, dst)
	if err != nil {
		return fmt.Errorf("verify the copied audit chain: %w", err)
	}
	if !chain.Intact || chain.HeadSeq != auditCopied+auditHad {
		return fmt.Errorf("verification of the copied audit chain failed: %v (expected %d records)", chain, auditCopied+auditHad)
	}
	fmt.Fprintf(stdout, "copied %d versions (%d already present) of %d resources and %d audit records (%d already present) in %s; verified: both stores hold %d versions, audit chain %v\n",
		stats.copied, stats.skipped, stats.resources, auditCopied, auditHad, time.Since(start).Round(time.Millisecond), stats.versions, chain)
	return nil
}

type resourceKey struct{ typ, id string }

// latestVersions walks the whole history once and keeps each resource's newest version number. History is
// newest first, so the first sighting of a resource is its current version.
func latestVersions(ctx context.Context, st audit.Backend) (map[resourceKey]int64, int, error) {
	latest := map[resourceKey]int64{}
	total := 0
	q := store.HistoryQuery{Limit: 1000}
	for {
		page, err := st.History(ctx, q)
		if err != nil {
			return nil, 0, err
		}
		for _, v := range page {
			k := resourceKey{v.Type, v.ID}
			if _, seen := latest[k]; !seen {
				latest[k] = v.VersionID
			}
		}
		total += len(page)
		if len(page) < q.Limit {
			return latest, total, nil
		}
		last := page[len(page)-1]
		q.After = &store.HistoryPosition{LastUpdated: last.LastUpdated, Type: last.Type, ID: last.ID, VersionID: last.VersionID}
	}
}

func copyAll(ctx context.Context, src, dst audit.Backend, baseURL string, every int, progress io.Writer) (copyStats, error) {
	var stats copyStats
	latest, total, err := latestVersions(ctx, src)
	if err != nil {
		return stats, err
	}
	stats.resources, stats.versions = len(latest), total
	keys := make([]resourceKey, 0, len(latest))
	for k := range latest {
		// AuditEvents cannot be written with Apply; audit.Copy copies them as a chain.
		if k.typ != store.AuditEventType {
			keys = append(keys, k)
		}
	}
	stats.resources = len(keys)
	// A fixed order makes progress reports comparable between an interrupted run and its resumption.
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].typ != keys[j].typ {
			return keys[i].typ < keys[j].typ
		}
		return keys[i].id < keys[j].id
	})
	for n, k := range keys {
		have := int64(0)
		cur, err := dst.Get(ctx, k.typ, k.id)
		switch {
		case err == nil:
			have = cur.VersionID
		case !errors.Is(err, store.ErrNotFound):
			return stats, err
		}
		stats.skipped += int(min(have, latest[k]))
		for v := have + 1; v <= latest[k]; v++ {
			r, err := src.GetVersion(ctx, k.typ, k.id, v)
			if err != nil {
				return stats, fmt.Errorf("read %s/%s version %d: %w", k.typ, k.id, v, err)
			}
			w := store.Write{Resource: r, ExpectVersion: v - 1}
			if !r.Deleted && v == latest[k] {
				// Only the current version is searchable, so only it needs index entries: a FHIR
				// resource's from its body, a document of the uptake tally's as the tally wrote them.
				index, internal := tally.Index(k.typ, r.Body)
				if !internal {
					if index, err = fhir.ExtractBody(r.Body, baseURL); err != nil {
						return stats, fmt.Errorf("index %s/%s version %d: %w", k.typ, k.id, v, err)
					}
				}
				w.Index = index
			}
			if err := dst.Apply(ctx, []store.Write{w}); err != nil {
				return stats, fmt.Errorf("write %s/%s version %d: %w", k.typ, k.id, v, err)
			}
			stats.copied++
		}
		if every > 0 && (n+1)%every == 0 {
			fmt.Fprintf(progress, "progress: %d/%d resources, %d versions copied\n", n+1, len(keys), stats.copied)
		}
	}
	return stats, nil
}

// verifyCopy checks that the target now holds exactly the source's versions, resource by resource.
func verifyCopy(ctx context.Context, src, dst audit.Backend, stats copyStats) error {
	want, wantTotal, err := latestVersions(ctx, src)
	if err != nil {
		return err
	}
	got, gotTotal, err := latestVersions(ctx, dst)
	if err != nil {
		return err
	}
	var problems []string
	for k, v := range want {
		if got[k] != v {
			problems = append(problems, fmt.Sprintf("%s/%s: source has %d versions, target %d", k.typ, k.id, v, got[k]))
		}
	}
	if gotTotal != wantTotal {
		problems = append(problems, fmt.Sprintf("source has %d versions in all, target %d", wantTotal, gotTotal))
	}
	if len(problems) > 0 {
		if len(problems) > 10 {
			problems = append(problems[:10], fmt.Sprintf("... and %d more", len(problems)-10))
		}
		return fmt.Errorf("verification failed after copying %d versions:\n  %s", stats.copied, joinLines(problems))
	}
	return nil
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}
