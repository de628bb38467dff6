package uptake

import (
	"math"
	"sort"
	"time"
)

// DefaultTarget is the share of patients using online services that NHS England's plan aims for.
const DefaultTarget = 0.30

// Counts are what patients and proxies did in one practice and month, counted from the audit trail.
type Counts struct {
	// ApptsUse, PrescUse and RecordViews are POMI's Pat_Appts_Use, Pat_Presc_Use and Pat_DetCodeRec_Use.
	ApptsUse    int `json:"appts_use"`
	PrescUse    int `json:"presc_use"`
	RecordViews int `json:"record_views"`
	// Users are the patients who used at least one service; ProxyUsers the people who acted for a
	// patient of the practice as a proxy (both counted once each in the month).
	Users      int `json:"users"`
	ProxyUsers int `json:"proxy_users"`
	// Refusals counts refusals and withholdings by barrier.
	Refusals map[Barrier]int `json:"refusals,omitempty"`
}

// Add adds e's uses and barriers; Users and ProxyUsers are kept by the caller, which knows who was
// already counted.
func (c *Counts) Add(e Effect) {
	switch e.Use {
	case Appointments:
		c.ApptsUse++
	case Prescriptions:
		c.PrescUse++
	case RecordViews:
		c.RecordViews++
	}
	if e.Barrier != "" {
		if c.Refusals == nil {
			c.Refusals = map[Barrier]int{}
		}
		c.Refusals[e.Barrier]++
	}
}

// Refused is the number of refusals and withholdings of every barrier.
func (c Counts) Refused() int {
	n := 0
	for _, v := range c.Refusals {
		n += v
	}
	return n
}

// Census is what the stored resources say about one practice for a month: its list and what its
// patients are enabled for (as at the census time), and its appointment books for the month.
type Census struct {
	Name string `json:"name"`
	// AsAt is when the census was taken. The figures of a month are those of the last census taken in
	// it; a month that had none gets one taken after it ended.
	AsAt time.Time `json:"as_at"`
	// ListSize and the enabled counts are POMI's patient_list_size, Total_Pat_Enbld, Pat_Appts_Enbld,
	// Pat_Presc_Enbld and Pat_DetCodeRec_Enbld.
	ListSize      int `json:"patient_list_size"`
	Enabled       int `json:"total_enabled"`
	ApptsEnabled  int `json:"appts_enabled"`
	PrescEnabled  int `json:"presc_enabled"`
	RecordEnabled int `json:"record_enabled"`
	// Slots are the slots starting in the month in the practice's appointment books; OnlineSlots those
	// published for online booking; OnlineBooked those of them that are booked.
	Slots        int `json:"slots"`
	OnlineSlots  int `json:"online_slots"`
	OnlineBooked int `json:"online_booked"`
}

// Count adds one registered patient whose access levels enable en.
func (c *Census) Count(en Enabled) {
	c.ListSize++
	if en.Any() {
		c.Enabled++
	}
	if en.Appointments {
		c.ApptsEnabled++
	}
	if en.Prescriptions {
		c.PrescEnabled++
	}
	if en.Record {
		c.RecordEnabled++
	}
}

// Figures are one practice's published figures for one month.
type Figures struct {
	Practice string
	Name     string
	Period   Period
	// HasCensus is false when no census was ever taken for the month: list size, enabled and slot
	// figures are then unknown, and so is uptake.
	HasCensus bool
	Census    Census
	Counts    Counts
	// Uptake is Users as a share of ListSize, UptakeEnabled as a share of the enabled patients; nil when
	// the denominator is unknown or zero.
	Uptake, UptakeEnabled *float64
	// Gap is the target minus Uptake: how far the practice is below target (negative: above it).
	Gap         *float64
	MeetsTarget bool
	// OnlinePer1000 is online-bookable slots per 1,000 registered patients; OnlineShare the share of
	// slots that are online-bookable; nil when the denominator is zero or unknown.
	OnlinePer1000, OnlineShare *float64
	// Partners are the ODS codes of suggested partner practices (Pair): practices above target of a
	// similar list size, for a practice below it.
	Partners []string
}

// Compute makes one practice's figures from its census (nil when there is none) and counts.
func Compute(period Period, practice string, census *Census, counts Counts, target float64) Figures {
	f := Figures{Practice: practice, Period: period, Counts: counts}
	if census == nil {
		return f
	}
	f.HasCensus, f.Census, f.Name = true, *census, census.Name
	f.Uptake = share(counts.Users, census.ListSize)
	f.UptakeEnabled = share(counts.Users, census.Enabled)
	if f.Uptake != nil {
		gap := target - *f.Uptake
		f.Gap = &gap
		f.MeetsTarget = *f.Uptake >= target
	}
	if census.ListSize > 0 {
		v := float64(census.OnlineSlots) * 1000 / float64(census.ListSize)
		f.OnlinePer1000 = &v
	}
	f.OnlineShare = share(census.OnlineSlots, census.Slots)
	return f
}

func share(n, of int) *float64 {
	if of <= 0 {
		return nil
	}
	v := float64(n) / float64(of)
	return &v
}

