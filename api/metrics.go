package api

import (
	"crypto/subtle"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics uses its own registry rather than the global one, so that several Servers in one test binary do
// not collide and a Server exposes only its own figures.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// auditBatch is the size of each group commit; auditFailures counts records that could not be
	// written (each one a request answered 503).
	auditBatch    prometheus.Histogram
	auditFailures prometheus.Counter
	// refused counts requests turned away by the limits, by reason ("rate", "busy").
	refused *prometheus.CounterVec
}

// walReporter is a store with a write-ahead log whose size is bounded (the SQLite store).
type walReporter interface {
	WALBytes() int64
	WALLimitBytes() int64
}

func newMetrics(st any) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	// Labels are the interaction and status only: never paths or ids, which would make unbounded series.
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gpfhir_http_requests_total",
		Help: "HTTP requests by FHIR interaction and status code.",
	}, []string{"interaction", "code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "gpfhir_http_request_duration_seconds",
		Help:    "HTTP request latency by FHIR interaction.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"interaction"})
	m.auditBatch = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "gpfhir_audit_batch_records",
		Help:    "Audit records per group commit (one store append each).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000},
	})
	m.auditFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gpfhir_audit_failures_total",
		Help: "Audit records that could not be written; each one's request was answered 503.",
	})
	m.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gpfhir_http_refused_total",
		Help: "Requests refused by the rate limits (reason rate, answered 429) or the in-flight bound (reason busy, 503).",
	}, []string{"reason"})
	m.reg.MustRegister(m.requests, m.duration, m.auditBatch, m.auditFailures, m.refused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if w, ok := st.(walReporter); ok {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gpfhir_sqlite_wal_bytes",
				Help: "Size of the SQLite write-ahead log on disk."}, func() float64 { return float64(w.WALBytes()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "gpfhir_sqlite_wal_limit_bytes",
				Help: "WAL size above which the store truncates the WAL."}, func() float64 { return float64(w.WALLimitBytes()) }))
	}
	return m
}

func (m *metrics) middleware(c *gin.Context) {
	start := time.Now()
	c.Next()
	in := requestOf(c).interaction
	if in == "" {
		in = "other"
	}
	m.requests.WithLabelValues(in, strconv.Itoa(c.Writer.Status())).Inc()
	m.duration.WithLabelValues(in).Observe(time.Since(start).Seconds())
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// observeAudit records one group commit of the audit trail.
func (m *metrics) observeAudit(records int, failed bool) {
	m.auditBatch.Observe(float64(records))
	if failed {
		m.auditFailures.Add(float64(records))
	}
}

// MetricsHandler serves the Prometheus metrics without asking for a token, for a listener of their own
// that only the monitoring network reaches (gpfhir serve --metrics-addr).
func (s *Server) MetricsHandler() http.Handler { return s.metrics.handler() }

// protectedMetrics serves /metrics on the API's listener to holders of the metrics token only: request
// counts and versions tell an attacker what runs and how busy it is.
func (s *Server) protectedMetrics(c *gin.Context) {
	want := s.cfg.MetricsToken
	if want == "" {
		s.respondError(c, fail(kindNotServed, "metrics are not served on this listener; the operator serves them with --metrics-addr or --metrics-token"))
		return
	}
	got := bearer(c)
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		s.respondError(c, unauthorized("/metrics needs the metrics token (--metrics-token) as a bearer token"))
		return
	}
	s.metrics.handler().ServeHTTP(c.Writer, c.Request)
}

// hygiene sets the headers every answer carries: nothing here is for caches to keep (answers carry
// patient data, and tokens decide what each caller sees), and browsers must not guess content types.
func (s *Server) hygiene(c *gin.Context) {
	h := c.Writer.Header()
	h["Cache-Control"] = hdrNoStore
	h["X-Content-Type-Options"] = hdrNosniff
	c.Next()
}
