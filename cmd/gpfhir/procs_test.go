package main

import (
	"io"
	"runtime"
	"strings"
	"testing"
)

// TestServeRunsWithOneMorePUnlessTold: serve runs at the runtime's GOMAXPROCS plus one unless the
// operator chose: with --gomaxprocs, or with GOMAXPROCS in the environment, which the runtime has
// already applied. It puts the process's setting back when it returns.
func TestServeRunsWithOneMorePUnlessTold(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"by default", nil, nil, runtimeProcs + 1},
		{"with --gomaxprocs", []string{"--gomaxprocs", "5"}, nil, 5},
		{"from GPFHIR_GOMAXPROCS", nil, map[string]string{"GPFHIR_GOMAXPROCS": "4"}, 4},
		{"with GOMAXPROCS in the environment", nil, map[string]string{"GOMAXPROCS": "7"}, before},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := whileServing(t, tc.args, tc.env, func() int { return runtime.GOMAXPROCS(0) }); got != tc.want {
				t.Errorf("GOMAXPROCS while serving = %d, want %d", got, tc.want)
			}
			if after := runtime.GOMAXPROCS(0); after != before {
				t.Errorf("GOMAXPROCS after serve returned = %d, want %d as before", after, before)
			}
		})
	}
	if err := serve(t.Context(), []string{"--dev", "--gomaxprocs", "-1"}, envFrom(nil), io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--gomaxprocs") {
		t.Errorf("--gomaxprocs -1: %v, want a configuration error naming it", err)
	}
}
