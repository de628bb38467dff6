package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// The sync benchmarks: the 615 Synthea patients imported into the embedded store, and exported again
// with $export. Run them with
//
//	go test ./cmd/gpfhir -run '^$' -bench 'Synthea' -benchtime 1x
//
// They report resources per second (entries of a served type stored or found unchanged, for import;
// lines written, for export) and the peak Go heap while they ran.

const syntheaArchive = "../../../shared/data/synthea-r4.tgz"

// peakHeap samples the Go heap until stop is called and returns the highest value seen.
func peakHeap() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// importSynthea imports the whole sample into a new store in dir and returns the import's output.
func importSynthea(b *testing.B, dir string) string {
	b.Helper()
	practice := filepath.Join(b.TempDir(), "practice.json")
	if err := os.WriteFile(practice, []byte(importPractice), 0o600); err != nil {
		b.Fatal(err)
	}
	if _, err := runImportB(dir, practice); err != nil {
		b.Fatal(err)
	}
	out, err := runImportB(dir, "--practice", "Y00001", "--workers", "2", "--progress", "none", syntheaArchive)
	if err != nil {
		b.Fatalf("%v\n%s", err, out)
	}
	return out
}

func runImportB(dir string, args ...string) (string, error) {
	var out strings.Builder
	err := importCommand(context.Background(), append([]string{"--data-dir", dir}, args...),
		func(string) string { return "" }, strings.NewReader(""), &out, io.Discard)
	return out.String(), err
}

func BenchmarkImportSynthea(b *testing.B) {
	if _, err := os.Stat(syntheaArchive); err != nil {
		b.Skipf("the Synthea sample %s is not here (%v)", syntheaArchive, err)
	}
	for b.Loop() {
		dir := b.TempDir()
		stop := peakHeap()
		start := time.Now()
		out := importSynthea(b, dir)
		el := time.Since(start)
		peak := stop()
		var stored, unchanged int
		if _, err := fmtSscan(out, &stored, &unchanged); err != nil {
			b.Fatalf("summary %q: %v", out, err)
		}
		b.ReportMetric(float64(stored+unchanged)/el.Seconds(), "resources/s")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		// The second run stores nothing: its rate is the cost of finding everything unchanged.
		start = time.Now()
		again, err := runImportB(dir, "--practice", "Y00001", "--progress", "none", syntheaArchive)
		if err != nil || !strings.Contains(again, " 0 stored,") {
			b.Fatalf("second import: %v\n%s", err, again)
		}
		b.ReportMetric(float64(stored+unchanged)/time.Since(start).Seconds(), "rerun-resources/s")
	}
}

func BenchmarkExportSynthea(b *testing.B) {
	if _, err := os.Stat(syntheaArchive); err != nil {
		b.Skipf("the Synthea sample %s is not here (%v)", syntheaArchive, err)
	}
	dir := b.TempDir()
	importSynthea(b, dir)
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	verifier, err := auth.NewVerifier(auth.Config{Issuers: []string{"https://bench.invalid"}, Audience: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	srv, err := api.New(api.Config{Store: st, BaseURL: "http://bench.invalid", Auth: verifier, ExportDir: filepath.Join(dir, "export"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	scopes, _ := auth.ParseScopes("system/*.rs")
	h := srv.LocalHandler(auth.Caller{Kind: auth.KindSystem, ClientID: "bench", Subject: "bench", ODS: []string{"Y00001"}, Scopes: scopes})
	call := func(method, path string, hdr map[string]string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, path, nil)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	b.ResetTimer()
	for b.Loop() {
		stop := peakHeap()
		start := time.Now()
		w := call(http.MethodGet, "/$export", map[string]string{"Prefer": "respond-async"})
		if w.Code != http.StatusAccepted {
			b.Fatalf("kick-off %d: %s", w.Code, w.Body)
		}
		status := strings.TrimPrefix(w.Header().Get("Content-Location"), "http://bench.invalid")
		var m struct {
			Output []struct {
				Count int `json:"count"`
			} `json:"output"`
		}
		for {
			w = call(http.MethodGet, status, nil)
			if w.Code == http.StatusOK {
				if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil {
					b.Fatal(err)
				}
				break
			}
			if w.Code != http.StatusAccepted {
				b.Fatalf("poll %d: %s", w.Code, w.Body)
			}
			time.Sleep(10 * time.Millisecond)
		}
		el := time.Since(start)
		peak := stop()
		n := 0
		for _, o := range m.Output {
			n += o.Count
		}
		b.ReportMetric(float64(n)/el.Seconds(), "resources/s")
		b.ReportMetric(float64(n), "resources")
		b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MB")
		call(http.MethodDelete, status, nil)
	}
}
