package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
)

// The authorisation step. Every FHIR interaction but capabilities passes identify (the bearer token is
// verified, the caller worked out, a patient's Patient record looked up by NHS number) before it is even
// routed, and authorize (the interaction checked against the caller's scopes and role) before its handler
// runs. What the caller may see inside a type is then enforced by restrict (queries), canRead (fetched
// resources) and the write guard (checkWrites, run by commit).

// bearer extracts the token of an "Authorization: Bearer" header.
func bearer(c *gin.Context) string {
	h := c.GetHeader("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(token)
}

// unauthorized is a 401 with the RFC 6750 challenge.
func unauthorized(desc string) *apiError {
	desc = strings.ReplaceAll(desc, `"`, "'")
	return fail(kindUnauthorized, "%s", desc).
		withHeader("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
}

// refuse turns a policy refusal into a 403 that says what is missing.
func (s *Server) refuse(req *request, d auth.Decision) *apiError {
	req.decide(d)
	kind := kindForbidden
	if d.Outcome == auth.DenyNoRecord {
		kind = kindNoRecord
	}
	e := fail(kind, "%s", d.Reason)
	if d.Outcome == auth.DenyScope && d.Missing != "" {
		e.withHeader("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+d.Missing+`"`)
	}
	return e
}

// identify verifies the bearer token and works out the caller, as the first step of every FHIR
// interaction but capabilities (dispatch calls it before it routes): a P9 patient's Patient records are
// looked up by NHS number here. A missing or invalid token is a 401; the caller is then recorded for the
// audit trail whatever the answer turns out to be.
func (s *Server) identify(req *request) error {
	ctx := req.ctx()
	var caller *auth.Caller
	var err error
	if lc, ok := ctx.Value(localCallerKey{}).(*auth.Caller); ok {
		// An in-process request (LocalHandler): the caller was made by the process itself, not
		// claimed by a token, and no HTTP client can set a context value.
		c := *lc
		caller = &c
	} else if req.verified {
		caller, err = req.verifiedCaller, req.verifyErr
	} else {
		caller, err = s.cfg.Auth.Verify(ctx, bearer(req.c))
	}
	if err != nil {
		var ref *auth.Refusal
		if errors.As(err, &ref) {
			return s.refuse(req, auth.Decision{Outcome: auth.DenyScope, Reason: ref.Reason})
		}
		req.decide(auth.Decision{Outcome: "deny-token"})
		return err
	}
	req.caller = caller
	if caller.Kind == auth.KindPatient && caller.Level == "P9" && caller.NHSNumber != "" {
		// The Patient records of the person the caller acts for (themselves, or through a proxy
		// grant) and the online access levels that apply (api/online.go).
		own, err := s.resolveOnline(ctx, caller)
		if err != nil {
			return err
		}
		req.own = own
	}
	return nil
}

// authorize checks an interaction against the caller's scopes and role, for every routed FHIR
// interaction except capabilities. identify has run.
func (s *Server) authorize(req *request, interaction string, p pathParams) error {
	caller := req.caller
	if caller == nil {
		return internal(errors.New("authorize before identify"))
	}
	req.ifMatch = req.c.GetHeader("If-Match") != ""
	typ := ""
	if p.typ != nil {
		typ = p.typ.Name
	}
	if interaction == "transaction" || interaction == "batch" {
		// A Bundle is no interaction of its own to authorise: each entry is authorised by the
		// interaction it asks for (resolve), so that a client with system/*.cu may post a transaction
		// of creates and updates without a search scope.
		req.decide(auth.Decision{Outcome: auth.Allowed})
		return nil
	}
	d := auth.Authorize(caller, auth.Interaction(interaction), typ)
	if !d.Allow() && isMe(p) {
		// $me explains refusals rather than making them: any verified caller may ask it.
		d = auth.Decision{Outcome: auth.Allowed}
	}
	if !d.Allow() {
		return s.refuse(req, d)
	}
	req.decide(d)
	return nil
}

// authLog writes one line per authorised request: who (role, token subject, client), what, and the
// outcome. The subject is the provider's opaque id; NHS numbers and resource contents never appear.
func (s *Server) authLog(c *gin.Context) {
	c.Next()
	req := requestOf(c)
	if req.decision == nil {
		return
	}
	attrs := []slog.Attr{slog.String("request_id", req.id), slog.String("interaction", req.interaction),
		slog.String("outcome", string(req.decision.Outcome)), slog.Int("status", c.Writer.Status())}
	if caller := req.caller; caller != nil {
		kind, sub, client := caller.Describe()
		attrs = append(attrs, slog.String("caller", kind), slog.String("subject", sub), slog.String("client_id", client),
			slog.String("jti", caller.JTI))
	}
	s.logRequestLine("authorization", attrs...)
}

// localCallerKey carries the caller of an in-process request from LocalHandler to identify.
type localCallerKey struct{}

// LocalHandler serves the API in process as caller, with no token: every request goes through the same
// routing, validation, rules, policy and audit as one over the network, with caller as the agent the
// audit records name. It is for trusted tools in the same process (gpfhir import against the configured
// store); it must never be mounted on a listener.
func (s *Server) LocalHandler(caller auth.Caller) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := caller
		s.engine.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), localCallerKey{}, &c)))
	})
}
