package api

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
)

// The authorisation step. Every FHIR interaction but capabilities passes identify (the bearer token is
// verified, the caller worked out, a patient's Patient record looked up by NHS number) before it is even
// routed, and authorize (the interaction checked against the caller's scopes and role) before its handler
// runs. What the caller may see inside a type is then enforced by restrict (queries), canRead (fetched
// resources) and the write guard (guardedStore.Apply).

const (
	ctxCaller   = "gpfhir.caller"
	ctxDecision = "gpfhir.decision"
)

type callerKey struct{}

// internalKey marks a context of a trusted in-process loader (Import), the only writer without a caller.
type internalKey struct{}

func withCaller(ctx context.Context, c *auth.Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

func callerFrom(ctx context.Context) *auth.Caller {
	c, _ := ctx.Value(callerKey{}).(*auth.Caller)
	return c
}

func withInternal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}

func isInternal(ctx context.Context) bool { v, _ := ctx.Value(internalKey{}).(bool); return v }

func callerOf(c *gin.Context) *auth.Caller {
	if v, ok := c.Get(ctxCaller); ok {
		return v.(*auth.Caller)
	}
	return nil
}

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
	return fail(http.StatusUnauthorized, "login", "%s", desc).
		withHeader("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+desc+`"`)
}

// refuse turns a policy refusal into a 403 that says what is missing.
func (s *Server) refuse(c *gin.Context, d auth.Decision) *apiError {
	c.Set(ctxDecision, d)
	code := "forbidden"
	if d.Outcome == auth.DenyNoRecord {
		code = "not-found"
	}
	e := fail(http.StatusForbidden, code, "%s", d.Reason)
	if d.Outcome == auth.DenyScope && d.Missing != "" {
		e.withHeader("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+d.Missing+`"`)
	}
	return e
}

// identify verifies the bearer token and works out the caller, as the first step of every FHIR
// interaction but capabilities (dispatch calls it before it routes): a P9 patient's Patient records are
// looked up by NHS number here. A missing or invalid token is a 401; the caller is then recorded for the
// audit trail whatever the answer turns out to be.
func (s *Server) identify(c *gin.Context) error {
	ctx := c.Request.Context()
	caller, err := s.cfg.Auth.Verify(ctx, bearer(c))
	if err != nil {
		c.Set(ctxDecision, auth.Decision{Outcome: "deny-token"})
		var te *auth.TokenError
		var ref *auth.Refusal
		switch {
		case errors.As(err, &te):
			return unauthorized(te.Description)
		case errors.As(err, &ref):
			return s.refuse(c, auth.Decision{Outcome: auth.DenyScope, Reason: ref.Reason})
		case errors.Is(err, auth.ErrIssuerUnavailable):
			e := fail(http.StatusServiceUnavailable, "transient", "the token issuer cannot be reached to check the token; try again shortly")
			e.cause = err
			return e
		}
		return internal(err)
	}
	c.Set(ctxCaller, caller)
	c.Request = c.Request.WithContext(withCaller(ctx, caller))
	if caller.Kind == auth.KindPatient && caller.Level == "P9" && caller.NHSNumber != "" {
		if err := s.resolvePatient(c, caller); err != nil {
			return err
		}
	}
	return nil
}

// authorize checks an interaction against the caller's scopes and role, for every routed FHIR
// interaction except capabilities. identify has run.
func (s *Server) authorize(c *gin.Context, interaction string, p pathParams) error {
	caller := callerOf(c)
	if caller == nil {
		return internal(errors.New("authorize before identify"))
	}
	ctx := c.Request.Context()
	ctx = context.WithValue(ctx, interactionKey{}, interaction)
	ctx = context.WithValue(ctx, ifMatchKey{}, c.GetHeader("If-Match") != "")
	ctx = context.WithValue(ctx, decisionRecorderKey{}, func(d auth.Decision) { c.Set(ctxDecision, d) })
	c.Request = c.Request.WithContext(ctx)
	typ := ""
	if p.typ != nil {
		typ = p.typ.Name
	}
	d := auth.Authorize(caller, auth.Interaction(interaction), typ)
	if !d.Allow() && isMe(p) {
		// $me explains refusals rather than making them: any verified caller may ask it.
		d = auth.Decision{Outcome: auth.Allowed}
	}
	if !d.Allow() {
		return s.refuse(c, d)
	}
	c.Set(ctxDecision, d)
	return nil
}

// resolvePatient finds the Patient resources of the person the caller acts for (themselves, or through
// a proxy grant) and the online access levels that apply (api/online.go).
func (s *Server) resolvePatient(c *gin.Context, caller *auth.Caller) error {
	return s.resolveOnline(c.Request.Context(), caller)
}

// authLog writes one line per authorised request: who (role, token subject, client), what, and the
// outcome. The subject is the provider's opaque id; NHS numbers and resource contents never appear.
func (s *Server) authLog(c *gin.Context) {
	c.Next()
	v, ok := c.Get(ctxDecision)
	if !ok {
		return
	}
	d := v.(auth.Decision)
	attrs := []any{"interaction", c.GetString(ctxInteraction), "outcome", string(d.Outcome), "status", c.Writer.Status()}
	if caller := callerOf(c); caller != nil {
		kind, sub, client := caller.Describe()
		attrs = append(attrs, "caller", kind, "subject", sub, "client_id", client, "jti", caller.JTI)
	}
	s.logger(c).Info("authorization", attrs...)
}
