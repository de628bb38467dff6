package api

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/gpfhir/gpfhir/auth"
)

// Limits bound what one client, one address and everyone together may ask of the server. The defaults
// are far above what a patient app, a GP system or an auditor does (a GP system syncing a practice makes
// tens of requests a second), so normal use never meets them; they exist so that a runaway client or a
// flood cannot take the server, or the audit trail, down for everyone.
type Limits struct {
	// ClientRate is the sustained requests per second of one authenticated caller (a patient, or a GP
	// system or auditor client), with bursts up to ClientBurst. Zero turns per-client limits off.
	ClientRate  float64
	ClientBurst int
	// AnonymousRate bounds the requests per second of one network address that carry no valid token,
	// with bursts up to AnonymousBurst. Such requests are refused with 401, and each 401 is audited, so
	// a flood of them would otherwise grow the audit trail as fast as it can be written. Zero: no limit.
	AnonymousRate  float64
	AnonymousBurst int
	// MaxInFlight bounds the requests being served at once; a request that finds no room within
	// QueueWait gets 503. Zero: no bound.
	MaxInFlight int
	QueueWait   time.Duration
	// RequestTimeout bounds the time one request may take; its context is cancelled then, which stops
	// store work, and the answer is 503. Zero: no timeout.
	RequestTimeout time.Duration
}

// DefaultLimits are the limits `gpfhir serve` starts with.
var DefaultLimits = Limits{
	ClientRate: 2000, ClientBurst: 4000,
	AnonymousRate: 50, AnonymousBurst: 200,
	MaxInFlight: 512, QueueWait: 100 * time.Millisecond,
	RequestTimeout: 60 * time.Second,
}

// unlimited paths cost no store write and answer fixed documents, health or metrics; load balancers,
// monitoring and SMART clients must always reach them. The dev identity provider is a test tool mounted
// beside the API.
func (s *Server) unlimited(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metadata", "/.well-known/smart-configuration", "/metrics":
		return true
	}
	return s.cfg.IdentityProvider != nil && strings.HasPrefix(path, s.cfg.IdentityProviderPath+"/")
}

// limiter holds the state of the limits: a token bucket per key and the in-flight slots.
type limiter struct {
	cfg   Limits
	slots chan struct{}

	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// maxBuckets bounds the memory the per-key buckets take: past it, idle buckets are swept at once, and if
// none is idle the new key shares a bucket with every other overflow key (which only makes the limit
// stricter for them).
const maxBuckets = 100_000

// bucketIdle is how long an unused bucket is kept: a full bucket is the same as a new one after that.
const bucketIdle = 5 * time.Minute

func newLimiter(cfg Limits) *limiter {
	l := &limiter{cfg: cfg, buckets: map[string]*bucket{}}
	if cfg.MaxInFlight > 0 {
		l.slots = make(chan struct{}, cfg.MaxInFlight)
	}
	return l
}

// allow takes one token from key's bucket. When there is none it returns how long until there is.
func (l *limiter) allow(key string, r float64, burst int, now time.Time) (bool, time.Duration) {
	if r <= 0 {
		return true, 0
	}
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets || now.Sub(l.sweep) > bucketIdle {
			l.sweep = now
			for k, v := range l.buckets {
				if now.Sub(v.seen) > bucketIdle {
					delete(l.buckets, k)
				}
			}
		}
		if len(l.buckets) >= maxBuckets {
			key = "overflow"
			b = l.buckets[key]
		}
		if b == nil {
			b = &bucket{lim: rate.NewLimiter(rate.Limit(r), max(burst, 1))}
			l.buckets[key] = b
		}
	}
	b.seen = now
	l.mu.Unlock()
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limit applies the rate limits, the in-flight bound and the request timeout. It runs before the audit
// middleware, so that a refused flood costs no audit write, and it verifies the bearer token itself
// (identify reuses the result), because a rate limit keyed by an unverified token's claims would let
// anyone mint a fresh bucket per request.
func (s *Server) limit(c *gin.Context) {
	if _, local := c.Request.Context().Value(localCallerKey{}).(*auth.Caller); local || s.unlimited(c.Request.URL.Path) {
		// An in-process tool (gpfhir import, through LocalHandler) is the operator's own process.
		c.Next()
		return
	}
	l := s.limits
	req := requestOf(c)
	now := time.Now()
	if tok := bearer(c); tok != "" {
		req.verified = true
		req.verifiedCaller, req.verifyErr = s.cfg.Auth.Verify(c.Request.Context(), tok)
	}
	var ok bool
	var wait time.Duration
	if req.verifiedCaller != nil {
		ok, wait = l.allow("caller|"+callerKey(req.verifiedCaller), l.cfg.ClientRate, l.cfg.ClientBurst, now)
	} else {
		ok, wait = l.allow("addr|"+remoteHost(c.Request), l.cfg.AnonymousRate, l.cfg.AnonymousBurst, now)
	}
	if !ok {
		s.metrics.refused.WithLabelValues("rate").Inc()
		who := "this client"
		if req.verifiedCaller == nil {
			who = "requests without a valid token from this address"
		}
		s.respondError(c, fail(kindRateLimited, "too many requests: %s may make at most %s a second; retry after %s",
			who, strconv.FormatFloat(rateOf(req.verifiedCaller != nil, l.cfg), 'f', -1, 64), retryAfter(wait)+" s").
			withHeader("Retry-After", retryAfter(wait)))
		c.Abort()
		return
	}
	if l.slots != nil {
		select {
		case l.slots <- struct{}{}:
		default:
			t := time.NewTimer(l.cfg.QueueWait)
			select {
			case l.slots <- struct{}{}:
				t.Stop()
			case <-t.C:
				s.metrics.refused.WithLabelValues("busy").Inc()
				s.respondError(c, fail(kindUnavailable, "the server is serving as many requests as it can; retry shortly").
					withHeader("Retry-After", "1"))
				c.Abort()
				return
			}
		}
		defer func() { <-l.slots }()
	}
	if l.cfg.RequestTimeout > 0 {
		ctx, cancel := context.WithTimeout(c.Request.Context(), l.cfg.RequestTimeout)
		defer cancel()
		c.Request = c.Request.WithContext(ctx)
	}
	c.Next()
}

func rateOf(authenticated bool, cfg Limits) float64 {
	if authenticated {
		return cfg.ClientRate
	}
	return cfg.AnonymousRate
}

// callerKey names the party a rate limit applies to: a patient (or proxy) by their subject at the issuer,
// since one patient app serves many patients; a GP system or auditor by its client.
func callerKey(c *auth.Caller) string {
	if c.Kind == auth.KindPatient || c.ClientID == "" {
		return c.Issuer + "|sub|" + c.Subject
	}
	return c.Issuer + "|client|" + c.ClientID
}

// remoteHost is the address the connection comes from. X-Forwarded-For is not trusted: anyone can send
// it, and a limit keyed by it would be a limit on nothing.
func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// retryAfter is a Retry-After value in whole seconds, at least 1.
func retryAfter(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// timedOut is the answer to a request that ran past its timeout.
func timedOut() *apiError {
	return fail(kindUnavailable, "the request took longer than this server allows and was stopped; "+
		"if it was a change, read the resource back to see whether it was made; otherwise retry, or ask for less").
		withHeader("Retry-After", "1")
}

// String is for logs and messages.
func (l Limits) String() string {
	return fmt.Sprintf("client %g/s (burst %d), anonymous %g/s (burst %d), in flight %d, timeout %s",
		l.ClientRate, l.ClientBurst, l.AnonymousRate, l.AnonymousBurst, l.MaxInFlight, l.RequestTimeout)
}
