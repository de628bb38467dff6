package api_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
)

// fakeClock is a server clock that tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestAuditRetentionRemovesOldRecordsAndTheChainStillVerifies(t *testing.T) {
	const retention = 30 * 24 * time.Hour
	t0 := time.Date(2025, 1, 6, 9, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: t0}
	st := openTestStore(t)
	t.Cleanup(func() { _ = st.Close() })
	logs := &lockedWriter{w: &bytes.Buffer{}}
	srv, base, token := startAPI(t, st, logs, func(c *api.Config) { c.Now, c.AuditRetention = clock.Now, retention },
		api.RetentionEvery(50*time.Millisecond))
	t.Cleanup(func() { _ = srv.Close() }) // before the store closes: cleanups run last first
	ts := &testServer{t: t, URL: base, store: st, http: &http.Client{}, logs: logs, Issuer: base + "/dev-idp", token: token}

	// Audited at t0: two creates and a read.
	id := ts.create("Patient", patient("Retained", validNHS))
	ts.create("Patient", patient("Other", ""))
	ts.mustStatus(ts.do("GET", "/Patient/"+id, nil, nil), 200)
	old, err := st.AuditRange(t.Context(), 0, 0)
	if err != nil || len(old) != 3 {
		t.Fatalf("AuditRange before the clock moves: %d records, %v; want 3", len(old), err)
	}
	if a, err := st.AuditAnchor(t.Context()); err != nil || a.Seq != 0 {
		t.Fatalf("records younger than the retention were pruned: anchor %+v %v", a, err)
	}

	// A month and a day later the hourly run removes them, and only them.
	clock.Add(retention + 24*time.Hour)
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := st.AuditAnchor(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if a.Seq == 3 {
			break
		}
		if a.Seq > 3 || time.Now().After(deadline) {
			t.Fatalf("anchor %+v, want record 3 (the last recorded at t0)", a)
		}
		time.Sleep(20 * time.Millisecond)
	}

	aud := bearer(ts.auditorToken())
	r := ts.mustStatus(ts.do("GET", "/AuditEvent?_count=100", nil, aud), 200)
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID       string `json:"id"`
				Recorded string `json:"recorded"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.Body, &bundle); err != nil {
		t.Fatal(err)
	}
	for _, e := range bundle.Entry {
		for _, o := range old {
			if e.Resource.ID == o.ID {
				t.Errorf("AuditEvent/%s, recorded %s, is still found after retention", o.ID, e.Resource.Recorded)
			}
		}
	}
	for _, o := range old {
		ts.mustStatus(ts.do("GET", "/AuditEvent/"+o.ID, nil, aud), 404)
	}

	res := ts.mustStatus(ts.do("GET", "/AuditEvent/$verify", nil, aud), 200).JSON(t)
	got := map[string]any{}
	for _, p := range list(res["parameter"]) {
		for k, v := range p {
			if strings.HasPrefix(k, "value") {
				got[p["name"].(string)] = v
			}
		}
	}
	result, _ := got["result"].(string)
	if got["intact"] != true || !strings.Contains(result, "records 1–3") || !strings.Contains(result, "were pruned") {
		t.Errorf("$verify after retention: %v", got)
	}

	// One line per run, with counts and positions only. The line is written after the prune commits, so
	// the anchor can be seen before it: wait for it as for the anchor.
	for !strings.Contains(logs.String(), `"removed":3,"anchor_seq":3`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	var pruned bool
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) != nil || !strings.HasPrefix(line["msg"].(string), "audit retention") {
			continue
		}
		for k := range line {
			switch k {
			case "time", "level", "msg", "before", "removed", "anchor_seq":
			default:
				t.Errorf("retention log line has %q: %s", k, sc.Text())
			}
		}
		if line["level"] != "INFO" {
			t.Errorf("retention log line: %s", sc.Text())
		}
		if line["removed"] == float64(3) && line["anchor_seq"] == float64(3) {
			pruned = true
		}
	}
	if !pruned {
		t.Errorf("no log line says 3 records were removed:\n%s", logs.String())
	}
}

func TestAuditRetentionStopsOnClose(t *testing.T) {
	st := openTestStore(t)
	t.Cleanup(func() { _ = st.Close() })
	logs := &lockedWriter{w: &bytes.Buffer{}}
	srv, _, _ := startAPI(t, st, logs, func(c *api.Config) { c.AuditRetention = 24 * time.Hour }, api.RetentionEvery(5*time.Millisecond))
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(logs.String(), "audit retention") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the retention loop did not run twice:\n%s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	runs := strings.Count(logs.String(), "audit retention")
	time.Sleep(50 * time.Millisecond)
	if after := strings.Count(logs.String(), "audit retention"); after != runs {
		t.Errorf("the retention loop ran %d more times after Close", after-runs)
	}
}
