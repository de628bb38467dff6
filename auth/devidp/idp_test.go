package devidp_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

const audience = "https://gpfhir.test/fhir"

// startIdP serves the provider at /dev-idp on a real loopback listener.
func startIdP(t *testing.T) (issuer string, people seed.Directory) {
	t.Helper()
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	people = seed.People(seed.Options{Seed: 7})
	idp, err := devidp.New(devidp.Config{Dev: true, Issuer: hs.URL + "/dev-idp", Audience: audience, Seed: 7, People: people})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(idp.Prefix()+"/", idp.Handler())
	h = mux
	return hs.URL + "/dev-idp", people
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	_ = json.Unmarshal(raw, &h)
	return h
}

func TestRefusesToRunWithoutDev(t *testing.T) {
	_, err := devidp.New(devidp.Config{Issuer: "http://127.0.0.1:1/dev-idp", Audience: audience})
	if !errors.Is(err, devidp.ErrNotDev) {
		t.Fatalf("New without Dev: %v", err)
	}
}

func TestFlowsIssueVerifiableNHSLoginStyleTokens(t *testing.T) {
	issuer, people := startIdP(t)
	ctx := context.Background()
	v, err := auth.NewVerifier(auth.Config{Issuers: []string{issuer}, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	pat := people.Patients[0]

	t.Run("authorization code with PKCE signs a patient in at the level asked for", func(t *testing.T) {
		for _, level := range []string{"P9", "P5", "P0"} {
			tok, err := devidp.PatientToken(ctx, nil, issuer, pat.NHSNumber, level, "", []string{"patient/*.rs"})
			if err != nil {
				t.Fatalf("%s: %v", level, err)
			}
			if h := header(t, tok.AccessToken); h["typ"] != "at+jwt" || h["alg"] != "RS512" {
				t.Errorf("access token header %v, want typ at+jwt alg RS512", h)
			}
			c, err := v.Verify(ctx, tok.AccessToken)
			if err != nil {
				t.Fatalf("%s token does not verify: %v", level, err)
			}
			if c.Kind != auth.KindPatient || c.Level != level || c.JTI == "" {
				t.Errorf("%s caller %+v", level, c)
			}
			if wantNHS := level != "P0"; (c.NHSNumber == pat.NHSNumber) != wantNHS {
				t.Errorf("%s: nhs_number %q", level, c.NHSNumber)
			}
			if strings.Contains(c.Subject, pat.NHSNumber) {
				t.Errorf("the subject reveals the NHS number")
			}
			if tok.RefreshToken == "" {
				t.Errorf("no refresh token")
			}
		}
	})

	t.Run("refresh tokens give new access tokens once", func(t *testing.T) {
		tok, err := devidp.PatientToken(ctx, nil, issuer, pat.NHSNumber, "P9", "", []string{"patient/*.rs"})
		if err != nil {
			t.Fatal(err)
		}
		next, err := devidp.Refresh(ctx, nil, issuer, tok.RefreshToken)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := v.Verify(ctx, next.AccessToken); err != nil || c.NHSNumber != pat.NHSNumber {
			t.Fatalf("refreshed token: %v %+v", err, c)
		}
		if _, err := devidp.Refresh(ctx, nil, issuer, tok.RefreshToken); err == nil {
			t.Errorf("a used refresh token worked again")
		}
	})

	t.Run("client credentials with private_key_jwt binds a GP system to its practice", func(t *testing.T) {
		ods := people.Practices[1].ODS
		tok, err := devidp.SystemToken(ctx, nil, issuer, 7, devidp.PracticeClientID(ods), []string{"system/*.rs"})
		if err != nil {
			t.Fatal(err)
		}
		c, err := v.Verify(ctx, tok.AccessToken)
		if err != nil {
			t.Fatal(err)
		}
		if c.Kind != auth.KindSystem || strings.Join(c.ODS, ",") != ods {
			t.Errorf("caller %+v", c)
		}
		all, err := devidp.SystemToken(ctx, nil, issuer, 7, devidp.AllPracticesClientID, []string{"system/*.rs"})
		if err != nil {
			t.Fatal(err)
		}
		if c, _ := v.Verify(ctx, all.AccessToken); len(c.ODS) != len(people.Practices) {
			t.Errorf("all-practices client bound to %v", c.ODS)
		}
	})

	t.Run("a client assertion signed with the wrong key is refused", func(t *testing.T) {
		if _, err := devidp.SystemToken(ctx, nil, issuer, 8, devidp.AllPracticesClientID, []string{"system/*.rs"}); err == nil {
			t.Fatal("assertion signed with another seed's key accepted")
		}
	})

	t.Run("client_secret works for local tools", func(t *testing.T) {
		tok, err := devidp.SecretToken(ctx, nil, issuer, devidp.LocalToolClientID, devidp.LocalToolSecret, []string{"system/Patient.rs"})
		if err != nil {
			t.Fatal(err)
		}
		if c, err := v.Verify(ctx, tok.AccessToken); err != nil || c.Kind != auth.KindSystem {
			t.Fatalf("%v %+v", err, c)
		}
		if _, err := devidp.SecretToken(ctx, nil, issuer, devidp.LocalToolClientID, "wrong", []string{"system/Patient.rs"}); err == nil {
			t.Errorf("wrong secret accepted")
		}
	})
}

func TestLoginPageListsTheTestUsers(t *testing.T) {
	issuer, people := startIdP(t)
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := hc.Get(issuer + "/authorize?client_id=" + devidp.AppClientID + "&redirect_uri=" + devidp.AppRedirectURI +
		"&response_type=code&scope=openid&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghij123&code_challenge_method=S256&state=s&nonce=n")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
	page, err := http.Get(loc.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	for _, want := range []string{`lang="en"`, "<label", people.Patients[0].NHSNumber, "P9", "P5", "P0", "acting for"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("login page lacks %q", want)
		}
	}
	// Each test user's NHS number is shown, not only carried in a hidden field, and so is the case
	// each demonstrates: P5, no record here, a proxy, access switched off, confidential items.
	visible := string(body)
	for _, hidden := range regexp.MustCompile(`<input type="hidden"[^>]*>`).FindAllString(visible, -1) {
		visible = strings.Replace(visible, hidden, "", 1)
	}
	nhs := people.Proxy.NHSNumber
	for _, want := range []string{nhs[:3] + " " + nhs[3:6] + " " + nhs[6:], "partly verified (P5)", "no GP record at this service",
		"proxy: acting for", "grant has ended", "not switched on record access", "redacted for online access"} {
		if !strings.Contains(visible, want) {
			t.Errorf("login page does not show %q", want)
		}
	}
	for _, p := range people.Patients[:3] {
		if n := p.NHSNumber; !strings.Contains(visible, n[:3]+" "+n[3:6]+" "+n[6:]) {
			t.Errorf("login page does not show %s's NHS number", p.Name)
		}
	}
}

func TestTheDashboardClientSignsInTheCommissionerAndNoPatient(t *testing.T) {
	issuer, _ := startIdP(t)
	ctx := context.Background()
	v, err := auth.NewVerifier(auth.Config{Issuers: []string{issuer}, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := devidp.CommissionerToken(ctx, nil, issuer)
	if err != nil {
		t.Fatalf("commissioner sign-in: %v", err)
	}
	caller, err := v.Verify(ctx, tok.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if caller.Kind != auth.KindCommissioner || caller.NHSNumber != "" || !auth.AuthorizeDashboard(caller).Allow() {
		t.Errorf("caller %+v is not a commissioner", caller)
	}
	// The commissioner is offered to the dashboard client only: the app's sign-in refuses them.
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	page := func(clientID string) (string, string) {
		resp, err := hc.Get(issuer + "/authorize?client_id=" + clientID + "&redirect_uri=" + devidp.AppRedirectURI +
			"&response_type=code&scope=openid&state=s&code_challenge=" + strings.Repeat("a", 43) + "&code_challenge_method=S256")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc, _ := resp.Request.URL.Parse(resp.Header.Get("Location"))
		r, err := hc.Get(loc.String())
		if err != nil {
			t.Fatal(err)
		}
		defer r.Body.Close()
		b, _ := io.ReadAll(r.Body)
		return string(b), loc.Query().Get("authRequestID")
	}
	dash, _ := page(devidp.DashboardClientID)
	if !strings.Contains(dash, devidp.CommissionerName) || strings.Contains(dash, "Any NHS number") {
		t.Errorf("the dashboard's sign-in page should offer the commissioner only:\n%s", dash)
	}
	app, id := page(devidp.AppClientID)
	if strings.Contains(app, devidp.CommissionerName) {
		t.Error("the app's sign-in page offers the commissioner")
	}
	resp, err := hc.PostForm(issuer+"/login", map[string][]string{"authRequestID": {id}, "role": {"commissioner"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("a commissioner signing in to the patient app: %s", resp.Status)
	}
}

func claimsOf(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStandaloneLaunchCarriesThePatientAndFHIRUser(t *testing.T) {
	issuer, people := startIdP(t)
	ctx := context.Background()
	me := people.Patients[0]
	scopes := []string{devidp.ScopeLaunchPatient, devidp.ScopeFHIRUser, "patient/*.rs"}
	tok, err := devidp.PatientToken(ctx, nil, issuer, me.NHSNumber, "P9", "", scopes)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Patient != me.PatientID {
		t.Errorf("patient = %q, want %q", tok.Patient, me.PatientID)
	}
	if got := claimsOf(t, tok.IDToken)["fhirUser"]; got != audience+"/Patient/"+me.PatientID {
		t.Errorf("id_token fhirUser = %v", got)
	}
	// The ID token still verifies against the re-signed access token.
	if h := claimsOf(t, tok.IDToken)["at_hash"]; h == nil {
		t.Errorf("id_token lost at_hash")
	}

	// A proxy is launched for the patient they act for; they have no Patient of their own here.
	tok, err = devidp.PatientToken(ctx, nil, issuer, people.Proxy.NHSNumber, "P9", people.Proxy.ProxyFor, scopes)
	if err != nil {
		t.Fatal(err)
	}
	var cared string
	for _, p := range people.Patients {
		if p.NHSNumber == people.Proxy.ProxyFor {
			cared = p.PatientID
		}
	}
	if tok.Patient != cared || cared == "" {
		t.Errorf("proxy launch patient = %q, want %q", tok.Patient, cared)
	}
	if got := claimsOf(t, tok.IDToken)["fhirUser"]; got != nil {
		t.Errorf("a proxy without a record here has fhirUser %v", got)
	}

	// Without launch/patient there is no context; a P0 sign-in has no verified NHS number, so none.
	if tok, err = devidp.PatientToken(ctx, nil, issuer, me.NHSNumber, "P9", "", []string{"patient/*.rs"}); err != nil || tok.Patient != "" {
		t.Errorf("no launch scope: patient %q, %v", tok.Patient, err)
	}
	if tok, err = devidp.PatientToken(ctx, nil, issuer, me.NHSNumber, "P0", "", scopes); err != nil || tok.Patient != "" {
		t.Errorf("P0: patient %q, %v", tok.Patient, err)
	}
}

func TestRedirectURIsAreRegisteredByFlagAndAnUnknownOneIsExplained(t *testing.T) {
	var h http.Handler
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(hs.Close)
	idp, err := devidp.New(devidp.Config{Dev: true, Issuer: hs.URL + "/dev-idp", Audience: audience, Seed: 7,
		People: seed.People(seed.Options{Seed: 7}), AppRedirectURIs: []string{"http://app.test:3000/smart/callback"}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/dev-idp/", idp.Handler())
	h = mux
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	authorize := func(redirect string) (int, string) {
		resp, err := hc.Get(hs.URL + "/dev-idp/authorize?client_id=" + devidp.AppClientID + "&redirect_uri=" + redirect +
			"&response_type=code&scope=openid+launch/patient&code_challenge=abcdefghijabcdefghijabcdefghijabcdefghij123&code_challenge_method=S256&state=s")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := authorize("http://app.test:3000/smart/callback"); status != http.StatusFound {
		t.Errorf("registered redirect URI: %d %s", status, body)
	}
	if status, body := authorize("http://127.0.0.1:51234/callback"); status != http.StatusFound {
		t.Errorf("loopback redirect URI on another port: %d %s", status, body)
	}
	status, body := authorize("http://elsewhere.test/callback")
	if status != http.StatusBadRequest || !strings.Contains(body, "--dev-redirect-uri http://elsewhere.test/callback") {
		t.Errorf("unregistered redirect URI: %d %s", status, body)
	}
}
