package main

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
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// The sync benchmarks: the 615 Synthea patients imported into the embedded store, and exported again
// with $export; and the export of a store of a million resources. Run them with
//
//	go test ./cmd/gpfhir -run '^$' -bench 'Synthea|ExportScale' -benchtime 1x -timeout 60m
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
	out, err := runImportB(dir, "--practice", "Y00001", "--progress", "none", syntheaArchive)
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
	benchExport(b, dir)
}

// BenchmarkExportScale exports a store of a million resources (GPFHIR_BENCH_EXPORT_RESOURCES to change
// it): the practice, 200,000 Patients registered there and four Immunizations each. The store is filled
// through the store's own writes with the index entries the API would compute, as `gpfhir store copy`
// does, because through the API's rules a million resources would take most of an hour to load on two
// cores; the export then runs through the API as a GP system of the practice.
func BenchmarkExportScale(b *testing.B) {
	total := 1_000_000
	if v := os.Getenv("GPFHIR_BENCH_EXPORT_RESOURCES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 5 {
			b.Fatalf("GPFHIR_BENCH_EXPORT_RESOURCES=%q: want a number of resources, at least 5", v)
		}
		total = n
	}
	dir := b.TempDir()
	st, err := sqlite.Open(context.Background(), dir)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := fillScale(b.Context(), st, total/5); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d resources stored in %s", total/5*5+1, time.Since(start).Round(time.Second))
	benchExport(b, dir)
}

// fillScale writes the practice of importPractice and n Patients registered there, each with four
// Immunizations, in atomic groups of 1,000 writes.
func fillScale(ctx context.Context, st *sqlite.Store, n int) error {
	lu := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var ws []store.Write
	add := func(typ, id, body string) error {
		index, err := fhir.ExtractBody([]byte(body), "http://bench.invalid")
		if err != nil {
			return fmt.Errorf("%s/%s: %w", typ, id, err)
		}
		ws = append(ws, store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: lu, Body: []byte(body)}, Index: index})
		if len(ws) == 1000 {
			err = st.Apply(ctx, ws)
			ws = ws[:0]
		}
		return err
	}
	if err := add("Organization", "practice-y1", importPractice); err != nil {
		return err
	}
	vaccines := []string{"39114911000001105", "35726811000001104", "40384611000001108", "34765811000001105"}
	for i := range n {
		pid := fmt.Sprintf("scale-%07d", i)
		if err := add("Patient", pid, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00Z"},`+
			`"identifier":[{"system":"https://fhir.nhs.uk/Id/nhs-number","value":"9%09d"}],"name":[{"family":"Scale","given":["Patient%d"]}],`+
			`"gender":"%s","birthDate":"19%02d-%02d-%02d","managingOrganization":{"reference":"Organization/practice-y1"}}`,
			pid, i, i, [2]string{"female", "male"}[i%2], 30+i%70, 1+i%12, 1+i%28)); err != nil {
			return err
		}
		for j, code := range vaccines {
			iid := fmt.Sprintf("%s-imm-%d", pid, j)
			if err := add("Immunization", iid, fmt.Sprintf(`{"resourceType":"Immunization","id":%q,"meta":{"versionId":"1","lastUpdated":"2025-01-01T00:00:00Z"},`+
				`"status":"completed","vaccineCode":{"coding":[{"system":"http://snomed.info/sct","code":%q}]},`+
				`"patient":{"reference":"Patient/%s"},"occurrenceDateTime":"20%02d-%02d-%02d","primarySource":true}`,
				iid, code, pid, 10+j*4, 1+i%12, 1+i%28)); err != nil {
				return err
			}
		}
	}
	if len(ws) > 0 {
		return st.Apply(ctx, ws)
	}
	return nil
}

// benchExport exports everything in the store in dir as a GP system of practice Y00001, through the
// API in process, and reports resources per second and the peak Go heap.
func benchExport(b *testing.B, dir string) {
	b.Helper()
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
		// The heap the store's filling left behind (the import's garbage, under its collector target) is
		// not the export's.
		runtime.GC()
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
