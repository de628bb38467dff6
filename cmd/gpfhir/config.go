package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// multiFlag is a repeatable string flag. From the environment it takes a comma-separated list.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	for _, part := range strings.Split(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*m = append(*m, part)
		}
	}
	return nil
}

// envName is the environment fallback of a flag: --oidc-issuer reads GPFHIR_OIDC_ISSUER.
func envName(flagName string) string {
	return "GPFHIR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag that was not given from its GPFHIR_* variable, so that a
// flag beats the environment, which beats the default. Bad environment values are collected with the
// other configuration errors rather than stopping at the first.
func parseFlags(fs *flag.FlagSet, args []string, getenv func(string) string) error {
	fs.SetOutput(os.Stderr)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v := getenv(envName(f.Name)); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	return errors.Join(errs...)
}

// configErrors collects every configuration problem so that they are reported together at start.
type configErrors []string

func (c *configErrors) addf(format string, args ...any) {
	*c = append(*c, fmt.Sprintf(format, args...))
}

func (c configErrors) err() error {
	if len(c) == 0 {
		return nil
	}
	return errors.New("configuration errors:\n  - " + strings.Join(c, "\n  - "))
}

// parseAge reads a length of time as a Go duration (8760h, 90m) or a whole number of days (2190d), the
// unit retention periods are usually given in.
func parseAge(v string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < -106751 || n > 106751 { // time.Duration holds ±292 years
			return 0, fmt.Errorf("%q is not a whole number of days (like 2190d) or a duration (like 8760h)", v)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number of days (like 2190d) or a duration (like 8760h)", v)
	}
	return d, nil
}

// ageFlag is a duration flag that also takes days (parseAge).
type ageFlag time.Duration

func (a *ageFlag) String() string { return time.Duration(*a).String() }

func (a *ageFlag) Set(v string) error {
	d, err := parseAge(v)
	if err != nil {
		return err
	}
	*a = ageFlag(d)
	return nil
}

// minAuditAge is the youngest audit record that retention or a prune may remove: a day of audit
// trail is always kept, whatever the setting, and records still being appended are never touched.
const minAuditAge = 24 * time.Hour
