package api

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/online"
	"github.com/gpfhir/gpfhir/store"
)

// The write rules of the patient online services. Every write path (create, update, conditional update,
// patch, bundle entry) prepares its version with prepareVersion, which asks writeRules what else the write
// means: a booking claims its slots, a cancellation frees them, completing a repeat request issues a
// prescription and counts it against the plan. Those writes go into the same atomic group (commit) as the
// resource itself, with compare-and-swap on each version read, so the group happens completely or not at
// all on both backends: of many bookings of one free slot exactly one can win. The rules themselves are
// pure functions in package online; this file reads what they need from the store.

// effects is what writeRules adds to a write.
type effects struct {
	// replace, when set, is written instead of the submitted resource (a completed Task gains its output).
	replace *fhir.Resource
	// extra are derived writes applied in the same atomic group.
	extra []store.Write
	// conflict, when set, is the answer to a compare-and-swap failure of the group.
	conflict error
}

// writeRules applies the online-services rules to res, about to become version cur+1 of typ/id.
func (s *Server) writeRules(req *request, res *fhir.Resource, typ, id string, cur int64, now time.Time) (effects, error) {
	ctx := req.ctx()
	caller := req.caller
	if caller == nil {
		return effects{}, nil
	}
	byPatient := caller.Kind == auth.KindPatient
	switch typ {
	case "Patient", "RelatedPerson":
		if e := online.CheckAccessResource(typ, res.Tree()); e != nil {
			return effects{}, e
		}
	case "Appointment":
		old, err := s.previous(ctx, typ, id, cur)
		if err != nil {
			return effects{}, err
		}
		if byPatient {
			act, tree := online.ActBook, res.Tree()
			if old != nil {
				act, tree = online.ActCancel, old
			}
			if err := s.checkPractice(req, act, online.AppointmentPatients(tree), func() ([]string, error) {
				return s.appointmentPractices(req, tree, old != nil)
			}); err != nil {
				return effects{}, err
			}
		}
		if old == nil {
			return s.booking(req, res, byPatient, now)
		}
		return s.appointmentChange(ctx, old, res, byPatient, req.ifMatch, now)
	case "Task":
		old, err := s.previous(ctx, typ, id, cur)
		if err != nil {
			return effects{}, err
		}
		if byPatient && (old == nil || online.IsRepeatRequest(old)) {
			tree := res.Tree()
			if old != nil {
				tree = old
			}
			if err := s.checkPractice(req, online.ActRepeat, []string{online.TaskFor(tree)}, func() ([]string, error) {
				return s.ownerPractices(req, tree)
			}); err != nil {
				return effects{}, err
			}
		}
		if old == nil {
			if byPatient || online.IsRepeatRequest(res.Tree()) {
				return s.repeatRequest(ctx, res, id, now)
			}
			return effects{}, nil
		}
		if !online.IsRepeatRequest(old) {
			return effects{}, nil
		}
		return s.repeatChange(ctx, old, res, id, byPatient, now)
	}
	return effects{}, nil
}

// checkPractice keeps a patient's (or proxy's) booking, cancellation or repeat request within the
// practices the patient is registered with (online.CheckPractice). patients are the write's patient
// references; at finds the practices the write is at. A write whose patient is not one the caller acts
// for is left to the write guard, which refuses it: this rule must not tell the caller where someone
// else is registered.
func (s *Server) checkPractice(req *request, act online.PracticeAction, patients []string, at func() ([]string, error)) error {
	if len(patients) != 1 {
		return nil // the booking rules refuse anything but exactly one patient
	}
	typ, pid, ok := fhir.LocalRef(patients[0], s.cfg.BaseURL)
	if !ok || typ != "Patient" || !slices.Contains(req.caller.PatientIDs, pid) {
		return nil
	}
	registered, err := s.practicesOf(req, pid, nil)
	if err != nil {
		return err
	}
	codes, err := at()
	if err != nil {
		return err
	}
	if e := online.CheckPractice(act, registered, codes); e != nil {
		return e
	}
	return nil
}

