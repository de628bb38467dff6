package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/seed"
	"github.com/gpfhir/gpfhir/uptake"
)

// a11yTools is the accessibility check's Node tool directory, which `npm ci` fills (.ci/run does).
const a11yTools = "../.ci/a11y"

// screenshotEnv names a path to copy the dashboard's screenshot to, for a person to look at.
const screenshotEnv = "GPFHIR_DASHBOARD_SCREENSHOT"

// TestDashboardPassesAxeInARealBrowser loads the dashboard in Chromium with a commissioner's sign-in,
// made through the real OpenID Connect flow with JavaScript off, runs axe-core on every kind of page and
// fails on any violation, compares figures on the page with the JSON answer, checks reflow at 400% zoom
// and the skip link, and saves screenshots in the test's temporary directory. The demo practices and a
// year of their activity are loaded first, as `serve --dev` loads them, so that the pages have trends.
func TestDashboardPassesAxeInARealBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				chromium = p
				break
			}
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install -y chromium, as .ci/run does)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the browser check runs puppeteer-core and axe-core under Node")
	}
	if _, err := os.Stat(filepath.Join(a11yTools, "node_modules", "puppeteer-core")); err != nil {
		t.Skip("the browser check's Node packages are not installed: run npm ci in .ci/a11y (as .ci/run does)")
	}

	st := openTestStore(t)
	logs := &lockedWriter{w: &bytes.Buffer{}}
	srv, base, _ := startAPI(t, st, logs)
	t.Cleanup(func() { _ = srv.Close(); _ = st.Close() })
	ctx := context.Background()
	now := time.Now()
	// A smaller list than --dev's, and no Appointments (no figure reads them: a booked slot says it is
	// busy), keep the embedded FerretDB quick; the practices and their books are the same.
	o := seed.Options{Seed: 1, Now: now, Patients: 24}
	for _, r := range seed.Generate(o) {
		if r.Type == "Appointment" {
			continue
		}
		if err := srv.Import(ctx, r.Type, r.ID, r.Body); err != nil {
			t.Fatalf("load %s/%s: %v", r.Type, r.ID, err)
		}
	}
	var recs []audit.Record
	for _, in := range seed.Activity(o, base) {
		recs = append(recs, audit.NewRecord(in, base))
	}
	if err := st.ApplyAudited(ctx, nil, recs); err != nil {
		t.Fatal(err)
	}
	if err := srv.TakeCensuses(ctx, 12); err != nil {
		t.Fatal(err)
	}
	if err := srv.CountUptake(ctx); err != nil {
		t.Fatal(err)
	}

	out := t.TempDir()
	period := uptake.PeriodOf(now).Add(-1).String()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "dashboard.mjs", base, period, "A81001", out)
	cmd.Dir = a11yTools
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var report struct {
		Failures    []string `json:"failures"`
		Notes       []string `json:"notes"`
		Screenshots []string `json:"screenshots"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("the browser check printed no report (%v): %s\n%s", runErr, stdout.String(), stderr.String())
	}
	for _, n := range report.Notes {
		t.Log(n)
	}
	for _, f := range report.Failures {
		t.Error(f)
	}
	if len(report.Failures) > 0 {
		// The server's own account of what went wrong (its logs hold no secrets or patient data).
		for _, line := range strings.Split(logs.String(), "\n") {
			if strings.Contains(line, `"level":"WARN"`) || strings.Contains(line, `"level":"ERROR"`) {
				t.Log("server: " + line)
			}
		}
	}
	if runErr != nil && len(report.Failures) == 0 {
		t.Errorf("the browser check failed: %v\n%s", runErr, stderr.String())
	}
	t.Logf("screenshots: %v", report.Screenshots)
	if dst := os.Getenv(screenshotEnv); dst != "" && len(report.Screenshots) > 0 {
		if err := copyFile(report.Screenshots[0], dst); err != nil {
			t.Errorf("copy the screenshot to %s: %v", dst, err)
		}
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
