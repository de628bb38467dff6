package tally

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake"
)

// Bounds of one projector step: the records read, and the documents written in its atomic group (the
// changed counts and the new markers). A group stays far below MongoDB's 16 MB, which a journal
// document holding the old versions must fit in.
const (
	stepRecords = 2000
	stepWrites  = 2000
)

// month is the pending change of one practice-month's counts in a step.
type month struct {
	counts  countsDoc
	countsV int64
}

// step is one projector step's pending changes.
type step struct {
	t       *Tally
	months  map[string]*month
	order   []string
	markers map[string]bool // marker id -> exists (in the store, or written by this step)
	newMark []string
}

// Step counts the next records of the audit chain after the checkpoint, and moves the checkpoint past
// them in the same atomic group as the counts. It returns how many records it counted; 0 with a nil error
// when there were none, or when another process counted them first.
func (t *Tally) Step(ctx context.Context) (int, error) {
	t.stepMu.Lock()
	defer t.stepMu.Unlock()
	n, err := t.step(ctx)
	if errors.Is(err, store.ErrVersionConflict) {
		return 0, nil
	}
	return n, err
}

func (t *Tally) step(ctx context.Context) (int, error) {
	var cp checkpoint
	cpV, err := get(ctx, t.st, TypeCheckpoint, checkpointID, &cp)
	if err != nil {
		return 0, err
	}
	recs := t.offeredRun(cp.Seq, stepRecords)
	if len(recs) == 0 {
		if recs, err = t.st.AuditRange(ctx, cp.Seq, stepRecords); err != nil {
			return 0, err
		}
	}
	now := t.now()
	st := &step{t: t, months: map[string]*month{}, markers: map[string]bool{}}
	if len(recs) == 0 {
		// Retention may have pruned records before they were counted; nothing is left to count up to
		// the head.
		head, _, err := t.st.AuditHead(ctx)
		if err != nil || head <= cp.Seq {
			return 0, err
		}
		t.log.Warn("uptake: audit records were pruned before they were counted", "from_seq", cp.Seq+1, "to_seq", head)
		return 0, st.commit(ctx, cp, cpV, head, now)
	}
	if recs[0].Seq != cp.Seq+1 {
		t.log.Warn("uptake: audit records were pruned before they were counted", "from_seq", cp.Seq+1, "to_seq", recs[0].Seq-1)
	}
	res := &resolver{t: t, patients: map[string][]store.Resource{}, byNHS: map[string]string{}, orgs: map[string]string{}}
	last := cp.Seq
	counted := 0
	for _, rec := range recs {
		if len(st.months)+len(st.newMark)+2 > stepWrites {
			break // the rest waits for the next step
		}
		var s audit.Summary
		switch {
		case rec.Summary != nil:
			s = *rec.Summary // offered by this process (Offer)
		case rec.Body == nil:
			last = rec.Seq // a missing copy: audit verify reports it; nothing here to count
			continue
		case !audit.MayNameUser(rec.Body) && !censusInteraction(audit.InteractionOf(rec.Body)):
			// No patient or proxy user, so nothing to count, and no write, so no change to the census:
			// most of the trail (GP systems' reads and searches), passed over without parsing it whole.
			// Parsing every record was 3.5% of a server's CPU under reads and searches (gpfhir bench,
			// pprof); half the records of that run were these.
			last = rec.Seq
			continue
		default:
			var err error
			if s, err = audit.Summarize(rec.Body); err != nil {
				t.log.Warn("uptake: an audit record could not be read", "seq", rec.Seq, "error", err)
				last = rec.Seq
				continue
			}
		}
		if changesCensus(s) {
			t.dirty.Store(true)
		}
		e := uptake.Classify(s)
		if !e.Counts() {
			last = rec.Seq
			continue
		}
		code, err := res.practice(ctx, e, s.Recorded)
		if err != nil {
			return 0, err
		}
		if err := st.add(ctx, e, code); err != nil {
			return 0, err
		}
		last = rec.Seq
		counted++
	}
	return counted, st.commit(ctx, cp, cpV, last, now)
}