// appointmentPractices returns the practices an Appointment tree is at: those of its slots' schedules,
// the book that holds it; only an existing appointment whose slots are gone or that a GP system made
// without slots falls back on the Locations among its participants.
//
// A slot's practice is found through its schedule, the appointment book it belongs to: Slot.schedule,
// then each Schedule.actor that is a Location (its managingOrganization) or an Organization, then that
// Organization's ODS code. A Practitioner actor names no practice, since a clinician may work at
// several; schedules name their practice by its Location, as the seed data and GP Connect do.
func (s *Server) appointmentPractices(req *request, tree map[string]any, withLocations bool) ([]string, error) {
	var actors []string
	for _, id := range online.AppointmentSlots(tree) {
		slot, ok, err := s.live(req, "Slot", id)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		se, err := s.entriesOf(slot.Body, "schedule")
		if err != nil {
			return nil, err
		}
		for _, e := range se {
			_, sid, ok := strings.Cut(e.Value, "Schedule/")
			if !ok {
				continue
			}
			sched, ok, err := s.live(req, "Schedule", sid)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			ae, err := s.entriesOf(sched.Body, "actor")
			if err != nil {
				return nil, err
			}
			for _, a := range ae {
				actors = append(actors, a.Value)
			}
		}
	}
	if withLocations && len(actors) == 0 {
		for _, v := range fhir.Walk(tree, "participant.actor") {
			m, _ := v.(map[string]any)
			ref, _ := m["reference"].(string)
			if typ, id, ok := fhir.LocalRef(ref, s.cfg.BaseURL); ok && typ == "Location" {
				actors = append(actors, "Location/"+id)
			}
		}
	}
	return s.actorPractices(req, actors)
}

// ownerPractices returns the practices a repeat request is addressed to: its owner's, when that is an
// Organization. A request with no owner goes to the patient's own practice, which is where it is.
func (s *Server) ownerPractices(req *request, task map[string]any) ([]string, error) {
	owner, _ := task["owner"].(map[string]any)
	ref, _ := owner["reference"].(string)
	if owner == nil {
		if _, pid, ok := fhir.LocalRef(online.TaskFor(task), s.cfg.BaseURL); ok {
			return s.practicesOf(req, pid, nil)
		}
		return nil, nil
	}
	typ, id, ok := fhir.LocalRef(ref, s.cfg.BaseURL)
	if !ok || typ != "Organization" {
		return nil, nil
	}
	return s.actorPractices(req, []string{"Organization/" + id})
}

// actorPractices returns the ODS codes of the practices that actors ("Type/id") name: an Organization
// its own, a Location its managingOrganization's; other types none.
func (s *Server) actorPractices(req *request, actors []string) ([]string, error) {
	var codes []string
	seen := map[string]bool{}
	for _, a := range actors {
		if seen[a] {
			continue
		}
		seen[a] = true
		typ, id, _ := strings.Cut(a, "/")
		var orgs []string
		switch typ {
		case "Organization":
			orgs = []string{id}
		case "Location":
			loc, ok, err := s.live(req, "Location", id)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			le, err := s.entriesOf(loc.Body, "organization")
			if err != nil {
				return nil, err
			}
			for _, e := range le {
				if oid, ok := strings.CutPrefix(e.Value, "Organization/"); ok {
					orgs = append(orgs, oid)
				}
			}
		}
		for _, oid := range orgs {
			oc, err := s.orgODS(req, oid)
			if err != nil {
				return nil, err
			}
			for _, c := range oc {
				if !slices.Contains(codes, c) {
					codes = append(codes, c)
				}
			}
		}
	}
	return codes, nil
}

// previous returns the body of version cur, or nil when there is none (a create, or over a tombstone).
func (s *Server) previous(ctx context.Context, typ, id string, cur int64) (map[string]any, error) {
	if cur == 0 {
		return nil, nil
	}
	r, err := s.store.GetVersion(ctx, typ, id, cur)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if r.Deleted {
		return nil, nil
	}
	tree, err := fhir.DecodeObject(r.Body)
	if err != nil {
		return nil, internal(err)
	}
	return tree, nil
}

