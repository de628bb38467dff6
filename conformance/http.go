package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// maxBody bounds what the suite reads of one response.
const maxBody = 8 << 20

// exchange is one request and its response, as far as a check needs them.
type exchange struct {
	method string
	url    string
	base   string
	// rid is the X-Request-ID the suite sent.
	rid    string
	status int
	header http.Header
	body   []byte
	err    error

	parsed   bool
	doc      map[string]any
	parseErr error
}

// String is how the exchange appears in the report: the method, the URL relative to the base and the
// status. It never holds headers or bodies (tokens, record data).
func (e *exchange) String() string {
	if e == nil {
		return ""
	}
	u := strings.TrimPrefix(e.url, e.base)
	if u == "" {
		u = "/"
	}
	// Unescaped, a query reads as written: _tag=https://...|cf1, not _tag=https%3A%2F%2F...%7Ccf1.
	if path, q, ok := strings.Cut(u, "?"); ok {
		if uq, err := url.QueryUnescape(q); err == nil {
			u = path + "?" + uq
		}
	}
	u = clip(u, 160)
	if e.err != nil {
		return fmt.Sprintf("%s %s → no answer (%s)", e.method, u, clip(e.err.Error(), 80))
	}
	return fmt.Sprintf("%s %s → %d", e.method, u, e.status)
}

// json parses the body as a JSON object. It is nil when the body is empty or not an object.
func (e *exchange) json() map[string]any {
	if !e.parsed {
		e.parsed = true
		if len(bytes.TrimSpace(e.body)) > 0 {
			e.parseErr = json.Unmarshal(e.body, &e.doc)
		}
	}
	return e.doc
}

func (e *exchange) resourceType() string { return str(e.json(), "resourceType") }

// mediaType is the response's Content-Type without parameters.
func (e *exchange) mediaType() string {
	mt, _, err := mime.ParseMediaType(e.header.Get("Content-Type"))
	if err != nil {
		return strings.ToLower(strings.TrimSpace(e.header.Get("Content-Type")))
	}
	return mt
}

// diagnostics is the first error issue's text, for a reason that says what the server said.
func (e *exchange) diagnostics() string {
	if e.resourceType() != "OperationOutcome" {
		return ""
	}
	for _, is := range list(e.json(), "issue") {
		m, _ := is.(map[string]any)
		if d := str(m, "diagnostics"); d != "" {
			return clip(d, 160)
		}
		if d := str(m, "details", "text"); d != "" {
			return clip(d, 160)
		}
	}
	return ""
}

// request is one request a check makes.
type request struct {
	method string
	// target is a path and query relative to the base ("Patient?_id=1") or an absolute URL (a paging link).
	target string
	body   []byte
	// header holds name, value pairs.
	header []string
	// as is the principal whose token is sent: "main" (default), a role, "none" for no Authorization
	// header, or "raw:<token>" for a token the check made itself.
	as string
}

// do sends a request within the suite's budget and time limit.
func (s *suite) do(r request) *exchange {
	return s.doIn(s.ctx, r, false)
}

// doIn sends a request under ctx; cleanup passes its own context and its reserve of requests.
func (s *suite) doIn(ctx context.Context, r request, reserve bool) *exchange {
	u := r.target
	if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
		u = s.base + "/" + strings.TrimPrefix(u, "/")
	}
	e := &exchange{method: r.method, url: u, base: s.base}
	if !reserve && s.requests.Load() >= s.budget {
		e.err = fmt.Errorf("the request budget (%d) is used up", s.budget)
		return e
	}
	n := s.requests.Add(1)
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		e.err = err
		return e
	}
	req.Header.Set("Accept", "application/fhir+json")
	e.rid = s.requestID(n)
	req.Header.Set("X-Request-ID", e.rid)
	if r.body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for i := 0; i+1 < len(r.header); i += 2 {
		if r.header[i+1] == "" {
			req.Header.Del(r.header[i])
			continue
		}
		req.Header.Set(r.header[i], r.header[i+1])
	}
	e.rid = req.Header.Get("X-Request-ID")
	switch as := r.as; {
	case as == "none":
	case strings.HasPrefix(as, "raw:"):
		req.Header.Set("Authorization", "Bearer "+strings.TrimPrefix(as, "raw:"))
	default:
		if as == "" {
			as = "main"
		}
		if tok, ok := s.tokens[as]; ok {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		e.err = err
		return e
	}
	if s.profile {
		s.mu.Lock()
		s.answered = append(s.answered, answered{rid: e.rid, method: r.method, url: u})
		s.mu.Unlock()
	}
	defer resp.Body.Close()
	e.status = resp.StatusCode
	e.header = resp.Header
	s.noteClock(resp.Header.Get("Date"))
	e.body, err = io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		e.err = fmt.Errorf("reading the response: %w", err)
	}
	return e
}

