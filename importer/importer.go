package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/tidwall/gjson"
)

// Poster sends one Bundle to the server (Post), or a search (Get, a path with its query), and returns
// the HTTP status and body of the answer.
type Poster interface {
	Post(ctx context.Context, bundle []byte) (int, []byte, error)
	Get(ctx context.Context, path string) (int, []byte, error)
}

// Handler posts to an http.Handler in process (api.Server.LocalHandler).
type Handler struct{ H http.Handler }

// Post implements Poster.
func (h Handler) Post(ctx context.Context, bundle []byte) (int, []byte, error) {
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/", bytes.NewReader(bundle))
	r.Header.Set("Content-Type", "application/fhir+json")
	r.Header.Set("Prefer", "return=minimal")
	w := httptest.NewRecorder()
	h.H.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes(), nil
}

// Get implements Poster.
func (h Handler) Get(ctx context.Context, path string) (int, []byte, error) {
	r := httptest.NewRequestWithContext(ctx, http.MethodGet, path, nil)
	r.Header.Set("Accept", "application/fhir+json")
	w := httptest.NewRecorder()
	h.H.ServeHTTP(w, r)
	return w.Code, w.Body.Bytes(), nil
}

// Remote posts to a running server over HTTP with a bearer token.
type Remote struct {
	BaseURL string
	Token   string
	Client  *http.Client
}

// Post implements Poster.
func (rm Remote) Post(ctx context.Context, bundle []byte) (int, []byte, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(rm.BaseURL, "/")+"/", bytes.NewReader(bundle))
	if err != nil {
		return 0, nil, err
	}
	r.Header.Set("Content-Type", "application/fhir+json")
	r.Header.Set("Accept", "application/fhir+json")
	r.Header.Set("Prefer", "return=minimal")
	r.Header.Set("Authorization", "Bearer "+rm.Token)
	c := rm.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Get implements Poster.
func (rm Remote) Get(ctx context.Context, path string) (int, []byte, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(rm.BaseURL, "/")+path, nil)
	if err != nil {
		return 0, nil, err
	}
	r.Header.Set("Accept", "application/fhir+json")
	r.Header.Set("Authorization", "Bearer "+rm.Token)
	c := rm.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// Options control an import.
type Options struct {
	// PracticeRef ("Organization/<id>") registers Patients that arrive with no practice there; empty
	// skips them.
	PracticeRef string
	// Workers is the number of Bundles in flight at once (default DefaultWorkers).
	Workers int
	// BatchSize is the number of entries per batch Bundle for ndjson and collections (default 200).
	BatchSize int
	// MaxEntries is the most entries the server takes in one transaction (default 1000, gpfhir's
	// default and its most); a larger transaction is posted in parts (postParts).
	MaxEntries int
	// Progress receives a progress bar (Terminal) or a plain line every Every (default 5s).
	Progress io.Writer
	Terminal bool
	Every    time.Duration
	// Now is the clock (tests may fix it).
	Now func() time.Time
}

// Reasons an entry was skipped. Failures are the reasons that make the import fail.
const (
	ReasonNotServed  = "type not served"
	ReasonNoPractice = "patient has no registered practice (give --practice ODS)"
	ReasonInvalid    = "invalid"
	ReasonRefused    = "refused"
	ReasonConflict   = "conflict"
	ReasonError      = "server error"
	ReasonUnreadable = "unreadable input"
)

var failures = map[string]bool{ReasonInvalid: true, ReasonRefused: true, ReasonConflict: true, ReasonError: true, ReasonUnreadable: true}

// Summary is what an import did.
type Summary struct {
	Stored    int64
	Unchanged int64
	// StoredByType counts the stored entries per resource type.
	StoredByType map[string]int64
	Skipped      map[string]int64
	// Examples are the first few diagnostics of each skip reason.
	Examples map[string][]string
	// Split names the transactions too large for the server, each posted as several.
	Split   []string
	Elapsed time.Duration
	mu      sync.Mutex
	// stored holds the shared resources (Type/id) this run has created or found stored, so that
	// skipPresent asks the server only about the others. Every lookup is an audited search whose record
	// waits for the writer behind the other workers' commits; the same few practices and practitioners
	// come in every Synthea bundle.
	stored map[string]bool
	// creating holds the shared resources a worker is looking up or creating, each with a channel
	// closed when that worker is done (claimShared).
	creating map[string]chan struct{}
}

