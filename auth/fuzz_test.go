package auth

import (
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzVerify: any bearer token is refused with a reason (a *TokenError for 401, a *Refusal for 403, or
// ErrIssuerUnavailable for 503), never a panic, and nothing but the issuer's own signature is accepted.
func FuzzVerify(f *testing.F) {
	iss := newFakeIssuer(f)
	iss.addKey(f, "k1")
	good := iss.token(f, "k1", time.Now())
	v, err := NewVerifier(Config{Issuers: []string{iss.srv.URL}, Audience: "gpfhir"})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		f.Fatalf("the issuer's own token: %v", err)
	}
	for _, s := range []string{good, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.e30.x",
		good[:len(good)-4] + "AAAA", good + ".x", "...", "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOjF9.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := v.Verify(context.Background(), raw)
		if err == nil {
			if raw != good {
				t.Fatalf("accepted a token the issuer did not sign: %q", raw)
			}
			return
		}
		var te *TokenError
		var ref *Refusal
		if !errors.As(err, &te) && !errors.As(err, &ref) && !errors.Is(err, ErrIssuerUnavailable) {
			t.Fatalf("Verify(%q) failed with %T %v, which the API cannot answer", raw, err, err)
		}
	})
}
