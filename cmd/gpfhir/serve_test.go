package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

func envFrom(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestFlagBeatsEnvironmentBeatsDefault(t *testing.T) {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	fs.SetOutput(io.Discard)
	env := envFrom(map[string]string{
		"GPFHIR_DATA_DIR":    "/from/env",
		"GPFHIR_ADDR":        "127.0.0.1:9999",
		"GPFHIR_OIDC_ISSUER": "https://a.example, https://b.example",
	})
	if err := parseFlags(fs, []string{"--addr", "127.0.0.1:7777"}, env); err != nil {
		t.Fatal(err)
	}
	if cfg.addr != "127.0.0.1:7777" {
		t.Errorf("addr = %q: the flag must beat GPFHIR_ADDR", cfg.addr)
	}
	if cfg.store.dataDir != "/from/env" {
		t.Errorf("data-dir = %q: GPFHIR_DATA_DIR must beat the default", cfg.store.dataDir)
	}
	if cfg.store.kind != "sqlite" {
		t.Errorf("store = %q, want the default sqlite", cfg.store.kind)
	}
	if strings.Join(cfg.oidcIssuers, " ") != "https://a.example https://b.example" {
		t.Errorf("oidc issuers from env = %v", cfg.oidcIssuers)
	}
}

func TestConfigurationErrorsAreReportedTogether(t *testing.T) {
	err := serve(context.Background(), []string{
		"--store", "cassandra", "--addr", "no-port", "--max-body", "0", "--log-level", "loud", "--cursor-key", "zz",
		"--cors-origin", "app.example.org", "--dev-redirect-uri", "http://127.0.0.1:5173/callback",
	}, envFrom(nil), io.Discard, nil)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"--store", "--addr", "--max-body", "--log-level", "--cursor-key", "--oidc-issuer", "--cors-origin", "--dev-redirect-uri"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	err = serve(context.Background(), []string{"--store", "mongo"}, envFrom(nil), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--mongodb-uri") {
		t.Errorf("--store mongo without a URI: %v", err)
	}
	err = serve(context.Background(), nil, envFrom(map[string]string{"GPFHIR_MAX_COUNT": "many"}), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "GPFHIR_MAX_COUNT") {
		t.Errorf("a bad environment value must be named: %v", err)
	}
}

// TestNoAccidentalOpenServer: without --dev, serve needs trusted issuers and an audience, and says so in
// one message; any address may be listened on once tokens are required.
func TestNoAccidentalOpenServer(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
	}{
		{"nothing configured", nil, nil},
		{"an issuer but no audience", []string{"--oidc-issuer", "https://auth.login.nhs.uk"}, nil},
		{"an audience but no issuer", nil, map[string]string{"GPFHIR_OIDC_AUDIENCE": "https://gpfhir.example/fhir"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := serve(context.Background(), append([]string{"--data-dir", t.TempDir()}, tt.args...), envFrom(tt.env), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), "--oidc-issuer and an --oidc-audience") {
				t.Fatalf("serve started or said something else: %v", err)
			}
		})
	}
	var cfg serveConfig
	fs := serveFlags(&cfg)
	if err := parseFlags(fs, []string{"--addr", "0.0.0.0:8443", "--oidc-issuer", "https://auth.login.nhs.uk", "--oidc-audience", "x",
		"--client-ods", "gp-1=A81001,B82005", "--client-ods", "gp-2=P81002"}, envFrom(nil)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cfg.validate(); err != nil {
		t.Errorf("a non-loopback address with authorisation configured: %v", err)
	}
	if got := strings.Join(cfg.clientODS.m["gp-1"], ","); got != "A81001,B82005" || len(cfg.clientODS.m["gp-2"]) != 1 {
		t.Errorf("--client-ods parsed as %v", cfg.clientODS.m)
	}
	var env serveConfig
	if err := parseFlags(serveFlags(&env), nil, envFrom(map[string]string{"GPFHIR_CLIENT_ODS": "gp-1=A81001,B82005;gp-2=P81002"})); err != nil {
		t.Fatal(err)
	}
	if len(env.clientODS.m["gp-1"]) != 2 || len(env.clientODS.m["gp-2"]) != 1 {
		t.Errorf("GPFHIR_CLIENT_ODS parsed as %v", env.clientODS.m)
	}
}

// testIdP serves a development identity provider on its own loopback server, as an external issuer
// for serve without --dev. Its audience is testAudience.
func testIdP(t *testing.T) string {
	t.Helper()
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	idp, err := devidp.New(devidp.Config{Dev: true, Issuer: hs.URL + "/dev-idp", Audience: testAudience, Seed: 1,
		People: seed.People(seed.Options{Seed: 1})})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dev-idp/", idp.Handler())
	h = mux
	return hs.URL + "/dev-idp"
}

const testAudience = "https://gpfhir.test/fhir"

