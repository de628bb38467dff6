package api

import (
	"time"

	"github.com/gpfhir/gpfhir/audit"
)

// defaultRetentionEvery is how often the retention loop prunes after its first run at start.
const defaultRetentionEvery = time.Hour

// startRetention starts the audit retention loop if Config.AuditRetention is set: the records recorded
// more than AuditRetention before the server clock (Config.Now) are removed at start and then hourly.
// Close stops it.
func (s *Server) startRetention() {
	if s.cfg.AuditRetention <= 0 {
		return
	}
	every := s.cfg.retentionEvery
	if every <= 0 {
		every = defaultRetentionEvery
	}
	s.retention = audit.StartRetention(s.trail, s.cfg.AuditRetention, every, s.now, s.log)
}

// stopRetention stops the retention loop, cancelling a prune in progress, and waits for it.
func (s *Server) stopRetention() {
	if s.retention != nil {
		s.retention.Stop()
	}
}
