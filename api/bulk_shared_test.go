package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// pager is the export runners' page hook of the shared-jobs test: it counts the pages each server
// saved of each job, and when armed stops the first run that reaches a given page, telling the test
// which server holds it, until released or until the run is cancelled.
type pager struct {
	mu      sync.Mutex
	calls   map[string]int // server + job -> pages saved
	stopAt  int            // 0: disarmed
	reached chan string    // the server whose run stopped
	release chan struct{}
}

func (p *pager) arm(page int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopAt, p.release = page, make(chan struct{})
}

func (p *pager) hook(server string) func(ctx context.Context, id string) {
	return func(ctx context.Context, id string) {
		p.mu.Lock()
		p.calls[server+"/"+id]++
		stop := p.stopAt != 0 && p.calls[server+"/"+id] == p.stopAt
		release := p.release
		if stop {
			p.stopAt = 0
		}
		p.mu.Unlock()
		if !stop {
			return
		}
		p.reached <- server
		select {
		case <-release:
		case <-ctx.Done():
		}
	}
}

func (p *pager) pages(server, id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[server+"/"+id]
}

// sharedServer is one gpfhir process of the test: its API server, its own store connection and its
// clock's offset.
type sharedServer struct {
	*testServer
	srv    *api.Server
	st     *mongo.Store
	offset *atomic.Int64
}

