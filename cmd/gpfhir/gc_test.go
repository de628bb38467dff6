package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// gogc is the process's garbage-collector target in force, as bench reports it.
func gogc() int { return int(gogcNow()) }

// TestServeSetsTheGarbageCollectorTarget: serve runs with GOGC 400 unless the operator chose: with
// --gc-percent, or with GOGC in the environment, which the runtime has already applied. It puts the
// process's target back when it returns.
func TestServeSetsTheGarbageCollectorTarget(t *testing.T) {
	before := gogc()
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"by default", nil, nil, defaultGCPercent},
		{"with --gc-percent", []string{"--gc-percent", "250"}, nil, 250},
		{"from GPFHIR_GC_PERCENT", nil, map[string]string{"GPFHIR_GC_PERCENT": "300"}, 300},
		{"with GOGC in the environment", nil, map[string]string{"GOGC": "150"}, before},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := whileServing(t, tc.args, tc.env, gogc); got != tc.want {
				t.Errorf("GOGC while serving = %d, want %d", got, tc.want)
			}
			if after := gogc(); after != before {
				t.Errorf("GOGC after serve returned = %d, want %d as before", after, before)
			}
		})
	}
	if err := serve(t.Context(), []string{"--dev", "--gc-percent", "-5"}, envFrom(nil), io.Discard, nil); err == nil || !strings.Contains(err.Error(), "--gc-percent") {
		t.Errorf("--gc-percent -5: %v, want a configuration error naming it", err)
	}
}

// whileServing runs serve (demo data, loopback, a fresh data directory, then args) with env, and returns
// what sample says once it listens; serve has returned when whileServing does.
func whileServing(t *testing.T, args []string, env map[string]string, sample func() int) int {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	listening := make(chan string, 1)
	done := make(chan error, 1)
	args = append([]string{"--dev", "--dev-patients", "2", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...)
	go func() { done <- serve(ctx, args, envFrom(env), io.Discard, listening) }()
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("serve exited: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("server did not start")
	}
	got := sample()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	return got
}

// gcSampler is standard input that notes the garbage-collector target when import first reads it.
type gcSampler struct {
	r    io.Reader
	seen int
}

func (g *gcSampler) Read(p []byte) (int, error) {
	if g.seen == 0 {
		g.seen = gogc()
	}
	return g.r.Read(p)
}

// TestImportSetsTheGarbageCollectorTarget: import, like serve, runs at GOGC 400 unless told otherwise,
// and puts the process's target back when it returns.
func TestImportSetsTheGarbageCollectorTarget(t *testing.T) {
	before := gogc()
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, defaultGCPercent}, {[]string{"--gc-percent", "250"}, 250}} {
		in := &gcSampler{r: strings.NewReader(importPractice)}
		var out, errOut bytes.Buffer
		args := append([]string{"--data-dir", t.TempDir(), "--progress", "none"}, tc.args...)
		if err := importCommand(context.Background(), append(args, "-"), envFrom(nil), in, &out, &errOut); err != nil {
			t.Fatalf("import %v: %v\n%s", tc.args, err, errOut.String())
		}
		if in.seen != tc.want {
			t.Errorf("import %v read its input at GOGC %d, want %d", tc.args, in.seen, tc.want)
		}
		if after := gogc(); after != before {
			t.Errorf("GOGC after import %v returned = %d, want %d as before", tc.args, after, before)
		}
	}
	if _, err := runImport(t, "--data-dir", t.TempDir(), "--gc-percent", "-1", "-"); err == nil || !strings.Contains(err.Error(), "--gc-percent") {
		t.Errorf("--gc-percent -1: %v, want a configuration error naming it", err)
	}
}
