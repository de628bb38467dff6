package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/seed"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// crashRounds is how many times TestCrashLosesNoAcknowledgedWrite kills the server on SQLite. On
// FerretDB, where the seed takes about a minute, each round's writes take seconds and a restart that
// rolls back the dead process's journal groups up to half a minute on a busy machine, it kills it three
// times to stay within three minutes.
const crashRounds = 10

// startKillable runs `gpfhir serve --dev` on data dir dir (with args added) and returns its base URL, a
// function that kills it with SIGKILL (no shutdown, no flush: what a power cut or the OOM killer does)
// and waits, and its process id.
func startKillable(t testing.TB, bin, dir string, args ...string) (base string, kill func(), pid int) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--dev", "--addr", "127.0.0.1:0", "--log-level", "warn", "--data-dir", dir}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	kill = func() {
		_ = cmd.Process.Kill()
		<-done
	}
	t.Cleanup(kill)
	found := make(chan string, 1)
	logged := make(chan string, 1)
	go func() {
		// The last lines say why a server that exits at start did.
		var last []string
		defer func() { logged <- strings.Join(last, "\n") }()
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			if last = append(last, sc.Text()); len(last) > 5 {
				last = last[1:]
			}
			var rec struct {
				Issuer string `json:"issuer"`
			}
			if !sent && json.Unmarshal(sc.Bytes(), &rec) == nil && strings.HasSuffix(rec.Issuer, "/dev-idp") {
				found <- strings.TrimSuffix(rec.Issuer, "/dev-idp")
				sent = true
			}
		}
	}()
	select {
	case base = <-found:
		waitReady(t, base)
		return base, kill, cmd.Process.Pid
	case <-done:
		t.Fatalf("serve exited at start:\n%s", <-logged)
	case <-time.After(60 * time.Second):
		t.Fatal("serve did not start")
	}
	return "", kill, 0
}

// crashClient speaks to one server run. Every request carries an X-Request-ID of its own, so that its
// audit record can be found afterwards.
type crashClient struct {
	base string
	http *http.Client
}

func (c *crashClient) do(method, path, token string, body any, h map[string]string) (status int, out map[string]any, reqID string, err error) {
	var rdr io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		rdr = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, c.base+path, rdr)
	if err != nil {
		return 0, nil, "", err
	}
	reqID = uuid.NewString()
	req.Header.Set("X-Request-ID", reqID)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, reqID, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		// The answer was cut off by the kill: not acknowledged.
		return 0, nil, reqID, err
	}
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, reqID, nil
}

// crashLedger is what the server acknowledged, and what was attempted, across every round.
type crashLedger struct {
	mu       sync.Mutex
	versions map[string]int64  // Patient id -> the highest acknowledged version
	given    map[string]string // "id/version" -> the given name that version was written with
	txSent   map[string]bool   // transaction marker -> acknowledged
	slots    map[string]bool   // slots someone tried to book
	booked   map[string]string // appointment id -> slot, acknowledged bookings
	requests []string          // request ids of acknowledged writes
	counts   struct{ creates, updates, txs, bookings, conflicts, unacked int }
}

func (l *crashLedger) ack(reqID string, f func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.requests = append(l.requests, reqID)
	f()
}

// crashBackend is what differs between the stores in TestCrashLosesNoAcknowledgedWrite.
type crashBackend struct {
	// args select the store on serve and on audit verify.
	serveArgs, storeArgs []string
	// window is the shortest load window of a round; each round adds up to three times as much at random.
	window time.Duration
	// budget bounds the rounds, restarts included.
	budget time.Duration
	// rounds is how many times the server is killed.
	rounds int
	// open opens the store directly, after the last kill, to read the audit chain.
	open func() (audit.Backend, error)
}

