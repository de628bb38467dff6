package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/conformance"
)

// errChecksFailed is the error of a run whose report says a check failed; the report has said which.
var errChecksFailed = errors.New("conformance: checks failed")

type roleFlag struct{ roles []conformance.Role }

func (r *roleFlag) String() string {
	var names []string
	for _, x := range r.roles {
		names = append(names, x.Name)
	}
	return strings.Join(names, ",")
}

// Set takes ROLE=CMD; "--role ROLE CMD" is joined into that form before parsing (see joinRoleArgs).
func (r *roleFlag) Set(v string) error {
	name, cmd, ok := strings.Cut(v, "=")
	name = strings.TrimSpace(name)
	if !ok || strings.TrimSpace(cmd) == "" {
		return fmt.Errorf("%q is not ROLE CMD (or ROLE=CMD)", v)
	}
	switch name {
	case conformance.RolePatient, conformance.RoleGP, conformance.RoleAuditor:
	default:
		return fmt.Errorf("unknown role %q: roles are patient, gp and auditor", name)
	}
	r.roles = append(r.roles, conformance.Role{Name: name, Token: conformance.CommandToken(cmd)})
	return nil
}

// joinRoleArgs turns "--role patient CMD" into "--role patient=CMD", the form the issue and the README
// use, since the flag package takes one value per flag.
func joinRoleArgs(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		a := args[i]
		if (a == "--role" || a == "-role") && i+2 < len(args) {
			switch args[i+1] {
			case conformance.RolePatient, conformance.RoleGP, conformance.RoleAuditor:
				out = append(out, a, args[i+1]+"="+args[i+2])
				i += 2
				continue
			}
		}
		out = append(out, a)
	}
	return out
}

// conformanceCommand runs the conformance suite against a FHIR server and reports.
func conformanceCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var (
		baseURL, tokenCmd, token, only, allowFail, junitFile, jsonFile, profile, origin string
		roles                                                                           roleFlag
		maxRequests                                                                     int
		timeout, requestTimeout                                                         time.Duration
		quiet                                                                           bool
	)
	fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
	fs.StringVar(&baseURL, "base-url", "", "FHIR base URL of the server to test (required)")
	fs.StringVar(&tokenCmd, "token-command", "", "shell command that prints the main caller's bearer token (it creates and deletes the suite's data)")
	fs.StringVar(&token, "token", "", "the main caller's bearer token itself (prefer --token-command: a flag shows in the process list)")
	fs.Var(&roles, "role", "another caller: --role patient|gp|auditor CMD (repeatable; give patient twice to check that one patient cannot reach another's data)")
	fs.StringVar(&only, "only", "", "run only the checks whose ids match these globs, comma-separated (* matches across /), e.g. 'search/Patient/*,auth/*'")
	fs.StringVar(&allowFail, "allow-fail", "", "checks (comma-separated globs) whose failure is a known defect: shown as FAIL(known), not failing the run")
	fs.StringVar(&junitFile, "junit", "", "write the results as JUnit XML to this file")
	fs.StringVar(&jsonFile, "json", "", "write the results as JSON to this file")
	fs.StringVar(&origin, "origin", "", "browser origin the CORS checks send, one the server allows (default https://conformance.example; gpfhir serve --dev allows http://127.0.0.1:<any port>)")
	fs.StringVar(&profile, "profile", "", "also check a server's own promises: gpfhir")
	fs.IntVar(&maxRequests, "max-requests", 5000, "most requests the checks may make (the cleanup has its own reserve)")
	fs.DurationVar(&timeout, "timeout", 10*time.Minute, "longest the checks may run (the cleanup has two minutes more)")
	fs.DurationVar(&requestTimeout, "request-timeout", 30*time.Second, "longest one request may take")
	fs.BoolVar(&quiet, "quiet", false, "no progress line")
	fs.SetOutput(stderr)
	if err := parseFlags(fs, joinRoleArgs(args), getenv); err != nil {
		return err
	}
	var errs configErrors
	if baseURL == "" {
		errs.addf("--base-url is required (GPFHIR_BASE_URL)")
	}
	if tokenCmd != "" && token != "" {
		errs.addf("give --token-command or --token, not both")
	}
	if maxRequests <= 0 || timeout <= 0 || requestTimeout <= 0 {
		errs.addf("--max-requests, --timeout and --request-timeout must be positive")
	}
	if err := errs.err(); err != nil {
		return err
	}
	cfg := conformance.Config{
		BaseURL: baseURL, Roles: roles.roles, Only: splitList(only), AllowFail: splitList(allowFail), Profile: profile, Origin: origin,
		MaxRequests: maxRequests, Timeout: timeout, RequestTimeout: requestTimeout,
	}
	switch {
	case tokenCmd != "":
		cfg.Token = conformance.CommandToken(tokenCmd)
	case token != "":
		cfg.Token = conformance.StaticToken(token)
	}
	if !quiet {
		cfg.Progress = stderr
		cfg.ProgressInPlace = isTerminal(stderr)
	}
	rep, err := conformance.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	if junitFile != "" {
		if err := writeFile(junitFile, rep.WriteJUnit); err != nil {
			return err
		}
	}
	if jsonFile != "" {
		if err := writeFile(jsonFile, rep.WriteJSON); err != nil {
			return err
		}
	}
	if !rep.OK() {
		return errChecksFailed
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func writeFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// isTerminal reports whether w is a character device, where a progress line can be rewritten in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
