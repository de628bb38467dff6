package conformance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TagSystem is the CodeSystem of the meta.tag that marks every resource the suite creates; the code is
// the run id. A search by it finds what a run left behind.
const TagSystem = "https://gpfhir.example/CodeSystem/conformance-run"

// IdentifierSystem is the system of the identifiers the suite gives its resources.
const IdentifierSystem = "https://gpfhir.example/Id/conformance"

// ProfileGPFHIR selects the checks of gpfhir's own promises on top of the FHIR ones.
const ProfileGPFHIR = "gpfhir"

// Role names accepted in Config.Roles.
const (
	RolePatient = "patient"
	RoleGP      = "gp"
	RoleAuditor = "auditor"
)

// TokenSource returns a bearer token. It is called once per run, before the first check.
type TokenSource func(ctx context.Context) (string, error)

// StaticToken is a token given on the command line.
func StaticToken(token string) TokenSource {
	return func(context.Context) (string, error) { return strings.TrimSpace(token), nil }
}

// CommandToken runs a shell command and takes the last non-empty line of its standard output as the
// token, so that a command may print notes before it. Its standard error is quoted (shortened) when it
// fails, never its output, which may hold a token.
func CommandToken(command string) TokenSource {
	return func(ctx context.Context) (string, error) {
		cmd := exec.CommandContext(ctx, "sh", "-c", command)
		var stderr strings.Builder
		cmd.Stderr = &limitedWriter{w: &stderr, n: 2000}
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("token command failed: %v: %s", err, clip(strings.TrimSpace(stderr.String()), 300))
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		tok := strings.TrimSpace(lines[len(lines)-1])
		if tok == "" || strings.ContainsAny(tok, " \t") {
			return "", errors.New("token command printed no token (its last line must be the token alone)")
		}
		return tok, nil
	}
}

// limitedWriter keeps the first n bytes written to it: enough of a failing command's error to quote.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		l.n -= k
		_, _ = l.w.Write(p[:k])
	}
	return len(p), nil
}

// Role is a further caller: RolePatient (repeatable: a second patient shows whether one patient can
// reach another's data), RoleGP (a GP clinical system, for the gpfhir checks) or RoleAuditor.
type Role struct {
	Name  string
	Token TokenSource
}

// Config is what a run needs.
type Config struct {
	// BaseURL is the FHIR base, such as http://127.0.0.1:8080 or https://example.org/fhir.
	BaseURL string
	// Token is the main caller, which creates, reads, changes and deletes the suite's data. Nil sends no
	// Authorization header.
	Token TokenSource
	Roles []Role
	// Only runs the checks whose ids match one of these globs (* matches any run of characters,
	// slashes included); empty runs every check.
	Only []string
	// AllowFail names checks (globs) whose failure is reported as a known failure and does not fail the
	// run: for defects a team knows of and tracks, so that they stay visible instead of being left out.
	AllowFail []string
	// Origin is the browser origin the CORS checks send, one the server allows (such as
	// http://127.0.0.1:5173 for gpfhir serve --dev); empty means https://conformance.example.
	Origin string
	// Profile adds the checks of a server's own promises; ProfileGPFHIR is the only one.
	Profile string
	// MaxRequests bounds the requests of the checks (cleanup has its own reserve); 0 means 5000.
	MaxRequests int
	// Timeout bounds the checks (the cleanup has two minutes of its own after them); 0 means 10 minutes.
	Timeout time.Duration
	// RequestTimeout bounds each request; 0 means 30 seconds.
	RequestTimeout time.Duration
	// HTTPClient is the client to use; nil makes one. Redirects are not followed either way: a FHIR
	// server answers at the URL asked.
	HTTPClient *http.Client
	// Progress, when not nil, receives a progress line while the suite runs: rewritten in place when
	// ProgressInPlace (a terminal), otherwise a line every few seconds.
	Progress        io.Writer
	ProgressInPlace bool
}

// Run runs the suite. The error is for a run that could not start (no base URL, a token command that
// failed); everything the server does wrong is in the Report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s, err := newSuite(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer s.stopProgress()
	s.runAll()
	return s.report(), nil
}