// records reads the whole audit chain from the backend's store.
func (be crashBackend) records(t *testing.T) []audit.Record {
	st, err := be.open()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := st.AuditRange(context.Background(), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestCrashLosesNoAcknowledgedWrite kills the real server (SIGKILL) while clients create, update, send
// transactions and book slots, ten times on SQLite and three on MongoDB, restarting it on the same data
// each time; MongoDB is the embedded FerretDB, which keeps running while the server dies (atomic groups
// go through the journal with compensation there). After every restart each acknowledged write is there at its
// acknowledged version with what was sent, each transaction is all there or not at all, no slot has two
// bookings; at the end `gpfhir audit verify` finds the chain intact and it holds a record of every
// acknowledged request.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the server ten times")
	}
	bin := buildBinary(t)
	t.Run("sqlite", func(t *testing.T) {
		dir := t.TempDir()
		runCrashRounds(t, bin, dir, crashBackend{
			serveArgs: nil, storeArgs: []string{"--data-dir", dir},
			window: 200 * time.Millisecond, budget: 100 * time.Second, rounds: crashRounds,
			open: func() (audit.Backend, error) { return sqlite.Open(context.Background(), dir) },
		})
	})
	t.Run("mongo", func(t *testing.T) {
		// On the embedded FerretDB three kills take about three minutes (each restart rolls back the
		// dead process's journal groups, and FerretDB scans whole collections), which this package's
		// other tests leave no room for inside go test's ten minutes. It runs against a real MongoDB,
		// or on FerretDB when asked for.
		if os.Getenv(mongotest.EnvURI) == "" && os.Getenv("GPFHIR_TEST_CRASH_FERRETDB") == "" {
			t.Skip("the crash test on MongoDB needs a real MongoDB: set " + mongotest.EnvURI +
				" (or GPFHIR_TEST_CRASH_FERRETDB=1 to run it on the embedded FerretDB, about 3 minutes)")
		}
		uri := os.Getenv(mongotest.EnvURI)
		if uri == "" {
			uri = mongotest.Start(t)
		}
		db := mongotest.Database(t)
		// The restart comes at once, well inside the default one-minute journal lease: the dead
		// process's owner lease (3 s here, shorter than the default to keep three restarts
		// bounded) is what start-up waits out before rolling its unfinished groups back, so the
		// ledger check right after the restart would see any half-applied transaction.
		const ownerLease = 3 * time.Second
		mongoArgs := []string{"--store", "mongo", "--mongodb-uri", uri, "--mongodb-database", db}
		runCrashRounds(t, bin, t.TempDir(), crashBackend{
			serveArgs: append(slices.Clone(mongoArgs), "--mongodb-owner-lease", ownerLease.String(),
				"--export-dir", t.TempDir()), storeArgs: mongoArgs,
			window: 1500 * time.Millisecond, budget: 170 * time.Second,
			rounds: 3,
			open: func() (audit.Backend, error) {
				return mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db, Timeout: time.Minute})
			},
		})
	})
}

