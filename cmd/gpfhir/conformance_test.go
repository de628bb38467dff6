package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/conformance"
	"github.com/gpfhir/gpfhir/seed"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// knownDefects are the gpfhir defects the conformance suite finds that are not fixed yet, each with the
// issue that owns it. The runs below allow them (--allow-fail) and assert that they still fail, so that
// a fix shows up here as a test to update rather than passing unnoticed.
var knownDefects = map[string]string{}

// TestConformanceSuitePassesAgainstServeDev builds gpfhir, starts `gpfhir serve --dev` on a free
// loopback port with an empty data directory, and runs `gpfhir conformance --profile gpfhir` against
// it with token commands that call the built binary's dev-token, on SQLite and on MongoDB (the embedded
// FerretDB): every applicable check passes, but the known defects.
func TestConformanceSuitePassesAgainstServeDev(t *testing.T) {
	bin := buildBinary(t)
	t.Run("sqlite", func(t *testing.T) {
		base := startServe(t, bin, "--data-dir", t.TempDir())
		runConformance(t, bin, base, nil)
	})
	t.Run("mongo", func(t *testing.T) {
		uri := mongotest.Start(t)
		base := startServe(t, bin, "--store", "mongo", "--mongodb-uri", uri, "--mongodb-database", mongotest.Database(t),
			"--export-dir", t.TempDir())
		// FerretDB scans whole collections (design.md), so a full run takes minutes there. The Mongo run
		// keeps what depends on the backend: every type's create, Patient's reads and whole write path,
		// history, searches of each parameter type (with chains, paging, sorting, includes, counts),
		// conditional writes, bundles (atomic on Mongo by journal), the patient isolation and gpfhir's
		// booking and repeat-request races and audit records. SQLite runs everything above.
		runConformance(t, bin, base, []string{"capabilities/metadata", "auth/no-token", "create/*", "read/Patient*",
			"update/Patient*", "patch/Patient*", "delete/Patient*", "history/Patient/*", "search/Patient/bundle",
			"search/Patient/birthdate/*", "search/Patient/identifier/*", "search/Patient/family/*",
			"search/Patient/gender/*", "search/Patient/general-practitioner/*", "search/Patient/_lastUpdated/*",
			"paging/Patient", "sort/Patient/*", "summary/Patient/*", "total/Patient/*", "include/Patient/*",
			"revinclude/Patient/Immunization:patient", "conditional/Patient/*", "bundle/*", "prefer/*", "operations/*",
			"patients/*", "gpfhir/withheld", "gpfhir/booking/*", "gpfhir/repeat/*", "gpfhir/audit/records"})
	})
}

// buildBinary builds gpfhir once into a temporary directory.
func buildBinary(t testing.TB) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gpfhir")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startServe runs `gpfhir serve --dev` on 127.0.0.1 port 0 and returns its base URL, read from the
// "gpfhir listening" log line; the server is stopped (SIGTERM) when the test ends.
func startServe(t *testing.T, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--log-level", "warn"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	// With --log-level warn, the listening line (info) is not logged; the dev identity provider's warning
	// names the issuer, whose prefix is the base URL.
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	found := make(chan string, 1)
	var logs bytes.Buffer
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Bytes()
			if logs.Len() < 64<<10 {
				logs.Write(line)
				logs.WriteByte('\n')
			}
			var rec struct {
				Issuer string `json:"issuer"`
			}
			if !sent && json.Unmarshal(line, &rec) == nil && strings.HasSuffix(rec.Issuer, "/dev-idp") {
				found <- strings.TrimSuffix(rec.Issuer, "/dev-idp")
				sent = true
			}
		}
	}()
	select {
	case base := <-found:
		waitReady(t, base)
		return base
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("serve did not start\n%s", logs.String())
	}
	return ""
}

