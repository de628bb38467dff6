package api

import "time"

// RetentionEvery makes the audit retention loop run every d instead of hourly.
func RetentionEvery(d time.Duration) func(*Config) {
	return func(c *Config) { c.retentionEvery = d }
}