// requestID is the X-Request-ID of the suite's nth request: the run id makes it unique across runs, so
// that audit records can be matched to the calls that caused them.
func (s *suite) requestID(n int64) string {
	return s.runID + "-" + strconv.FormatInt(n, 10)
}

// do sends a request for a check and remembers it as the request that showed the outcome. A request
// that got no answer fails the check.
func (c *C) do(r request) *exchange {
	e := c.s.do(r)
	c.shown = e
	if e.err != nil {
		c.Fatalf("no answer: %v", e.err)
	}
	return e
}

func (c *C) get(target string, header ...string) *exchange {
	return c.do(request{method: http.MethodGet, target: target, header: header})
}

func (c *C) getAs(as, target string, header ...string) *exchange {
	return c.do(request{method: http.MethodGet, target: target, header: header, as: as})
}

// send sends body (bytes as they are, anything else as JSON) with the FHIR JSON media type.
func (c *C) send(method, target string, body any, header ...string) *exchange {
	return c.sendAs("main", method, target, body, header...)
}

func (c *C) sendAs(as, method, target string, body any, header ...string) *exchange {
	return c.do(request{method: method, target: target, body: encode(body), header: header, as: as})
}

func encode(body any) []byte {
	switch b := body.(type) {
	case nil:
		return nil
	case []byte:
		return b
	case string:
		return []byte(b)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		panic(err) // the suite's own bodies always marshal
	}
	return raw
}

// query builds a query string from name, value pairs in the order given (url.Values would sort them).
func query(pairs ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(pairs); i += 2 {
		if b.Len() > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(pairs[i]))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(pairs[i+1]))
	}
	return b.String()
}

// Assertions. Each fails the check with a reason that names what was expected and what came back, and
// makes the exchange the one reported.

func (c *C) wantStatus(e *exchange, codes ...int) {
	for _, code := range codes {
		if e.status == code {
			return
		}
	}
	c.show(e)
	want := make([]string, len(codes))
	for i, code := range codes {
		want[i] = strconv.Itoa(code)
	}
	why := ""
	if d := e.diagnostics(); d != "" {
		why = ": " + d
	}
	c.Fatalf("status %d, want %s%s", e.status, strings.Join(want, " or "), why)
}

// wantFHIRJSON checks that a body is FHIR JSON: Content-Type application/fhir+json (R4 http.html: the
// server SHALL use the FHIR media type; application/json is accepted as the generic type) and a JSON
// object with a resourceType.
func (c *C) wantFHIRJSON(e *exchange) {
	switch mt := e.mediaType(); mt {
	case "application/fhir+json", "application/json", "application/json+fhir":
	default:
		c.show(e)
		c.Fatalf("Content-Type %q, want application/fhir+json", e.header.Get("Content-Type"))
	}
	if e.json() == nil {
		c.show(e)
		if e.parseErr != nil {
			c.Fatalf("the body is not JSON: %v", e.parseErr)
		}
		c.Fatalf("the body is empty, want a FHIR resource")
	}
	if e.resourceType() == "" {
		c.show(e)
		c.Fatalf("the body has no resourceType")
	}
}

// wantOutcome checks for an OperationOutcome that reports an error: R4 http.html says errors SHOULD
// come with one, and the suite, like the issue it answers, holds servers to it. Each issue needs a
// severity and a code (cardinality 1..1 in R4).
func (c *C) wantOutcome(e *exchange) {
	c.wantFHIRJSON(e)
	if rt := e.resourceType(); rt != "OperationOutcome" {
		c.show(e)
		c.Fatalf("the body is a %s, want an OperationOutcome", rt)
	}
	issues := list(e.json(), "issue")
	if len(issues) == 0 {
		c.show(e)
		c.Fatalf("the OperationOutcome has no issue (issue is 1..*)")
	}
	sawError := false
	for i, is := range issues {
		m, _ := is.(map[string]any)
		sev, code := str(m, "severity"), str(m, "code")
		switch sev {
		case "fatal", "error":
			sawError = true
		case "warning", "information":
		default:
			c.show(e)
			c.Fatalf("OperationOutcome.issue[%d].severity is %q, not fatal, error, warning or information", i, sev)
		}
		if code == "" {
			c.show(e)
			c.Fatalf("OperationOutcome.issue[%d] has no code (1..1)", i)
		}
	}
	if !sawError && e.status >= 400 {
		c.show(e)
		c.Fatalf("a %d answer's OperationOutcome has no issue of severity error or fatal", e.status)
	}
}

// wantError is a status among codes with an OperationOutcome.
func (c *C) wantError(e *exchange, codes ...int) {
	c.wantStatus(e, codes...)
	c.wantOutcome(e)
}

