package tally

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
	"github.com/gpfhir/gpfhir/uptake"
)

const base = "https://gp.example/fhir"

// world is a store with two practices and a clock the test moves.
type world struct {
	t   *testing.T
	st  audit.Backend
	now time.Time
	seq int
	// appended holds the records appended by audit, with their Seq.
	appended []audit.Record
}

func newWorld(t *testing.T) *world {
	t.Helper()
	st, err := sqlite.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	w := &world{t: t, st: st, now: time.Date(2025, 3, 10, 9, 0, 0, 0, time.UTC)}
	for _, p := range []struct{ id, code string }{{"org-a", "A00001"}, {"org-b", "B00002"}} {
		w.put("Organization", p.id, map[string]any{"name": "Practice " + p.code,
			"identifier": []any{map[string]any{"system": fhir.ODSOrganizationSystem, "value": p.code}}})
		w.put("Location", "loc-"+p.id, map[string]any{"name": "Surgery", "managingOrganization": map[string]any{"reference": "Organization/" + p.id}})
		for _, online := range []bool{true, false} {
			w.put("Schedule", fmt.Sprintf("sched-%s-%v", p.id, online), map[string]any{"active": true,
				"extension": []any{map[string]any{"url": fhir.OnlineBookableExtension, "valueBoolean": online}},
				"actor":     []any{map[string]any{"reference": "Location/loc-" + p.id}}})
		}
	}
	return w
}

func (w *world) tally() *Tally { return New(w.st, base, nil, func() time.Time { return w.now }) }

