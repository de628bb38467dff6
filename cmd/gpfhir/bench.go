package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/bench"
	"github.com/gpfhir/gpfhir/seed"
)

type benchConfig struct {
	baseURL     string
	scale       int
	seed        int64
	connections string
	rate        float64
	duration    time.Duration
	maxRequests int64
	scenarios   string
	jsonOut     string
	dataDir     string
	profile     string
	synthea     string
}

const nhsSystem = "https://fhir.nhs.uk/Id/nhs-number"

// benchCommand is `gpfhir bench`: it starts the real server (--dev, rate limits off) on a fresh embedded
// store in a temporary directory, or uses a running --dev server at --base-url, gets tokens from the dev
// identity provider over HTTP, and drives the scenarios at it over loopback.
func benchCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var cfg benchConfig
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&cfg.baseURL, "base-url", "", "measure a running `gpfhir serve --dev` at this loopback URL instead of starting one (its rate limits must be off or far above the load)")
	fs.IntVar(&cfg.scale, "scale", seed.DefaultPatients, "synthetic patients in the demo data (the server started by bench; with --base-url, the server's --dev-patients)")
	fs.Int64Var(&cfg.seed, "seed", 1, "seed of the demo data (with --base-url, the server's --seed)")
	fs.StringVar(&cfg.connections, "connections", "16,64", "closed-loop connection counts, comma-separated")
	fs.Float64Var(&cfg.rate, "rate", 0, "also run each scenario open-loop at this many requests per second (latency without coordinated omission)")
	fs.DurationVar(&cfg.duration, "duration", 5*time.Second, "how long each scenario runs at each load")
	fs.Int64Var(&cfg.maxRequests, "max-requests", 200000, "most requests of one scenario at one load")
	fs.StringVar(&cfg.scenarios, "scenarios", "", "comma-separated scenario names to run (default all): "+strings.Join(scenarioNames, ","))
	fs.StringVar(&cfg.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&cfg.dataDir, "data-dir", "", "data directory of the server started by bench (default: a temporary directory, removed afterwards); must be empty")
	fs.StringVar(&cfg.synthea, "synthea", "", "also import this Synthea sample (a directory, .tgz or file of FHIR JSON, e.g. ../shared/data/synthea-r4.tgz) through the API before the scenarios run, its patients registered at the first demo practice: the scenarios, which use a demo patient, then run against a store of that size")
	fs.StringVar(&cfg.profile, "profile", "", "with the server started by bench: write pprof profiles of the whole run to PREFIX.cpu, PREFIX.alloc, PREFIX.block and PREFIX.mutex (read them with go tool pprof)")
	fs.SetOutput(stderr)
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	if cfg.profile != "" && cfg.baseURL != "" {
		return errors.New("--profile profiles this process, so it needs the server started by bench: leave out --base-url")
	}
	var conns []int
	for _, c := range strings.Split(cfg.connections, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 || n > 1024 {
			return fmt.Errorf("--connections %q: each count must be a number from 1 to 1024", cfg.connections)
		}
		conns = append(conns, n)
	}
	if cfg.duration <= 0 || cfg.maxRequests < 0 || cfg.rate < 0 {
		return errors.New("--duration must be positive, --max-requests and --rate not negative")
	}
	if cfg.scale < 1 || cfg.scale > seed.MaxPatients {
		return fmt.Errorf("--scale must be from 1 to %d", seed.MaxPatients)
	}
	want := map[string]bool{}
	for _, s := range strings.Split(cfg.scenarios, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(scenarioNames, s) {
				return fmt.Errorf("--scenarios: unknown scenario %q; known: %s", s, strings.Join(scenarioNames, ","))
			}
			want[s] = true
		}
	}

	if err := bench.CheckLoopback(cfg.baseURL); err != nil {
		return err
	}
	server := map[string]string{"started_by_bench": "false"}
	base := strings.TrimRight(cfg.baseURL, "/")
	if base == "" {
		dir := cfg.dataDir
		if dir != "" {
			// A store that holds data already would be measured at another size, and the demo data,
			// which the scenarios pick their patient from, would not be seeded into it.
			if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
				return fmt.Errorf("--data-dir %s is not empty; gpfhir bench needs a fresh store", dir)
			}
		}
		if dir == "" {
			tmp, err := os.MkdirTemp("", "gpfhir-bench-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		}
		sctx, stop := context.WithCancel(ctx)
		listening := make(chan string, 1)
		errc := make(chan error, 1)
		// Rate limits and the in-flight bound are off: the bench measures the request path, and one
		// patient token at thousands of requests a second would otherwise be answered 429.
		serveArgs := []string{"--dev", "--addr", "127.0.0.1:0", "--store", "sqlite", "--data-dir", dir,
			"--seed", strconv.FormatInt(cfg.seed, 10), "--dev-patients", strconv.Itoa(cfg.scale),
			"--rate-limit", "0", "--anonymous-rate-limit", "0", "--max-in-flight", "0", "--log-level", "error"}
		fmt.Fprintf(stderr, "starting gpfhir serve %s\n", strings.Join(serveArgs, " "))
		go func() { errc <- serve(sctx, serveArgs, func(string) string { return "" }, io.Discard, listening) }()
		select {
		case base = <-listening:
		case err := <-errc:
			stop()
			return fmt.Errorf("bench: the server did not start: %w", err)
		}
		defer func() {
			stop()
			<-errc
		}()
		server = map[string]string{"started_by_bench": "true", "store": "sqlite (embedded, temporary directory)",
			"flags": strings.Join(serveArgs, " "), "rate_limits": "off (--rate-limit 0 --anonymous-rate-limit 0 --max-in-flight 0)",
			"audit": "on, durable before each answer", "gc_percent": strconv.FormatUint(gogcNow(), 10) + " (the process's, load generator included)",
			"gomaxprocs": fmt.Sprintf("%d while serving (the load generator's too); the static-bytes baseline ran at the runtime's own, %d", runtime.GOMAXPROCS(0), runtimeProcs)}
	}
	server["base_url"] = base
	server["patients"] = strconv.Itoa(cfg.scale)
	if cfg.synthea != "" {
		summary, err := benchSynthea(ctx, base, cfg, stderr)
		if err != nil {
			return err
		}
		server["synthea"] = cfg.synthea
		server["synthea_import"] = summary
	}
	server["duration_per_run"] = cfg.duration.String()

	fx, err := benchFixtures(ctx, base, cfg)
	if err != nil {
		return err
	}
	baseline, err := bench.StartBaseline(fx.patientBody, "application/fhir+json")
	if err != nil {
		return err
	}
	defer baseline.Close()
	// The baseline runs at the runtime's own GOMAXPROCS, a plain server's best; serve's extra P is
	// for waiting on fsync, which the baseline never does (procs.go).
	limit := baseline.Scenario()
	limit.Procs = runtimeProcs
	scenarios := []bench.Scenario{limit}
	for _, s := range fx.scenarios(slices.Max(conns)) {
		if len(want) == 0 || want[strings.SplitN(s.Name, " ", 2)[0]] {
			scenarios = append(scenarios, s)
		}
	}
	// Every scenario's first request must succeed before load starts: a misconfigured scenario would
	// otherwise report a fast stream of errors as throughput.
	hc := &http.Client{Timeout: 30 * time.Second}
	for _, s := range scenarios[1:] {
		if err := probe(ctx, hc, base, s); err != nil {
			return fmt.Errorf("bench: scenario %s as %s fails before any load: %w", s.Name, s.As, err)
		}
	}
	if cfg.profile != "" {
		stopProfile, err := startProfiles(cfg.profile)
		if err != nil {
			return err
		}
		defer func() {
			if err := stopProfile(); err != nil {
				fmt.Fprintf(stderr, "bench: writing profiles: %v\n", err)
			}
		}()
	}
	results, err := bench.Run(ctx, bench.Config{BaseURL: base, Connections: conns, Rate: cfg.rate,
		Duration: cfg.duration, MaxRequests: cfg.maxRequests, Progress: stderr}, scenarios)
	if err != nil {
		return err
	}
	if err := bench.WriteTable(stdout, results); err != nil {
		return err
	}
	if err := fx.checkUnchanged(ctx); err != nil {
		return err
	}
	if cfg.jsonOut != "" {
		if err := bench.WriteJSON(cfg.jsonOut, bench.Report{Server: server, Results: results}); err != nil {
			return err
		}
	}
	return nil
}

