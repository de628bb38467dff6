package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Request is one HTTP request a scenario sends, and the status that counts as success.
type Request struct {
	Method string
	Path   string // path and query, appended to the base URL
	Body   []byte
	Token  string
	// Header holds extra headers (Content-Type for a body is set when absent).
	Header http.Header
	// Want is the status of a successful answer (200 when 0).
	Want int
}

// Scenario is a named request pattern. Next is called once per request, from many goroutines at once: it
// must be safe for concurrent use. worker is the index of the connection (closed loop) or i modulo the
// number of connections (open loop), so a scenario can give each connection resources of its own.
type Scenario struct {
	Name string
	// As is who sends the requests: "patient", "gp-system", "auditor", "anonymous" or "baseline".
	As   string
	Next func(worker int, i int64) Request
	// BaseURL overrides Config.BaseURL (the static-bytes baseline runs on a server of its own).
	BaseURL string
	// Procs, when above zero, is the process's GOMAXPROCS while the scenario runs, put back after it.
	// The static-bytes baseline runs at the runtime's own: gpfhir serve, in the same process, runs
	// with one P more, which its audited requests gain from and a plain server loses by.
	Procs int
}

// Config bounds a run. Every scenario runs at each of Connections (closed loop) and, when Rate is above
// zero, once more open-loop at Rate requests per second.
type Config struct {
	BaseURL     string
	Connections []int
	Rate        float64
	// Duration bounds each scenario run; MaxRequests bounds the requests of each (0: no bound but time).
	Duration    time.Duration
	MaxRequests int64
	// Progress, when not nil, receives a progress line while each run goes on.
	Progress io.Writer
	// Client is used for every request; nil means a client with a connection pool sized to the run.
	Client *http.Client
}