// devTokenCmd runs `gpfhir dev-token` and returns what it prints.
func devTokenCmd(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if err := run(context.Background(), append([]string{"dev-token"}, args...), envFrom(nil), &out, &errb); err != nil {
		t.Fatalf("dev-token %v: %v %s", args, err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

func TestUnknownCommandAndHelp(t *testing.T) {
	var out, errb bytes.Buffer
	if err := run(context.Background(), []string{"frobnicate"}, envFrom(nil), &out, &errb); err == nil {
		t.Error("unknown command accepted")
	}
	if err := run(context.Background(), []string{"help"}, envFrom(nil), &out, &errb); err != nil || !strings.Contains(out.String(), "serve") {
		t.Errorf("help: %v %q", err, out.String())
	}
	if err := serve(context.Background(), []string{"-h"}, envFrom(nil), io.Discard, nil); err != flag.ErrHelp {
		t.Errorf("-h: %v", err)
	}
}

// TestServeDevSeedsAndDrainsOnShutdown runs the real command: --dev on a fresh data directory seeds the
// demo data; cancelling the context (what SIGTERM does) lets a request in flight finish, then the store
// closes so that the next start finds the data and does not seed again.
func TestServeDevSeedsAndDrainsOnShutdown(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, envFrom(nil), logs, listening)
	}()
	var base string
	select {
	case base = <-listening:
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("server did not start")
	}
	// The token comes from the server's own identity provider, through dev-token's real flow.
	token := devTokenCmd(t, "--issuer", base+"/dev-idp", "--scope", "system/*.cruds")
	var bundle struct {
		Total int `json:"total"`
	}
	getJSON(t, base+"/Patient?_total=accurate&_count=0", &bundle, token)
	if bundle.Total != 50 {
		t.Errorf("seeded %d patients, want 50", bundle.Total)
	}
	getJSON(t, base+"/Slot?status=free&_total=accurate&_count=0", &bundle, token)
	if bundle.Total == 0 {
		t.Errorf("no free slots seeded")
	}

	// A request whose body is still arriving when shutdown starts.
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", base+"/Organization", pr)
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+token)
	respc := make(chan *http.Response, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("in-flight request failed: %v", err)
			respc <- nil
			return
		}
		respc <- resp
	}()
	if _, err := pw.Write([]byte(`{"resourceType":"Organization",`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	time.Sleep(100 * time.Millisecond)
	if _, err := pw.Write([]byte(`"name":"Late"}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if resp := <-respc; resp == nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("in-flight request did not complete: %+v", resp)
	} else {
		resp.Body.Close()
	}
	if err := <-done; err != nil {
		t.Fatalf("serve returned %v after shutdown", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stopped"`) {
		t.Errorf("no clean stop logged")
	}

	// Restart on the same directory: the data is there and is not seeded twice. With a retention
	// setting this time, from the environment: the seeded store's audit records are all younger.
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	logs2 := &syncBuffer{}
	go func() {
		done <- serve(ctx2, []string{"--dev", "--addr", "127.0.0.1:0", "--data-dir", dir}, envFrom(map[string]string{"GPFHIR_AUDIT_RETENTION": "2190d"}), logs2, listening)
	}()
	base = <-listening
	// The identity provider's signing key is new after a restart, so the old token is refused.
	if resp, err := authGet(base+"/Patient", token); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a token from before the restart: %v %v", err, resp)
	}
	token = devTokenCmd(t, "--issuer", base+"/dev-idp", "--scope", "system/*.rs")
	getJSON(t, base+"/Patient?_total=accurate&_count=0", &bundle, token)
	if bundle.Total != 50 {
		t.Errorf("after restart %d patients, want 50", bundle.Total)
	}
	getJSON(t, base+"/Organization?_total=accurate&_count=0", &bundle, token)
	if bundle.Total != 4 {
		t.Errorf("after restart %d organizations, want the 3 seeded plus the one written during shutdown", bundle.Total)
	}
	if !strings.Contains(logs2.String(), `"audit_retention":"52560h0m0s"`) {
		t.Errorf("the start line does not give the audit retention: %s", logs2.String())
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(logs2.String(), `"msg":"audit retention: pruned old audit records"`); {
		if time.Now().After(deadline) {
			t.Fatalf("the retention loop did not run at start: %s", logs2.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs2.String(), `"removed":0`) {
		t.Errorf("the retention loop removed records younger than 2190 days: %s", logs2.String())
	}
	cancel2()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func authGet(url, token string) (*http.Response, error) {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

func getJSON(t *testing.T, url string, dst any, token string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(dst); err != nil {
		t.Fatal(err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestClientNameFlagFromFlagsAndEnvironment(t *testing.T) {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, []string{"--client-name", "gpfhir-dev-app=My Health App, for you", "--client-name", "gp-a81001 = Riverside GP"}, envFrom(nil)); err != nil {
		t.Fatal(err)
	}
	if cfg.clientNames.m["gpfhir-dev-app"] != "My Health App, for you" || cfg.clientNames.m["gp-a81001"] != "Riverside GP" {
		t.Errorf("client names %v", cfg.clientNames.m)
	}
	var env serveConfig
	fs = serveFlags(&env)
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, nil, envFrom(map[string]string{"GPFHIR_CLIENT_NAME": "a=App A; b=App B"})); err != nil {
		t.Fatal(err)
	}
	if len(env.clientNames.m) != 2 || env.clientNames.m["b"] != "App B" {
		t.Errorf("client names from the environment %v", env.clientNames.m)
	}
	for _, bad := range []string{"no-equals", "=name", "client="} {
		var c serveConfig
		fs := serveFlags(&c)
		fs.SetOutput(io.Discard)
		if err := parseFlags(fs, []string{"--client-name", bad}, envFrom(nil)); err == nil || !strings.Contains(err.Error(), "CLIENT=NAME") {
			t.Errorf("--client-name %q: %v", bad, err)
		}
	}
}
