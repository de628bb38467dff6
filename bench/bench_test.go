package bench

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A closed and an open-loop run against a real loopback server count every request, count the failures
// the server answers, and read their ratio against the baseline run before them.
func TestRunCountsRequestsErrorsAndRatio(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%10 == 0 {
			http.Error(w, "every tenth fails", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte(`{"resourceType":"Patient"}`))
	}))
	defer srv.Close()
	base, err := StartBaseline([]byte(`{"resourceType":"Patient"}`), "application/fhir+json")
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	procs := runtime.GOMAXPROCS(0)
	scenarios := []Scenario{base.Scenario(), {Name: "flaky", As: "patient", Procs: procs + 1,
		Next: func(int, int64) Request { return Request{Method: "GET", Path: "/Patient/1"} }}}
	results, err := Run(context.Background(), Config{BaseURL: srv.URL, Connections: []int{2}, Rate: 200,
		Duration: 300 * time.Millisecond, MaxRequests: 50}, scenarios)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 4 {
		t.Fatalf("%d results, want baseline and flaky, each closed and open loop", len(results))
	}
	for _, r := range results {
		if r.Requests == 0 || r.Requests > 50 {
			t.Errorf("%s %s: %d requests, want 1 to 50 (the bound)", r.Scenario, r.Mode, r.Requests)
		}
		if r.Ratio <= 0 || r.P50Ms > r.P99Ms || r.P99Ms > r.MaxMs {
			t.Errorf("%s %s: implausible figures %+v", r.Scenario, r.Mode, r)
		}
	}
	flaky := results[2]
	if flaky.Errors == 0 || !strings.Contains(flaky.FirstError, "503") {
		t.Errorf("the server's 503s were not counted as errors: %+v", flaky)
	}
	if results[3].Mode != "open" || results[3].Rate != 200 {
		t.Errorf("the last run is not the open loop at 200/s: %+v", results[3])
	}
	// A scenario's GOMAXPROCS holds for its runs only, and each result says what it ran at.
	for i, want := range []int{procs, procs, procs + 1, procs + 1} {
		if results[i].Procs != want {
			t.Errorf("%s %s ran at GOMAXPROCS %d, want %d", results[i].Scenario, results[i].Mode, results[i].Procs, want)
		}
	}
	if now := runtime.GOMAXPROCS(0); now != procs {
		t.Errorf("GOMAXPROCS after the run = %d, want %d as before", now, procs)
	}
}

func TestCheckLoopback(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:8080": true, "http://[::1]:80": true, "http://localhost:1": true,
		"http://192.0.2.1": false, "https://fhir.example.org": false, "http://0.0.0.0:8080": false,
	} {
		if err := CheckLoopback(u); (err == nil) != ok {
			t.Errorf("CheckLoopback(%s) = %v, want allowed %v", u, err, ok)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 100; i++ {
		lat = append(lat, time.Duration(i)*time.Millisecond)
	}
	for p, want := range map[float64]time.Duration{0.5: 50 * time.Millisecond, 0.99: 99 * time.Millisecond, 1: 100 * time.Millisecond} {
		if got := pct(lat, p); got != want {
			t.Errorf("p%v = %v, want %v", p*100, got, want)
		}
	}
}
