package uptake

import (
	"fmt"
	"strconv"
	"time"
	_ "time/tzdata" // months begin and end at midnight in England, on every machine
)

// Period is one calendar month in England, the unit every figure is kept and reported for.
type Period struct {
	Year  int
	Month time.Month
}

// london is where months begin and end: an action at 23:30 UTC on 31 March during summer time belongs to
// April, as it did for the practice.
var london = func() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return loc
}()

// PeriodOf is the month t falls in.
func PeriodOf(t time.Time) Period {
	l := t.In(london)
	return Period{Year: l.Year(), Month: l.Month()}
}

// ParsePeriod reads YYYY-MM.
func ParsePeriod(s string) (Period, error) {
	if len(s) != 7 || s[4] != '-' {
		return Period{}, fmt.Errorf("%q is not a month written as YYYY-MM, such as 2025-03", s)
	}
	y, err1 := strconv.Atoi(s[:4])
	m, err2 := strconv.Atoi(s[5:])
	if err1 != nil || err2 != nil || y < 2000 || m < 1 || m > 12 {
		return Period{}, fmt.Errorf("%q is not a month written as YYYY-MM, such as 2025-03", s)
	}
	return Period{Year: y, Month: time.Month(m)}, nil
}

// String is YYYY-MM.
func (p Period) String() string { return fmt.Sprintf("%04d-%02d", p.Year, int(p.Month)) }

// Start is the first instant of the month; End the first instant after it.
func (p Period) Start() time.Time { return time.Date(p.Year, p.Month, 1, 0, 0, 0, 0, london) }
func (p Period) End() time.Time   { return time.Date(p.Year, p.Month+1, 1, 0, 0, 0, 0, london) }

// LastDay is the month's last calendar day, POMI's report_period_end.
func (p Period) LastDay() string { return p.End().AddDate(0, 0, -1).Format("2006-01-02") }

// Add is the month n months later (earlier for negative n).
func (p Period) Add(n int) Period {
	t := time.Date(p.Year, p.Month+time.Month(n), 1, 12, 0, 0, 0, time.UTC)
	return Period{Year: t.Year(), Month: t.Month()}
}

// Before reports whether p is an earlier month than q.
func (p Period) Before(q Period) bool {
	return p.Year < q.Year || p.Year == q.Year && p.Month < q.Month
}

// Label is the month as people read it: "March 2025".
func (p Period) Label() string { return p.Month.String() + " " + strconv.Itoa(p.Year) }

// Short is the month as a chart axis reads it: "Mar 25".
func (p Period) Short() string { return p.Start().Format("Jan 06") }