// waitReady waits until the seeded server answers /readyz: the issuer is logged before seeding ends.
func waitReady(t testing.TB, base string) {
	t.Helper()
	hc := &http.Client{Timeout: 5 * time.Second}
	// Seeding the demo's GP records takes about two minutes on FerretDB, which scans whole collections
	// on every write (about a tenth of that on SQLite), on a shared two-core machine.
	deadline := time.Now().Add(300 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := hc.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s/readyz did not answer", base)
}

// runConformance runs the suite with a GP system as the main caller, an auditor, and patients: two P9
// patients with default access (isolation), one whose practice has not switched on record access, one
// with no online appointments, and the proxy user acting for the patient they care for.
func runConformance(t *testing.T, bin, base string, only []string) {
	t.Helper()
	dir := t.TempDir()
	people := seed.People(seed.Options{Seed: 1})
	nhs := map[string]string{}
	for _, p := range people.Patients {
		nhs[p.PatientID] = p.NHSNumber
	}
	tok := func(args string) string {
		return shellQuote(bin) + " dev-token --issuer " + shellQuote(base+"/dev-idp") + " " + args
	}
	patient := func(id string) string { return tok("--nhs-number " + nhs[id] + " --scope 'patient/*.cruds'") }
	var allow []string
	for id := range knownDefects {
		allow = append(allow, id)
	}
	junit, jsonFile := filepath.Join(dir, "conformance.xml"), filepath.Join(dir, "conformance.json")
	args := []string{"conformance", "--base-url", base, "--profile", "gpfhir", "--quiet",
		"--token-command", tok("--scope 'system/*.cruds'"),
		"--role", "auditor", tok("--client gpfhir-local-tool --scope user/AuditEvent.rs"),
		"--role", "patient", patient("pat-0001"),
		"--role", "patient", patient("pat-0010"),
		"--role", "patient", patient("pat-0004"),
		"--role", "patient", patient("pat-0006"),
		"--role", "patient", tok("--nhs-number " + people.Proxy.NHSNumber + " --proxy-for " + people.Proxy.ProxyFor + " --scope 'patient/*.rs'"),
		"--origin", "http://127.0.0.1:5173",
		"--allow-fail", strings.Join(allow, ","), "--junit", junit, "--json", jsonFile, "--timeout", "7m"}
	if only != nil {
		args = append(args, "--only", strings.Join(only, ","))
	}
	// FerretDB scans whole collections on every query, so the Mongo run's share of the checks takes
	// minutes on a shared machine once the demo holds GP records.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var rep conformance.Report
	raw, rerr := os.ReadFile(jsonFile)
	if rerr != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("no JSON report (%v); exit %v\n%s\n%s", rerr, err, stdout.String(), stderr.String())
	}
	for _, r := range rep.Results {
		if r.Outcome == conformance.Fail && !r.KnownFailure {
			t.Errorf("%s failed: %s (%s)", r.ID, r.Reason, r.Request)
		}
	}
	for id, why := range knownDefects {
		if r, ok := rep.Result(id); ok && r.Outcome == conformance.Pass {
			t.Errorf("%s now passes: the known defect (%s) is fixed; take it out of knownDefects and the CI's --allow-fail", id, why)
		}
	}
	// serve --dev allows loopback origins, so the CORS check runs rather than skips (in the full run; the
	// Mongo subset leaves it out, since CORS does not depend on the store).
	if r, ok := rep.Result("capabilities/cors"); only == nil && (!ok || r.Outcome != conformance.Pass) {
		t.Errorf("capabilities/cors: %+v, want a pass", r)
	}
	if err != nil {
		t.Fatalf("gpfhir conformance exited %v (the checks above)\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "PASSED:") {
		t.Errorf("the table does not end with the verdict:\n%s", stdout.String())
	}
	if x, err := os.ReadFile(junit); err != nil || !bytes.Contains(x, []byte("<testsuites")) {
		t.Errorf("no JUnit report: %v", err)
	}
	c := rep.Counts()
	t.Logf("%s: %d passed, %d known failures, %d skipped, %d requests in %s", base, c.Pass, c.KnownFail, c.Skip, rep.Requests, rep.Duration.Round(time.Millisecond))
	if c.Pass < 100 {
		t.Errorf("only %d checks passed; the run did not exercise the server", c.Pass)
	}
}