type suite struct {
	cfg      Config
	hc       *http.Client
	base     string
	runID    string
	started  time.Time
	ctx      context.Context
	cancel   context.CancelFunc
	tokens   map[string]string // principal -> token
	patients []string          // principals of the patient roles, in order
	cs       *capStmt
	profile  bool

	requests atomic.Int64
	budget   int64

	mu       sync.Mutex
	results  []Result
	fixtures map[string]*fixture
	order    []*fixture  // creation order, for cleanup
	extra    []createdID // resources created outside fixtures (conditional creates, bundles)
	home     string      // the Organization reference the suite's patients are registered at
	nhs      map[string]string
	// answered lists the requests that got an answer, for the gpfhir profile, which looks for their audit
	// records.
	answered []answered
	// skew is the server's clock minus the suite's, from the Date header of the first answer: the
	// server stamps lastUpdated and AuditEvent.recorded by its own clock.
	skew      time.Duration
	skewKnown atomic.Bool

	progressStop chan struct{}
	progressDone chan struct{}
	running      atomic.Value // the id of the check running
}

type createdID struct{ typ, id string }

func newSuite(ctx context.Context, cfg Config) (*suite, error) {
	base := strings.TrimRight(strings.TrimSpace(cfg.BaseURL), "/")
	if !strings.HasPrefix(base, "http://") && !strings.HasPrefix(base, "https://") {
		return nil, fmt.Errorf("the base URL %q must start with http:// or https://", cfg.BaseURL)
	}
	if cfg.Profile != "" && cfg.Profile != ProfileGPFHIR {
		return nil, fmt.Errorf("unknown profile %q: the only profile is %q", cfg.Profile, ProfileGPFHIR)
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 5000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 30 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	c := *hc
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	var idb [4]byte
	_, _ = rand.Read(idb[:])
	s := &suite{
		cfg: cfg, hc: &c, base: base, runID: "cf" + hex.EncodeToString(idb[:]),
		started: time.Now(), tokens: map[string]string{}, fixtures: map[string]*fixture{},
		budget: int64(cfg.MaxRequests), profile: cfg.Profile == ProfileGPFHIR,
	}
	s.ctx, s.cancel = context.WithTimeout(ctx, cfg.Timeout)
	tctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	get := func(name string, src TokenSource) error {
		if src == nil {
			return nil
		}
		tok, err := src(tctx)
		if err != nil {
			return fmt.Errorf("token for %s: %w", name, err)
		}
		if tok == "" {
			return fmt.Errorf("token for %s is empty", name)
		}
		s.tokens[name] = tok
		return nil
	}
	if err := get("main", cfg.Token); err != nil {
		s.cancel()
		return nil, err
	}
	for _, r := range cfg.Roles {
		name := r.Name
		switch r.Name {
		case RolePatient:
			name = fmt.Sprintf("patient%d", len(s.patients)+1)
			s.patients = append(s.patients, name)
		case RoleGP, RoleAuditor:
			if _, dup := s.tokens[name]; dup {
				s.cancel()
				return nil, fmt.Errorf("--role %s is given twice", r.Name)
			}
		default:
			s.cancel()
			return nil, fmt.Errorf("unknown role %q: roles are patient, gp and auditor", r.Name)
		}
		if err := get(name, r.Token); err != nil {
			s.cancel()
			return nil, err
		}
	}
	s.startProgress()
	return s, nil
}

// gp is the principal that acts as a GP clinical system: the gp role when given, else the main token.
func (s *suite) gp() string {
	if _, ok := s.tokens[RoleGP]; ok {
		return RoleGP
	}
	return "main"
}

// principalFor is who reads and searches typ: AuditEvents are for auditors on servers that keep them
// from clinical callers, so the auditor role reads them when given.
func (s *suite) principalFor(typ string) string {
	if typ == "AuditEvent" {
		if _, ok := s.tokens[RoleAuditor]; ok {
			return RoleAuditor
		}
	}
	return "main"
}

func (s *suite) runAll() {
	defer s.cancel()
	if !s.capabilities() {
		s.cleanup()
		return
	}
	s.authChecks()
	s.formatChecks()
	s.crudChecks()
	s.historyChecks()
	s.searchChecks()
	s.conditionalChecks()
	s.headerChecks()
	s.bundleChecks()
	s.operationChecks()
	s.negativeChecks()
	s.patientChecks()
	if s.profile {
		s.gpfhirChecks()
	}
	s.cleanup()
}

// Outcome is the result of one check.
type Outcome string

const (
	Pass Outcome = "pass"
	Fail Outcome = "fail"
	Skip Outcome = "skip"
)

// abort ends a check early with an outcome: Fatalf and Skipf panic with it and runCheck recovers it.
type abort struct {
	outcome Outcome
	reason  string
}

// C is the handle a check works through: its requests, its assertions and its outcome.
type C struct {
	s     *suite
	id    string
	shown *exchange
	note  string
}

// Fatalf fails the check with a reason.
func (c *C) Fatalf(format string, args ...any) {
	panic(abort{Fail, fmt.Sprintf(format, args...)})
}

// Skipf skips the check with a reason.
func (c *C) Skipf(format string, args ...any) {
	panic(abort{Skip, fmt.Sprintf(format, args...)})
}

// Notef records what a passing check showed, for the table.
func (c *C) Notef(format string, args ...any) { c.note = fmt.Sprintf(format, args...) }

// show makes e the request reported with the check.
func (c *C) show(e *exchange) {
	if e != nil {
		c.shown = e
	}
}

// check runs one check, unless --only leaves it out.
func (s *suite) check(id string, fn func(c *C)) Outcome { return s.runCheck(id, fn, false) }

// runCheck runs a check; always runs it past the time limit and the budget (the cleanup's own check).
func (s *suite) runCheck(id string, fn func(c *C), always bool) Outcome {
	if !s.selected(id) && !always {
		return ""
	}
	s.running.Store(id)
	res := Result{ID: id}
	start := time.Now()
	c := &C{s: s, id: id}
	switch {
	case always:
		s.runFn(c, fn, &res)
	case s.ctx.Err() != nil:
		res.Outcome, res.Reason = Fail, "not run: the run was stopped (interrupted, or its time limit of "+s.cfg.Timeout.String()+" was reached)"
	case s.requests.Load() >= s.budget:
		res.Outcome, res.Reason = Fail, fmt.Sprintf("not run: the suite's request budget (%d) was used up", s.budget)
	default:
		s.runFn(c, fn, &res)
	}
	if c.shown != nil {
		res.Request = c.shown.String()
	}
	res.Elapsed = time.Since(start)
	if res.Outcome == Fail && matchAny(s.cfg.AllowFail, id) {
		res.KnownFailure = true
	}
	s.mu.Lock()
	s.results = append(s.results, res)
	s.mu.Unlock()
	return res.Outcome
}

func (s *suite) runFn(c *C, fn func(c *C), res *Result) {
	defer func() {
		if r := recover(); r != nil {
			if a, ok := r.(abort); ok {
				res.Outcome, res.Reason = a.outcome, a.reason
				return
			}
			res.Outcome, res.Reason = Fail, fmt.Sprintf("suite error: %v\n%s", r, debug.Stack())
		}
	}()
	fn(c)
	res.Outcome, res.Reason = Pass, c.note
}

func (s *suite) selected(id string) bool {
	return len(s.cfg.Only) == 0 || matchAny(s.cfg.Only, id)
}

// selectedPrefix reports whether any check whose id starts with prefix could be selected, so that work
// done only for those checks (creating data) is not done for nothing.
func (s *suite) selectedPrefix(prefix string) bool {
	if len(s.cfg.Only) == 0 {
		return true
	}
	for _, g := range s.cfg.Only {
		if globPrefixMatch(g, prefix) {
			return true
		}
	}
	return false
}

func matchAny(globs []string, id string) bool {
	for _, g := range globs {
		if glob(g, id) {
			return true
		}
	}
	return false
}

// glob matches s against a pattern where * is any run of characters (slashes too) and ? one character.
func glob(pattern, s string) bool {
	px, sx := 0, 0
	nextPx, nextSx := -1, -1
	for px < len(pattern) || sx < len(s) {
		if px < len(pattern) {
			switch c := pattern[px]; c {
			case '*':
				nextPx, nextSx = px, sx+1
				px++
				continue
			case '?':
				if sx < len(s) {
					px++
					sx++
					continue
				}
			default:
				if sx < len(s) && s[sx] == c {
					px++
					sx++
					continue
				}
			}
		}
		if nextSx > 0 && nextSx <= len(s) {
			px, sx = nextPx, nextSx
			continue
		}
		return false
	}
	return true
}

// globPrefixMatch reports whether some string that starts with prefix could match pattern.
func globPrefixMatch(pattern, prefix string) bool {
	lit := pattern
	if i := strings.IndexAny(pattern, "*?"); i >= 0 {
		lit = pattern[:i]
		return strings.HasPrefix(prefix, lit) || strings.HasPrefix(lit, prefix)
	}
	return strings.HasPrefix(lit, prefix)
}

func (s *suite) startProgress() {
	if s.cfg.Progress == nil {
		return
	}
	s.progressStop = make(chan struct{})
	s.progressDone = make(chan struct{})
	every := 5 * time.Second
	if s.cfg.ProgressInPlace {
		every = 200 * time.Millisecond
	}
	go func() {
		defer close(s.progressDone)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.progressStop:
				if s.cfg.ProgressInPlace {
					fmt.Fprint(s.cfg.Progress, "\r\033[K")
				}
				return
			case <-t.C:
				s.printProgress()
			}
		}
	}()
}

