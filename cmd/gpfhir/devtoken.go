package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
)

// scopeFlag collects scopes from repeated --scope flags, each of which may hold several separated by
// spaces.
type scopeFlag []string

func (s *scopeFlag) String() string { return strings.Join(*s, " ") }

func (s *scopeFlag) Set(v string) error {
	*s = append(*s, strings.Fields(v)...)
	return nil
}

type devTokenConfig struct {
	issuer   string
	nhs      string
	level    string
	client   string
	scopes   scopeFlag
	proxyFor string
	seed     int64
	verbose  bool
	// commissioner signs in as the development commissioner through the dashboard client.
	commissioner bool
}

// devToken obtains an access token from a running development identity provider through its real OAuth
// flows over HTTP, and prints it. It never makes a token itself: the point is that scripts and curl users
// hold exactly what an app or a GP system would.
func devToken(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg devTokenConfig
	fs := flag.NewFlagSet("dev-token", flag.ContinueOnError)
	fs.StringVar(&cfg.issuer, "issuer", "http://127.0.0.1:8080/dev-idp", "URL of the development identity provider (gpfhir serve --dev)")
	fs.StringVar(&cfg.nhs, "nhs-number", "", "sign in as the patient with this NHS number (authorization code + PKCE through the login page)")
	fs.StringVar(&cfg.level, "level", "P9", "identity proofing level of the patient: P9, P5 or P0")
	fs.StringVar(&cfg.client, "client", "", "GP-system client id (default "+devidp.AllPracticesClientID+"; gp-<ods> for one practice; "+devidp.LocalToolClientID+" uses a client secret)")
	fs.Var(&cfg.scopes, "scope", "SMART scopes, space-separated or repeated (default patient/*.rs for patients, system/*.rs for clients)")
	fs.StringVar(&cfg.proxyFor, "proxy-for", "", "sign in as a proxy acting for the patient with this NHS number")
	fs.Int64Var(&cfg.seed, "seed", 1, "the --seed the server runs with: the GP-system client keys are derived from it (dev only)")
	fs.BoolVar(&cfg.commissioner, "commissioner", false, "sign in as the development commissioner through the dashboard client (authorization code + PKCE): a token for the uptake dashboard")
	fs.BoolVar(&cfg.verbose, "v", false, "also print the token's scope and lifetime to stderr")
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	hc := &http.Client{Timeout: 30 * time.Second}
	issuer := strings.TrimRight(cfg.issuer, "/")

	patient := cfg.nhs != "" || cfg.proxyFor != ""
	var system, patientScope bool
	for _, s := range cfg.scopes {
		system = system || strings.HasPrefix(s, "system/")
		patientScope = patientScope || strings.HasPrefix(s, "patient/")
	}
	var tok *devidp.Token
	var err error
	switch {
	case cfg.commissioner && (patient || cfg.client != "" || len(cfg.scopes) > 0):
		return errors.New("--commissioner signs in the development commissioner, whose token carries the dashboard scope; it goes with no other sign-in flag")
	case cfg.commissioner:
		tok, err = devidp.CommissionerToken(ctx, hc, issuer)
	case patient && (system || cfg.client != ""):
		return errors.New("--nhs-number and --proxy-for sign a patient in through the app client; they do not go with --client or system/ scopes")
	case patient:
		switch cfg.level {
		case "P9", "P5", "P0":
		default:
			return fmt.Errorf("--level must be P9, P5 or P0, not %q", cfg.level)
		}
		nhs := cfg.nhs
		if nhs == "" {
			return errors.New("--proxy-for needs --nhs-number: the proxy's own NHS number")
		}
		// Checked here rather than left to the login page, whose refusal would come back as a web page.
		if err := fhir.CheckNHSNumber(nhs); err != nil {
			return fmt.Errorf("--nhs-number %s is not a valid NHS number (%v): an NHS number is 10 digits, the last a Modulus 11 check digit; "+
				"the test users' numbers are on the dev sign-in page, and 9000000009 is a valid made-up one", nhs, err)
		}
		if cfg.proxyFor != "" {
			if err := fhir.CheckNHSNumber(cfg.proxyFor); err != nil {
				return fmt.Errorf("--proxy-for %s is not a valid NHS number (%v): an NHS number is 10 digits, the last a Modulus 11 check digit", cfg.proxyFor, err)
			}
		}
		scopes := cfg.scopes
		if len(scopes) == 0 {
			scopes = scopeFlag{"patient/*.rs"}
		}
		tok, err = devidp.PatientToken(ctx, hc, issuer, nhs, cfg.level, cfg.proxyFor, scopes)
	case patientScope:
		return errors.New("patient/ scopes need a patient: give --nhs-number")
	default:
		scopes := cfg.scopes
		if len(scopes) == 0 {
			scopes = scopeFlag{"system/*.rs"}
		}
		client := cfg.client
		if client == "" {
			client = devidp.AllPracticesClientID
		}
		if client == devidp.LocalToolClientID {
			tok, err = devidp.SecretToken(ctx, hc, issuer, client, devidp.LocalToolSecret, scopes)
		} else {
			tok, err = devidp.SystemToken(ctx, hc, issuer, cfg.seed, client, scopes)
		}
	}
	if err != nil {
		return fmt.Errorf("dev-token: %w%s", err, devTokenHint(err, &cfg))
	}
	if cfg.verbose {
		fmt.Fprintf(stderr, "scope: %s\nexpires in: %ds\n", tok.Scope, tok.ExpiresIn)
	}
	fmt.Fprintln(stdout, tok.AccessToken)
	return nil
}

// devTokenHint says what to try after a refusal whose description alone may not say it (a server from
// before these descriptions, or a refusal the provider cannot explain).
func devTokenHint(err error, cfg *devTokenConfig) string {
	var te *devidp.TokenError
	if !errors.As(err, &te) {
		return ""
	}
	switch te.Code {
	case "invalid_client":
		return fmt.Sprintf("\n  try: --client %s (every seeded practice) or gp-<ods> for one practice, and the server's --seed (this run used --seed %d)",
			devidp.AllPracticesClientID, cfg.seed)
	case "invalid_scope":
		return "\n  try: patient/ scopes with --nhs-number, system/ scopes with a GP-system --client, user/AuditEvent.rs with --client " + devidp.LocalToolClientID
	case "invalid_grant":
		return "\n  try again: the sign-in took too long, or the server restarted in between (it forgets sign-ins and makes new keys at each start)"
	}
	return ""
}
