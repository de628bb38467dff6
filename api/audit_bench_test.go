package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
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
func BenchmarkAuditCost(b *testing.B) {
	const (
		clients  = 16
		requests = 2000 // per phase
		patients = 64
	)
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	on, baseOn, token := startAPI(b, st, io.Discard)
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
	// The SQLite store makes audit records searchable after the append, in the background; that work is
	// part of what audit costs, so the on phase ends only when every record it wrote is searchable (any
	// AuditEvent read waits for it), and the off phase never pays for it.
	settle := func() {
		if _, err := st.Count(context.Background(), store.Query{Type: store.AuditEventType}); err != nil {
			b.Fatal(err)
		}
	}
	phase(hsOff.URL) // warm both: connections, page cache, allocator and pools
	phase(baseOn)
	settle()
	var tOff, tOn time.Duration
	b.ResetTimer()
	for b.Loop() {
		tOff += phase(hsOff.URL)
		start := time.Now()
		phase(baseOn)
		settle()
		tOn += time.Since(start)
	}
	b.StopTimer()
	offRate := float64(b.N*requests) / tOff.Seconds()
	onRate := float64(b.N*requests) / tOn.Seconds()
	b.ReportMetric(offRate, "req/s-audit-off")
	b.ReportMetric(onRate, "req/s-audit-on")
	b.ReportMetric(onRate/offRate, "ratio-on/off")
}