// runCrashRounds runs the rounds of TestCrashLosesNoAcknowledgedWrite on one store; dir is the
// server's data directory (the store itself with SQLite).
func runCrashRounds(t *testing.T, bin, dir string, be crashBackend) {
	started := time.Now()
	people := seed.People(seed.Options{Seed: 1})
	practice := people.Practices[0]
	var booker seed.Person
	for _, p := range people.Patients {
		if p.PatientID == "pat-0001" {
			booker = p
		}
	}
	l := &crashLedger{versions: map[string]int64{}, given: map[string]string{}, txSent: map[string]bool{},
		slots: map[string]bool{}, booked: map[string]string{}}
	rng := rand.New(rand.NewPCG(1, 2))
	deadline := time.Now().Add(be.budget)
	var kill func()
	var firstStart time.Duration
	for round := 0; round <= be.rounds; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("ran out of time after %d rounds", round)
		}
		var base string
		begun := time.Now()
		base, kill, _ = startKillable(t, bin, dir, be.serveArgs...)
		startedIn := time.Since(begun)
		if round == 0 {
			firstStart = time.Since(started)
		}
		c := &crashClient{base: base, http: &http.Client{Timeout: 10 * time.Second}}
		ctx := context.Background()
		sys, err := devidp.SystemToken(ctx, nil, base+"/dev-idp", 1, devidp.AllPracticesClientID, []string{"system/*.cruds"})
		if err != nil {
			t.Fatal(err)
		}
		pat, err := devidp.PatientToken(ctx, nil, base+"/dev-idp", booker.NHSNumber, "P9", "", []string{"patient/*.cruds"})
		if err != nil {
			t.Fatal(err)
		}
		checked := time.Now()
		checkCrashLedger(t, c, sys.AccessToken, l, round)
		if testing.Verbose() {
			t.Logf("round %d: started in %s, checked in %s, at %s", round, startedIn.Round(100*time.Millisecond),
				time.Since(checked).Round(100*time.Millisecond), time.Since(started).Round(time.Second))
		}
		if round == be.rounds {
			break
		}
		runCrashLoad(t, c, sys.AccessToken, pat.AccessToken, practice, booker.PatientID, l, round,
			be.window+time.Duration(rng.Int64N(int64(3*be.window))), kill)
	}
	kill()

	var out bytes.Buffer
	cmd := exec.Command(bin, append([]string{"audit", "verify"}, be.storeArgs...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "intact") {
		t.Errorf("audit verify after %d kills: %v\n%s", be.rounds, err, out.String())
	}
	// Every acknowledged request has its record (a request's answer waits for its record).
	recs := be.records(t)
	recorded := map[string]bool{}
	for _, r := range recs {
		var ev map[string]any
		if json.Unmarshal(r.Body, &ev) != nil {
			continue
		}
		entities, _ := ev["entity"].([]any)
		for _, e := range entities {
			em, _ := e.(map[string]any)
			what, _ := em["what"].(map[string]any)
			idf, _ := what["identifier"].(map[string]any)
			if v, ok := idf["value"].(string); ok {
				recorded[v] = true
			}
		}
	}
	missing := 0
	for _, id := range l.requests {
		if !recorded[id] {
			missing++
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d acknowledged requests have no audit record", missing, len(l.requests))
	}
	t.Logf("%d kills in %s (first start, seeding included, %s): acknowledged %d creates, %d updates, %d transactions (of %d sent), %d bookings (%d refused as taken); %d requests unanswered at a kill; %d audit records, chain intact: %s",
		be.rounds, time.Since(started).Round(time.Second), firstStart.Round(time.Second), l.counts.creates, l.counts.updates, l.counts.txs, len(l.txSent), l.counts.bookings, l.counts.conflicts, l.counts.unacked, len(recs), strings.TrimSpace(strings.SplitN(out.String(), "\n", 2)[0]))
}

// runCrashLoad runs the writers against one server run and kills the server after d, while they run.
func runCrashLoad(t *testing.T, c *crashClient, sys, pat string, practice seed.Practice, patientID string, l *crashLedger, round int, d time.Duration, kill func()) {
	t.Helper()
	// Five free, online-bookable slots at the booker's practice, from two days ahead (inside the
	// booking cut-off), that no earlier round tried: the seed publishes about 60.
	from := time.Now().UTC().Add(48 * time.Hour).Format("2006-01-02")
	code, b, _, err := c.do("GET", "/Slot?status=free&online-bookable=true&start=ge"+from+"&schedule.actor=Location/loc-"+strings.ToLower(practice.ODS)+"&_sort=start&_count=200", sys, nil, nil)
	if err != nil || code != 200 {
		t.Fatalf("slots: %d %v %v", code, err, b)
	}
	type slot struct{ id, start, end string }
	var slots []slot
	for _, e := range entriesOf(b) {
		id, _ := e["id"].(string)
		if l.slots[id] {
			continue
		}
		start, _ := e["start"].(string)
		end, _ := e["end"].(string)
		slots = append(slots, slot{id, start, end})
	}
	if len(slots) < 5 {
		t.Fatalf("round %d: only %d untried free slots", round, len(slots))
	}
	slots = slots[:5]

	stop := make(chan struct{})
	var wg sync.WaitGroup
	unacked := func(err error, code int) bool {
		if err != nil || code == 0 || code >= 500 {
			l.mu.Lock()
			l.counts.unacked++
			l.mu.Unlock()
			return true
		}
		return false
	}
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	org := map[string]any{"reference": "Organization/" + practice.OrganizationID}
	newPatient := func(family, given string) map[string]any {
		return map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": family, "given": []any{given}}},
			"gender": "female", "birthDate": "1980-05-17", "managingOrganization": org}
	}
	// Creators and updaters: each creates a patient, then updates it with If-Match again and again.
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ""
			var v int64
			for n := 0; !stopped(); n++ {
				given := fmt.Sprintf("r%dw%dn%d", round, w, n)
				if id == "" || n%4 == 0 {
					code, b, rid, err := c.do("POST", "/Patient", sys, newPatient("crash", given), nil)
					if unacked(err, code) {
						return
					}
					if code == 201 {
						id, v = b["id"].(string), 1
						l.ack(rid, func() { l.versions[id] = 1; l.given[id+"/1"] = given; l.counts.creates++ })
					}
					continue
				}
				body := newPatient("crash", given)
				body["id"] = id
				code, _, rid, err := c.do("PUT", "/Patient/"+id, sys, body, map[string]string{"If-Match": fmt.Sprintf(`W/"%d"`, v)})
				if unacked(err, code) {
					return
				}
				if code == 200 {
					v++
					ver := v
					l.ack(rid, func() { l.versions[id] = ver; l.given[fmt.Sprintf("%s/%d", id, ver)] = given; l.counts.updates++ })
				}
			}
		}()
	}
	// Transactions of three patients sharing a family name.
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; !stopped(); n++ {
				marker := fmt.Sprintf("tx%dw%dn%d", round, w, n)
				var entries []any
				for i := range 3 {
					entries = append(entries, map[string]any{"fullUrl": "urn:uuid:" + uuid.NewString(),
						"resource": newPatient(marker, fmt.Sprint(i)), "request": map[string]any{"method": "POST", "url": "Patient"}})
				}
				l.mu.Lock()
				l.txSent[marker] = false
				l.mu.Unlock()
				code, _, rid, err := c.do("POST", "/", sys, map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": entries}, nil)
				if unacked(err, code) {
					return
				}
				if code == 200 {
					l.ack(rid, func() { l.txSent[marker] = true; l.counts.txs++ })
				}
			}
		}()
	}
	// Two bookers race for the same slots, in the same order.
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, s := range slots {
				if stopped() {
					return
				}
				l.mu.Lock()
				l.slots[s.id] = true
				l.mu.Unlock()
				appt := map[string]any{"resourceType": "Appointment", "status": "booked", "description": "crash test",
					"slot": []any{map[string]any{"reference": "Slot/" + s.id}}, "start": s.start, "end": s.end,
					"participant": []any{map[string]any{"actor": map[string]any{"reference": "Patient/" + patientID}, "status": "accepted"}}}
				code, b, rid, err := c.do("POST", "/Appointment", pat, appt, nil)
				if unacked(err, code) {
					return
				}
				switch code {
				case 201:
					l.ack(rid, func() { l.booked[b["id"].(string)] = s.id; l.counts.bookings++ })
				case 409:
					l.ack(rid, func() { l.counts.conflicts++ })
				default:
					t.Errorf("booking slot %s: %d %v", s.id, code, b)
					return
				}
			}
		}()
	}
	// Kill after d, but not before this round has an answered write: on FerretDB a write can take longer
	// than d, and a round with none would prove nothing.
	l.mu.Lock()
	before := len(l.requests)
	l.mu.Unlock()
	time.Sleep(d)
	for wait := time.Now().Add(30 * time.Second); time.Now().Before(wait); time.Sleep(50 * time.Millisecond) {
		l.mu.Lock()
		n := len(l.requests)
		l.mu.Unlock()
		if n > before {
			break
		}
	}
	kill()
	close(stop)
	wg.Wait()
}

