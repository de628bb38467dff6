package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

func TestParseAgeTakesDaysOrADuration(t *testing.T) {
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2190d", 2190 * 24 * time.Hour, true},
		{"8760h", 8760 * time.Hour, true},
		{"90m", 90 * time.Minute, true},
		{"0", 0, true},
		{"-1d", -24 * time.Hour, true},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"six years", 0, false},
		{"200000d", 0, false},
	}
	for _, tc := range cases {
		got, err := parseAge(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseAge(%q) = %v, %v; want %v (ok %v)", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestPruneBeforeIsATimeOrAnAgeAtLeastADayAgo(t *testing.T) {
	now := time.Date(2031, 6, 1, 12, 0, 0, 0, time.FixedZone("BST", 3600))
	cases := []struct {
		in   string
		want time.Time
		err  string
	}{
		{"2190d", now.Add(-2190 * 24 * time.Hour).UTC(), ""},
		{"8760h", now.Add(-8760 * time.Hour).UTC(), ""},
		{"24h", now.Add(-24 * time.Hour).UTC(), ""},
		{"2025-06-01T00:00:00+01:00", time.Date(2025, 5, 31, 23, 0, 0, 0, time.UTC), ""},
		{"", time.Time{}, "needs --before"},
		{"2025-06-01", time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC), ""},
		{"last year", time.Time{}, "neither a date or time"},
		{"23h", time.Time{}, "less than 24h0m0s ago"},
		{"-30d", time.Time{}, "less than 24h0m0s ago"},
		{"2031-06-01T00:00:00Z", time.Time{}, "less than 24h0m0s ago"},
		{"2032-01-01T00:00:00Z", time.Time{}, "less than 24h0m0s ago"},
	}
	for _, tc := range cases {
		got, err := parseBefore(tc.in, now)
		switch {
		case tc.err == "" && (err != nil || !got.Equal(tc.want) || got.Location() != time.UTC):
			t.Errorf("parseBefore(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parseBefore(%q) error %v, want %q", tc.in, err, tc.err)
		}
	}
}

// TestAuditPrune prunes a chain of six records on each backend with the command, then checks what
// verify and export say about the rest.
func TestAuditPrune(t *testing.T) {
	backends := []struct {
		name string
		open func(t *testing.T) (audit.Backend, []string)
	}{
		{"sqlite", func(t *testing.T) (audit.Backend, []string) {
			dir := t.TempDir()
			st, err := sqlite.Open(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			return st, []string{"--data-dir", dir}
		}},
		{"mongo", func(t *testing.T) (audit.Backend, []string) {
			uri := mongotest.Start(t)
			db := mongotest.Database(t)
			st, err := mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db})
			if err != nil {
				t.Fatal(err)
			}
			return st, []string{"--store", "mongo", "--mongodb-uri", uri, "--mongodb-database", db}
		}},
	}
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			st, flags := b.open(t)
			appendAudit(t, st, 0, "e0", "e1")
			appendAudit(t, st, 2, "e2", "e3")
			appendAudit(t, st, 4, "e4", "e5")
			st.Close()
			cmd := func(args ...string) (string, error) {
				var out bytes.Buffer
				err := run(context.Background(), append(args, flags...), envFrom(nil), &out, io.Discard)
				return out.String(), err
			}

			// e0..e2 were recorded before auditT0 + 3 minutes.
			before := auditT0.Add(3 * time.Minute).Format(time.RFC3339)
			out, err := cmd("audit", "prune", "--before", before)
			if err != nil {
				t.Fatalf("prune: %v\n%s", err, out)
			}
			for _, want := range []string{"pruned 3 audit records recorded before " + before, "anchor: record 3, hash ", "recorded " + auditT0.Add(2*time.Minute).Format(time.RFC3339Nano)} {
				if !strings.Contains(out, want) {
					t.Errorf("prune output %q, want it to contain %q", out, want)
				}
			}

			out, err = cmd("audit", "verify")
			if err != nil {
				t.Fatalf("verify after prune: %v\n%s", err, out)
			}
			for _, want := range []string{"intact, 3 records (records 1–3, recorded up to 2025-06-01T12:02:00Z, were pruned; the chain starts from anchor hash ",
				"head: record 6, hash ", "anchor: record 3, hash "} {
				if !strings.Contains(out, want) {
					t.Errorf("verify output %q, want it to contain %q", out, want)
				}
			}

			out, err = cmd("audit", "export")
			if err != nil {
				t.Fatal(err)
			}
			if want := fmt.Sprintf("%s\n%s\n%s\n", auditBody("e3"), auditBody("e4"), auditBody("e5")); out != want {
				t.Errorf("export after prune:\n%s\nwant:\n%s", out, want)
			}

			// Nothing left that old: a second prune removes nothing and keeps the anchor.
			out, err = cmd("audit", "prune", "--before", before)
			if err != nil || !strings.Contains(out, "pruned 0 audit records") || !strings.Contains(out, "anchor: record 3,") {
				t.Errorf("second prune: %v\n%s", err, out)
			}
		})
	}
}

