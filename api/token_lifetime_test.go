package api_test

import (
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth"
)

// Tokens are accepted only for a bounded life, from their iat to their exp. The dev provider's tokens
// live an hour.
func TestTokenLifetimeIsBounded(t *testing.T) {
	verifier := func(clock func() time.Time, lifetime time.Duration) serverOption {
		return func(c *apiConfig) {
			v, err := auth.NewVerifier(auth.Config{Issuers: []string{c.BaseURL + "/dev-idp"}, Audience: c.BaseURL, Now: clock, MaxTokenLifetime: lifetime})
			if err != nil {
				panic(err)
			}
			c.Auth = v
		}
	}
	tests := []struct {
		name     string
		offset   time.Duration
		lifetime time.Duration
		says     string
	}{
		{"an hour's token under the default bound", 0, 0, ""},
		{"an hour's token under a 30-minute bound", 0, 30 * time.Minute, "lives too long (exp is 1h0m0s after iat)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, verifier(func() time.Time { return time.Now().Add(tt.offset) }, tt.lifetime))
			if tt.says == "" {
				ts.mustStatus(ts.do("GET", "/Patient", nil, nil), 200)
				return
			}
			r := ts.do("GET", "/Patient", nil, nil)
			if r.Status != 401 || !strings.Contains(string(r.Body), tt.says) {
				t.Fatalf("status %d, want 401 saying %q: %s", r.Status, tt.says, r.Body)
			}
		})
	}
}
