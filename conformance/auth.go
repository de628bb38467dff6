package conformance

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
)

// authChecks send requests without a token and with tokens the server must not trust. Each must be
// answered 401 with a WWW-Authenticate challenge (RFC 6750) and an OperationOutcome.
func (s *suite) authChecks() {
	target := func(c *C) string {
		if _, ok := s.tokens["main"]; !ok {
			c.Skipf("no token was given (--token or --token-command), so the server is taken to be open")
		}
		t := s.searchableType()
		if t == "" {
			c.Skipf("no type declares search")
		}
		return t + "?_count=1"
	}
	unauthorized := func(c *C, e *exchange) {
		c.wantError(e, http.StatusUnauthorized)
		if ch := e.header.Get("WWW-Authenticate"); !strings.HasPrefix(strings.ToLower(ch), "bearer") {
			c.Fatalf("a 401 without a Bearer WWW-Authenticate challenge (RFC 6750 section 3: SHALL); got %q", ch)
		}
	}
	s.check("auth/no-token", func(c *C) {
		unauthorized(c, c.getAs("none", target(c)))
	})
	s.check("auth/garbage-token", func(c *C) {
		unauthorized(c, c.getAs("raw:conformance-not-a-token", target(c)))
	})
	s.check("auth/wrong-scheme", func(c *C) {
		unauthorized(c, c.do(request{method: http.MethodGet, target: target(c), as: "none",
			header: []string{"Authorization", "Basic Y29uZm9ybWFuY2U6bm90LWEtcGFzc3dvcmQ="}}))
	})
	s.check("auth/forged-signature", func(c *C) {
		tgt := target(c)
		header, payload, ok := splitJWT(s.tokens["main"])
		if !ok {
			c.Skipf("the main token is not a JWT, so the suite cannot forge one")
		}
		// The same token with one claim changed: its signature no longer covers it.
		payload["sub"] = "conformance-forged-" + s.runID
		forged := encodeSegment(header) + "." + encodeSegment(payload) + "." + strings.Split(s.tokens["main"], ".")[2]
		unauthorized(c, c.getAs("raw:"+forged, tgt))
	})
	s.check("auth/alg-none", func(c *C) {
		tgt := target(c)
		_, payload, ok := splitJWT(s.tokens["main"])
		if !ok {
			c.Skipf("the main token is not a JWT, so the suite cannot forge one")
		}
		unsigned := encodeSegment(map[string]any{"alg": "none", "typ": "JWT"}) + "." + encodeSegment(payload) + "."
		unauthorized(c, c.getAs("raw:"+unsigned, tgt))
	})
}

// splitJWT decodes the header and payload of a compact JWS.
func splitJWT(tok string) (header, payload map[string]any, ok bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, nil, false
	}
	if json.Unmarshal(decodeSegment(parts[0]), &header) != nil || json.Unmarshal(decodeSegment(parts[1]), &payload) != nil {
		return nil, nil, false
	}
	return header, payload, header != nil && payload != nil
}

func decodeSegment(s string) []byte {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil
	}
	return b
}

func encodeSegment(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}