// benchSynthea imports the sample at cfg.synthea into the server at base over HTTP, as `gpfhir import
// --base-url` would with a GP-system token, and returns the import's summary. Its progress goes to
// progress (stderr), keeping stdout for the table.
func benchSynthea(ctx context.Context, base string, cfg benchConfig, progress io.Writer) (string, error) {
	if _, err := os.Stat(cfg.synthea); err != nil {
		return "", fmt.Errorf("--synthea: %w", err)
	}
	tok, err := devidp.SystemToken(ctx, &http.Client{Timeout: 30 * time.Second}, base+"/dev-idp", cfg.seed,
		devidp.AllPracticesClientID, []string{"system/*.cruds"})
	if err != nil {
		return "", fmt.Errorf("bench: a GP-system token for the Synthea import: %w", err)
	}
	ods := seed.People(seed.Options{Seed: cfg.seed, Patients: cfg.scale}).Practices[0].ODS
	fmt.Fprintf(progress, "importing %s, its patients registered at %s\n", cfg.synthea, ods)
	var summary strings.Builder
	err = importCommand(ctx, []string{"--base-url", base, "--token", tok.AccessToken, "--practice", ods, "--progress", "lines", cfg.synthea},
		func(string) string { return "" }, strings.NewReader(""), &summary, progress)
	fmt.Fprint(progress, summary.String())
	if err != nil {
		return "", fmt.Errorf("bench: the Synthea import: %w", err)
	}
	first, _, _ := strings.Cut(summary.String(), "\n")
	return first, nil
}