func TestStoreCopyRefusesAPrunedSource(t *testing.T) {
	src := auditStore(t, 4)
	var out bytes.Buffer
	if err := run(context.Background(), []string{"audit", "prune", "--data-dir", src, "--before", auditT0.Add(2 * time.Minute).Format(time.RFC3339)}, envFrom(nil), &out, io.Discard); err != nil {
		t.Fatalf("prune: %v\n%s", err, out.String())
	}
	err := run(context.Background(), []string{"store", "copy", "--from", "sqlite", "--from-data-dir", src, "--to", "sqlite", "--to-data-dir", t.TempDir()},
		envFrom(nil), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "pruned up to record 2") {
		t.Errorf("copy of a pruned chain to an empty store: %v", err)
	}
}

func TestAuditPruneAndRetentionConfigurationErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"prune without --before", []string{"audit", "prune"}, nil, []string{"needs --before"}},
		{"prune with a cut-off that is not a time or an age", []string{"audit", "prune", "--before", "soon"}, nil, []string{`--before "soon" is neither`}},
		{"prune of the last day", []string{"audit", "prune", "--before", "12h"}, nil, []string{"the last day of audit trail is always kept"}},
		{"prune reports its errors together", []string{"audit", "prune", "--before", "1h", "--store", "mongo"}, nil, []string{"--before", "--mongodb-uri"}},
		{"a retention under a day, with the other errors", []string{"serve", "--audit-retention", "12h", "--max-body", "0"}, nil,
			[]string{"--audit-retention 12h0m0s must be 0 (keep everything) or at least 24h0m0s", "--max-body"}},
		{"a negative retention", []string{"serve", "--audit-retention", "-30d"}, nil, []string{"--audit-retention -720h0m0s must be 0"}},
		{"a retention that is not a duration", []string{"serve", "--audit-retention", "forever"}, nil, []string{"forever"}},
		{"a retention from the environment is checked too", []string{"serve"}, map[string]string{"GPFHIR_AUDIT_RETENTION": "1h"}, []string{"--audit-retention 1h0m0s"}},
		{"a bad retention in the environment is named", []string{"serve"}, map[string]string{"GPFHIR_AUDIT_RETENTION": "a while"}, []string{"GPFHIR_AUDIT_RETENTION"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, envFrom(tc.env), io.Discard, io.Discard)
			for _, want := range tc.want {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to contain %q", err, want)
				}
			}
		})
	}
}

func TestAuditRetentionFlagTakesDaysFromTheEnvironment(t *testing.T) {
	var cfg serveConfig
	fs := serveFlags(&cfg)
	fs.SetOutput(io.Discard)
	if err := parseFlags(fs, nil, envFrom(map[string]string{"GPFHIR_AUDIT_RETENTION": "2190d"})); err != nil {
		t.Fatal(err)
	}
	if time.Duration(cfg.retention) != 2190*24*time.Hour {
		t.Errorf("retention = %v, want 2190 days", time.Duration(cfg.retention))
	}
	cfg = serveConfig{}
	fs = serveFlags(&cfg)
	if err := parseFlags(fs, nil, envFrom(nil)); err != nil || cfg.retention != 0 {
		t.Errorf("default retention = %v %v, want 0 (keep everything)", time.Duration(cfg.retention), err)
	}
}
