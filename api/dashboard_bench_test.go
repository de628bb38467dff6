package api_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
	"github.com/gpfhir/gpfhir/uptake"
	"github.com/gpfhir/gpfhir/uptake/tally"
)

// The dashboard's benchmark: a thousand practices with a year of figures, an audit trail of a million
// records, and the page and JSON answer timed over HTTP on loopback on the embedded store. The figures
// the page reads are the counters equivalent to that trail: classified by the same rules
// (uptake.Classify), and loaded with the trail (tally.Load), because counting a million records is the
// projector's work, timed on its own by BenchmarkUptakeProjector, not a page view's.
//
//	go test ./api -run XXX -bench '^BenchmarkDashboard$' -benchtime 200x -timeout 30m
var (
	benchPractices = flag.Int("uptake.practices", 1000, "practices in the dashboard benchmark")
	benchRecords   = flag.Int("uptake.records", 1_000_000, "audit records in the dashboard benchmark's trail")
)

type dashboardBench struct {
	base, token, period string
	setup               time.Duration
}

var (
	dashBenchOnce sync.Once
	dashBench     *dashboardBench
)

func BenchmarkDashboard(b *testing.B) {
	dashBenchOnce.Do(func() { dashBench = setupDashboardBench(b) })
	d := dashBench
	for _, tc := range []struct{ name, path string }{
		{"page", "/dashboard?period=" + d.period},
		{"json", "/dashboard/uptake.json?period=" + d.period},
		{"practice-page", "/dashboard?period=" + d.period + "&practice=" + benchCode(7)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			hc := &http.Client{}
			get := func() (int, int) {
				req, _ := http.NewRequest("GET", d.base+tc.path, nil)
				req.Header.Set("Authorization", "Bearer "+d.token)
				resp, err := hc.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode, int(n)
			}
			if status, _ := get(); status != 200 {
				b.Fatalf("%s: %d", tc.path, status)
			}
			times := make([]time.Duration, 0, b.N)
			size := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				start := time.Now()
				status, n := get()
				times = append(times, time.Since(start))
				if status != 200 {
					b.Fatalf("%s: %d", tc.path, status)
				}
				size = n
			}
			b.StopTimer()
			sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
			p50, p99 := times[len(times)/2], times[min(len(times)-1, len(times)*99/100)]
			b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
			fmt.Printf("dashboard %s: %d practices, %d audit records: p50 %.1f ms, p99 %.1f ms over %d requests (%d bytes; setup %s)\n",
				tc.name, *benchPractices, *benchRecords, float64(p50.Microseconds())/1000, float64(p99.Microseconds())/1000, len(times), size,
				d.setup.Round(time.Second))
		})
	}
}

func benchCode(i int) string { return fmt.Sprintf("B%05d", i) }