// derivedWrite validates and stamps tree as version cur+1 of typ/id.
func (s *Server) derivedWrite(tree map[string]any, typ, id string, cur int64, now time.Time) (store.Write, error) {
	tree["resourceType"] = typ
	tree["id"] = id
	raw, err := json.Marshal(tree)
	if err != nil {
		return store.Write{}, internal(err)
	}
	res, err := fhir.Parse(raw)
	if err != nil {
		return store.Write{}, internal(err)
	}
	body, err := res.Finalize(id, cur+1, now)
	if err != nil {
		return store.Write{}, internal(err)
	}
	return store.Write{Resource: store.Resource{Type: typ, ID: id, VersionID: cur + 1, LastUpdated: now, Body: body},
		ExpectVersion: cur, Index: fhir.Extract(res, s.cfg.BaseURL)}, nil
}

// slotTree reads a Slot's current version.
func (s *Server) slotTree(ctx context.Context, id string) (store.Resource, map[string]any, error) {
	return s.currentTree(ctx, "Slot", id, "Appointment.slot")
}

// bookedSlot reads the Slot a booking claims: the version a transaction has prepared for it, if any,
// as the version the prepared one replaces, so that the booking's write takes that write's place.
func (s *Server) bookedSlot(req *request, id string) (store.Resource, map[string]any, error) {
	key := "Slot/" + id
	if base, ok := req.pending[key]; ok {
		r := req.staged[key]
		if r.Deleted {
			return r, nil, fail(kindUnprocessable, "Slot/%s is deleted by this transaction", id).at("Appointment.slot")
		}
		tree, err := fhir.DecodeObject(r.Body)
		if err != nil {
			return r, nil, internal(err)
		}
		r.VersionID = base
		return r, tree, nil
	}
	return s.slotTree(req.ctx(), id)
}

// currentTree reads the current version of a resource a rule depends on, with its JSON tree. A missing or
// deleted one is the client's mistake about the resource at expr, so 422.
func (s *Server) currentTree(ctx context.Context, typ, id, expr string) (store.Resource, map[string]any, error) {
	r, err := s.store.Get(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.Deleted {
		return r, nil, fail(kindUnprocessable, "%s/%s does not exist", typ, id).at(expr)
	}
	if err != nil {
		return r, nil, err
	}
	tree, err := fhir.DecodeObject(r.Body)
	if err != nil {
		return r, nil, internal(err)
	}
	return r, tree, nil
}

// booking claims the slots of a new Appointment: each becomes busy, with compare-and-swap on the version
// that was read free. Patients and proxies book under every booking rule (online.CheckBooking); a GP
// system is the practice's own book, so its appointments only claim the slots that are still free.
func (s *Server) booking(req *request, res *fhir.Resource, byPatient bool, now time.Time) (effects, error) {
	tree := res.Tree()
	taken := fail(kindConflict, "%s", online.SlotTakenMessage).at("Appointment.slot")
	var infos []online.SlotInfo
	var extra []store.Write
	for _, id := range online.AppointmentSlots(tree) {
		r, st, err := s.bookedSlot(req, id)
		if err != nil {
			return effects{}, err
		}
		info := online.ParseSlot(id, st)
		infos = append(infos, info)
		if !byPatient && info.Status != "free" {
			// A GP system records appointments its own book already holds (syncs, past
			// appointments): a slot it marked busy stays as it is.
			continue
		}
		w, err := s.derivedWrite(online.SetSlotStatus(st, "busy"), "Slot", id, r.VersionID, now)
		if err != nil {
			return effects{}, err
		}
		extra = append(extra, w)
	}
	if !byPatient {
		return effects{extra: extra, conflict: taken}, nil
	}
	if e := online.CheckBooking(tree, infos, byPatient, now); e != nil {
		if e.Kind == online.RuleConflict {
			return effects{}, taken
		}
		return effects{}, e
	}
	return effects{extra: extra, conflict: taken}, nil
}

// appointmentChange applies the cancellation rules and frees the slots of a cancelled appointment.
func (s *Server) appointmentChange(ctx context.Context, old map[string]any, res *fhir.Resource, byPatient, ifMatch bool, now time.Time) (effects, error) {
	next := res.Tree()
	cutoff := online.DefaultCancellationCut
	if byPatient {
		if pts := online.AppointmentPatients(old); len(pts) > 0 {
			if _, id, ok := fhir.LocalRef(pts[0], s.cfg.BaseURL); ok {
				var err error
				if cutoff, err = s.cancellationCutoff(ctx, id); err != nil {
					return effects{}, err
				}
			}
		}
	}
	frees, e := online.CheckAppointmentChange(old, next, byPatient, cutoff, now)
	if e != nil {
		return effects{}, e
	}
	if !frees {
		return effects{}, nil
	}
	if !ifMatch {
		return effects{}, fail(kindPreconditionRequired,
			`cancelling an appointment needs If-Match with the version you read (for example If-Match: W/"1"), so that it cannot cancel a changed appointment`)
	}
	var extra []store.Write
	for _, id := range online.AppointmentSlots(old) {
		r, st, err := s.slotTree(ctx, id)
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.kind == kindUnprocessable {
				continue // the practice removed the slot; nothing to free
			}
			return effects{}, err
		}
		if online.ParseSlot(id, st).Status != "busy" {
			continue
		}
		w, err := s.derivedWrite(online.SetSlotStatus(st, "free"), "Slot", id, r.VersionID, now)
		if err != nil {
			return effects{}, err
		}
		extra = append(extra, w)
	}
	return effects{extra: extra}, nil
}

