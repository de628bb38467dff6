package main

import (
	"fmt"
	"strings"
	"time"
)

// whenLayouts are the forms a person types a point in time in, most precise first. A date or time
// without a zone is taken as UTC, the zone audit records are kept in; a date alone means its first
// instant (as FHIR's lt/ge prefixes read a date), so --until 2025-02-01 stops at the end of January.
var whenLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05",
	"2006-01-02T15:04",
	"2006-01-02 15:04:05",
	"2006-01-02 15:04",
	"2006-01-02",
	"2006-01",
	"2006",
}

// parseWhen reads a time a person typed on the command line: an RFC 3339 instant, a date-time without
// a zone, or a date (2025-01-01), month (2025-01) or year. Every flag that takes a point in time uses it.
func parseWhen(v string) (time.Time, error) {
	s := strings.TrimSpace(v)
	for _, layout := range whenLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a date or time: use a date like 2025-01-01 or an instant like 2025-01-01T09:30:00Z (without a zone, UTC)", v)
}