// claimShared sorts the shared resources urls (Type/id) of one bundle into those this run has seen
// stored and those the caller is now the only worker to look up and create, until it calls release.
// Without the claim, two workers that both found a practitioner absent would both create it, and the
// second write would overwrite the first with its own bundle's content; a create keeps the first. A
// claim held by another worker is waited for before any is taken, so no worker holds one while it
// waits for another's.
func (s *Summary) claimShared(ctx context.Context, urls []string) (known map[string]bool, release func(), err error) {
	for {
		s.mu.Lock()
		known = map[string]bool{}
		var wait chan struct{}
		for _, u := range urls {
			if s.stored[u] {
				known[u] = true
			} else if ch := s.creating[u]; ch != nil {
				wait = ch
				break
			}
		}
		if wait == nil {
			mine := make(chan struct{})
			var claimed []string
			for _, u := range urls {
				if !known[u] && s.creating[u] == nil {
					if s.creating == nil {
						s.creating = map[string]chan struct{}{}
					}
					s.creating[u] = mine
					claimed = append(claimed, u)
				}
			}
			s.mu.Unlock()
			return known, func() {
				s.mu.Lock()
				for _, u := range claimed {
					delete(s.creating, u)
				}
				s.mu.Unlock()
				close(mine)
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

func (s *Summary) markStored(urls ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored == nil {
		s.stored = map[string]bool{}
	}
	for _, u := range urls {
		s.stored[u] = true
	}
}

// Done is every entry accounted for.
func (s *Summary) Done() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.Stored + s.Unchanged
	for _, v := range s.Skipped {
		n += v
	}
	return n
}

// Failed reports whether any entry failed (as opposed to being skipped by design).
func (s *Summary) Failed() bool {
	for r, n := range s.Skipped {
		if failures[r] && n > 0 {
			return true
		}
	}
	return false
}

func (s *Summary) skip(reason, example string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Skipped[reason]++
	if example != "" && len(s.Examples[reason]) < 3 {
		s.Examples[reason] = append(s.Examples[reason], example)
	}
}

func (s *Summary) add(stored, unchanged int64, byType map[string]int64) {
	s.mu.Lock()
	s.Stored += stored
	s.Unchanged += unchanged
	for t, n := range byType {
		s.StoredByType[t] += n
	}
	s.mu.Unlock()
}

// Write prints the summary.
func (s *Summary) Write(w io.Writer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	total := s.Stored + s.Unchanged
	for _, n := range s.Skipped {
		total += n
	}
	rate := float64(total) / max(s.Elapsed.Seconds(), 1e-9)
	fmt.Fprintf(w, "import: %d entries in %s (%.0f/s): %d stored, %d unchanged", total, s.Elapsed.Round(time.Millisecond), rate, s.Stored, s.Unchanged)
	var reasons []string
	for r := range s.Skipped {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	skipped := int64(0)
	for _, r := range reasons {
		skipped += s.Skipped[r]
	}
	fmt.Fprintf(w, ", %d skipped\n", skipped)
	if len(s.Split) > 0 {
		fmt.Fprintf(w, "  too large for one transaction, posted in parts (each all or nothing, not the whole): %d\n", len(s.Split))
		for _, ex := range s.Split[:min(len(s.Split), 3)] {
			fmt.Fprintf(w, "    e.g. %s\n", ex)
		}
	}
	if len(s.StoredByType) > 0 {
		var types []string
		for t := range s.StoredByType {
			types = append(types, t)
		}
		sort.Strings(types)
		var parts []string
		for _, t := range types {
			parts = append(parts, fmt.Sprintf("%s %d", t, s.StoredByType[t]))
		}
		fmt.Fprintf(w, "  stored: %s\n", strings.Join(parts, ", "))
	}
	for _, r := range reasons {
		fmt.Fprintf(w, "  skipped, %s: %d\n", r, s.Skipped[r])
		for _, ex := range s.Examples[r] {
			fmt.Fprintf(w, "    e.g. %s\n", ex)
		}
	}
}

// DefaultWorkers is one more than the cores Go uses: while one worker's Bundle is in the store's single
// writer, the others parse and check theirs on every core. The Synthea sample on two cores, alternated:
// 2,061 and 2,205 resources/s with two workers, 2,395 and 2,446 with three; four gave no more than three.
func DefaultWorkers() int { return runtime.GOMAXPROCS(0) + 1 }

// Run imports every document under paths ("-" is stdin) through p.
func Run(ctx context.Context, paths []string, stdin io.Reader, p Poster, opt Options) (*Summary, error) {
	if opt.Workers <= 0 {
		opt.Workers = DefaultWorkers()
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 200
	}
	if opt.MaxEntries <= 0 {
		opt.MaxEntries = 1000
	}
	if opt.Every <= 0 {
		opt.Every = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	files, total, err := inputFiles(paths)
	if err != nil {
		return nil, err
	}
	sum := &Summary{Skipped: map[string]int64{}, Examples: map[string][]string{}, StoredByType: map[string]int64{}}
	start := opt.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var read atomic.Int64
	docs := make(chan doc, opt.Workers)
	var readErr error
	go func() {
		defer close(docs)
		readErr = readInputs(ctx, files, stdin, &read, docs)
	}()
	stopProgress := startProgress(ctx, opt, sum, &read, total, start)
	var wg sync.WaitGroup
	var postErr error
	var once sync.Once
	for i := 0; i < opt.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for d := range docs {
				if err := importDoc(ctx, p, opt, sum, d); err != nil {
					once.Do(func() { postErr = err; cancel() })
				}
			}
		}()
	}
	wg.Wait()
	stopProgress()
	sum.Elapsed = opt.Now().Sub(start)
	if postErr != nil {
		return sum, postErr
	}
	if readErr != nil && ctx.Err() == nil {
		return sum, readErr
	}
	return sum, nil
}

// importDoc turns one document into Bundles and posts them. An error is returned only when the server
// cannot be reached; everything the server answers is counted.
func importDoc(ctx context.Context, p Poster, opt Options, sum *Summary, d doc) error {
	if d.lines {
		var group []json.RawMessage
		sc := bufio.NewScanner(bytes.NewReader(d.body))
		sc.Buffer(make([]byte, 1<<16), maxDoc)
		line := 0
		for sc.Scan() {
			line++
			b := bytes.TrimSpace(sc.Bytes())
			if len(b) == 0 {
				continue
			}
			if !json.Valid(b) {
				sum.skip(ReasonUnreadable, fmt.Sprintf("%s line %d is not JSON", d.name, line))
				continue
			}
			group = append(group, append(json.RawMessage(nil), b...))
			if len(group) == opt.BatchSize {
				if err := postResources(ctx, p, opt, sum, d.name, group); err != nil {
					return err
				}
				group = nil
			}
		}
		if len(group) > 0 {
			return postResources(ctx, p, opt, sum, d.name, group)
		}
		return nil
	}
	// A transaction or batch Bundle (every Synthea file) is decoded once, by postTransaction, which
	// reports a body that is not JSON; reading the two names first does not decode the whole of it.
	if h := gjson.GetManyBytes(d.body, "resourceType", "type"); h[0].Str == "Bundle" && (h[1].Str == "transaction" || h[1].Str == "batch") {
		return postTransaction(ctx, p, opt, sum, d.name, h[1].Str, d.body)
	}
	var head struct {
		ResourceType string `json:"resourceType"`
		Type         string `json:"type"`
	}
	if err := json.Unmarshal(d.body, &head); err != nil || head.ResourceType == "" {
		sum.skip(ReasonUnreadable, d.name+" is not a FHIR JSON resource")
		return nil
	}
	if head.ResourceType != "Bundle" {
		return postResources(ctx, p, opt, sum, d.name, []json.RawMessage{d.body})
	}
	switch head.Type {
	case "transaction", "batch":
		return postTransaction(ctx, p, opt, sum, d.name, head.Type, d.body)
	}
	// A collection, searchset, history or document: its resources, each on its own.
	var b struct {
		Entry []struct {
			Resource json.RawMessage `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(d.body, &b); err != nil {
		sum.skip(ReasonUnreadable, d.name+": "+err.Error())
		return nil
	}
	var group []json.RawMessage
	for _, e := range b.Entry {
		if len(e.Resource) == 0 {
			continue
		}
		group = append(group, e.Resource)
		if len(group) == opt.BatchSize {
			if err := postResources(ctx, p, opt, sum, d.name, group); err != nil {
				return err
			}
			group = nil
		}
	}
	if len(group) > 0 {
		return postResources(ctx, p, opt, sum, d.name, group)
	}
	return nil
}

// entry is one Bundle entry as the importer handles it.
type entry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Request  *entryRequest   `json:"request,omitempty"`
	// createOnly: the input POSTed it (create); the PUT it became must not overwrite a stored version.
	createOnly bool
}

type entryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfMatch     string `json:"ifMatch,omitempty"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
}

// postResources posts standalone resources as one batch: PUT Type/id when they have an id (so a
// second import changes nothing), POST otherwise.
func postResources(ctx context.Context, p Poster, opt Options, sum *Summary, name string, resources []json.RawMessage) error {
	var entries []*entry
	for _, raw := range resources {
		e := &entry{Resource: raw, Request: &entryRequest{Method: http.MethodPost}}
		entries = append(entries, e)
	}
	kept := prepare(entries, opt, sum, name)
	// A resource on its own is a state to hold, not a create: it updates what is stored.
	for _, e := range kept {
		e.createOnly = false
	}
	if len(kept) == 0 {
		return nil
	}
	return postBundle(ctx, p, sum, name, "batch", kept)
}

// postTransaction posts a transaction or batch Bundle, reshaped for idempotence.
func postTransaction(ctx context.Context, p Poster, opt Options, sum *Summary, name, typ string, body []byte) error {
	var b struct {
		Entry []*entry `json:"entry"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		sum.skip(ReasonUnreadable, name+": "+err.Error())
		return nil
	}
	kept := prepare(b.Entry, opt, sum, name)
	kept, release, err := skipPresent(ctx, p, sum, kept)
	if err != nil {
		return err
	}
	defer release()
	if len(kept) == 0 {
		return nil
	}
	if typ == "transaction" && len(kept) > opt.MaxEntries {
		return postParts(ctx, p, sum, name, kept, opt.MaxEntries)
	}
	return postBundle(ctx, p, sum, name, typ, kept)
}

// postParts posts a transaction too large for the server as several of at most max entries, in order.
// One Synthea patient has more than a thousand entries, and the alternative, skipping that patient's
// whole record, loses data the import promises to keep. Each part is all or nothing; the whole is not,
// which the summary says, and an interrupted import is simply run again. A reference to an entry's
// fullUrl becomes the Type/id its PUT writes, so that each part stands alone; the Patients and the
// shared resources (practices, practitioners) go in the first part, since the server checks the
// patient's practice for every write in a patient's compartment.
func postParts(ctx context.Context, p Poster, sum *Summary, name string, entries []*entry, max int) error {
	to := map[string]string{}
	for _, e := range entries {
		if e.FullURL != "" && e.Request != nil && strings.EqualFold(e.Request.Method, http.MethodPut) && !strings.Contains(e.Request.URL, "?") {
			to[e.FullURL] = e.Request.URL
		}
	}
	first, rest := []*entry{}, []*entry{}
	for _, e := range entries {
		e.Resource = replaceRefs(e.Resource, to)
		typ, _, _ := strings.Cut(e.Request.URL, "/")
		typ, _, _ = strings.Cut(typ, "?")
		if _, inCompartment := auth.PatientCompartment(typ); typ == "Patient" || !inCompartment {
			first = append(first, e)
		} else {
			rest = append(rest, e)
		}
	}
	ordered := append(first, rest...)
	sum.mu.Lock()
	sum.Split = append(sum.Split, fmt.Sprintf("%s: %d entries in %d transactions", name, len(ordered), (len(ordered)+max-1)/max))
	sum.mu.Unlock()
	for start := 0; start < len(ordered); start += max {
		if err := postBundle(ctx, p, sum, name, "transaction", ordered[start:min(start+max, len(ordered))]); err != nil {
			return err
		}
	}
	return nil
}

// skipPresent leaves out the creates of shared resources that are already stored (counted unchanged),
// pointing the references to them at the stored resource. The same Organization comes in many Synthea bundles, with
// different content in some: a create keeps the first, so that a second import stores nothing. The
// caller posts the rest and then calls release, which lets other workers' bundles with the same shared
// resources go on (Summary.claimShared).
func skipPresent(ctx context.Context, p Poster, sum *Summary, entries []*entry) (kept []*entry, release func(), err error) {
	byType := map[string][]*entry{}
	var urls []string
	for _, e := range entries {
		typ, _, _ := strings.Cut(e.Request.URL, "/")
		// A patient's own resources come once each and are left to the server's no-op update; the
		// shared ones (practices, practitioners) come in many bundles, and are looked up in bulk.
		if _, inCompartment := auth.PatientCompartment(typ); e.createOnly && !inCompartment {
			byType[typ] = append(byType[typ], e)
			urls = append(urls, e.Request.URL)
		}
	}
	known, release, err := sum.claimShared(ctx, urls)
	if err != nil {
		return nil, nil, err
	}
	kept, err = skipKnown(ctx, p, sum, entries, byType, known)
	if err != nil {
		release()
		return nil, nil, err
	}
	return kept, release, nil
}

// skipKnown is skipPresent once the claims are taken: the shared resources in known are present without
// asking the server, and the others are looked up.
func skipKnown(ctx context.Context, p Poster, sum *Summary, entries []*entry, byType map[string][]*entry, known map[string]bool) ([]*entry, error) {
	present := map[*entry]bool{}
	for typ, all := range byType {
		var list []*entry
		for _, e := range all {
			if known[e.Request.URL] {
				present[e] = true
			} else {
				list = append(list, e)
			}
		}
		for start := 0; start < len(list); start += 100 {
			chunk := list[start:min(start+100, len(list))]
			ids := make([]string, len(chunk))
			byID := map[string]*entry{}
			for i, e := range chunk {
				_, ids[i], _ = strings.Cut(e.Request.URL, "/")
				byID[ids[i]] = e
			}
			status, body, err := p.Get(ctx, "/"+typ+"?_elements=id&_count=100&_id="+strings.Join(ids, ","))
			if err != nil {
				return nil, err
			}
			if status != http.StatusOK {
				// Not allowed to search, say: the server's no-op updates still keep a rerun from
				// storing the same content twice.
				continue
			}
			var b struct {
				Entry []struct {
					Resource struct {
						ID string `json:"id"`
					} `json:"resource"`
				} `json:"entry"`
			}
			if json.Unmarshal(body, &b) != nil {
				continue
			}
			for _, f := range b.Entry {
				if e, ok := byID[f.Resource.ID]; ok {
					present[e] = true
					sum.markStored(e.Request.URL)
				}
			}
		}
	}
	if len(present) == 0 {
		return entries, nil
	}
	to := map[string]string{}
	var out []*entry
	for _, e := range entries {
		if present[e] {
			if e.FullURL != "" {
				to[e.FullURL] = e.Request.URL
			}
			continue
		}
		out = append(out, e)
	}
	sum.add(0, int64(len(present)), nil)
	for _, e := range out {
		if !mayMention(e.Resource, to) {
			continue
		}
		e.Resource = replaceRefs(e.Resource, to)
	}
	return out, nil
}

// mayMention is false when raw cannot refer to any key of refs: no key is in it, and it escapes no
// character (JSON may spell any one as \uXXXX). A Synthea bundle's two or three shared resources are
// named by few of its entries, and a search for their keys passes the others over before replaceRefs
// reads every string in them.
func mayMention(raw json.RawMessage, refs map[string]string) bool {
	if bytes.Contains(raw, []byte(`\u`)) {
		return true
	}
	for ref := range refs {
		if bytes.Contains(raw, []byte(ref)) {
			return true
		}
	}
	return false
}

// typed is what prepare reads of an entry: its resource type, its id, and whether it names a practice.
type typed struct {
	ResourceType         string
	ID                   string
	ManagingOrganization bool
	GeneralPractitioner  bool
}

// typedOf reads raw's typed, which is false when raw is not an object with a string resourceType (and a
// string id, if any). raw comes from a Bundle already decoded, so it is JSON; looking up four members
// rather than decoding it spares a validating pass over each entry (4% of an import's CPU).
func typedOf(raw json.RawMessage) (typed, bool) {
	if v := bytes.TrimLeft(raw, " \t\r\n"); len(v) == 0 || v[0] != '{' {
		return typed{}, false
	}
	r := gjson.GetManyBytes(raw, "resourceType", "id", "managingOrganization", "generalPractitioner")
	if r[0].Type != gjson.String || r[0].Str == "" || r[1].Exists() && r[1].Type != gjson.String {
		return typed{}, false
	}
	return typed{ResourceType: r[0].Str, ID: r[1].Str, ManagingOrganization: r[2].Exists(), GeneralPractitioner: r[3].Exists()}, true
}

var validID = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)

// prepare reshapes entries: types the server does not serve are dropped, with every reference to them;
// Patients without a practice are registered at opt.PracticeRef or dropped with everything that refers
// to them; a POST of a resource with an id (or a urn:uuid fullUrl) becomes a PUT of that id, so that
// importing again stores nothing new.
func prepare(entries []*entry, opt Options, sum *Summary, name string) []*entry {
	dropped := map[string]bool{}
	droppedPatients := map[string]bool{}
	var kept []*entry
	for _, e := range entries {
		if e == nil || (len(e.Resource) == 0 && e.Request == nil) {
			continue
		}
		if len(e.Resource) == 0 {
			kept = append(kept, e)
			continue
		}
		t, ok := typedOf(e.Resource)
		if !ok {
			sum.skip(ReasonUnreadable, name+": an entry is not a FHIR resource")
			continue
		}
		if _, ok := fhir.LookupType(t.ResourceType); !ok {
			sum.skip(ReasonNotServed, "")
			dropped[e.FullURL] = true
			continue
		}
		if t.ResourceType == "Patient" && !t.ManagingOrganization && !t.GeneralPractitioner {
			if opt.PracticeRef == "" {
				sum.skip(ReasonNoPractice, name)
				dropped[e.FullURL] = true
				droppedPatients[e.FullURL] = true
				if t.ID != "" {
					droppedPatients["Patient/"+t.ID] = true
				}
				continue
			}
			e.Resource = setField(e.Resource, "managingOrganization", map[string]string{"reference": opt.PracticeRef})
		}
		if e.Request == nil {
			e.Request = &entryRequest{Method: http.MethodPost}
		}
		id := t.ID
		if id == "" && strings.HasPrefix(e.FullURL, "urn:uuid:") {
			id = strings.TrimPrefix(e.FullURL, "urn:uuid:")
		}
		if strings.EqualFold(e.Request.Method, http.MethodPost) && e.Request.IfNoneExist == "" && validID.MatchString(id) {
			e.Request.Method, e.Request.URL = http.MethodPut, t.ResourceType+"/"+id
			e.createOnly = true
			if t.ID == "" {
				e.Resource = setField(e.Resource, "id", id)
			}
		}
		if e.Request.URL == "" {
			e.Request.URL = t.ResourceType
		}
		kept = append(kept, e)
	}
	if len(dropped) == 0 {
		return kept
	}
	out := kept[:0]
	for _, e := range kept {
		if len(droppedPatients) > 0 && refersTo(e.Resource, droppedPatients) {
			sum.skip(ReasonNoPractice, "")
			continue
		}
		e.Resource = stripRefs(e.Resource, dropped)
		out = append(out, e)
	}
	return out
}

func setField(raw json.RawMessage, key string, v any) json.RawMessage {
	m, err := fhir.DecodeObject(raw)
	if err != nil {
		return raw
	}
	m[key] = v
	b, err := json.Marshal(m)
	if err != nil {
		return raw
	}
	return b
}

// replaceRefs points every reference that is a key of to at its value, the rest of raw kept as it was.
func replaceRefs(raw json.RawMessage, to map[string]string) json.RawMessage {
	out, _, _ := fhir.RewriteReferences(raw, func(ref string) (string, error) {
		if r, ok := to[ref]; ok && r != "" {
			return r, nil
		}
		return ref, nil
	})
	return out
}

// refersTo reports whether a resource has a reference to one of refs.
func refersTo(raw json.RawMessage, refs map[string]bool) bool {
	found := false
	fhir.EachReference(raw, func(ref string) bool {
		found = refs[ref]
		return !found
	})
	return found
}

// stripRefs removes references to dropped entries (an Immunization's Encounter), keeping their display,
// and a Reference left empty. Most entries name none of them, which one pass over the bytes finds out;
// the others are decoded, with their numbers as written (fhir.DecodeObject), and encoded again.
func stripRefs(raw json.RawMessage, dropped map[string]bool) json.RawMessage {
	if !refersTo(raw, dropped) {
		return raw
	}
	tree, err := fhir.DecodeObject(raw)
	if err != nil {
		return raw
	}
	var walk func(v any) any
	walk = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["reference"].(string); ok && dropped[ref] {
				delete(x, "reference")
				if len(x) == 0 {
					return nil
				}
			}
			for k, child := range x {
				if r := walk(child); r == nil {
					delete(x, k)
				} else {
					x[k] = r
				}
			}
			return x
		case []any:
			out := x[:0]
			for _, child := range x {
				if r := walk(child); r != nil {
					out = append(out, r)
				}
			}
			if len(out) == 0 {
				return nil
			}
			return out
		}
		return v
	}
	walk(tree)
	b, err := json.Marshal(tree)
	if err != nil {
		return raw
	}
	return b
}

var entryIndex = regexp.MustCompile(`Bundle\.entry\[(\d+)\]`)

// postBundle posts entries as a Bundle and counts the answer. A transaction refused because of one
// entry is posted again without it (counted with the server's reason), so that one invalid resource
// does not cost a patient's whole record; a batch answers per entry.
func postBundle(ctx context.Context, p Poster, sum *Summary, name, typ string, entries []*entry) error {
	for attempt := 0; len(entries) > 0; attempt++ {
		body, err := json.Marshal(map[string]any{"resourceType": "Bundle", "type": typ, "entry": entries})
		if err != nil {
			return err
		}
		status, resp, err := p.Post(ctx, body)
		if err != nil {
			return fmt.Errorf("post %s: %w", name, err)
		}
		if status == http.StatusOK {
			countResponse(sum, name, entries, resp)
			return nil
		}
		diag := outcomeText(resp)
		reason := reasonOf(status)
		m := entryIndex.FindStringSubmatch(diag)
		if typ != "transaction" || m == nil || attempt >= 50 || status >= 500 {
			for range entries {
				sum.skip(reason, name+": "+diag)
			}
			return nil
		}
		i, _ := strconv.Atoi(m[1])
		if i >= len(entries) {
			return fmt.Errorf("post %s: the server named entry %d of %d", name, i, len(entries))
		}
		sum.skip(reason, name+": "+diag)
		gone := entries[i]
		entries = append(entries[:i:i], entries[i+1:]...)
		if gone.FullURL != "" {
			drop := map[string]bool{gone.FullURL: true}
			for _, e := range entries {
				e.Resource = stripRefs(e.Resource, drop)
			}
		}
	}
	return nil
}

func reasonOf(status int) string {
	switch {
	case status == http.StatusForbidden || status == http.StatusUnauthorized:
		return ReasonRefused
	case status == http.StatusConflict || status == http.StatusPreconditionFailed:
		return ReasonConflict
	case status >= 500:
		return ReasonError
	}
	return ReasonInvalid
}

// countResponse counts a transaction-response or batch-response entry by entry.
func countResponse(sum *Summary, name string, entries []*entry, resp []byte) {
	var b struct {
		Entry []struct {
			Response struct {
				Status  string          `json:"status"`
				Outcome json.RawMessage `json:"outcome"`
			} `json:"response"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(resp, &b); err != nil {
		for range entries {
			sum.skip(ReasonError, name+": the answer is not a Bundle")
		}
		return
	}
	var stored, unchanged int64
	byType := map[string]int64{}
	var shared []string
	for i, e := range b.Entry {
		code, _ := strconv.Atoi(strings.Fields(e.Response.Status + " 0")[0])
		if code >= 200 && code < 300 && i < len(entries) && entries[i].createOnly {
			typ, _, _ := strings.Cut(entries[i].Request.URL, "/")
			if _, inCompartment := auth.PatientCompartment(typ); !inCompartment {
				shared = append(shared, entries[i].Request.URL)
			}
		}
		switch {
		case code >= 200 && code < 300 && bytes.Contains(e.Response.Outcome, []byte(`"code":"unchanged"`)):
			unchanged++
		case code >= 200 && code < 300:
			stored++
			if i < len(entries) && entries[i].Request != nil {
				typ, _, _ := strings.Cut(entries[i].Request.URL, "/")
				typ, _, _ = strings.Cut(typ, "?")
				byType[typ]++
			}
		default:
			sum.skip(reasonOf(code), name+": "+outcomeText(e.Response.Outcome))
		}
	}
	sum.add(stored, unchanged, byType)
	sum.markStored(shared...)
}

// outcomeText is the diagnostics of an OperationOutcome, for the summary's examples.
func outcomeText(body []byte) string {
	var oo struct {
		Issue []struct {
			Diagnostics string `json:"diagnostics"`
		} `json:"issue"`
	}
	if json.Unmarshal(body, &oo) != nil || len(oo.Issue) == 0 {
		if len(body) > 200 {
			body = body[:200]
		}
		return string(body)
	}
	var parts []string
	for _, is := range oo.Issue {
		parts = append(parts, is.Diagnostics)
	}
	s := strings.Join(parts, "; ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
