package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpExitsZero: asking a command for its flags is not a failure: the status is 0 and no error is
// printed, for every command and subcommand.
func TestHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"-h"}, {"help"}, {"serve", "-h"}, {"dev-token", "-h"}, {"reindex", "-h"}, {"store", "-h"},
		{"store", "copy", "-h"}, {"audit", "-h"}, {"audit", "verify", "-h"}, {"audit", "export", "-h"},
		{"audit", "prune", "-h"}, {"conformance", "-h"}, {"backup", "-h"}, {"restore", "-h"}, {"conformance", "--help"},
		{"import", "-h"}, {"export", "-h"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb, printed bytes.Buffer
			err := run(context.Background(), args, envFrom(nil), &out, &errb)
			if code := exitCode(err, &printed); code != 0 || printed.Len() > 0 {
				t.Errorf("exit status %d, printed %q (run returned %v)", code, printed.String(), err)
			}
		})
	}
	var printed bytes.Buffer
	if code := exitCode(run(context.Background(), []string{"frobnicate"}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{}), &printed); code != 1 ||
		!strings.Contains(printed.String(), "frobnicate") {
		t.Errorf("an unknown command: status %d, printed %q", code, printed.String())
	}
}