func (s *suite) printProgress() {
	s.mu.Lock()
	var pass, fail, skip int
	for _, r := range s.results {
		switch r.Outcome {
		case Pass:
			pass++
		case Fail:
			fail++
		case Skip:
			skip++
		}
	}
	s.mu.Unlock()
	cur, _ := s.running.Load().(string)
	line := fmt.Sprintf("conformance: %d checks (%d pass, %d fail, %d skip), %d requests, %s; at %s",
		pass+fail+skip, pass, fail, skip, s.requests.Load(), time.Since(s.started).Round(time.Second), cur)
	if s.cfg.ProgressInPlace {
		fmt.Fprint(s.cfg.Progress, "\r\033[K"+clip(line, 150))
		return
	}
	fmt.Fprintln(s.cfg.Progress, line)
}

func (s *suite) stopProgress() {
	if s.progressStop == nil {
		return
	}
	close(s.progressStop)
	<-s.progressDone
}

func (s *suite) report() *Report {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &Report{
		BaseURL: s.base, RunID: s.runID, Profile: s.cfg.Profile, Started: s.started.UTC(),
		Duration: time.Since(s.started), Requests: int(s.requests.Load()), Results: append([]Result(nil), s.results...),
	}
}

func (s *suite) noteClock(date string) {
	if s.skewKnown.Load() || date == "" {
		return
	}
	if t, err := http.ParseTime(date); err == nil {
		s.mu.Lock()
		if !s.skewKnown.Load() {
			s.skew = time.Until(t)
			s.skewKnown.Store(true)
		}
		s.mu.Unlock()
	}
}

// serverNow is the time on the server's clock, as far as its Date headers tell.
func (s *suite) serverNow() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return time.Now().Add(s.skew)
}

// since is an instant on the server's clock shortly before the run began, for _lastUpdated, _since and
// audit searches of what the run did: two minutes' margin for the Date header's whole seconds and
// clocks that step.
func (s *suite) since() string {
	s.mu.Lock()
	skew := s.skew
	s.mu.Unlock()
	return s.started.Add(skew - 2*time.Minute).UTC().Format("2006-01-02T15:04:05Z")
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && (s[cut]&0xC0) == 0x80 {
		cut--
	}
	return s[:cut] + "…"
}
