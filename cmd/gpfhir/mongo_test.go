package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	mongotest.Stop()
	os.Exit(code)
}

// TestServeOnMongo runs the whole API on MongoDB (the embedded FerretDB stand-in) and checks that a
// write is readable, searchable and in history, and that /readyz reports the connection.
func TestServeOnMongo(t *testing.T) {
	uri := mongotest.Start(t)
	issuer := testIdP(t)
	token := devTokenCmd(t, "--issuer", issuer, "--scope", "system/*.cruds")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &syncBuffer{}
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, []string{"--store", "mongo", "--mongodb-uri", uri, "--mongodb-database", mongotest.Database(t),
			"--addr", "127.0.0.1:0", "--oidc-issuer", issuer, "--oidc-audience", testAudience, "--export-dir", t.TempDir()}, envFrom(nil), logs, listening)
	}()
	var base string
	select {
	case base = <-listening:
	case err := <-done:
		t.Fatalf("serve on mongo exited: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("serve on mongo did not start")
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	if !strings.Contains(logs.String(), "journal with compensation") {
		t.Errorf("the log must say which atomic-write mode runs (FerretDB has no transactions): %s", logs.String())
	}
	req, _ := http.NewRequest("POST", base+"/Organization",
		strings.NewReader(`{"resourceType":"Organization","name":"Mongo Practice","identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"M12345"}]}`))
	req.Header.Set("Content-Type", "application/fhir+json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create on mongo: %d %s", resp.StatusCode, body)
	}
	var bundle struct {
		Total int `json:"total"`
	}
	getJSON(t, base+"/Organization?identifier=M12345&_total=accurate", &bundle, token)
	if bundle.Total != 1 {
		t.Errorf("search on mongo found %d, want 1", bundle.Total)
	}
	getJSON(t, base+"/Organization/_history?_total=accurate", &bundle, token)
	r, err := http.Get(base + "/readyz")
	if err != nil || r.StatusCode != 200 {
		t.Errorf("/readyz on mongo: %v %v", err, r)
	}
}

func TestServeRefusesABadMongoURI(t *testing.T) {
	tests := []struct{ name, uri, want string }{
		{"not a mongodb URI", "http://example.org", "MongoDB"},
		{"nothing listening", "mongodb://127.0.0.1:1/?connectTimeoutMS=300", "MongoDB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := serve(context.Background(), []string{"--store", "mongo", "--mongodb-uri", tt.uri, "--mongodb-timeout", "1s",
				"--addr", "127.0.0.1:0", "--oidc-issuer", "https://issuer.invalid", "--oidc-audience", testAudience}, envFrom(nil), io.Discard, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("serve with %s: %v", tt.uri, err)
			}
		})
	}
}