// wantResource checks for a resource of typ with an id.
func (c *C) wantResource(e *exchange, typ string) map[string]any {
	c.wantFHIRJSON(e)
	doc := e.json()
	if rt := str(doc, "resourceType"); rt != typ {
		c.show(e)
		c.Fatalf("the body is a %s, want a %s", rt, typ)
	}
	if str(doc, "id") == "" {
		c.show(e)
		c.Fatalf("the %s has no id", typ)
	}
	return doc
}

// wantBundle checks for a Bundle of the type, with the invariants of R4 that concern a client: every
// entry of a searchset or history has a resource or a request, a search entry's fullUrl is absolute, and
// history entries carry request and response (bdl-3, bdl-4). It returns the Bundle.
func (c *C) wantBundle(e *exchange, typ string) map[string]any {
	c.wantStatus(e, http.StatusOK)
	c.wantFHIRJSON(e)
	b := e.json()
	if rt := str(b, "resourceType"); rt != "Bundle" {
		c.show(e)
		c.Fatalf("the body is a %s, want a Bundle", rt)
	}
	if bt := str(b, "type"); bt != typ {
		c.show(e)
		c.Fatalf("Bundle.type is %q, want %q", bt, typ)
	}
	for i, en := range list(b, "entry") {
		m, _ := en.(map[string]any)
		res, _ := m["resource"].(map[string]any)
		switch typ {
		case "searchset":
			if res == nil {
				c.show(e)
				c.Fatalf("entry[%d] of a searchset has no resource", i)
			}
			if fu := str(m, "fullUrl"); fu != "" && !absolute(fu) {
				c.show(e)
				c.Fatalf("entry[%d].fullUrl %q is not absolute", i, fu)
			}
		case "history":
			if m["request"] == nil || m["response"] == nil {
				c.show(e)
				c.Fatalf("entry[%d] of a history Bundle lacks request or response (bdl-3, bdl-4)", i)
			}
		case "batch-response", "transaction-response":
			if str(m, "response", "status") == "" {
				c.show(e)
				c.Fatalf("entry[%d] of a %s has no response.status", i, typ)
			}
		}
	}
	if t, ok := b["total"]; ok {
		if n, isNum := t.(float64); !isNum || n < 0 || n != float64(int64(n)) {
			c.show(e)
			c.Fatalf("Bundle.total %v is not an unsignedInt", t)
		}
	}
	return b
}

func absolute(u string) bool {
	p, err := url.Parse(u)
	return err == nil && p.IsAbs() || strings.HasPrefix(u, "urn:")
}

// wantETag checks the weak ETag that R4 requires on read, vread, create and update: W/"<versionId>".
func (c *C) wantETag(e *exchange, version string) {
	et := e.header.Get("ETag")
	if et == "" {
		c.show(e)
		c.Fatalf("no ETag header (R4 http.html: the server SHALL return an ETag with the versionId)")
	}
	if version != "" && et != `W/"`+version+`"` {
		c.show(e)
		c.Fatalf("ETag is %s, want W/%q (the versionId in meta)", et, version)
	}
}

// Entries of a Bundle.

type entry struct {
	fullURL  string
	resource map[string]any
	mode     string
	typ, id  string
}

func entries(b map[string]any) []entry {
	var out []entry
	for _, en := range list(b, "entry") {
		m, _ := en.(map[string]any)
		res, _ := m["resource"].(map[string]any)
		out = append(out, entry{fullURL: str(m, "fullUrl"), resource: res, mode: str(m, "search", "mode"),
			typ: str(res, "resourceType"), id: str(res, "id")})
	}
	return out
}

// matches are the ids of the entries of typ that the search matched (mode match, or no mode).
func matches(b map[string]any, typ string) []string {
	var ids []string
	for _, en := range entries(b) {
		if en.typ == typ && (en.mode == "" || en.mode == "match") {
			ids = append(ids, en.id)
		}
	}
	return ids
}

// link returns the URL of a Bundle link relation.
func link(b map[string]any, rel string) string {
	for _, l := range list(b, "link") {
		m, _ := l.(map[string]any)
		if str(m, "relation") == rel {
			return str(m, "url")
		}
	}
	return ""
}

// JSON helpers over the generic tree.

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func str(v any, path ...string) string {
	s, _ := get(v, path...).(string)
	return s
}

func list(v any, path ...string) []any {
	l, _ := get(v, path...).([]any)
	return l
}

func versionOf(res map[string]any) string { return str(res, "meta", "versionId") }

// clone copies a JSON tree.
func clone(m map[string]any) map[string]any {
	raw, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return out
}

// sameJSON compares two values as JSON.
func sameJSON(a, b any) bool {
	ra, _ := json.Marshal(a)
	rb, _ := json.Marshal(b)
	return bytes.Equal(ra, rb)
}
