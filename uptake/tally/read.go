package tally

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake"
)

// Month is what the tally holds for one month: each practice's census and counts, by ODS code. Counts of
// refusals that belong to no practice are under Unattributed.
type Month struct {
	Period uptake.Period
	Census map[string]uptake.Census
	Counts map[string]uptake.Counts
}

// Month reads a month's census and counts: two index lookups, whatever the length of the audit trail.
func (t *Tally) Month(ctx context.Context, period uptake.Period) (Month, error) {
	m := Month{Period: period, Census: map[string]uptake.Census{}, Counts: map[string]uptake.Counts{}}
	by := []store.Clause{{{Param: "period", Match: store.MatchExact, Value: period.String()}}}
	census, err := t.st.Search(ctx, store.Query{Type: TypeCensus, Clauses: by})
	if err != nil {
		return m, err
	}
	for _, h := range census {
		var d censusDoc
		if err := json.Unmarshal(h.Resource.Body, &d); err != nil {
			return m, err
		}
		m.Census[d.Practice] = d.Census
	}
	counts, err := t.st.Search(ctx, store.Query{Type: TypeCounts, Clauses: by})
	if err != nil {
		return m, err
	}
	for _, h := range counts {
		var d countsDoc
		if err := json.Unmarshal(h.Resource.Body, &d); err != nil {
			return m, err
		}
		m.Counts[d.Practice] = d.Counts
	}
	return m, nil
}

// Practice reads one practice's census (nil when there is none) and counts for one month: two reads by id.
func (t *Tally) Practice(ctx context.Context, period uptake.Period, code string) (*uptake.Census, uptake.Counts, error) {
	id := docID(period, code)
	var cd censusDoc
	v, err := get(ctx, t.st, TypeCensus, id, &cd)
	if err != nil {
		return nil, uptake.Counts{}, err
	}
	var kd countsDoc
	if _, err := get(ctx, t.st, TypeCounts, id, &kd); err != nil {
		return nil, uptake.Counts{}, err
	}
	if v == 0 {
		return nil, kd.Counts, nil
	}
	return &cd.Census, kd.Counts, nil
}

func isConflict(err error) bool { return errors.Is(err, store.ErrVersionConflict) }

// Loaded is one practice-month's figures brought from elsewhere (Load).
type Loaded struct {
	Period   uptake.Period
	Practice string
	Census   *uptake.Census
	Counts   uptake.Counts
}

// Load writes figures counted elsewhere, and moves the checkpoint to seq, as if the projector had
// counted the audit trail up to seq: for a loader that brings a trail together with its figures, such as
// the dashboard's benchmark, which would otherwise spend its setup counting a million records. It
// replaces what the months held and counts nothing itself.
func (t *Tally) Load(ctx context.Context, seq int64, months []Loaded) error {
	now := t.now()
	var writes []store.Write
	flush := func() error {
		err := t.st.Apply(ctx, writes)
		writes = writes[:0]
		return err
	}
	for _, l := range months {
		id := docID(l.Period, l.Practice)
		var old countsDoc
		v, err := get(ctx, t.st, TypeCounts, id, &old)
		if err != nil {
			return err
		}
		w, err := write(TypeCounts, id, v, countsDoc{ResourceType: TypeCounts, ID: id, Period: l.Period.String(), Practice: l.Practice, Counts: l.Counts},
			indexOf(l.Period.String(), l.Practice), now)
		if err != nil {
			return err
		}
		writes = append(writes, w)
		if l.Census != nil {
			var oc censusDoc
			if v, err = get(ctx, t.st, TypeCensus, id, &oc); err != nil {
				return err
			}
			if w, err = write(TypeCensus, id, v, censusDoc{ResourceType: TypeCensus, ID: id, Period: l.Period.String(), Practice: l.Practice, Census: *l.Census},
				indexOf(l.Period.String(), l.Practice), now); err != nil {
				return err
			}
			writes = append(writes, w)
		}
		if len(writes) >= censusWrites {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	var cp checkpoint
	v, err := get(ctx, t.st, TypeCheckpoint, checkpointID, &cp)
	if err != nil {
		return err
	}
	w, err := write(TypeCheckpoint, checkpointID, v, checkpoint{ResourceType: TypeCheckpoint, ID: checkpointID, Seq: seq}, nil, now)
	if err != nil {
		return err
	}
	writes = append(writes, w)
	return flush()
}