var scenarioNames = []string{"metadata", "smart-configuration", "read", "compartment", "identifier", "chained",
	"create", "update", "transaction", "history-since", "audit-query", "mixed"}

// fixtures are what the scenarios need from the data: a P9 patient with immunisations, and tokens.
type fixtures struct {
	patientID, nhs string
	patientBody    []byte
	// hits is the size of the read patient's Immunization compartment, which no scenario may change.
	hits int
	// immunization is what the write scenarios store: one of the read patient's, moved to another seeded
	// patient, so that their thousands of writes do not turn the read patient's "about 6 hits" into
	// hundreds (the figures of the later read scenarios would then measure a different request).
	immunization            map[string]any
	patientTok, gpTok, audT string
	since                   string
	// updateIDs are one Immunization per connection, so that concurrent updates do not race each other.
	updateIDs []string
	hc        *http.Client
	base      string
}

func benchFixtures(ctx context.Context, base string, cfg benchConfig) (*fixtures, error) {
	hc := &http.Client{Timeout: 30 * time.Second}
	issuer := base + "/dev-idp"
	fx := &fixtures{hc: hc, base: base, since: time.Now().UTC().Add(-time.Second).Format(time.RFC3339)}
	gp, err := devidp.SystemToken(ctx, hc, issuer, cfg.seed, devidp.AllPracticesClientID, []string{"system/*.cruds"})
	if err != nil {
		return nil, fmt.Errorf("bench: a GP-system token from %s: %w", issuer, err)
	}
	fx.gpTok = gp.AccessToken
	aud, err := devidp.SecretToken(ctx, hc, issuer, devidp.LocalToolClientID, devidp.LocalToolSecret, []string{"user/AuditEvent.rs"})
	if err != nil {
		return nil, fmt.Errorf("bench: an auditor token: %w", err)
	}
	fx.audT = aud.AccessToken
	// The P9 patient is the seeded patient in the default online-access state with the most immunisations
	// among the first few: the compartment search then returns a handful of hits, as in the issue.
	best := -1
	var others []string
	for i, p := range seed.People(seed.Options{Seed: cfg.seed, Patients: cfg.scale}).Patients {
		if i >= 40 || p.State != "" {
			continue
		}
		var b struct {
			Entry []struct{ Resource map[string]any }
		}
		if err := benchGetJSON(ctx, hc, base+"/Immunization?patient="+p.PatientID, fx.gpTok, &b); err != nil {
			return nil, err
		}
		others = append(others, p.PatientID)
		if len(b.Entry) > best {
			best, fx.patientID, fx.nhs = len(b.Entry), p.PatientID, p.NHSNumber
			if len(b.Entry) > 0 {
				fx.immunization = b.Entry[0].Resource
			}
		}
	}
	if best < 1 {
		return nil, errors.New("bench: no seeded patient in the default access state has immunisations; try another --seed")
	}
	fx.hits = best
	writeTo := ""
	for _, id := range others {
		if id != fx.patientID {
			writeTo = id
			break
		}
	}
	if writeTo == "" {
		return nil, errors.New("bench: the demo data has one patient; the write scenarios need another to write to (--scale 2 or more)")
	}
	fx.immunization["patient"] = map[string]any{"reference": "Patient/" + writeTo}
	pt, err := devidp.PatientToken(ctx, hc, issuer, fx.nhs, "P9", "", []string{"patient/*.rs"})
	if err != nil {
		return nil, fmt.Errorf("bench: a P9 patient token: %w", err)
	}
	fx.patientTok = pt.AccessToken
	if fx.patientBody, err = benchGet(ctx, hc, base+"/Patient/"+fx.patientID, fx.gpTok); err != nil {
		return nil, err
	}
	delete(fx.immunization, "id")
	delete(fx.immunization, "meta")
	return fx, nil
}

