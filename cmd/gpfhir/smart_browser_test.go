package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

// browserTools is the Node tool directory of the browser tests, which `npm ci` fills (.ci/run does).
const browserTools = "../../.ci/a11y"

// smartApp is a SMART on FHIR browser app as a third party would write it with the fhirclient library:
// launch.html starts a standalone launch against the iss it is given, callback.html completes it and
// reads the patient's record, putting what it read in #out.
const smartLaunchPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test app: launching</title>
<script src="fhir-client.js"></script></head>
<body><main><h1>Test SMART app</h1><p>Launching…</p></main>
<script>
FHIR.oauth2.authorize({
  iss: new URLSearchParams(location.search).get("iss"),
  clientId: %q,
  scope: "openid fhirUser launch/patient patient/*.rs",
  redirectUri: "callback.html",
  pkceMode: "required"
});
</script></body></html>`

const smartCallbackPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Test app: signing in</title>
<script src="fhir-client.js"></script></head>
<body><main><h1>Test SMART app</h1><pre id="out">…</pre></main>
<script>
FHIR.oauth2.ready().then(async (client) => {
  const patient = await client.patient.read();
  const imms = await client.request("Immunization?patient=" + client.patient.id, { flat: true });
  const name = (patient.name || [])[0] || {};
  document.getElementById("out").textContent = JSON.stringify({
    patient: client.patient.id,
    name: [(name.given || []).join(" "), name.family].join(" ").trim(),
    nhsNumber: ((patient.identifier || []).find((i) => i.system === "https://fhir.nhs.uk/Id/nhs-number") || {}).value,
    fhirUser: client.getFhirUser(),
    immunizations: imms.length,
    scope: client.state.tokenResponse.scope,
  });
  document.title = "done";
}).catch((e) => {
  document.getElementById("out").textContent = String(e && e.stack || e);
  document.title = "failed";
});
</script></body></html>`

// TestSMARTAppStandaloneLaunchInARealBrowser runs `serve --dev` on 127.0.0.1:0 with the app's redirect
// URI registered by --dev-redirect-uri, serves a fhirclient app from another loopback port (another
// origin), and has headless Chromium launch it: SMART discovery, the authorization code flow with PKCE
// through the dev sign-in page, the token response's patient context, and the patient's record read
// across origins with CORS.
func TestSMARTAppStandaloneLaunchInARealBrowser(t *testing.T) {
	chromium := os.Getenv("CHROMIUM")
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if chromium != "" {
			break
		}
		if p, err := exec.LookPath(name); err == nil {
			chromium = p
		}
	}
	if chromium == "" {
		t.Skip("chromium is not installed (apt-get install -y chromium, as .ci/run does)")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed; the SMART app test runs puppeteer-core under Node")
	}
	lib := filepath.Join(browserTools, "node_modules", "fhirclient", "build", "fhir-client.js")
	for _, p := range []string{lib, filepath.Join(browserTools, "node_modules", "puppeteer-core")} {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s is not installed: run npm ci in .ci/a11y (as .ci/run does)", p)
		}
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /fhir-client.js", func(w http.ResponseWriter, r *http.Request) { http.ServeFile(w, r, lib) })
	mux.HandleFunc("GET /launch.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, smartLaunchPage, devidp.AppClientID)
	})
	mux.HandleFunc("GET /callback.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(smartCallbackPage))
	})
	app := httptest.NewServer(mux)
	t.Cleanup(app.Close)

	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(),
			"--dev-redirect-uri", app.URL + "/callback.html"}, envFrom(nil), logs, listening)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	var base string
	select {
	case base = <-listening:
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("server did not start")
	}
	if strings.Split(base, ":")[2] == strings.Split(app.URL, ":")[2] {
		t.Fatal("the app and the API share an origin; the test needs two")
	}

	runCtx, stop := context.WithTimeout(context.Background(), 3*time.Minute)
	defer stop()
	cmd := exec.CommandContext(runCtx, node, "smart.mjs", app.URL+"/launch.html?iss="+base, t.TempDir())
	cmd.Dir = browserTools
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep struct {
		Failures    []string `json:"failures"`
		Notes       []string `json:"notes"`
		Screenshots []string `json:"screenshots"`
		Result      *struct {
			Patient, Name, NHSNumber, FHIRUser, Scope string
			Immunizations                             int
		} `json:"result"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("smart.mjs printed no report (%v): %s\n%s", runErr, stdout.String(), stderr.String())
	}
	for _, n := range rep.Notes {
		t.Log(n)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	t.Logf("screenshots: %v", rep.Screenshots)
	if dst := os.Getenv("GPFHIR_SMART_SCREENSHOT"); dst != "" && len(rep.Screenshots) > 0 {
		if raw, err := os.ReadFile(rep.Screenshots[0]); err == nil {
			_ = os.WriteFile(dst, raw, 0o644)
		}
	}
	if rep.Result == nil {
		t.Fatalf("the app read nothing (%v)\n%s", runErr, stderr.String())
	}
	// The sign-in page's first test user is the first seeded patient.
	want := seed.People(seed.Options{Seed: 1}).Patients[0]
	r := rep.Result
	if r.Patient != want.PatientID || r.NHSNumber != want.NHSNumber || r.Name != want.Name {
		t.Errorf("the app read patient %q (%s, %s), want %q (%s, %s)", r.Patient, r.Name, r.NHSNumber, want.PatientID, want.Name, want.NHSNumber)
	}
	// fhirclient's getFhirUser gives the id_token's fhirUser as Type/id.
	if !strings.HasSuffix(r.FHIRUser, "Patient/"+want.PatientID) {
		t.Errorf("fhirUser %q, want Patient/%s", r.FHIRUser, want.PatientID)
	}
	// The record was read across origins: the browser asked first (a CORS preflight), and was let in.
	if !regexp.MustCompile(`"method":"OPTIONS","path":"/Patient/` + want.PatientID + `","status":204`).MatchString(logs.String()) {
		t.Errorf("no CORS preflight of the Patient read was answered 204")
	}
	if r.Immunizations == 0 {
		t.Errorf("the app read no immunisations of the patient")
	}
}