// checkCrashLedger checks, after a restart, everything acknowledged before the last kill.
func checkCrashLedger(t *testing.T, c *crashClient, sys string, l *crashLedger, round int) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, v := range l.versions {
		code, b, _, err := c.do("GET", fmt.Sprintf("/Patient/%s/_history/%d", id, v), sys, nil, nil)
		if err != nil || code != 200 {
			t.Errorf("round %d: acknowledged Patient/%s version %d: %d %v", round, id, v, code, err)
			continue
		}
		if given := givenOf(b); given != l.given[fmt.Sprintf("%s/%d", id, v)] {
			t.Errorf("round %d: Patient/%s version %d holds %q, acknowledged with %q", round, id, v, given, l.given[fmt.Sprintf("%s/%d", id, v)])
		}
		code, b, _, _ = c.do("GET", "/Patient/"+id, sys, nil, nil)
		if cur := versionOf(b); code != 200 || cur < v {
			t.Errorf("round %d: Patient/%s is at version %d (%d), behind the acknowledged %d", round, id, cur, code, v)
		}
	}
	// One search (in pages) for every transaction's patients and one for every tried slot's bookings,
	// rather than one a marker or slot: a search scans the collection on FerretDB.
	perFamily := map[string]int{}
	for _, r := range crashPages(t, c, sys, "/Patient?family=tx&_count=1000", round) {
		names, _ := r["name"].([]any)
		if len(names) > 0 {
			n, _ := names[0].(map[string]any)
			f, _ := n["family"].(string)
			perFamily[f]++
		}
	}
	for marker, acked := range l.txSent {
		n := perFamily[marker]
		if n != 0 && n != 3 {
			t.Errorf("round %d: transaction %s is partial: %d of 3 patients", round, marker, n)
		}
		if acked && n != 3 {
			t.Errorf("round %d: acknowledged transaction %s has %d of 3 patients", round, marker, n)
		}
	}
	if len(l.slots) > 0 {
		var refs []string
		for s := range l.slots {
			refs = append(refs, "Slot/"+s)
		}
		perSlot := map[string]int{}
		for _, r := range crashPages(t, c, sys, "/Appointment?status=booked&_count=1000&slot="+strings.Join(refs, ","), round) {
			slotRefs, _ := r["slot"].([]any)
			for _, sr := range slotRefs {
				m, _ := sr.(map[string]any)
				ref, _ := m["reference"].(string)
				perSlot[strings.TrimPrefix(ref, "Slot/")]++
			}
		}
		for s := range l.slots {
			if n := perSlot[s]; n > 1 {
				t.Errorf("round %d: slot %s is booked %d times", round, s, n)
			}
		}
	}
	for appt, s := range l.booked {
		code, b, _, err := c.do("GET", "/Appointment/"+appt, sys, nil, nil)
		if err != nil || code != 200 || b["status"] != "booked" || !strings.Contains(fmt.Sprint(b["slot"]), "Slot/"+s) {
			t.Errorf("round %d: acknowledged booking Appointment/%s of slot %s: %d %v", round, appt, s, code, b)
		}
	}
}