func (fx *fixtures) newImmunization() []byte {
	b, _ := json.Marshal(fx.immunization)
	return b
}

func (fx *fixtures) scenarios(maxConns int) []bench.Scenario {
	get := func(path, tok string) func(int, int64) bench.Request {
		return func(int, int64) bench.Request { return bench.Request{Method: "GET", Path: path, Token: tok} }
	}
	both := func(name, path string) []bench.Scenario {
		return []bench.Scenario{
			{Name: name, As: "patient", Next: get(path, fx.patientTok)},
			{Name: name, As: "gp-system", Next: get(path, fx.gpTok)},
		}
	}
	ident := url.QueryEscape(nhsSystem + "|" + fx.nhs)
	var out []bench.Scenario
	out = append(out,
		bench.Scenario{Name: "metadata", As: "anonymous", Next: get("/metadata", "")},
		bench.Scenario{Name: "smart-configuration", As: "anonymous", Next: get("/.well-known/smart-configuration", "")})
	out = append(out, both("read", "/Patient/"+fx.patientID)...)
	out = append(out, both("compartment", "/Immunization?patient="+fx.patientID)...)
	out = append(out, both("identifier", "/Patient?identifier="+ident)...)
	out = append(out, both("chained", "/Immunization?patient.identifier="+ident)...)
	imm := fx.newImmunization()
	out = append(out, bench.Scenario{Name: "create", As: "gp-system", Next: func(int, int64) bench.Request {
		return bench.Request{Method: "POST", Path: "/Immunization", Body: imm, Token: fx.gpTok, Want: http.StatusCreated}
	}})
	var once sync.Once
	var bodies [][]byte
	out = append(out, bench.Scenario{Name: "update", As: "gp-system", Next: func(w int, _ int64) bench.Request {
		once.Do(func() { bodies = fx.updateBodies(maxConns) })
		if w >= len(bodies) {
			return bench.Request{Method: "GET", Path: "/bench-update-setup-failed", Token: fx.gpTok}
		}
		return bench.Request{Method: "PUT", Path: "/Immunization/" + fx.updateIDs[w], Body: bodies[w], Token: fx.gpTok}
	}})
	tx := fx.transaction(imm)
	out = append(out, bench.Scenario{Name: "transaction", As: "gp-system", Next: func(int, int64) bench.Request {
		return bench.Request{Method: "POST", Path: "/", Body: tx, Token: fx.gpTok}
	}})
	out = append(out, bench.Scenario{Name: "history-since", As: "gp-system",
		Next: get("/Immunization/_history?_count=10&_since="+url.QueryEscape(fx.since), fx.gpTok)})
	out = append(out, bench.Scenario{Name: "audit-query", As: "auditor",
		Next: get("/AuditEvent?_count=10&patient=Patient/"+fx.patientID, fx.audT)})
	// The mixed workload is what a patient app does when opened: the patient, then their immunisations,
	// medicines and appointments, with reads of the patient twice as common as each search.
	mixed := []string{"/Patient/" + fx.patientID, "/Immunization?patient=" + fx.patientID, "/Patient/" + fx.patientID,
		"/MedicationRequest?patient=" + fx.patientID, "/Appointment?patient=" + fx.patientID}
	out = append(out, bench.Scenario{Name: "mixed", As: "patient", Next: func(_ int, i int64) bench.Request {
		return bench.Request{Method: "GET", Path: mixed[i%int64(len(mixed))], Token: fx.patientTok}
	}})
	return out
}