// plan reads a repeat authorisation.
func (s *Server) plan(ctx context.Context, id string) (store.Resource, map[string]any, error) {
	return s.currentTree(ctx, "MedicationRequest", id, "Task.focus")
}

// repeatRequest applies the rules to taskID, a new repeat request: an orderable plan of the same
// patient, and no other request for it still outstanding. The second rule is only as good as what it
// reads, so the request also marks the plan (online.MarkOutstanding) in the same atomic group as the Task,
// with compare-and-swap on the plan version read here: of two requests for one plan made at the same
// instant, both of which read it free, one write finds the plan changed and nothing of it is written.
func (s *Server) repeatRequest(ctx context.Context, res *fhir.Resource, taskID string, now time.Time) (effects, error) {
	tree := res.Tree()
	if f := online.TaskFor(tree); f != "" {
		if _, id, ok := fhir.LocalRef(f, s.cfg.BaseURL); ok {
			// The rules compare local references; the Task itself is stored as the client wrote it.
			tree = maps.Clone(tree)
			tree["for"] = map[string]any{"reference": "Patient/" + id}
		}
	}
	planID := online.TaskFocus(tree)
	var pr store.Resource
	var pt map[string]any
	for fresh := false; ; {
		var plan online.Plan
		if planID != "" {
			var err error
			if pr, pt, err = s.plan(ctx, planID); err != nil {
				return effects{}, err
			}
			plan = online.ParsePlan(planID, pt)
			if _, id, ok := fhir.LocalRef(plan.Patient, s.cfg.BaseURL); ok {
				plan.Patient = "Patient/" + id
			}
		}
		if e := online.CheckRepeatRequest(tree, plan, now); e != nil {
			return effects{}, e
		}
		if plan.Outstanding == "" || plan.Outstanding == taskID {
			break
		}
		status, err := s.taskStatus(ctx, plan.Outstanding)
		if err != nil {
			return effects{}, err
		}
		if e := online.CheckNoOutstandingRequest(plan.Outstanding, status); e != nil {
			return effects{}, e
		}
		// The marker names a request that has finished. Finishing takes the marker off in the same
		// group, so unless that request was deleted, or finished before plans carried markers, the plan
		// read above predates it: read it once more (the finish may have used up its last issue), so that
		// the compare-and-swap below is not lost to a write that is already over.
		if fresh {
			break
		}
		cur, err := s.store.Get(ctx, "MedicationRequest", planID)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return effects{}, err
		}
		if cur.VersionID == pr.VersionID {
			break
		}
		fresh = true
	}
	// Requests made before plans carried the marker, or whose marker a GP system's update of the plan
	// dropped, are found by their focus.
	var statuses store.Clause
	for _, st := range online.OutstandingTaskStatuses {
		statuses = append(statuses, store.Predicate{Param: "status", Match: store.MatchToken, AnySystem: true, Value: st})
	}
	hits, err := s.store.Search(ctx, store.Query{Type: "Task", Limit: 1, Clauses: []store.Clause{
		{{Param: "focus", Match: store.MatchExact, Value: "MedicationRequest/" + planID}}, statuses}})
	if err != nil {
		return effects{}, err
	}
	if len(hits) > 0 {
		status, err := bodyStatus(hits[0].Resource.Body)
		if err != nil {
			return effects{}, err
		}
		if e := online.CheckNoOutstandingRequest(hits[0].Resource.ID, status); e != nil {
			return effects{}, e
		}
	}
	marked, err := s.derivedWrite(online.MarkOutstanding(pt, taskID), "MedicationRequest", planID, pr.VersionID, now)
	if err != nil {
		return effects{}, err
	}
	// A lost compare-and-swap on the plan is retried by create: the retry reads the plan again, and if
	// another request won, the marker above answers 409 naming it; if the practice edited the plan, the
	// request goes through.
	return effects{extra: []store.Write{marked}}, nil
}

