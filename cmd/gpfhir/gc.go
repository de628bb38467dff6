package main

import (
	"flag"
	"fmt"
	"runtime/debug"
	"strconv"
)

// defaultGCPercent is the GOGC of serve and import unless the operator sets one. Go's default of 100
// collects each time the heap doubles; gpfhir's live heap is small (tens of MB) and every audited
// request, and every imported resource, allocates, so at 100 marking alone took 7% of all CPU under
// reads (pprof of gpfhir bench). At 400, alternated with 100 twice each: in gpfhir bench (read and
// compartment search, 16 and 64 connections) CPU per request 5-15% lower, the P9 read's p99 at 16
// connections 9.9-10.6 ms against 13.2-13.6, resident memory about 80 MiB more; importing 100 Synthea
// patients 2,053-2,066 resources/s against 1,940-1,967, 7% less CPU.
const defaultGCPercent = 400

// addGCFlag adds --gc-percent; 0, its default, means defaultGCPercent unless GOGC is set.
func addGCFlag(fs *flag.FlagSet, p *int) {
	fs.IntVar(p, "gc-percent", 0, fmt.Sprintf("the Go garbage collector's target (GOGC): higher spends memory to save CPU (default %d, unless GOGC is set in the environment)", defaultGCPercent))
}

func checkGCFlag(errs *configErrors, pct int) {
	if pct < 0 {
		errs.addf("--gc-percent must not be negative (0: the default)")
	}
}

// gcTarget is the GOGC to set, or 0 to leave the runtime's: --gc-percent if given, else nothing when
// GOGC is in the environment (the runtime has read it), else defaultGCPercent.
func gcTarget(flagged int, getenv func(string) string) int {
	return runtimeSetting(flagged, "GOGC", defaultGCPercent, getenv)
}

// runtimeSetting is what serve sets a runtime knob to, or 0 to leave it: the flag if given, else
// nothing when the runtime's own environment variable env is set (the runtime has read it), else def.
func runtimeSetting(flagged int, env string, def int, getenv func(string) string) int {
	switch {
	case flagged > 0:
		return flagged
	case getenv(env) != "":
		return 0
	default:
		return def
	}
}

// setGCPercent sets the process's GOGC to pct (unless 0) and returns what puts it back.
func setGCPercent(pct int) (restore func()) { return applySetting(pct, debug.SetGCPercent) }

// applySetting sets a runtime knob to n with set, which returns the old value, unless n is 0, and
// returns what puts it back: the knobs are process-wide, and bench and the tests run serve and import
// in process.
func applySetting(n int, set func(int) int) (restore func()) {
	if n <= 0 {
		return func() {}
	}
	old := set(n)
	return func() { set(old) }
}

// gcPercentDesc says in a start-up line which garbage-collector target is in force and why.
func gcPercentDesc(set int, getenv func(string) string) string {
	return settingDesc(set, "GOGC", getenv)
}

// settingDesc says in a start-up line what a runtime knob is: set, or what its environment variable
// env said to the runtime.
func settingDesc(set int, env string, getenv func(string) string) string {
	if set > 0 {
		return strconv.Itoa(set)
	}
	return getenv(env) + " (" + env + ")"
}
