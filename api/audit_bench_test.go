package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// BenchmarkAuditCost serves the same read workload with audit on and off in one run: two API servers in
// this process on one SQLite store, identical but for Config.DisableAudit, each over real HTTP on
// 127.0.0.1, driven by the same concurrent clients. The phases alternate (off, on) within every iteration
// so that machine noise hits both alike. It reports req/s for each and their ratio (on/off; the goal is
// at least 0.85). Audit on means every read waits for its AuditEvent to be durable (SQLite
// synchronous=FULL), written by the group committer together with the other clients' records.
//
// It runs at 16 and at 64 concurrent clients: a group commit gathers what arrives while the previous
// one is being made durable, so how much it saves depends on how many requests are in flight.
//
// The flush-only runs measure the floor under the store: the audit-on server's batches go to a
// flushOnly store, which writes them to a plain file and fsyncs it, and does nothing else. What they
// cost is what any durable group commit costs on this machine's disk, whatever the store does besides.
func BenchmarkAuditCost(b *testing.B) {
	for _, clients := range []int{16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) { auditCost(b, clients, false) })
	}
	for _, clients := range []int{16, 64} {
		b.Run(fmt.Sprintf("flush-only/clients=%d", clients), func(b *testing.B) { auditCost(b, clients, true) })
	}
}

// flushOnly stands in for the audit store of the flush-only runs: a batch appended by the group
// committer (ApplyAudited without writes) is written to a file and fsynced, and nothing else; it is not
// chained, indexed or searchable. Writes go to the real store.
type flushOnly struct {
	audit.Backend
	f       *os.File
	records atomic.Int64
}

func (s *flushOnly) ApplyAudited(ctx context.Context, writes []store.Write, recs []audit.Record) error {
	if len(writes) > 0 {
		return s.Backend.ApplyAudited(ctx, writes, recs)
	}
	var buf []byte
	for _, r := range recs {
		buf = append(buf, r.Body...)
	}
	if _, err := s.f.Write(buf); err != nil {
		return err
	}
	if err := s.f.Sync(); err != nil {
		return err
	}
	s.records.Add(int64(len(recs)))
	return nil
}

func auditCost(b *testing.B, clients int, floor bool) {
	const (
		requests = 2000 // per phase
		patients = 64
	)
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var auditStore audit.Backend = st
	var fo *flushOnly
	if floor {
		f, err := os.Create(filepath.Join(dir, "flush-only.log"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
		fo = &flushOnly{Backend: st, f: f}
		auditStore = fo
	}
	on, baseOn, token := startAPI(b, auditStore, io.Discard)
	b.Cleanup(func() { on.Close() })
	verifier, err := auth.NewVerifier(auth.Config{Issuers: []string{baseOn + "/dev-idp"}, Audience: baseOn})
	if err != nil {
		b.Fatal(err)
	}
	off, err := api.New(api.Config{Store: st, BaseURL: baseOn, Auth: verifier, DisableAudit: true,
		Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	hsOff := httptest.NewServer(off.Handler())
	b.Cleanup(hsOff.Close)

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients}}
	b.Cleanup(hc.CloseIdleConnections)
	do := func(method, url, body string) (int, []byte) {
		var rdr io.Reader
		if body != "" {
			rdr = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, url, rdr)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/fhir+json")
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	raw, _ := json.Marshal(patient("Bench", validNHS))
	var paths []string
	for range patients {
		code, body := do("POST", baseOn+"/Patient", string(raw))
		if code != http.StatusCreated {
			b.Fatalf("create: %d %s", code, body)
		}
		var p struct{ ID string }
		_ = json.Unmarshal(body, &p)
		paths = append(paths, "/Patient/"+p.ID)
	}
	phase := func(base string) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					n := next.Add(1)
					if n > requests {
						return
					}
					if code, body := do("GET", base+paths[n%patients], ""); code != http.StatusOK {
						b.Errorf("read: %d %s", code, body)
						return
					}
				}
			}()
		}
		wg.Wait()
		return time.Since(start)
	}
	// The SQLite store copies each record's references into its search index after the append; that work
	// is part of what audit costs, so the on phase ends only when every record it wrote is searchable
	// (a count of AuditEvents catches up first), and the off phase never pays for it.
	appended := func() int {
		if fo != nil {
			return int(fo.records.Load())
		}
		n, err := st.Count(context.Background(), store.Query{Type: store.AuditEventType})
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	phase(hsOff.URL) // warm both: connections, page cache, allocator and pools
	phase(baseOn)
	before, commits0 := appended(), auditCommits(b, baseOn)
	var tOff, tOn, cpuOff, cpuOn time.Duration
	var swOff, swOn int64
	b.ResetTimer()
	for b.Loop() {
		c0, s0 := cpuTime()
		tOff += phase(hsOff.URL)
		c1, s1 := cpuTime()
		start := time.Now()
		phase(baseOn)
		appended()
		tOn += time.Since(start)
		c2, s2 := cpuTime()
		cpuOff, cpuOn = cpuOff+c1-c0, cpuOn+c2-c1
		swOff, swOn = swOff+s1-s0, swOn+s2-s1
	}
	b.StopTimer()
	if got := appended() - before; got != b.N*requests {
		b.Errorf("the on phases wrote %d searchable AuditEvents, want %d (one per read)", got, b.N*requests)
	}
	offRate := float64(b.N*requests) / tOff.Seconds()
	onRate := float64(b.N*requests) / tOn.Seconds()
	b.ReportMetric(offRate, "req/s-audit-off")
	b.ReportMetric(onRate, "req/s-audit-on")
	b.ReportMetric(onRate/offRate, "ratio-on/off")
	// CPU of the whole process (clients, servers, store) per request: what audit adds to each request
	// on a machine whose cores it shares.
	b.ReportMetric(float64(cpuOff.Microseconds())/float64(b.N*requests), "cpu-µs/req-off")
	b.ReportMetric(float64(cpuOn.Microseconds())/float64(b.N*requests), "cpu-µs/req-on")
	// Context switches per request: waiting for a flush puts the process's threads to sleep and wakes
	// them again, which costs CPU of its own beyond the flush's (in a VM especially).
	b.ReportMetric(float64(swOff)/float64(b.N*requests), "switches/req-off")
	b.ReportMetric(float64(swOn)/float64(b.N*requests), "switches/req-on")
	// How well group commit gathers: records per append, from the server's own metric (the metrics
	// request itself is audited, and counted here, which is noise at this scale).
	b.ReportMetric(float64(b.N*requests)/(auditCommits(b, baseOn)-commits0), "records/commit")
}

// auditCommits reads gpfhir_audit_batch_records_count, the number of group commits so far, from /metrics.
func auditCommits(b *testing.B, base string) float64 {
	req, _ := http.NewRequest("GET", base+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+testMetricsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("metrics: %d", resp.StatusCode)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, "gpfhir_audit_batch_records_count "); ok {
			n, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no gpfhir_audit_batch_records_count in /metrics")
	return 0
}

// cpuTime is the CPU time (user and system) this process has used so far, and its context switches
// (voluntary and not).
func cpuTime() (time.Duration, int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), ru.Nvcsw + ru.Nivcsw
}
