package main

import (
	"strings"
	"testing"
	"time"
)

func TestParseWhenTakesDatesAsWellAsInstants(t *testing.T) {
	utc := func(y int, m time.Month, d, h, min, s int) time.Time {
		return time.Date(y, m, d, h, min, s, 0, time.UTC)
	}
	cases := []struct {
		in   string
		want time.Time
	}{
		{"2025-01-01", utc(2025, 1, 1, 0, 0, 0)},
		{" 2025-01-01 ", utc(2025, 1, 1, 0, 0, 0)},
		{"2025-03", utc(2025, 3, 1, 0, 0, 0)},
		{"2025", utc(2025, 1, 1, 0, 0, 0)},
		{"2025-01-01T09:30:00Z", utc(2025, 1, 1, 9, 30, 0)},
		{"2025-07-01T09:30:00+01:00", utc(2025, 7, 1, 8, 30, 0)},
		{"2025-01-01T09:30:00.250Z", utc(2025, 1, 1, 9, 30, 0).Add(250 * time.Millisecond)},
		{"2025-01-01T09:30:00", utc(2025, 1, 1, 9, 30, 0)},
		{"2025-01-01T09:30", utc(2025, 1, 1, 9, 30, 0)},
		{"2025-01-01 09:30", utc(2025, 1, 1, 9, 30, 0)},
	}
	for _, tc := range cases {
		got, err := parseWhen(tc.in)
		if err != nil || !got.Equal(tc.want) || got.Location() != time.UTC {
			t.Errorf("parseWhen(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "yesterday", "2025-13-01", "2025-02-30", "01/02/2025", "2025-01-01T25:00:00Z"} {
		if _, err := parseWhen(bad); err == nil || !strings.Contains(err.Error(), "2025-01-01") {
			t.Errorf("parseWhen(%q) error %v, want one that shows the forms taken", bad, err)
		}
	}
}
