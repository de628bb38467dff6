package api

import (
	"context"
	"time"
)

// RetentionEvery makes the audit retention loop run every d instead of hourly.
func RetentionEvery(d time.Duration) func(*Config) {
	return func(c *Config) { c.retentionEvery = d }
}

// UptakeEvery makes the uptake tally's background loop look for new audit records every d, and a
// dashboard answer take a new census whenever changes call for one.
func UptakeEvery(d time.Duration) func(*Config) {
	return func(c *Config) {
		c.uptakeLoop.Every = d
		c.censusFresher = time.Nanosecond
	}
}

// UptakeIdle keeps the uptake tally's background loop from running (a day between looks), for a
// benchmark that loads a trail together with its figures; answers still catch up before they are served.
func UptakeIdle() func(*Config) {
	return func(c *Config) { c.uptakeLoop.Every = 24 * time.Hour }
}

// HistoryScanned has f told how many versions each history page read from the store, and bounds that
// number by bound instead of 1,000 (the FerretDB stand-in is too slow for thousands of versions).
func HistoryScanned(f func(n int), bound int) func(*Config) {
	return func(c *Config) { c.historyScanned, c.historyScan = f, bound }
}

// ExportTimings replaces bulk export's claim lease, its idle poll for jobs, the period of its expiry
// loop and its page size.
func ExportTimings(lease, poll, expiry time.Duration, page int) func(*Config) {
	return func(c *Config) {
		c.exportLease, c.exportPoll, c.exportExpiry, c.exportPage = lease, poll, expiry, page
	}
}

// ExportAfterPage has f called by an export runner after every page it saved, with the run's context.
func ExportAfterPage(f func(ctx context.Context, id string)) func(*Config) {
	return func(c *Config) { c.exportAfterPage = f }
}