// TestBulkExportJobsAreSharedOnMongo runs two API servers, as two processes behind a load balancer,
// on one MongoDB database (the embedded FerretDB): a job kicked off on one is polled, downloaded and
// cancelled on the other, expires from either, and is finished by the other when the process running
// it stops.
func TestBulkExportJobsAreSharedOnMongo(t *testing.T) {
	if os.Getenv(backendEnv) != "mongo" {
		t.Skip("jobs are shared through MongoDB only; this test runs in the MongoDB pass")
	}
	uri := mongotest.Start(t)
	db := mongotest.Database(t)
	pg := &pager{calls: map[string]int{}, reached: make(chan string, 1)}
	const lease = time.Second
	var issuer, audience, token string
	start := func(name string) *sharedServer {
		st, err := mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db})
		if err != nil {
			t.Fatalf("open mongo: %v", err)
		}
		t.Cleanup(func() { _ = st.Close() })
		offset := &atomic.Int64{}
		opts := []serverOption{
			func(c *apiConfig) {
				c.Export, c.ExportWorkers = true, 2
				c.Now = func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
			},
			api.ExportTimings(lease, 50*time.Millisecond, 200*time.Millisecond, 2),
			api.ExportAfterPage(pg.hook(name)),
		}
		if issuer != "" {
			// The second process trusts the same issuer for the same audience, as processes behind one
			// base URL do, so that one token works on both.
			v, err := auth.NewVerifier(auth.Config{Issuers: []string{issuer}, Audience: audience})
			if err != nil {
				t.Fatal(err)
			}
			opts = append(opts, func(c *apiConfig) { c.Auth, c.BaseURL = v, audience })
		}
		logs := &lockedWriter{w: &bytes.Buffer{}}
		srv, base, tok := startAPI(t, st, logs, opts...)
		t.Cleanup(func() { _ = srv.Close() })
		if issuer == "" {
			issuer, audience, token = base+"/dev-idp", base, tok
		}
		ts := &testServer{t: t, URL: base, store: st, http: &http.Client{}, logs: logs, Issuer: issuer, token: token}
		return &sharedServer{testServer: ts, srv: srv, st: st, offset: offset}
	}
	a, b := start("A"), start("B")
	servers := map[string]*sharedServer{"A": a, "B": b}
	other := map[string]string{"A": "B", "B": "A"}
	for i := 0; i < 5; i++ {
		pid := a.create("Patient", patient("Shared", ""))
		a.create("Immunization", immunization(pid, time.Date(2024, 1, 1+i, 0, 0, 0, 0, time.UTC)))
	}
	own := bearer(a.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs"))
	const kick = "/$export?_type=Patient,Immunization"
	jobID := func(status string) string { return status[strings.LastIndex(status, "/")+1:] }
	gone := func(ts *sharedServer, status string) bool {
		return ts.do("GET", relative(t, status), nil, own).Status == http.StatusNotFound
	}

	t.Run("a job kicked off on one is polled and downloaded on the other", func(t *testing.T) {
		r := a.mustStatus(a.do("GET", kick, nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]}), http.StatusAccepted)
		status := r.Header.Get("Content-Location")
		m := waitManifest(t, b, status, own)
		if len(m.Output) != 2 {
			t.Fatalf("manifest on B lists %+v, want Patient and Immunization", m.Output)
		}
		for _, o := range m.Output {
			onB := b.mustStatus(b.do("GET", relative(t, o.URL), nil, own), http.StatusOK).Body
			onA := a.mustStatus(a.do("GET", relative(t, o.URL), nil, own), http.StatusOK).Body
			if !bytes.Equal(onA, onB) || bytes.Count(onB, []byte("\n")) != o.Count || o.Count < 5 {
				t.Errorf("%s: B serves %d bytes, A %d, manifest count %d", o.Type, len(onB), len(onA), o.Count)
			}
		}
	})

	t.Run("DELETE on the other process stops the run and removes its files", func(t *testing.T) {
		// Patient takes two saved pages and a last one, then its file is closed; the first page of
		// Immunization is the third saved page.
		pg.arm(3)
		r := a.mustStatus(a.do("GET", kick, nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]}), http.StatusAccepted)
		status := r.Header.Get("Content-Location")
		id := jobID(status)
		var runner string
		select {
		case runner = <-pg.reached:
		case <-time.After(30 * time.Second):
			t.Fatal("no server ran the job")
		}
		ej := store.ExportJobs(a.st)
		f, err := ej.OpenExportFile(t.Context(), id, "Patient.ndjson")
		if err != nil {
			t.Fatalf("the running job's finished Patient file: %v", err)
		}
		_ = f.Close()
		canceller := servers[other[runner]]
		canceller.mustStatus(canceller.do("DELETE", relative(t, status), nil, own), http.StatusAccepted)
		for _, ts := range []*sharedServer{a, b} {
			if !gone(ts, status) {
				t.Errorf("poll on %s after DELETE: not 404", ts.URL)
			}
		}
		if _, err := ej.OpenExportFile(t.Context(), id, "Patient.ndjson"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("the cancelled job's file: %v, want ErrNotFound", err)
		}
		close(pg.release)
		// The runner's next save finds the job gone: it saves no further page.
		time.Sleep(3 * lease)
		if n := pg.pages(runner, id); n != 3 {
			t.Errorf("the runner on %s saved %d pages, want it stopped after the 3rd", runner, n)
		}
		if !gone(a, status) {
			t.Errorf("the stopped runner brought the job back")
		}
	})

	t.Run("a finished job expires on any process", func(t *testing.T) {
		m, status := kickOff(t, a.testServer, kick, own)
		if len(m.Output) == 0 {
			t.Fatal("nothing exported")
		}
		// Only B's clock passes the time to live, so only B's expiry loop can remove it.
		b.offset.Store(int64(2 * time.Hour))
		defer b.offset.Store(0)
		deadline := time.Now().Add(20 * time.Second)
		for !gone(a, status) {
			if time.Now().After(deadline) {
				t.Fatal("the job did not expire")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := store.ExportJobs(a.st).OpenExportFile(t.Context(), jobID(status), m.Output[0].Type+".ndjson"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("an expired job's file: %v, want ErrNotFound", err)
		}
	})

	t.Run("a job whose process stopped is finished by the other", func(t *testing.T) {
		pg.arm(1)
		r := a.mustStatus(a.do("GET", kick, nil, header{"Prefer": "respond-async", "Authorization": own["Authorization"]}), http.StatusAccepted)
		status := r.Header.Get("Content-Location")
		var runner string
		select {
		case runner = <-pg.reached:
		case <-time.After(30 * time.Second):
			t.Fatal("no server ran the job")
		}
		// The runner's process loses its database, as a process that died: it renews its claim no more.
		dead, alive := servers[runner], servers[other[runner]]
		_ = dead.st.Close()
		m := waitManifest(t, alive, status, own)
		got := map[string]int{}
		for _, o := range m.Output {
			body := alive.mustStatus(alive.do("GET", relative(t, o.URL), nil, own), http.StatusOK).Body
			got[o.Type] = bytes.Count(body, []byte("\n"))
		}
		if got["Patient"] < 5 || got["Immunization"] != 5 {
			t.Errorf("the job finished by %s exported %v", other[runner], got)
		}
		if pg.pages(other[runner], jobID(status)) == 0 {
			t.Errorf("%s finished the job without running it", other[runner])
		}
		close(pg.release)
	})
}

// waitManifest polls a status URL on ts until the manifest.
func waitManifest(t *testing.T, ts *sharedServer, status string, h header) manifest {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := ts.do("GET", relative(t, status), nil, h)
		switch {
		case r.Status == http.StatusOK:
			var m manifest
			if err := json.Unmarshal(r.Body, &m); err != nil {
				t.Fatalf("manifest %s: %v", r.Body, err)
			}
			return m
		case r.Status != http.StatusAccepted:
			t.Fatalf("poll on %s answered %d: %s", ts.URL, r.Status, r.Body)
		case time.Now().After(deadline):
			t.Fatal("the export did not finish in 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
