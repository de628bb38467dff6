package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
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