// taskStatus returns a Task's current status, or "" when it does not exist (never did, or deleted).
func (s *Server) taskStatus(ctx context.Context, id string) (string, error) {
	r, err := s.store.Get(ctx, "Task", id)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.Deleted {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return bodyStatus(r.Body)
}

func bodyStatus(body []byte) (string, error) {
	var v struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &v); err != nil {
		return "", internal(err)
	}
	return v.Status, nil
}

// unmarkPlan removes the outstanding-request marker that names taskID from its plan, with compare-and-swap
// on the version read, or returns ok false when there is nothing to remove (no such marker, or the plan
// is gone).
func (s *Server) unmarkPlan(ctx context.Context, planID, taskID string, now time.Time) (w store.Write, ok bool, err error) {
	r, err := s.store.Get(ctx, "MedicationRequest", planID)
	if errors.Is(err, store.ErrNotFound) || err == nil && r.Deleted {
		return store.Write{}, false, nil
	}
	if err != nil {
		return store.Write{}, false, err
	}
	pt, err := fhir.DecodeObject(r.Body)
	if err != nil {
		return store.Write{}, false, internal(err)
	}
	cleared, changed := online.ClearOutstanding(pt, taskID)
	if !changed {
		return store.Write{}, false, nil
	}
	w, err = s.derivedWrite(cleared, "MedicationRequest", planID, r.VersionID, now)
	return w, err == nil, err
}

// repeatChange applies the lifecycle rules; completing issues the prescription and counts it.
// A request that finishes (completed, rejected, cancelled) takes its marker off the plan in the same group,
// so that the next request can be made.
func (s *Server) repeatChange(ctx context.Context, old map[string]any, res *fhir.Resource, taskID string, byPatient bool, now time.Time) (effects, error) {
	next := res.Tree()
	step, e := online.CheckTaskChange(old, next, byPatient)
	if e != nil {
		return effects{}, e
	}
	switch step {
	case online.TaskComplete:
	case online.TaskReject, online.TaskCancel:
		w, ok, err := s.unmarkPlan(ctx, online.TaskFocus(old), taskID, now)
		if err != nil || !ok {
			return effects{}, err
		}
		return effects{extra: []store.Write{w}}, nil
	default:
		return effects{}, nil
	}
	planID := online.TaskFocus(old)
	pr, pt, err := s.plan(ctx, planID)
	if err != nil {
		return effects{}, err
	}
	plan := online.ParsePlan(planID, pt)
	if e := online.CheckPlanOrderable(plan, now); e != nil {
		e.Message = "the request cannot be completed: " + e.Message
		return effects{}, e
	}
	issueID := uuid.NewString()
	issue, err := s.derivedWrite(online.IssueFromPlan(planID, pt, now), "MedicationRequest", issueID, 0, now)
	if err != nil {
		return effects{}, err
	}
	counted, _ := online.ClearOutstanding(online.CountIssue(pt, plan.Issued), taskID)
	countedW, err := s.derivedWrite(counted, "MedicationRequest", planID, pr.VersionID, now)
	if err != nil {
		return effects{}, err
	}
	// The completed Task points at what it issued, so the patient's app can show it.
	outputs, _ := next["output"].([]any)
	next["output"] = append(outputs, map[string]any{
		"type":           map[string]any{"text": "Issued prescription"},
		"valueReference": map[string]any{"reference": "MedicationRequest/" + issueID},
	})
	raw, err := json.Marshal(next)
	if err != nil {
		return effects{}, internal(err)
	}
	replaced, err := fhir.Parse(raw)
	if err != nil {
		return effects{}, fromParseError(err)
	}
	return effects{replace: replaced, extra: []store.Write{issue, countedW}}, nil
}