// put writes the next version of a resource with its index, as the API would.
func (w *world) put(typ, id string, fields map[string]any) {
	w.t.Helper()
	fields["resourceType"], fields["id"] = typ, id
	body, _ := json.Marshal(fields)
	index, err := fhir.ExtractBody(body, base)
	if err != nil {
		w.t.Fatal(err)
	}
	cur, err := w.st.Get(context.Background(), typ, id)
	v := int64(0)
	if err == nil {
		v = cur.VersionID
	}
	if err := w.st.Apply(context.Background(), []store.Write{{Resource: store.Resource{Type: typ, ID: id, VersionID: v + 1,
		LastUpdated: w.now.UTC().Truncate(time.Millisecond), Body: body}, ExpectVersion: v, Index: index}}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) patient(id, org string, access ...map[string]any) {
	f := map[string]any{"managingOrganization": map[string]any{"reference": "Organization/" + org},
		"identifier": []any{map[string]any{"system": fhir.NHSNumberSystem, "value": nhsOf(id)}}}
	if len(access) > 0 {
		f["extension"] = []any{access[0]}
	}
	w.put("Patient", id, f)
}

func nhsOf(id string) string {
	n := map[string]string{"p1": "9000000009", "p2": "9000000017", "p3": "9000000025", "p4": "9000000033"}
	return n[id]
}

// audit appends the record of a request made now.
func (w *world) audit(in audit.Input) {
	w.t.Helper()
	w.seq++
	in.ID, in.Recorded, in.Site, in.Instance = fmt.Sprintf("ae-%06d", w.seq), w.now.UTC().Truncate(time.Millisecond), base, "test"
	recs := []audit.Record{audit.NewRecord(in, base)}
	if err := w.st.ApplyAudited(context.Background(), nil, recs); err != nil {
		w.t.Fatal(err)
	}
	w.appended = append(w.appended, recs...)
}

func patientUser(id string) *audit.User {
	return &audit.User{Kind: "patient", Subject: "s-" + id, NHSNumber: nhsOf(id), PatientID: id}
}

func (w *world) book(id string) {
	w.audit(audit.Input{Interaction: "create", Status: 201, User: patientUser(id), Patients: []string{id},
		Entities: []audit.Entity{{Type: "Appointment", ID: "ap-" + fmt.Sprint(w.seq), Version: 1, PatientIDs: []string{id}}}})
}

func (w *world) view(id string) {
	w.audit(audit.Input{Interaction: "search-type", Status: 200, User: patientUser(id), Patients: []string{id}, HasQuery: true,
		Entities: []audit.Entity{{Type: "Immunization", ID: "im-" + id, Version: 1, PatientIDs: []string{id}}}})
}

func (w *world) month(ta *Tally, p uptake.Period) Month {
	w.t.Helper()
	if err := ta.CatchUp(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	m, err := ta.Month(context.Background(), p)
	if err != nil {
		w.t.Fatal(err)
	}
	return m
}

var march = uptake.Period{Year: 2025, Month: time.March}

func TestProjectorCountsEachRecordOnceAndKeepsItsCheckpoint(t *testing.T) {
	w := newWorld(t)
	w.patient("p1", "org-a")
	w.patient("p2", "org-b")
	w.book("p1")
	w.view("p1")
	w.view("p1")
	w.audit(audit.Input{Interaction: "create", Status: 201, User: &audit.User{Kind: "system", Subject: "gp", ClientID: "gp"},
		Entities: []audit.Entity{{Type: "Appointment", ID: "gp-ap", Version: 1}}}) // GP-system traffic
	w.audit(audit.Input{Interaction: "search-type", Status: 403, Decision: "deny-level",
		User: &audit.User{Kind: "patient", Subject: "s", NHSNumber: nhsOf("p2")}}) // P5: attributed by NHS number
	w.audit(audit.Input{Interaction: "read", Status: 403, Decision: "deny-no-record",
		User: &audit.User{Kind: "patient", Subject: "s", NHSNumber: "9000000041"}}) // no record: no practice
	w.audit(audit.Input{Interaction: "read", Status: 200, User: &audit.User{Kind: "system", Subject: "gp", ClientID: "gp"},
		Entities: []audit.Entity{{Type: "Patient", ID: "p1", Version: 1, PatientIDs: []string{"p1"}}}}) // passed over unparsed, last
	ta := w.tally()
	m := w.month(ta, march)
	a := m.Counts["A00001"]
	if a.ApptsUse != 1 || a.RecordViews != 2 || a.Users != 1 || a.Refused() != 0 {
		t.Errorf("A00001 counts %+v", a)
	}
	if b := m.Counts["B00002"]; b.Refusals[uptake.BarrierLevel] != 1 || b.Users != 0 {
		t.Errorf("B00002 counts %+v", b)
	}
	if u := m.Counts[Unattributed]; u.Refusals[uptake.BarrierNoRecord] != 1 {
		t.Errorf("unattributed %+v", u)
	}
	// Counting again, by this tally or a new one (another process), adds nothing.
	again := w.month(New(w.st, base, nil, func() time.Time { return w.now }), march)
	if again.Counts["A00001"].RecordViews != 2 {
		t.Errorf("recounted: %+v", again.Counts["A00001"])
	}
	seq, _ := ta.Checkpoint(context.Background())
	if head, _, _ := w.st.AuditHead(context.Background()); seq != head {
		t.Errorf("checkpoint %d, head %d", seq, head)
	}
	// A user counted once a month, whatever they do.
	w.view("p1")
	if got := w.month(ta, march).Counts["A00001"]; got.Users != 1 || got.RecordViews != 3 {
		t.Errorf("after another view: %+v", got)
	}
}

func TestProjectorsOfSeveralProcessesCountEachRecordOnce(t *testing.T) {
	w := newWorld(t)
	w.patient("p1", "org-a")
	for i := 0; i < 300; i++ {
		w.view("p1")
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.tally().CatchUp(context.Background()); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if got := w.month(w.tally(), march).Counts["A00001"].RecordViews; got != 300 {
		t.Errorf("record views %d, want 300", got)
	}
}

func TestUsesCountAtThePracticeThePatientWasRegisteredAtThen(t *testing.T) {
	w := newWorld(t)
	w.patient("p1", "org-a")
	w.now = w.now.Add(time.Hour)
	w.view("p1")
	w.now = w.now.Add(time.Hour)
	w.patient("p1", "org-b") // moves practice
	w.now = w.now.Add(time.Hour)
	w.view("p1")
	m := w.month(w.tally(), march)
	if m.Counts["A00001"].RecordViews != 1 || m.Counts["B00002"].RecordViews != 1 {
		t.Errorf("A %+v B %+v", m.Counts["A00001"], m.Counts["B00002"])
	}
	// A month boundary in England, not UTC: 23:30 UTC on 31 March in summer time is April.
	w.now = time.Date(2025, 3, 31, 23, 30, 0, 0, time.UTC)
	w.view("p1")
	if got := w.month(w.tally(), uptake.Period{Year: 2025, Month: time.April}).Counts["B00002"].RecordViews; got != 1 {
		t.Errorf("April views %d", got)
	}
}

func TestCensusCountsListsEnabledPatientsAndSlots(t *testing.T) {
	w := newWorld(t)
	ext := func(record, appts, presc string) map[string]any {
		return map[string]any{"url": "https://gpfhir.example/StructureDefinition/online-access", "extension": []any{
			map[string]any{"url": "record", "valueCode": record}, map[string]any{"url": "appointments", "valueCode": appts},
			map[string]any{"url": "prescriptions", "valueCode": presc}}}
	}
	w.patient("p1", "org-a")                                  // defaults: appointments and prescriptions
	w.patient("p2", "org-a", ext("detailed", "none", "none")) // the detailed record only
	w.patient("p3", "org-a", ext("none", "none", "none"))     // nothing
	w.patient("p4", "org-b")
	slot := func(id, sched string, online bool, start time.Time, status string) {
		w.put("Slot", id, map[string]any{"schedule": map[string]any{"reference": "Schedule/" + sched}, "status": status,
			"extension": []any{map[string]any{"url": fhir.OnlineBookableExtension, "valueBoolean": online}},
			"start":     start.Format(time.RFC3339), "end": start.Add(10 * time.Minute).Format(time.RFC3339)})
	}
	d := time.Date(2025, 3, 20, 10, 0, 0, 0, time.UTC)
	slot("s1", "sched-org-a-true", true, d, "free")
	slot("s2", "sched-org-a-true", true, d.Add(10*time.Minute), "busy")
	slot("s3", "sched-org-a-false", false, d, "busy")
	slot("s4", "sched-org-a-true", true, time.Date(2025, 4, 2, 10, 0, 0, 0, time.UTC), "free") // April
	ta := w.tally()
	if err := ta.TakeCensus(context.Background(), march); err != nil {
		t.Fatal(err)
	}
	m := w.month(ta, march)
	a := m.Census["A00001"]
	want := uptake.Census{Name: "Practice A00001", AsAt: a.AsAt, ListSize: 3, Enabled: 2, ApptsEnabled: 1, PrescEnabled: 1, RecordEnabled: 1,
		Slots: 3, OnlineSlots: 2, OnlineBooked: 1}
	if a != want {
		t.Errorf("census\n got %+v\nwant %+v", a, want)
	}
	if b := m.Census["B00002"]; b.ListSize != 1 || b.Slots != 0 {
		t.Errorf("B00002 %+v", b)
	}
	// A past month keeps the census taken while it was current.
	w.now = time.Date(2025, 4, 3, 9, 0, 0, 0, time.UTC)
	w.patient("p1", "org-b")
	if err := ta.TakeCensus(context.Background(), march); err != nil {
		t.Fatal(err)
	}
	if got := w.month(ta, march).Census["A00001"].ListSize; got != 3 {
		t.Errorf("March list size changed after March: %d", got)
	}
	if err := ta.TakeCensus(context.Background(), uptake.Period{Year: 2025, Month: time.April}); err != nil {
		t.Fatal(err)
	}
	if got := w.month(ta, uptake.Period{Year: 2025, Month: time.April}).Census["A00001"]; got.ListSize != 2 || got.Slots != 1 {
		t.Errorf("April census %+v", got)
	}
}

func TestIndexRebuildsWhatTheTallyWroteItsDocumentsWith(t *testing.T) {
	w := newWorld(t)
	w.patient("p1", "org-a")
	w.view("p1")
	ta := w.tally()
	if err := ta.CatchUp(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := w.st.Get(context.Background(), TypeCounts, docID(march, "A00001"))
	if err != nil {
		t.Fatal(err)
	}
	got, ok := Index(r.Type, r.Body)
	if !ok || len(got) != 2 || got[0].Value != "2025-03" || got[1].Value != "A00001" {
		t.Errorf("Index = %v %v", got, ok)
	}
	if _, ok := Index("Patient", nil); ok {
		t.Error("Index claims a FHIR type")
	}
}

// ranges counts the records a tally reads back from the store.
type ranges struct {
	audit.Backend
	read int
}

func (r *ranges) AuditRange(ctx context.Context, after int64, limit int) ([]audit.Record, error) {
	recs, err := r.Backend.AuditRange(ctx, after, limit)
	r.read += len(recs)
	return recs, err
}

// TestOfferedSummariesCountAsTheRecordsWould: a tally offered the Summaries of the records its process
// wrote counts exactly what one reading the records back counts, census changes included, and reads
// back only the records it was not offered.
func TestOfferedSummariesCountAsTheRecordsWould(t *testing.T) {
	gp := &audit.User{Kind: "system", Subject: "gp", ClientID: "gp"}
	requests := func(w *world) {
		w.patient("p1", "org-a")
		w.patient("p2", "org-b")
		w.book("p1")
		w.view("p1")
		w.audit(audit.Input{Interaction: "read", Status: 200, User: gp,
			Entities: []audit.Entity{{Type: "Patient", ID: "p1", Version: 1, PatientIDs: []string{"p1"}}}})
		w.audit(audit.Input{Interaction: "search-type", Status: 403, Decision: "deny-level",
			User: &audit.User{Kind: "patient", Subject: "s", NHSNumber: nhsOf("p2")}})
		w.audit(audit.Input{Interaction: "read", Status: 403, Decision: "deny-no-record",
			User: &audit.User{Kind: "patient", Subject: "s", NHSNumber: "9000000041"}})
		w.audit(audit.Input{Interaction: "search-type", Status: 200, Withheld: true, User: patientUser("p2"), Patients: []string{"p2"}, HasQuery: true})
		w.audit(audit.Input{Interaction: "read", Status: 200, Patients: []string{"p2"},
			User:     &audit.User{Kind: "patient", Subject: "s3", NHSNumber: nhsOf("p3"), ProxyFor: nhsOf("p2"), PatientID: "p2"},
			Entities: []audit.Entity{{Type: "Patient", ID: "p2", Version: 1, PatientIDs: []string{"p2"}}}})
		w.audit(audit.Input{Interaction: "update", Status: 200, User: gp, // changes the census
			Entities: []audit.Entity{{Type: "Patient", ID: "p2", Version: 2, PatientIDs: []string{"p2"}}}})
		for range 5 {
			w.view("p2")
		}
	}
	type result struct {
		month Month
		dirty bool
		read  int
	}
	count := func(offered func(i int) bool) result {
		w := newWorld(t)
		requests(w)
		r := &ranges{Backend: w.st}
		ta := New(r, base, nil, func() time.Time { return w.now })
		for i, rec := range w.appended {
			if offered(i) {
				ta.Offer([]audit.Record{rec})
			}
		}
		m := w.month(ta, march)
		return result{m, ta.dirty.Load(), r.read}
	}
	readBack := count(func(int) bool { return false })
	all := count(func(int) bool { return true })
	some := count(func(i int) bool { return i%3 != 1 })
	n := 13
	if readBack.read != n || all.read != 0 || some.read == 0 || some.read == n {
		t.Errorf("records read back: %d without offers, %d with all offered, %d with some (want %d, 0, between)", readBack.read, all.read, some.read, n)
	}
	if !readBack.dirty {
		t.Error("the GP system's update of a Patient did not mark the census for a new count")
	}
	for name, got := range map[string]result{"all offered": all, "some offered": some} {
		if !reflect.DeepEqual(got.month, readBack.month) || got.dirty != readBack.dirty {
			t.Errorf("%s: %+v (census due %v), read back: %+v (%v)", name, got.month, got.dirty, readBack.month, readBack.dirty)
		}
	}
	if a := readBack.month.Counts["A00001"]; a.Users != 1 || a.ApptsUse != 1 {
		t.Errorf("A00001 read back: %+v", a)
	}
}
