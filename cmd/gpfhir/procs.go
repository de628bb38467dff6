package main

import (
	"flag"
	"fmt"
	"runtime"
)

// runtimeProcs is GOMAXPROCS as the runtime chose it at start (the CPUs this process may use, or the
// GOMAXPROCS environment variable), before serve raises it.
var runtimeProcs = runtime.GOMAXPROCS(0)

// extraProcs is how many Ps serve runs beyond runtimeProcs by default. Every audited request waits for
// a commit of the audit trail, and the one goroutine that commits spends a third of its time in fsync,
// a blocking system call that keeps its P until the runtime's monitor notices and hands the P on, which
// can take milliseconds once the monitor has backed off (golang/go#18236); on two cores the other
// requests meanwhile run on one. With one P more, alternated three times with the runtime's own in
// gpfhir bench at 64 connections: reads 6% faster for patients and GP systems alike (P9: 13,713 →
// 14,579 req/s, p99 17.8 → 13.4 ms), searches and the mixed patient app 1-2% faster, and /metadata,
// which waits for nothing, 3% slower (37,328 → 36,061 req/s).
const extraProcs = 1

// addProcsFlag adds --gomaxprocs; 0, its default, means runtimeProcs+extraProcs unless GOMAXPROCS is set.
func addProcsFlag(fs *flag.FlagSet, p *int) {
	fs.IntVar(p, "gomaxprocs", 0, fmt.Sprintf("how many goroutines run Go code at once (GOMAXPROCS) while serving (default: the runtime's choice plus %d, %d here, unless GOMAXPROCS is set in the environment)", extraProcs, runtimeProcs+extraProcs))
}

func checkProcsFlag(errs *configErrors, n int) {
	if n < 0 {
		errs.addf("--gomaxprocs must not be negative (0: the default)")
	}
}

// procsTarget is the GOMAXPROCS to set, or 0 to leave the runtime's: --gomaxprocs if given, else
// nothing when GOMAXPROCS is in the environment (the runtime has read it), else runtimeProcs+extraProcs.
func procsTarget(flagged int, getenv func(string) string) int {
	return runtimeSetting(flagged, "GOMAXPROCS", runtimeProcs+extraProcs, getenv)
}

// setProcs sets the process's GOMAXPROCS to n (unless 0) and returns what puts it back.
func setProcs(n int) (restore func()) { return applySetting(n, runtime.GOMAXPROCS) }

// procsDesc says in a start-up line how many Ps serve runs and why.
func procsDesc(set int, getenv func(string) string) string {
	return settingDesc(set, "GOMAXPROCS", getenv)
}
