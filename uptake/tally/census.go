package tally

import (
	"context"
	"encoding/json"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake"
)

// censusPage is how many resources a census reads per query; censusWrites how many documents it writes
// per atomic group.
const (
	censusPage   = 1000
	censusWrites = 500
)

// TakeCensus counts, for every practice (every Organization with an ODS code), its registered patients
// and what their access levels enable, as the stored Patients say now, and the slots of period in its
// appointment books, and stores the result as period's census. A past period that already has a census
// keeps it: its figures are the last ones taken while it was current.
func (t *Tally) TakeCensus(ctx context.Context, period uptake.Period) error {
	t.censusMu.Lock()
	defer t.censusMu.Unlock()
	now := t.now()
	current := !period.Before(uptake.PeriodOf(now))
	if current {
		t.dirty.Store(false)
		t.lastCensus.Store(now.UnixMilli())
	}
	c, err := t.count(ctx, period)
	if err != nil {
		if current {
			t.dirty.Store(true)
		}
		return err
	}
	var writes []store.Write
	for code, cen := range c {
		cen.AsAt = now.UTC().Truncate(time.Millisecond)
		id := docID(period, code)
		var old censusDoc
		v, err := get(ctx, t.st, TypeCensus, id, &old)
		if err != nil {
			return err
		}
		if v > 0 && (!current || old.AsAt.After(cen.AsAt)) {
			continue
		}
		w, err := write(TypeCensus, id, v, censusDoc{ResourceType: TypeCensus, ID: id, Period: period.String(), Practice: code, Census: *cen},
			indexOf(period.String(), code), now)
		if err != nil {
			return err
		}
		writes = append(writes, w)
		if len(writes) == censusWrites {
			if err := t.applyCensus(ctx, writes); err != nil {
				return err
			}
			writes = nil
		}
	}
	return t.applyCensus(ctx, writes)
}

// applyCensus stores census documents; one that another process replaced meanwhile is that process's
// census, as good as this one, so a conflict is no failure.
func (t *Tally) applyCensus(ctx context.Context, writes []store.Write) error {
	if len(writes) == 0 {
		return nil
	}
	if err := t.st.Apply(ctx, writes); err == nil || !isConflict(err) {
		return err
	}
	for _, w := range writes {
		if err := t.st.Apply(ctx, []store.Write{w}); err != nil && !isConflict(err) {
			return err
		}
	}
	return nil
}

// HasCensus reports whether period has a census for at least one practice.
func (t *Tally) HasCensus(ctx context.Context, period uptake.Period) (bool, error) {
	hits, err := t.st.Search(ctx, store.Query{Type: TypeCensus, Limit: 1,
		Clauses: []store.Clause{{{Param: "period", Match: store.MatchExact, Value: period.String()}}}})
	return len(hits) > 0, err
}

// count reads the resources a census counts.
func (t *Tally) count(ctx context.Context, period uptake.Period) (map[string]*uptake.Census, error) {
	out := map[string]*uptake.Census{}
	orgs := map[string]string{} // Organization id -> ODS code
	err := t.each(ctx, store.Query{Type: "Organization"}, func(r store.Resource) error {
		entries, err := fhir.ExtractBodyParams(r.Body, t.base, "identifier")
		if err != nil {
			return err
		}
		code := uptake.PracticeCode(entries)
		if code == "" {
			return nil
		}
		orgs[r.ID] = code
		if out[code] == nil {
			out[code] = &uptake.Census{Name: orgName(r.Body, code)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = t.each(ctx, store.Query{Type: "Patient"}, func(r store.Resource) error {
		entries, err := fhir.ExtractBodyParams(r.Body, t.base, uptake.RegistrationParams...)
		if err != nil {
			return err
		}
		c := out[orgs[uptake.Registered(entries)]]
		if c == nil {
			return nil // registered at no practice this server knows
		}
		a, err := practiceAccess(r.Body)
		if err != nil {
			return err
		}
		c.Count(uptake.EnabledBy(a))
		return nil
	})
	if err != nil {
		return nil, err
	}
	locations := map[string]string{} // Location id -> ODS code
	err = t.each(ctx, store.Query{Type: "Location"}, func(r store.Resource) error {
		entries, err := fhir.ExtractBodyParams(r.Body, t.base, "organization")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if code := orgs[refID(e.Value, "Organization")]; code != "" {
				locations[r.ID] = code
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	schedules := map[string]string{} // Schedule id -> ODS code
	err = t.each(ctx, store.Query{Type: "Schedule"}, func(r store.Resource) error {
		entries, err := fhir.ExtractBodyParams(r.Body, t.base, "actor")
		if err != nil {
			return err
		}
		for _, e := range entries {
			if code := locations[refID(e.Value, "Location")]; code != "" {
				schedules[r.ID] = code
				break
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slots := store.Query{Type: "Slot", Clauses: []store.Clause{{{Param: "start", Match: store.MatchRange, Bounds: []store.Bound{
		{Field: store.Low, Cmp: store.GE, Value: period.Start().UnixMilli()},
		{Field: store.Low, Cmp: store.LT, Value: period.End().UnixMilli()},
	}}}}}
	err = t.each(ctx, slots, func(r store.Resource) error {
		entries, err := fhir.ExtractBodyParams(r.Body, t.base, "schedule", "status", "online-bookable")
		if err != nil {
			return err
		}
		var sched, status string
		online := false
		for _, e := range entries {
			switch e.Param {
			case "schedule":
				sched = refID(e.Value, "Schedule")
			case "status":
				status = e.Value
			case "online-bookable":
				online = online || e.Value == "true"
			}
		}
		c := out[schedules[sched]]
		if c == nil {
			return nil
		}
		c.Slots++
		if online {
			c.OnlineSlots++
			if status == "busy" {
				c.OnlineBooked++
			}
		}
		return nil
	})
	return out, err
}

// each calls fn on every current resource q matches, reading them in pages in id order.
func (t *Tally) each(ctx context.Context, q store.Query, fn func(store.Resource) error) error {
	q.Limit = censusPage
	for {
		hits, err := t.st.Search(ctx, q)
		if err != nil {
			return err
		}
		for _, h := range hits {
			if err := fn(h.Resource); err != nil {
				return err
			}
		}
		if len(hits) < q.Limit {
			return nil
		}
		q.After = hits[len(hits)-1].SortValues
	}
}

func refID(ref, typ string) string {
	if len(ref) > len(typ)+1 && ref[:len(typ)+1] == typ+"/" {
		return ref[len(typ)+1:]
	}
	return ""
}

// orgName is an Organization's name, or its ODS code when it has none.
func orgName(body []byte, code string) string {
	var o struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(body, &o) != nil || o.Name == "" {
		return code
	}
	return o.Name
}

// EnsureCensus takes period's census when it has none, so that a month is never shown without one; and,
// when fresher is zero or more, also when period is the current month, changes have been seen since the
// last census of it, and that census is older than fresher. The background loop keeps the current
// month's census fresh on its own; fresher is for callers that must see a change at once.
func (t *Tally) EnsureCensus(ctx context.Context, period uptake.Period, fresher time.Duration) error {
	has, err := t.HasCensus(ctx, period)
	if err != nil {
		return err
	}
	now := t.now()
	stale := fresher >= 0 && period == uptake.PeriodOf(now) && t.dirty.Load() &&
		now.Sub(time.UnixMilli(t.lastCensus.Load())) >= fresher
	if has && !stale {
		return nil
	}
	return t.TakeCensus(ctx, period)
}