// crashPages returns the matches of a search, following its next links.
func crashPages(t *testing.T, c *crashClient, sys, path string, round int) []map[string]any {
	t.Helper()
	var out []map[string]any
	for path != "" {
		code, b, _, err := c.do("GET", path, sys, nil, nil)
		if err != nil || code != 200 {
			t.Fatalf("round %d: search %s: %d %v %v", round, path, code, err, b)
		}
		out = append(out, entriesOf(b)...)
		path = ""
		links, _ := b["link"].([]any)
		for _, l := range links {
			lm, _ := l.(map[string]any)
			if u, _ := lm["url"].(string); lm["relation"] == "next" {
				path = strings.TrimPrefix(u, c.base)
			}
		}
	}
	return out
}

func entriesOf(bundle map[string]any) []map[string]any {
	var out []map[string]any
	entries, _ := bundle["entry"].([]any)
	for _, e := range entries {
		em, _ := e.(map[string]any)
		if s, ok := em["search"].(map[string]any); ok && s["mode"] != "match" {
			continue
		}
		if r, ok := em["resource"].(map[string]any); ok {
			out = append(out, r)
		}
	}
	return out
}

func givenOf(p map[string]any) string {
	names, _ := p["name"].([]any)
	if len(names) == 0 {
		return ""
	}
	n, _ := names[0].(map[string]any)
	g, _ := n["given"].([]any)
	if len(g) == 0 {
		return ""
	}
	s, _ := g[0].(string)
	return s
}

func versionOf(r map[string]any) int64 {
	meta, _ := r["meta"].(map[string]any)
	var v int64
	fmt.Sscan(fmt.Sprint(meta["versionId"]), &v)
	return v
}