// setupDashboardBench builds the store: practices, a year of census, the audit trail, and its counters.
func setupDashboardBench(b *testing.B) *dashboardBench {
	start := time.Now()
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "gpfhir-dashboard-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = os.RemoveAll(dir) })
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	// The store is filled before the server starts, and opened again once settled (its WAL checkpointed
	// as it closes, the audit trail's reference index caught up by a search), so that the figures time
	// the dashboard rather than the aftermath of a bulk load.
	const base = "http://bench.example"
	now := time.Now()
	current := uptake.PeriodOf(now)
	first := current.Add(-11)
	r := rand.New(rand.NewPCG(12, 1))

	var writes []store.Write
	for i := 0; i < *benchPractices; i++ {
		body := fmt.Sprintf(`{"resourceType":"Organization","id":"org-%d","name":"Practice %d","identifier":[{"system":"%s","value":"%s"}]}`,
			i, i, fhir.ODSOrganizationSystem, benchCode(i))
		index, _ := fhir.ExtractBody([]byte(body), base)
		writes = append(writes, store.Write{Resource: store.Resource{Type: "Organization", ID: fmt.Sprintf("org-%d", i), VersionID: 1,
			LastUpdated: now.UTC().Truncate(time.Millisecond), Body: []byte(body)}, Index: index})
		if len(writes) == 500 || i == *benchPractices-1 {
			if err := st.Apply(ctx, writes); err != nil {
				b.Fatal(err)
			}
			writes = writes[:0]
		}
	}

	// The trail: patients of every practice using the services over the year, in time order, and the
	// counters the same rules make of it.
	sizes := make([]int, *benchPractices)
	for i := range sizes {
		sizes[i] = 2000 + r.IntN(10000)
	}
	type key struct {
		p    uptake.Period
		code int
	}
	counts := map[key]*uptake.Counts{}
	users := map[key]map[int]bool{}
	span := current.End().Sub(first.Start())
	if now.Before(current.End()) {
		span = now.Sub(first.Start())
	}
	var batch []audit.Record
	for n := 0; n < *benchRecords; n++ {
		at := first.Start().Add(time.Duration(float64(span) * float64(n) / float64(*benchRecords))).UTC().Truncate(time.Millisecond)
		code := r.IntN(*benchPractices)
		patient := r.IntN(sizes[code] / 3)
		pid := fmt.Sprintf("p%d-%d", code, patient)
		u := &audit.User{Kind: "patient", Subject: "s-" + pid, NHSNumber: "9000000009", PatientID: pid, ClientID: "app"}
		in := audit.Input{ID: fmt.Sprintf("a%09d", n), Recorded: at, User: u, Patients: []string{pid}, Site: base, Instance: "bench",
			RequestID: fmt.Sprintf("r%09d", n)}
		switch x := r.IntN(100); {
		case x < 45:
			in.Interaction, in.Status, in.HasQuery = "search-type", 200, true
			in.Entities = []audit.Entity{{Type: "Immunization", ID: "i-" + pid, Version: 1, PatientIDs: []string{pid}}}
		case x < 70:
			in.Interaction, in.Status = "create", 201
			in.Entities = []audit.Entity{{Type: "Appointment", ID: fmt.Sprintf("ap%d", n), Version: 1, PatientIDs: []string{pid}}}
		case x < 78:
			in.Interaction, in.Status = "update", 200
			in.Entities = []audit.Entity{{Type: "Appointment", ID: fmt.Sprintf("ap%d", n), Version: 2, PatientIDs: []string{pid}}}
		case x < 92:
			in.Interaction, in.Status = "create", 201
			in.Entities = []audit.Entity{{Type: "Task", ID: fmt.Sprintf("t%d", n), Version: 1, PatientIDs: []string{pid}}}
		default:
			in.Interaction, in.Status, in.Decision, in.HasQuery = "search-type", 403, "deny-access-level", true
		}
		batch = append(batch, audit.NewRecord(in, base))
		if len(batch) == audit.MaxBatch || n == *benchRecords-1 {
			if err := st.ApplyAudited(ctx, nil, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
		e := uptake.Classify(audit.Summary{Recorded: at, Interaction: in.Interaction, Status: in.Status, Decision: in.Decision,
			Role: audit.RolePatient, UserPatient: pid, Patients: in.Patients, Entities: in.Entities})
		k := key{e.Period, code}
		if counts[k] == nil {
			counts[k], users[k] = &uptake.Counts{}, map[int]bool{}
		}
		counts[k].Add(e)
		if e.Use != uptake.NoService && !users[k][patient] {
			users[k][patient] = true
			counts[k].Users++
		}
	}
	var months []tally.Loaded
	for m := first; !current.Before(m); m = m.Add(1) {
		for code := 0; code < *benchPractices; code++ {
			size := sizes[code]
			c := &uptake.Census{Name: fmt.Sprintf("Practice %d", code), AsAt: m.End().Add(-time.Hour), ListSize: size,
				Enabled: size * 9 / 10, ApptsEnabled: size * 85 / 100, PrescEnabled: size * 8 / 10, RecordEnabled: size / 3,
				Slots: size / 4, OnlineSlots: size / 10, OnlineBooked: size / 15}
			l := tally.Loaded{Period: m, Practice: benchCode(code), Census: c}
			if n := counts[key{m, code}]; n != nil {
				l.Counts = *n
			}
			months = append(months, l)
		}
	}
	head, _, err := st.AuditHead(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if err := tally.New(st, base, nil, nil).Load(ctx, head, months); err != nil {
		b.Fatal(err)
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	if st, err = sqlite.Open(ctx, dir); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = st.Close() })
	if _, err := st.Search(ctx, store.Query{Type: store.AuditEventType, Limit: 1,
		Clauses: []store.Clause{{{Param: "patient", Match: store.MatchExact, Value: "Patient/p0-0"}}}}); err != nil {
		b.Fatal(err)
	}
	// The projector would count a trail appended meanwhile; the figures come with this one instead.
	_, url, _ := startAPI(b, st, io.Discard, api.UptakeIdle())
	tok, err := devidp.CommissionerToken(ctx, nil, url+"/dev-idp")
	if err != nil {
		b.Fatal(err)
	}
	d := &dashboardBench{base: url, token: tok.AccessToken, period: current.Add(-1).String(), setup: time.Since(start)}
	b.Logf("setup: %d practices, %d audit records, %d practice-months in %s", *benchPractices, *benchRecords, len(months), d.setup)
	return d
}

// BenchmarkUptakeProjector times the projector counting an audit trail from scratch: records per second,
// with the practice of each record's patient looked up as it was when the request was made.
func BenchmarkUptakeProjector(b *testing.B) {
	ctx := context.Background()
	const practices, patients, records = 200, 20, 20_000
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.Open(ctx, b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		const base = "http://bench.example"
		now := time.Now().UTC().Truncate(time.Millisecond)
		var writes []store.Write
		put := func(typ, id, body string) {
			index, _ := fhir.ExtractBody([]byte(body), base)
			writes = append(writes, store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: 1, LastUpdated: now, Body: []byte(body)}, Index: index})
			if len(writes) == 500 {
				if err := st.Apply(ctx, writes); err != nil {
					b.Fatal(err)
				}
				writes = writes[:0]
			}
		}
		for p := 0; p < practices; p++ {
			put("Organization", fmt.Sprintf("o%d", p), fmt.Sprintf(`{"resourceType":"Organization","id":"o%d","identifier":[{"system":"%s","value":"%s"}]}`, p, fhir.ODSOrganizationSystem, benchCode(p)))
			for q := 0; q < patients; q++ {
				put("Patient", fmt.Sprintf("p%d-%d", p, q), fmt.Sprintf(`{"resourceType":"Patient","id":"p%d-%d","managingOrganization":{"reference":"Organization/o%d"}}`, p, q, p))
			}
		}
		if err := st.Apply(ctx, writes); err != nil {
			b.Fatal(err)
		}
		r := rand.New(rand.NewPCG(3, 4))
		var batch []audit.Record
		for n := 0; n < records; n++ {
			pid := fmt.Sprintf("p%d-%d", r.IntN(practices), r.IntN(patients))
			in := audit.Input{ID: fmt.Sprintf("a%07d", n), Recorded: now, Interaction: "search-type", Status: 200, HasQuery: true, Site: base, Instance: "bench",
				User: &audit.User{Kind: "patient", Subject: "s", NHSNumber: "9000000009", PatientID: pid}, Patients: []string{pid},
				Entities: []audit.Entity{{Type: "Immunization", ID: "i", Version: 1, PatientIDs: []string{pid}}}}
			batch = append(batch, audit.NewRecord(in, base))
			if len(batch) == audit.MaxBatch {
				if err := st.ApplyAudited(ctx, nil, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		ta := tally.New(st, base, nil, nil)
		b.StartTimer()
		start := time.Now()
		if err := ta.CatchUp(ctx); err != nil {
			b.Fatal(err)
		}
		elapsed := time.Since(start)
		b.StopTimer()
		m, err := ta.Month(ctx, uptake.PeriodOf(now))
		if err != nil {
			b.Fatal(err)
		}
		total := 0
		for _, c := range m.Counts {
			total += c.RecordViews
		}
		if total != records {
			b.Fatalf("counted %d record views of %d", total, records)
		}
		b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
		fmt.Printf("uptake projector: %d records from %d practices counted in %s (%.0f records/s)\n", records, practices, elapsed.Round(time.Millisecond), float64(records)/elapsed.Seconds())
		_ = st.Close()
	}
}
