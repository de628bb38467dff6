package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

// startDevIdP serves the development identity provider alone on 127.0.0.1, as serve --dev mounts it;
// restart replaces it with a new one at the same URL, with new keys, as restarting the server does.
func startDevIdP(t *testing.T) (issuer string, restart func()) {
	t.Helper()
	var h atomic.Pointer[http.Handler]
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { (*h.Load()).ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	issuer = hs.URL + "/dev-idp"
	restart = func() {
		idp, err := devidp.New(devidp.Config{Dev: true, Issuer: issuer, Audience: hs.URL, Seed: 1, People: seed.People(seed.Options{Seed: 1})})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/dev-idp/", idp.Handler())
		var handler http.Handler = mux
		h.Store(&handler)
	}
	restart()
	return issuer, restart
}

func TestDevTokenFailuresSayWhatWentWrongAndWhatToTry(t *testing.T) {
	issuer, _ := startDevIdP(t)
	notDev := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notDev.Close)
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL
	gone.Close()
	patientNHS := seed.People(seed.Options{Seed: 1}).Patients[0].NHSNumber
	cases := []struct {
		name string
		args []string
		want []string
	}{
		{"an NHS number failing its check digit, refused before asking",
			[]string{"--issuer", goneURL + "/dev-idp", "--nhs-number", "1234567890"}, []string{"--nhs-number 1234567890 is not a valid NHS number", "Modulus 11"}},
		{"a proxy-for failing its check digit",
			[]string{"--issuer", issuer, "--nhs-number", patientNHS, "--proxy-for", "9000000001"}, []string{"--proxy-for 9000000001 is not a valid NHS number"}},
		{"an unknown client", []string{"--issuer", issuer, "--client", "gp-nowhere", "--scope", "system/*.rs"},
			[]string{`there is no client "gp-nowhere"`, devidp.AllPracticesClientID, "invalid_client"}},
		{"another --seed than the server's", []string{"--issuer", issuer, "--seed", "7", "--scope", "system/*.rs"},
			[]string{"not signed with the key", "the same --seed", "this run used --seed 7"}},
		{"no server there", []string{"--issuer", goneURL + "/dev-idp"}, []string{"cannot reach the development identity provider", "gpfhir serve --dev"}},
		{"a server without --dev", []string{"--issuer", notDev.URL + "/dev-idp"}, []string{"is not a development identity provider", "--dev"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			err := run(context.Background(), append([]string{"dev-token"}, tc.args...), envFrom(nil), &out, &errb)
			if err == nil {
				t.Fatalf("dev-token succeeded: %s", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "</") || strings.Contains(err.Error(), "<html") {
				t.Errorf("message carries markup:\n%v", err)
			}
			if out.Len() != 0 {
				t.Errorf("a failure printed a token: %q", out.String())
			}
		})
	}
}

func TestTokenFromARestartedDevServerIsRefusedWithTheReason(t *testing.T) {
	issuer, restart := startDevIdP(t)
	tok := devTokenCmd(t, "--issuer", issuer, "--scope", "system/*.rs")
	restart()
	v, err := auth.NewVerifier(auth.Config{Issuers: []string{issuer}, Audience: strings.TrimSuffix(issuer, "/dev-idp")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = v.Verify(context.Background(), tok)
	if err == nil || !strings.Contains(err.Error(), "restarted") || !strings.Contains(err.Error(), "new token") {
		t.Errorf("a token signed with the keys of the server before its restart: %v", err)
	}
}

// TestLoginPageRefusalIsReadAsText: the sign-in page's own refusal (here of an NHS number that a
// client did not check first) reaches the terminal as the page's message, not as its HTML.
func TestLoginPageRefusalIsReadAsText(t *testing.T) {
	issuer, _ := startDevIdP(t)
	_, err := devidp.PatientToken(context.Background(), nil, issuer, "1234567890", "P9", "", []string{"patient/*.rs"})
	if err == nil || !strings.Contains(err.Error(), "not a valid NHS number") || strings.Contains(err.Error(), "</") {
		t.Errorf("login refusal: %v", err)
	}
}