// Result is one scenario run.
type Result struct {
	Scenario    string  `json:"scenario"`
	As          string  `json:"as"`
	Mode        string  `json:"mode"` // "closed" or "open"
	Connections int     `json:"connections"`
	Rate        float64 `json:"rate,omitempty"`
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"`
	// FirstError is the first failure seen, to say what went wrong without a log.
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	ReqPerSec  float64 `json:"req_per_sec"`
	P50Ms      float64 `json:"p50_ms"`
	P95Ms      float64 `json:"p95_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	// CPUPerReqUs is the CPU time (user + system) of this process per request, in microseconds. With the
	// server in the same process it is the server's and the load generator's together.
	CPUPerReqUs float64 `json:"cpu_per_req_us"`
	// RSSMiB is this process's resident set after the run.
	RSSMiB float64 `json:"rss_mib"`
	// Ratio is ReqPerSec divided by the static-bytes baseline's at the same connections (0 when none ran).
	Ratio float64 `json:"ratio_to_baseline"`
	// Procs is the process's GOMAXPROCS during the run.
	Procs int `json:"gomaxprocs"`
}

// Run runs every scenario at every configuration in order and returns the results. A scenario named
// "baseline" (As "baseline") sets the ratio of the runs after it at the same connections.
func Run(ctx context.Context, cfg Config, scenarios []Scenario) ([]Result, error) {
	if cfg.Duration <= 0 {
		return nil, errors.New("bench: Duration must be positive")
	}
	if len(cfg.Connections) == 0 {
		return nil, errors.New("bench: at least one connection count is needed")
	}
	if err := CheckLoopback(cfg.BaseURL); err != nil {
		return nil, err
	}
	for _, s := range scenarios {
		if s.BaseURL != "" {
			if err := CheckLoopback(s.BaseURL); err != nil {
				return nil, err
			}
		}
	}
	baseline := map[string]float64{}
	var out []Result
	type run struct {
		conns int
		rate  float64
	}
	var runs []run
	for _, c := range cfg.Connections {
		runs = append(runs, run{conns: c})
	}
	if cfg.Rate > 0 {
		runs = append(runs, run{conns: slices.Max(cfg.Connections), rate: cfg.Rate})
	}
	for _, s := range scenarios {
		for _, r := range runs {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			res := runOne(ctx, cfg, s, r.conns, r.rate)
			key := fmt.Sprintf("%d/%g", r.conns, r.rate)
			if s.As == "baseline" {
				baseline[key] = res.ReqPerSec
				res.Ratio = 1
			} else if b := baseline[key]; b > 0 {
				res.Ratio = res.ReqPerSec / b
			}
			out = append(out, res)
		}
	}
	return out, nil
}

// CheckLoopback refuses to send load anywhere but this machine: a load test against someone else's server
// is an attack, whatever its purpose.
func CheckLoopback(base string) error {
	if base == "" {
		return nil
	}
	u, err := url.Parse(base)
	if err != nil {
		return fmt.Errorf("bench: base URL %q: %w", base, err)
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("bench: %s is not a loopback address; the load generator only targets this machine (127.0.0.1, ::1, localhost)", base)
}

func newClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns * 2
	tr.MaxIdleConnsPerHost = conns * 2
	tr.MaxConnsPerHost = conns
	// No Accept-Encoding, as wrk sends none: a gzipped answer (/metadata) would otherwise be unpacked
	// here, on the same two cores, and the figure would be the client's work more than the server's.
	tr.DisableCompression = true
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

type recorder struct {
	mu        sync.Mutex
	lat       []time.Duration
	errors    int64
	firstErr  string
	requests  atomic.Int64
	completed atomic.Int64
}

func (r *recorder) add(d time.Duration, err error) {
	r.completed.Add(1)
	r.mu.Lock()
	r.lat = append(r.lat, d)
	if err != nil {
		r.errors++
		if r.firstErr == "" {
			r.firstErr = err.Error()
		}
	}
	r.mu.Unlock()
}

func runOne(ctx context.Context, cfg Config, s Scenario, conns int, rate float64) Result {
	if s.Procs > 0 {
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(s.Procs))
	}
	base := cfg.BaseURL
	if s.BaseURL != "" {
		base = s.BaseURL
	}
	hc := cfg.Client
	if hc == nil {
		hc = newClient(conns)
		defer hc.CloseIdleConnections()
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	rec := &recorder{}
	// take reserves request number i, or reports that the run's request bound is reached.
	take := func() (int64, bool) {
		i := rec.requests.Add(1) - 1
		return i, cfg.MaxRequests <= 0 || i < cfg.MaxRequests
	}
	cpu0 := cpuTime()
	start := time.Now()
	stopProgress := progress(cfg.Progress, s, conns, rate, rec, start)
	var wg sync.WaitGroup
	if rate <= 0 {
		for w := range conns {
			wg.Go(func() {
				for ctx.Err() == nil {
					i, ok := take()
					if !ok {
						return
					}
					t0 := time.Now()
					err := Send(ctx, hc, base, s.Next(w, i))
					if ctx.Err() != nil && err != nil {
						return // cut off by the end of the run, not a server failure
					}
					rec.add(time.Since(t0), err)
				}
			})
		}
	} else {
		// Open loop: request i is due at start + i/rate whatever happened to the ones before it, and its
		// latency counts from then. Outstanding requests are bounded so a stalled server cannot make the
		// generator itself run out of memory; a request that finds no slot counts as an error.
		interval := time.Duration(float64(time.Second) / rate)
		slots := make(chan struct{}, max(conns*16, 256))
	loop:
		for {
			i, ok := take()
			if !ok {
				break
			}
			due := start.Add(time.Duration(i) * interval)
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
					break loop
				case <-time.After(d):
				}
			} else if ctx.Err() != nil {
				break
			}
			select {
			case slots <- struct{}{}:
			default:
				rec.add(time.Since(due), errors.New("open loop: too many requests outstanding; the server is far behind the rate"))
				continue
			}
			wg.Go(func() {
				defer func() { <-slots }()
				err := Send(ctx, hc, base, s.Next(int(i%int64(conns)), i))
				if ctx.Err() != nil && err != nil {
					return
				}
				rec.add(time.Since(due), err)
			})
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	stopProgress()
	cpu := cpuTime() - cpu0

	res := Result{Scenario: s.Name, As: s.As, Mode: "closed", Connections: conns, Seconds: elapsed.Seconds(),
		Requests: int64(len(rec.lat)), Errors: rec.errors, FirstError: rec.firstErr, RSSMiB: rssMiB(),
		Procs: runtime.GOMAXPROCS(0)}
	if rate > 0 {
		res.Mode, res.Rate = "open", rate
	}
	if res.Requests > 0 {
		res.ReqPerSec = float64(res.Requests) / elapsed.Seconds()
		res.CPUPerReqUs = float64(cpu.Microseconds()) / float64(res.Requests)
		slices.Sort(rec.lat)
		res.P50Ms, res.P95Ms, res.P99Ms = ms(pct(rec.lat, 0.50)), ms(pct(rec.lat, 0.95)), ms(pct(rec.lat, 0.99))
		res.MaxMs = ms(rec.lat[len(rec.lat)-1])
	}
	return res
}

// pct is the nearest-rank percentile of sorted latencies.
func pct(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Send makes one request and reads the whole answer; a transport failure or an unexpected status is an
// error.
func Send(ctx context.Context, hc *http.Client, base string, r Request) error {
	var body io.Reader
	if r.Body != nil {
		body = bytes.NewReader(r.Body)
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, base+r.Path, body)
	if err != nil {
		return err
	}
	for k, v := range r.Header {
		req.Header[k] = v
	}
	if r.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	want := r.Want
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return fmt.Errorf("%s %s: status %d, want %d: %s", r.Method, r.Path, resp.StatusCode, want, bytes.TrimSpace(msg))
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// progress writes a line each half second while a run goes on; the returned function stops it and ends
// the line.
func progress(w io.Writer, s Scenario, conns int, rate float64, rec *recorder, start time.Time) func() {
	if w == nil {
		return func() {}
	}
	label := fmt.Sprintf("%s as %s, %d connections", s.Name, s.As, conns)
	if rate > 0 {
		label = fmt.Sprintf("%s as %s, open loop at %g/s", s.Name, s.As, rate)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				n := rec.completed.Load()
				rec.mu.Lock()
				e := rec.errors
				rec.mu.Unlock()
				el := time.Since(start).Seconds()
				fmt.Fprintf(w, "\r%-60s %8d req %8.0f req/s %6d errors", label, n, float64(n)/el, e)
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
		fmt.Fprintf(w, "\r%-60s done%50s\n", label, "")
	}
}
