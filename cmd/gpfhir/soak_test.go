package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
)

// soakSample is one reading of the server process.
type soakSample struct {
	at         time.Duration
	rssKB      int64
	goroutines int64
	fds        int64
	walBytes   int64
	requests   int64
}

// BenchmarkSoak runs a bounded mixed load (patients reading their record, GP systems creating, updating,
// searching and paging history) against the built server for GPFHIR_SOAK (default 10m), reading the
// server's RSS, goroutines, open files and SQLite WAL every 10 s, and fails if the last two minutes
// exceed the first two by more than the stated bounds. It is a benchmark, not a test: run it with
//
//	GPFHIR_SOAK=10m go test ./cmd/gpfhir -run XXX -bench Soak -benchtime 1x -timeout 30m
func BenchmarkSoak(b *testing.B) {
	if _, err := os.Stat("/proc/self/status"); err != nil {
		b.Skip("the soak reads /proc, which this system does not have")
	}
	d := 10 * time.Minute
	if v := os.Getenv("GPFHIR_SOAK"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			b.Fatalf("GPFHIR_SOAK=%q: %v", v, err)
		}
	}
	bin := buildBinary(b)
	const metricsToken = "soak-metrics-token"
	// Rate limits off: the soak measures what a steady load does to the process, not the limiter.
	base, kill, pid := startKillable(b, bin, b.TempDir(), "--rate-limit", "0", "--metrics-token", metricsToken)
	defer kill()
	ctx := context.Background()
	sysTok, err := devidp.SystemToken(ctx, nil, base+"/dev-idp", 1, devidp.AllPracticesClientID, []string{"system/*.cruds"})
	if err != nil {
		b.Fatal(err)
	}
	sys := sysTok.AccessToken
	people := seed.People(seed.Options{Seed: 1})
	var pats []string
	var patIDs []string
	for _, p := range people.Patients {
		if p.PatientID == "pat-0001" || p.PatientID == "pat-0002" || p.PatientID == "pat-0003" {
			tok, err := devidp.PatientToken(ctx, nil, base+"/dev-idp", p.NHSNumber, "P9", "", []string{"patient/*.rs"})
			if err != nil {
				b.Fatal(err)
			}
			pats, patIDs = append(pats, tok.AccessToken), append(patIDs, p.PatientID)
		}
	}
	org := people.Practices[0].OrganizationID
	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var requests, failures atomic.Int64
	do := func(method, path, token, body string, h ...string) (int, string) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		if body != "" {
			req.Header.Set("Content-Type", "application/fhir+json")
		}
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := hc.Do(req)
		requests.Add(1)
		if err != nil {
			failures.Add(1)
			return 0, ""
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 500 {
			failures.Add(1)
		}
		return resp.StatusCode, string(raw)
	}

	b.ResetTimer()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	since := time.Now().UTC().Format(time.RFC3339)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, version := "", 0
			for n := 0; ; n++ {
				select {
				case <-stop:
					return
				default:
				}
				p := (w + n) % len(pats)
				switch n % 8 {
				case 0, 1:
					do("GET", "/Patient/"+patIDs[p], pats[p], "")
				case 2:
					do("GET", "/Immunization?patient="+patIDs[p], pats[p], "")
				case 3:
					do("GET", "/MedicationRequest?intent=plan&status=active", pats[p], "")
				case 4:
					body := fmt.Sprintf(`{"resourceType":"Patient","name":[{"family":"Soak","given":["w%dn%d"]}],"gender":"female","birthDate":"1980-05-17","managingOrganization":{"reference":"Organization/%s"}}`, w, n, org)
					if id == "" || n%64 == 4 {
						if code, out := do("POST", "/Patient", sys, body); code == 201 {
							id, version = fieldOf(out, "id"), 1
						}
						continue
					}
					body = strings.Replace(body, `{"resourceType":"Patient",`, `{"resourceType":"Patient","id":"`+id+`",`, 1)
					if code, _ := do("PUT", "/Patient/"+id, sys, body, "If-Match", fmt.Sprintf(`W/"%d"`, version)); code == 200 {
						version++
					}
				case 5:
					do("GET", "/Patient?family=soak&_count=20&_sort=-_lastUpdated", sys, "")
				case 6:
					do("GET", "/_history?_since="+since+"&_count=50", sys, "")
				case 7:
					do("GET", "/Slot?status=free&_count=10", sys, "")
				}
			}
		}()
	}

	read := func(at time.Duration) soakSample {
		s := soakSample{at: at, requests: requests.Load()}
		if f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
					s.rssKB, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				}
			}
			f.Close()
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			s.fds = int64(len(ents))
		}
		req, _ := http.NewRequest("GET", base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+metricsToken)
		if resp, err := hc.Do(req); err == nil {
			sc := bufio.NewScanner(resp.Body)
			for sc.Scan() {
				line := sc.Text()
				if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					s.goroutines = int64(f)
				}
				if v, ok := strings.CutPrefix(line, "gpfhir_sqlite_wal_bytes "); ok {
					f, _ := strconv.ParseFloat(v, 64)
					s.walBytes = int64(f)
				}
			}
			resp.Body.Close()
		}
		return s
	}
	start := time.Now()
	var samples []soakSample
	tick := time.NewTicker(10 * time.Second)
	for time.Since(start) < d {
		<-tick.C
		samples = append(samples, read(time.Since(start).Round(time.Second)))
	}
	tick.Stop()
	close(stop)
	wg.Wait()
	b.StopTimer()

	window := max(1, len(samples)/5) // the first and last fifth: two minutes of a ten-minute soak
	peak := func(ss []soakSample, f func(soakSample) int64) int64 {
		var m int64
		for _, s := range ss {
			m = max(m, f(s))
		}
		return m
	}
	first, last := samples[:window], samples[len(samples)-window:]
	rss0, rss1 := peak(first, func(s soakSample) int64 { return s.rssKB }), peak(last, func(s soakSample) int64 { return s.rssKB })
	g0, g1 := peak(first, func(s soakSample) int64 { return s.goroutines }), peak(last, func(s soakSample) int64 { return s.goroutines })
	f0, f1 := peak(first, func(s soakSample) int64 { return s.fds }), peak(last, func(s soakSample) int64 { return s.fds })
	walPeak := peak(samples, func(s soakSample) int64 { return s.walBytes })
	total := samples[len(samples)-1].requests
	b.Logf("soak %s: %d requests (%.0f/s), %d failed (5xx or no answer)", d, total, float64(total)/d.Seconds(), failures.Load())
	// The verdict first: go test shows only the first lines of a benchmark's log.
	b.Logf("peaks, first fifth -> last fifth: RSS %.1f -> %.1f MiB, goroutines %d -> %d, open files %d -> %d; WAL peak %.1f MiB",
		float64(rss0)/1024, float64(rss1)/1024, g0, g1, f0, f1, float64(walPeak)/(1<<20))
	b.Logf("%8s %10s %10s %6s %10s %10s", "at", "requests", "RSS MiB", "fds", "goroutines", "WAL MiB")
	for _, s := range samples {
		b.Logf("%8s %10d %10.1f %6d %10d %10.1f", s.at, s.requests, float64(s.rssKB)/1024, s.fds, s.goroutines, float64(s.walBytes)/(1<<20))
	}
	b.ReportMetric(float64(total)/d.Seconds(), "req/s")
	b.ReportMetric(float64(rss1)/1024, "RSS-MiB-end")
	b.ReportMetric(float64(g1), "goroutines-end")
	b.ReportMetric(float64(f1), "fds-end")
	b.ReportMetric(float64(walPeak)/(1<<20), "WAL-MiB-peak")
	// The bounds: memory may settle upwards by a quarter plus 32 MiB (caches and the Go heap target
	// filling), but not keep growing; goroutines and files come and go with connections (16 at most here).
	if rss1 > rss0+rss0/4+32<<10 {
		b.Errorf("RSS grew from %d MiB (first fifth) to %d MiB (last fifth)", rss0>>10, rss1>>10)
	}
	if g1 > g0+32 {
		b.Errorf("goroutines grew from %d to %d", g0, g1)
	}
	if f1 > f0+32 {
		b.Errorf("open files grew from %d to %d", f0, f1)
	}
	if walPeak > 64<<20+16<<20 {
		b.Errorf("the WAL reached %d MiB, past its 64 MiB bound", walPeak>>20)
	}
	if n := failures.Load(); n > 0 {
		b.Errorf("%d requests failed (5xx or no answer)", n)
	}
}

// fieldOf is the first "name":"value" in a JSON text.
func fieldOf(body, name string) string {
	_, rest, ok := strings.Cut(body, `"`+name+`":"`)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, `"`)
	return v
}