// add counts one effect in its practice-month, and its patient and proxy once each in the month.
func (st *step) add(ctx context.Context, e uptake.Effect, code string) error {
	id := docID(e.Period, code)
	m := st.months[id]
	if m == nil {
		m = &month{}
		var err error
		if m.countsV, err = get(ctx, st.t.st, TypeCounts, id, &m.counts); err != nil {
			return err
		}
		m.counts.ResourceType, m.counts.ID, m.counts.Period, m.counts.Practice = TypeCounts, id, e.Period.String(), code
		st.months[id] = m
		st.order = append(st.order, id)
	}
	m.counts.Add(e)
	if e.Use != uptake.NoService {
		who := e.Patient
		if who == "" && e.PatientNHS != "" {
			who = "nhs-" + pseudonym(e.PatientNHS)
		}
		if who != "" {
			added, err := st.mark(ctx, markerID(e.Period, code, "user", who))
			if err != nil {
				return err
			}
			if added {
				m.counts.Users++
			}
		}
	}
	if e.Proxy != "" {
		added, err := st.mark(ctx, markerID(e.Period, code, "proxy", pseudonym(e.Proxy)))
		if err != nil {
			return err
		}
		if added {
			m.counts.ProxyUsers++
		}
	}
	return nil
}

// mark records a person in a practice-month; added is false when they were already counted there.
func (st *step) mark(ctx context.Context, id string) (added bool, err error) {
	exists, seen := st.markers[id]
	if !seen {
		_, err := st.t.st.Get(ctx, TypeUser, id)
		switch {
		case err == nil:
			exists = true
		case !errors.Is(err, store.ErrNotFound):
			return false, err
		}
	}
	if exists {
		st.markers[id] = true
		return false, nil
	}
	st.markers[id] = true
	st.newMark = append(st.newMark, id)
	return true, nil
}

// commit writes the changed counts, the new markers and the checkpoint at last in one atomic group.
func (st *step) commit(ctx context.Context, cp checkpoint, cpV, last int64, now time.Time) error {
	cp.ResourceType, cp.ID, cp.Seq = TypeCheckpoint, checkpointID, last
	w, err := write(TypeCheckpoint, checkpointID, cpV, cp, nil, now)
	if err != nil {
		return err
	}
	writes := []store.Write{w}
	for _, id := range st.order {
		m := st.months[id]
		w, err := write(TypeCounts, id, m.countsV, m.counts, indexOf(m.counts.Period, m.counts.Practice), now)
		if err != nil {
			return err
		}
		writes = append(writes, w)
	}
	for _, id := range st.newMark {
		w, err := write(TypeUser, id, 0, marker{ResourceType: TypeUser, ID: id}, nil, now)
		if err != nil {
			return err
		}
		writes = append(writes, w)
	}
	return st.t.st.Apply(ctx, writes)
}

// censusTypes are the resources a census counts; a successful write of one calls for a new census.
// Appointments are among them because booking one makes its slot busy.
var censusTypes = map[string]bool{"Patient": true, "Organization": true, "Location": true, "Schedule": true,
	"Slot": true, "Appointment": true}

func changesCensus(s audit.Summary) bool {
	if s.Status >= 400 {
		return false
	}
	if !censusInteraction(s.Interaction) {
		return false
	}
	for _, e := range s.Entities {
		if censusTypes[e.Type] {
			return true
		}
	}
	return false
}

// censusInteraction reports whether a record of interaction may change the census: the writes.
func censusInteraction(interaction string) bool {
	switch interaction {
	case "create", "update", "patch", "delete", "transaction", "batch":
		return true
	}
	return false
}

// resolver finds the practice an effect belongs to, remembering what it read for one step only (so it
// holds nothing another process could have changed for longer than a step takes).
type resolver struct {
	t        *Tally
	patients map[string][]store.Resource // a Patient's versions read so far, newest first
	byNHS    map[string]string           // NHS number -> practice
	orgs     map[string]string           // Organization id -> ODS code
}

