package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gpfhir/gpfhir/audit"
)

const auditUsage = `usage:
  gpfhir audit verify [store flags]
  gpfhir audit export [--since DATE|TIME] [--until DATE|TIME] [--out file] [store flags]
  gpfhir audit prune --before DATE|TIME|AGE [store flags]   (AGE like 2190d or 8760h: older than that)`

// auditCommand dispatches "gpfhir audit <subcommand>".
func auditCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(auditUsage)
	}
	if isHelp(args[0]) {
		fmt.Fprintln(stdout, auditUsage)
		return nil
	}
	switch args[0] {
	case "verify":
		return auditVerify(ctx, args[1:], getenv, stdout)
	case "export":
		return auditExport(ctx, args[1:], getenv, stdout, stderr)
	case "prune":
		return auditPrune(ctx, args[1:], getenv, stdout, time.Now())
	}
	return fmt.Errorf("unknown audit command %q\n%s", args[0], auditUsage)
}

// openAuditStore parses the store flags (plus whatever extra defined on fs) and opens the store.
func openAuditStore(ctx context.Context, fs *flag.FlagSet, cfg *storeConfig, args []string, getenv func(string) string, check func(*configErrors)) (audit.Backend, error) {
	if err := parseFlags(fs, args, getenv); err != nil {
		return nil, err
	}
	var errs configErrors
	cfg.check(&errs, "")
	if check != nil {
		check(&errs)
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	st, _, err := cfg.open(ctx)
	return st, err
}

// auditVerify walks the whole audit chain offline and prints "intact, N records" or the first broken
// link. A broken chain is an error, so the exit status is non-zero. The head hash is printed so that
// operators can keep it elsewhere: truncating the end of the chain is only detectable against it.
func auditVerify(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	var cfg storeConfig
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	addStoreFlags(fs, &cfg, "")
	st, err := openAuditStore(ctx, fs, &cfg, args, getenv, nil)
	if err != nil {
		return err
	}
	defer st.Close()
	res, err := audit.Verify(ctx, st)
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	fmt.Fprintln(stdout, res)
	if res.HeadSeq > 0 {
		fmt.Fprintf(stdout, "head: record %d, hash %s\n", res.HeadSeq, hex.EncodeToString(res.Head))
	}
	if res.Anchor.Seq > 0 {
		fmt.Fprintf(stdout, "anchor: record %d, hash %s, recorded %s\n", res.Anchor.Seq, hex.EncodeToString(res.Anchor.Hash), res.Anchor.Recorded.Format(time.RFC3339Nano))
	}
	if !res.Intact {
		return fmt.Errorf("the audit chain is broken at record %d", res.BrokenAt)
	}
	return nil
}

// auditExport writes the AuditEvents recorded in [--since, --until) as ndjson, one body per line in
// chain order, for archiving. With --out it writes a temporary file beside the target and renames it
// at the end, so an interrupted export never leaves a truncated archive under the final name. It reads
// the whole chain (the records' times are not monotonic in Seq when several processes append), and
// reports the chain head it saw so that the archive can be tied to a later verify.
func auditExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg storeConfig
	var sinceS, untilS, out string
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	addStoreFlags(fs, &cfg, "")
	fs.StringVar(&sinceS, "since", "", "export records recorded at or after this date or time, like 2025-01-01 or 2025-01-01T09:30:00Z (default: the first)")
	fs.StringVar(&untilS, "until", "", "export records recorded before this date or time (default: the last)")
	fs.StringVar(&out, "out", "", "write to this file instead of standard output")
	var since, until time.Time
	st, err := openAuditStore(ctx, fs, &cfg, args, getenv, func(errs *configErrors) {
		var err error
		if sinceS != "" {
			if since, err = parseWhen(sinceS); err != nil {
				errs.addf("--since %v", err)
			}
		}
		if untilS != "" {
			if until, err = parseWhen(untilS); err != nil {
				errs.addf("--until %v", err)
			}
		}
		if !since.IsZero() && !until.IsZero() && !since.Before(until) {
			errs.addf("--since must be before --until")
		}
	})
	if err != nil {
		return err
	}
	defer st.Close()

	w := stdout
	var tmp *os.File
	if out != "" {
		if tmp, err = os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".*"); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		defer os.Remove(tmp.Name()) // after the rename this removes nothing
		defer tmp.Close()
		w = tmp
	}
	n, last, head, err := audit.Export(ctx, st, w, since, until)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if tmp != nil {
		if err := tmp.Sync(); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
		if err := os.Rename(tmp.Name(), out); err != nil {
			return fmt.Errorf("audit export: %w", err)
		}
	}
	fmt.Fprintf(stderr, "exported %d AuditEvents; chain head at record %d, hash %s\n", n, last, hex.EncodeToString(head))
	return nil
}

// parseBefore reads prune's --before: an RFC 3339 time, or an age (parseAge) counted back from now. Either
// must be at least minAuditAge before now.
func parseBefore(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, errors.New("audit prune needs --before: an RFC 3339 time or an age like 2190d (records recorded before it are removed)")
	}
	before, err := parseWhen(v)
	if err != nil {
		age, ageErr := parseAge(v)
		if ageErr != nil {
			return time.Time{}, fmt.Errorf("--before %q is neither a date or time (2025-01-01, 2025-01-01T09:30:00Z) nor an age like 2190d or 8760h", v)
		}
		before = now.Add(-age)
	}
	if now.Sub(before) < minAuditAge {
		return time.Time{}, fmt.Errorf("--before %q is less than %s ago: the last day of audit trail is always kept", v, minAuditAge)
	}
	return before.UTC(), nil
}

// auditPrune removes the audit records recorded before --before from the start of the chain and prints
// how many and the anchor the chain now starts from, for keeping with the export of what was removed.
func auditPrune(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer, now time.Time) error {
	var cfg storeConfig
	var beforeS string
	fs := flag.NewFlagSet("audit prune", flag.ContinueOnError)
	addStoreFlags(fs, &cfg, "")
	fs.StringVar(&beforeS, "before", "", "remove records recorded before this date or time (2025-01-01, 2025-01-01T09:30:00Z), or older than this age (2190d, 8760h)")
	var before time.Time
	st, err := openAuditStore(ctx, fs, &cfg, args, getenv, func(errs *configErrors) {
		var err error
		if before, err = parseBefore(beforeS, now); err != nil {
			errs.addf("%v", err)
		}
	})
	if err != nil {
		return err
	}
	defer st.Close()
	anchor, removed, err := st.PruneAudit(ctx, before)
	fmt.Fprintf(stdout, "pruned %d audit records recorded before %s\n", removed, before.Format(time.RFC3339))
	if anchor.Seq > 0 {
		fmt.Fprintf(stdout, "anchor: record %d, hash %s, recorded %s (the chain now starts after it; keep it with the export of the pruned records)\n",
			anchor.Seq, hex.EncodeToString(anchor.Hash), anchor.Recorded.Format(time.RFC3339Nano))
	}
	if err != nil {
		return fmt.Errorf("audit prune: %w", err)
	}
	return nil
}
