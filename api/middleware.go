package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/google/uuid"
)

// Request ids come from clients (NHS APIs make X-Request-ID mandatory and reuse it on retries), so they are
// echoed; but they also reach logs and audit records, so anything that is not a plain token is replaced.
func validRequestID(id string) bool {
	return len(id) >= 1 && len(id) <= 128 && onlyBytes(id, "._:-")
}

// The header names are written in net/http's canonical form, which it would otherwise make anew on every
// Get and Set; on the wire they are the same headers.
func (s *Server) requestID(c *gin.Context) {
	id := c.GetHeader("X-Request-Id")
	if !validRequestID(id) {
		id = uuid.NewString()
	}
	req := requestOf(c)
	req.id = id
	req.serverLog = s.log
	c.Header("X-Request-Id", id)
	if corr := c.GetHeader("X-Correlation-Id"); corr != "" && validRequestID(corr) {
		c.Header("X-Correlation-Id", corr)
	}
	c.Next()
}

// logger returns the request-scoped logger, which carries request_id on every line.
func (s *Server) logger(c *gin.Context) *slog.Logger {
	if req := requestOf(c); req.serverLog != nil || req.log != nil {
		return req.logger()
	}
	return s.log
}

// logRequestLine writes one of the lines every request logs, its attributes led by request_id as the
// request's logger would write it, without making that logger. LogAttrs takes the attributes unboxed.
func (s *Server) logRequestLine(msg string, attrs ...slog.Attr) {
	s.log.LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

func requestIDOf(c *gin.Context) string {
	return requestOf(c).id
}

// recoverer turns a panic into the same 500 OperationOutcome as any internal error: the caller sees only
// "internal error" and the request id, the stack goes to the log.
func (s *Server) recoverer(c *gin.Context) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.logger(c).Error("panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !c.Writer.Written() {
				s.respondError(c, internal(fmt.Errorf("panic: %v", v)))
			}
			c.Abort()
		}
	}()
	c.Next()
}

// accessLog writes one line per request. The query string is left out on purpose: search parameters
// carry patient data (names, NHS numbers, birth dates), which must never reach logs.
func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	req := requestOf(c)
	s.logRequestLine("request",
		slog.String("request_id", req.id),
		slog.String("method", c.Request.Method),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", c.Writer.Status()),
		slog.Int("bytes", c.Writer.Size()),
		slog.Float64("duration_ms", float64(time.Since(start).Microseconds())/1000),
		slog.String("interaction", req.interaction),
	)
}
