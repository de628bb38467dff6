// Command gpfhir is the gpfhir server and its tools. See README.md for usage.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := exitCode(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr), os.Stderr)
	stop()
	os.Exit(code)
}

// exitCode is the process status for run's error: 0 for none and for -h, which printed the command's
// flags as asked (not a failure), 1 otherwise, after saying what went wrong.
func exitCode(err error, stderr io.Writer) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintln(stderr, "gpfhir:", err)
	return 1
}

// isHelp reports whether a command's first argument asks for its usage.
func isHelp(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

const usage = `usage: gpfhir <command> [flags]

commands:
  serve      run the FHIR server (gpfhir serve --dev for a local demo)
  dev-token  print an access token from the --dev identity provider, e.g. dev-token --scope system/*.rs
  reindex    rebuild the search index from the stored resources (resumable)
  store copy copy every version and the audit chain from one backend to another (resumable, verified)
  audit verify   check the audit trail's hash chain: "intact, N records" or the first broken link
  audit export   write AuditEvents as ndjson for archiving (--since, --until RFC 3339, --out file)
  audit prune    remove the AuditEvents recorded before --before (RFC 3339 or an age like 2190d); export first
  backup     copy the SQLite store while it runs (--data-dir D --out FILE), verified, audit head in FILE.json
  restore    put a backup in place (--from FILE --data-dir D) and verify its audit chain; see docs/operations.md
  import     load FHIR JSON (Bundles, resources, ndjson; files, directories, .tgz, -) through the API's rules
  export     write the store's current resources as ndjson, one file per type (the offline twin of $export)
  bench      measure the server under load on loopback (req/s, latency, ratio to static bytes); see README "Performance"
  conformance    run the FHIR conformance suite against a server (--base-url URL --token-command CMD); see docs/conformance.md
  version    print the version

Run "gpfhir <command> -h" for the flags of a command. Every flag can also be set with a GPFHIR_*
environment variable (--data-dir is GPFHIR_DATA_DIR); a flag beats the environment.
`

// run is main without the process: tests call it with their own arguments, environment and context.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr, nil)
	case "dev-token":
		return devToken(ctx, args[1:], getenv, stdout, stderr)
	case "reindex":
		return reindex(ctx, args[1:], getenv, stdout, stderr)
	case "store":
		return storeCommand(ctx, args[1:], getenv, stdout, stderr)
	case "audit":
		return auditCommand(ctx, args[1:], getenv, stdout, stderr)
	case "bench":
		return benchCommand(ctx, args[1:], getenv, stdout, stderr)
	case "conformance":
		return conformanceCommand(ctx, args[1:], getenv, stdout, stderr)
	case "backup":
		return backupCommand(ctx, args[1:], getenv, stdout)
	case "restore":
		return restoreCommand(ctx, args[1:], getenv, stdout)
	case "import":
		return importCommand(ctx, args[1:], getenv, os.Stdin, stdout, stderr)
	case "export":
		return exportCommand(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "gpfhir", version)
		return nil
	}
	if isHelp(args[0]) {
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}