// Total adds up the figures of many practices into one set, as if they were one practice: list sizes,
// enabled patients, uses, users and refusals add (a patient is counted at one practice only), and the
// shares are worked out again from the sums.
func Total(period Period, figs []Figures, target float64) Figures {
	var c Census
	var n Counts
	census := false
	for _, f := range figs {
		if f.HasCensus {
			census = true
			c.ListSize += f.Census.ListSize
			c.Enabled += f.Census.Enabled
			c.ApptsEnabled += f.Census.ApptsEnabled
			c.PrescEnabled += f.Census.PrescEnabled
			c.RecordEnabled += f.Census.RecordEnabled
			c.Slots += f.Census.Slots
			c.OnlineSlots += f.Census.OnlineSlots
			c.OnlineBooked += f.Census.OnlineBooked
		}
		n = addCounts(n, f.Counts)
	}
	if !census {
		return Compute(period, "", nil, n, target)
	}
	c.Name = "All practices"
	return Compute(period, "", &c, n, target)
}

func addCounts(a, b Counts) Counts {
	a.ApptsUse += b.ApptsUse
	a.PrescUse += b.PrescUse
	a.RecordViews += b.RecordViews
	a.Users += b.Users
	a.ProxyUsers += b.ProxyUsers
	for k, v := range b.Refusals {
		if a.Refusals == nil {
			a.Refusals = map[Barrier]int{}
		}
		a.Refusals[k] += v
	}
	return a
}

// MaxPartners is how many partners Pair suggests for one practice.
const MaxPartners = 3

// SimilarSize is how far apart two list sizes may be, as a ratio, for the practices to count as of a
// similar size.
const SimilarSize = 2.0

// Pair suggests, for each practice below target, up to MaxPartners practices at or above target whose
// list size is within a factor of SimilarSize of its own, the closest in size first (ties: the higher
// uptake, then the ODS code). Practices whose uptake is unknown are neither paired nor partners. It sets
// Partners on figs and works in O(n log n), so that a thousand practices pair in a page view.
func Pair(figs []Figures) {
	type cand struct {
		size   float64
		uptake float64
		code   string
	}
	var above []cand
	for _, f := range figs {
		if f.Uptake != nil && f.MeetsTarget && f.Census.ListSize > 0 {
			above = append(above, cand{float64(f.Census.ListSize), *f.Uptake, f.Practice})
		}
	}
	sort.Slice(above, func(i, j int) bool {
		if above[i].size != above[j].size {
			return above[i].size < above[j].size
		}
		return above[i].code < above[j].code
	})
	better := func(size float64, a, b cand) bool {
		da, db := math.Abs(math.Log(a.size/size)), math.Abs(math.Log(b.size/size))
		if da != db {
			return da < db
		}
		if a.uptake != b.uptake {
			return a.uptake > b.uptake
		}
		return a.code < b.code
	}
	for i := range figs {
		f := &figs[i]
		f.Partners = nil
		if f.Uptake == nil || f.MeetsTarget || f.Census.ListSize <= 0 {
			continue
		}
		size := float64(f.Census.ListSize)
		// The nearest candidates on each side of the practice's size, in sorted order: on each side, the
		// first MaxPartners within the band and any of the same size as the last one taken, so that a
		// candidate left out is strictly further away than MaxPartners taken on its side.
		hi := sort.Search(len(above), func(k int) bool { return above[k].size >= size })
		var near []cand
		for k, n := hi-1, 0; k >= 0 && above[k].size*SimilarSize >= size; k-- {
			if n >= MaxPartners && above[k].size != above[k+1].size {
				break
			}
			near, n = append(near, above[k]), n+1
		}
		for k, n := hi, 0; k < len(above) && above[k].size <= size*SimilarSize; k++ {
			if n >= MaxPartners && above[k].size != above[k-1].size {
				break
			}
			near, n = append(near, above[k]), n+1
		}
		sort.Slice(near, func(a, b int) bool { return better(size, near[a], near[b]) })
		picked := near[:min(len(near), MaxPartners)]
		for _, p := range picked {
			f.Partners = append(f.Partners, p.code)
		}
	}
}

// Field is one POMI field of a practice's month.
type Field struct {
	Name  string
	Value int
}

// POMI returns the figures as POMI's long-format fields, census fields only when there is a census.
func (f Figures) POMI() []Field {
	var out []Field
	if f.HasCensus {
		out = append(out,
			Field{"patient_list_size", f.Census.ListSize},
			Field{"Total_Pat_Enbld", f.Census.Enabled},
			Field{"Pat_Appts_Enbld", f.Census.ApptsEnabled},
			Field{"Pat_Presc_Enbld", f.Census.PrescEnabled},
			Field{"Pat_DetCodeRec_Enbld", f.Census.RecordEnabled},
		)
	}
	return append(out,
		Field{"Pat_Appts_Use", f.Counts.ApptsUse},
		Field{"Pat_Presc_Use", f.Counts.PrescUse},
		Field{"Pat_DetCodeRec_Use", f.Counts.RecordViews},
	)
}
