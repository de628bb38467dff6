package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/bench"
)

// TestBenchRunsScenariosAgainstTheRealServerAndReportsThem runs `gpfhir bench` briefly: it starts the
// server, gets tokens from the dev identity provider over HTTP, and reports every scenario asked for with
// requests that succeeded, a latency distribution, and a ratio to the baseline measured in the same run.
func TestBenchRunsScenariosAgainstTheRealServerAndReportsThem(t *testing.T) {
	// Bounded by requests, so that a busy machine gives each run fewer requests a second, not none;
	// the duration only stops a run that cannot make its twenty.
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "20s", "--max-requests", "20", "--connections", "2", "--rate", "50",
		"--scale", "10", "--scenarios", "read,compartment,metadata,create,update,mixed", "--json", out},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("the JSON report does not parse: %v", err)
	}
	if rep.Server["rate_limits"] == "" || !strings.Contains(rep.Server["flags"], "--rate-limit 0") {
		t.Errorf("the report does not say the server's rate limits were off: %v", rep.Server)
	}
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[r.Scenario+"/"+r.As+"/"+r.Mode] = true
		// The baseline runs at the runtime's own GOMAXPROCS, gpfhir's scenarios at serve's.
		if want := runtimeProcs + extraProcs; r.As == "baseline" && r.Procs != runtimeProcs || r.As != "baseline" && r.Procs != want {
			t.Errorf("%s as %s (%s) ran at GOMAXPROCS %d; want %d for the baseline, %d for the rest", r.Scenario, r.As, r.Mode, r.Procs, runtimeProcs, want)
		}
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("%s as %s (%s): %d requests, %d errors (%s)", r.Scenario, r.As, r.Mode, r.Requests, r.Errors, r.FirstError)
		}
		if r.ReqPerSec <= 0 || r.Ratio <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs || r.RSSMiB <= 0 {
			t.Errorf("%s as %s (%s): implausible figures %+v", r.Scenario, r.As, r.Mode, r)
		}
	}
	for _, want := range []string{"static bytes (the limit)/baseline/closed", "read/patient/closed", "read/gp-system/closed",
		"compartment/patient/open", "metadata/anonymous/closed", "create/gp-system/closed", "update/gp-system/open", "mixed/patient/closed"} {
		if !seen[want] {
			t.Errorf("no result for %s; have %v", want, seen)
		}
	}
	if !strings.Contains(stdout.String(), "req/s") || !strings.Contains(stdout.String(), "read") {
		t.Errorf("no table on stdout:\n%s", stdout.String())
	}
}

// TestBenchImportsASyntheaSampleFirst runs bench with --synthea on a small Synthea-shaped directory: the
// sample is imported through the API (its patient registered at a demo practice) before the scenarios,
// which still succeed, and the report says what the import stored.
func TestBenchImportsASyntheaSampleFirst(t *testing.T) {
	in := importFixtures(t)
	out := filepath.Join(t.TempDir(), "bench.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--duration", "20s", "--max-requests", "10", "--connections", "1",
		"--scale", "10", "--scenarios", "read", "--synthea", in, "--json", out},
		func(string) string { return "" }, &stdout, &stderr)
	if err != nil {
		t.Fatalf("bench --synthea: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	// The fixtures hold a practice, a Patient with no practice, an Observation and three Practitioners
	// of served types; a CarePlan and a Claim are not served.
	if got := rep.Server["synthea_import"]; !strings.Contains(got, " 6 stored, 0 unchanged") {
		t.Errorf("the report's import summary %q, want 6 stored\n%s", got, stderr.String())
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 {
			t.Errorf("%s as %s after the import: %d requests, %d errors (%s)", r.Scenario, r.As, r.Requests, r.Errors, r.FirstError)
		}
	}
}

// TestBenchRefusesANonLoopbackTarget keeps the load generator on this machine.
func TestBenchRefusesANonLoopbackTarget(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--base-url", "http://192.0.2.1:8080", "--duration", "100ms"},
		func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("bench against 192.0.2.1: err = %v, want a refusal naming loopback", err)
	}
}

// TestBenchRefusesAStoreWithData keeps the figures about a fresh store of the size asked for.
func TestBenchRefusesAStoreWithData(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gpfhir.db"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"bench", "--data-dir", dir, "--duration", "100ms"},
		func(string) string { return "" }, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("bench on a directory with data: err = %v, want a refusal saying it is not empty", err)
	}
}
