package api_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// patientGets counts the store's reads by id of Patients.
type patientGets struct {
	audit.Backend
	n atomic.Int64
}

func (p *patientGets) Get(ctx context.Context, typ, id string) (store.Resource, error) {
	if typ == "Patient" {
		p.n.Add(1)
	}
	return p.Backend.Get(ctx, typ, id)
}

// A patient app reads its own Patient on every launch. identify has just found that Patient (by the NHS
// number the token names), so the read answers from what it found instead of looking it up again; what
// it answers, and what it refuses, are as before.
func TestAPatientsReadOfTheirOwnPatientIsNotLookedUpTwice(t *testing.T) {
	st := &patientGets{Backend: openTestStore(t)}
	ts := newTestServerOn(t, st)
	meNHS, otherNHS := nhsNumber(t, 1), nhsNumber(t, 2)
	me := ts.create("Patient", patient("Me", meNHS))
	other := ts.create("Patient", patient("Other", otherNHS))
	tok := ts.patientToken(meNHS, "P9", "")

	before := st.n.Load()
	r := ts.mustStatus(ts.do("GET", "/Patient/"+me, nil, bearer(tok)), http.StatusOK)
	if got := st.n.Load() - before; got != 0 {
		t.Errorf("the read of the caller's own Patient looked it up by id %d times; identify had found it", got)
	}
	body := r.JSON(t)
	if body["id"] != me {
		t.Fatalf("read answered %v, want Patient/%s", body["id"], me)
	}
	if r.Header.Get("ETag") != `W/"1"` {
		t.Errorf("ETag %q, want W/\"1\"", r.Header.Get("ETag"))
	}

	// A change made since is what the next read answers.
	upd := patient("Me", meNHS)
	upd["id"] = me
	upd["gender"] = "female"
	ts.mustStatus(ts.do("PUT", "/Patient/"+me, upd, nil), http.StatusOK)
	r = ts.mustStatus(ts.do("GET", "/Patient/"+me, nil, bearer(tok)), http.StatusOK)
	if got := r.JSON(t)["gender"]; got != "female" || r.Header.Get("ETag") != `W/"2"` {
		t.Errorf("after an update the read answered gender %v, ETag %q; want female, W/\"2\"", got, r.Header.Get("ETag"))
	}

	// Another patient's record is still looked up, and still refused.
	before = st.n.Load()
	r = ts.do("GET", "/Patient/"+other, nil, bearer(tok))
	if r.Status != http.StatusForbidden && r.Status != http.StatusNotFound {
		t.Errorf("a patient read another's Patient: status %d", r.Status)
	}
	if st.n.Load() == before {
		t.Error("the read of another patient's Patient was answered without looking it up")
	}
}
