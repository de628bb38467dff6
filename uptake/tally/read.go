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
