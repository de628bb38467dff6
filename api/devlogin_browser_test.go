package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

// loginScreenshotEnv names a path to copy the dev sign-in page's screenshot to, for a person to look at.
const loginScreenshotEnv = "GPFHIR_LOGIN_SCREENSHOT"

// browserTools finds Chromium, Node and the Node packages of .ci/a11y, or skips saying which is missing.
func browserTools(t *testing.T, packages ...string) (chromium, node string) {
	t.Helper()
	chromium = os.Getenv("CHROMIUM")
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
		t.Skip("node is not installed; the browser checks run under Node")
	}
	for _, p := range packages {
		if _, err := os.Stat(filepath.Join(a11yTools, "node_modules", p)); err != nil {
			t.Skipf("the browser check's Node package %s is not installed: run npm ci in .ci/a11y (as .ci/run does)", p)
		}
	}
	return chromium, node
}

// browserReport is what the .ci/a11y scripts print.
type browserReport struct {
	Failures    []string `json:"failures"`
	Notes       []string `json:"notes"`
	Screenshots []string `json:"screenshots"`
}

// runBrowserScript runs a .ci/a11y script and fails the test on each failure it reports.
func runBrowserScript(t *testing.T, chromium, node string, args ...string) browserReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = a11yTools
	cmd.Env = append(os.Environ(), "CHROMIUM="+chromium)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	var rep browserReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("%s printed no report (%v): %s\n%s", args[0], runErr, stdout.String(), stderr.String())
	}
	for _, n := range rep.Notes {
		t.Log(n)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	if runErr != nil && len(rep.Failures) == 0 {
		t.Errorf("%s failed: %v\n%s", args[0], runErr, stderr.String())
	}
	t.Logf("screenshots: %v", rep.Screenshots)
	return rep
}

// TestDevLoginPagePassesAxeInARealBrowser opens the dev identity provider's sign-in page, as an app's
// authorization request reaches it, in Chromium with JavaScript off: each test user's NHS number is
// visible, axe-core finds no violation, the page reflows at 400% zoom, and a keyboard alone signs in and
// comes back to the app's redirect URI, served here, with a code.
func TestDevLoginPagePassesAxeInARealBrowser(t *testing.T) {
	chromium, node := browserTools(t, "puppeteer-core", "axe-core")
	var handler http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	callback := hs.URL + "/callback"
	idp, err := devidp.New(devidp.Config{Dev: true, Issuer: hs.URL + "/dev-idp", Audience: hs.URL, Seed: 1,
		People: seed.People(seed.Options{Seed: 1}), AppRedirectURIs: []string{callback}})
	if err != nil {
		t.Fatal(err)
	}
	codes := make(chan string, 1)
	mux := http.NewServeMux()
	mux.Handle("/dev-idp/", idp.Handler())
	mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		select {
		case codes <- r.URL.Query().Get("code"):
		default:
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!doctype html><html lang="en"><title>App</title><main><h1>Signed in</h1></main></html>`))
	})
	handler = mux
	q := url.Values{"client_id": {devidp.AppClientID}, "redirect_uri": {callback}, "response_type": {"code"},
		"scope": {"openid patient/*.rs"}, "state": {"s"}, "nonce": {"n"},
		"code_challenge": {"abcdefghijabcdefghijabcdefghijabcdefghij123"}, "code_challenge_method": {"S256"}}
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(hs.URL + "/dev-idp/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	login, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("authorization request: %d %v", resp.StatusCode, err)
	}
	rep := runBrowserScript(t, chromium, node, "login.mjs", login.String(), t.TempDir())
	if dst := os.Getenv(loginScreenshotEnv); dst != "" && len(rep.Screenshots) > 0 {
		if err := copyFile(rep.Screenshots[0], dst); err != nil {
			t.Errorf("copy the screenshot to %s: %v", dst, err)
		}
	}
	select {
	case code := <-codes:
		if code == "" {
			t.Error("the sign-in came back to the app without a code")
		}
	default:
		t.Error("the sign-in never came back to the app's redirect URI")
	}
}