// checkUnchanged says whether the read patient's compartment is still the size the read scenarios were
// described with: if a write scenario had added to it, the figures would be of another request.
func (fx *fixtures) checkUnchanged(ctx context.Context) error {
	var b struct{ Entry []json.RawMessage }
	if err := benchGetJSON(ctx, fx.hc, fx.base+"/Immunization?_count=1000&patient="+fx.patientID, fx.gpTok, &b); err != nil {
		return err
	}
	if len(b.Entry) != fx.hits {
		return fmt.Errorf("bench: the read patient's compartment held %d Immunizations before the run and %d after: a write scenario wrote to it, so the read figures are not of the request they name", fx.hits, len(b.Entry))
	}
	return nil
}

// updateBodies creates one Immunization per connection and returns their bodies with ids.
func (fx *fixtures) updateBodies(n int) [][]byte {
	var bodies [][]byte
	for range n {
		var created map[string]any
		if err := benchDoJSON(context.Background(), fx.hc, "POST", fx.base+"/Immunization", fx.gpTok, fx.newImmunization(), http.StatusCreated, &created); err != nil {
			return bodies
		}
		id, _ := created["id"].(string)
		delete(created, "meta")
		b, _ := json.Marshal(created)
		fx.updateIDs = append(fx.updateIDs, id)
		bodies = append(bodies, b)
	}
	return bodies
}

// transaction is a transaction Bundle that creates two Immunizations.
func (fx *fixtures) transaction(imm []byte) []byte {
	entry := func() map[string]any {
		return map[string]any{"resource": json.RawMessage(imm), "request": map[string]any{"method": "POST", "url": "Immunization"}}
	}
	b, _ := json.Marshal(map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{entry(), entry()}})
	return b
}

// probe sends a scenario's first request once, so that a scenario that cannot work is reported before
// any load is run.
func probe(ctx context.Context, hc *http.Client, base string, s bench.Scenario) error {
	return bench.Send(ctx, hc, base, s.Next(0, 0))
}

func benchGet(ctx context.Context, hc *http.Client, u, tok string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: GET %s: status %d: %.300s", u, resp.StatusCode, b)
	}
	return b, nil
}

func benchGetJSON(ctx context.Context, hc *http.Client, u, tok string, v any) error {
	b, err := benchGet(ctx, hc, u, tok)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func benchDoJSON(ctx context.Context, hc *http.Client, method, u, tok string, body []byte, want int, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, u, strings.NewReader(string(body)))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/fhir+json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d: %.300s", method, u, resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// startProfiles starts the CPU profile and turns on block and mutex sampling; the returned function writes
// all four profiles.
func startProfiles(prefix string) (func() error, error) {
	f, err := os.Create(prefix + ".cpu")
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	runtime.SetBlockProfileRate(int(time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	return func() error {
		pprof.StopCPUProfile()
		errs := []error{f.Close()}
		for _, p := range []struct{ name, file string }{{"allocs", ".alloc"}, {"block", ".block"}, {"mutex", ".mutex"}} {
			out, err := os.Create(prefix + p.file)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, pprof.Lookup(p.name).WriteTo(out, 0), out.Close())
		}
		runtime.SetBlockProfileRate(0)
		runtime.SetMutexProfileFraction(0)
		return errors.Join(errs...)
	}, nil
}

// gogcNow is the garbage collector's target in force (serve sets it: --gc-percent).
func gogcNow() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