// practice is the ODS code of the practice where the effect's patient was registered at the time, or
// Unattributed.
func (r *resolver) practice(ctx context.Context, e uptake.Effect, at time.Time) (string, error) {
	switch {
	case e.Patient != "":
		body, err := r.asAt(ctx, e.Patient, at)
		if err != nil {
			return "", err
		}
		return r.registration(ctx, body)
	case e.PatientNHS != "":
		if code, ok := r.byNHS[e.PatientNHS]; ok {
			return code, nil
		}
		hits, err := r.t.st.Search(ctx, store.Query{Type: "Patient", Limit: 1,
			Clauses: []store.Clause{{{Param: "identifier", Match: store.MatchToken, System: fhir.NHSNumberSystem, Value: e.PatientNHS}}}})
		if err != nil {
			return "", err
		}
		code := Unattributed
		if len(hits) > 0 {
			if code, err = r.registration(ctx, hits[0].Resource.Body); err != nil {
				return "", err
			}
		}
		r.byNHS[e.PatientNHS] = code
		return code, nil
	}
	return Unattributed, nil
}

// asAt is the body of the Patient version that was current at the time: usually the current one, read
// by id, and otherwise the versions before it, read one by one by their keys. A request older than the
// record itself (history loaded after the fact, as the --dev seed does) takes the oldest version. nil
// when the Patient never existed.
func (r *resolver) asAt(ctx context.Context, id string, at time.Time) ([]byte, error) {
	versions, ok := r.patients[id]
	if !ok {
		cur, err := r.t.st.Get(ctx, "Patient", id)
		if errors.Is(err, store.ErrNotFound) {
			r.patients[id] = nil
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		versions = []store.Resource{cur}
	}
	var body []byte
	for i := 0; i < len(versions); i++ {
		v := versions[i]
		if !v.Deleted {
			body = v.Body
		}
		if !v.LastUpdated.After(at) && body != nil {
			break
		}
		if i == len(versions)-1 && v.VersionID > 1 {
			older, err := r.t.st.GetVersion(ctx, "Patient", id, v.VersionID-1)
			if err != nil {
				return nil, err
			}
			versions = append(versions, older)
		}
	}
	r.patients[id] = versions
	return body, nil
}

// registration is the ODS code of the practice a Patient body is registered at, or Unattributed.
func (r *resolver) registration(ctx context.Context, body []byte) (string, error) {
	if body == nil {
		return Unattributed, nil
	}
	entries, err := fhir.ExtractBodyParams(body, r.t.base, uptake.RegistrationParams...)
	if err != nil {
		return "", err
	}
	org := uptake.Registered(entries)
	if org == "" {
		return Unattributed, nil
	}
	if code, ok := r.orgs[org]; ok {
		return code, nil
	}
	code, err := r.t.practiceCode(ctx, org)
	if err != nil {
		return "", err
	}
	r.orgs[org] = code
	return code, nil
}

// practiceCode is the ODS code of an Organization, or Unattributed when it has none or is gone.
func (t *Tally) practiceCode(ctx context.Context, orgID string) (string, error) {
	o, err := t.st.Get(ctx, "Organization", orgID)
	if errors.Is(err, store.ErrNotFound) || err == nil && o.Deleted {
		return Unattributed, nil
	}
	if err != nil {
		return "", err
	}
	entries, err := fhir.ExtractBodyParams(o.Body, t.base, "identifier")
	if err != nil {
		return "", err
	}
	if code := uptake.PracticeCode(entries); code != "" {
		return code, nil
	}
	return Unattributed, nil
}

// practiceAccess reads the access levels a practice set on a Patient body.
func practiceAccess(body []byte) (online.Access, error) {
	var tree map[string]any
	if err := json.Unmarshal(body, &tree); err != nil {
		return online.Access{}, err
	}
	return online.PracticeAccess(tree), nil
}
