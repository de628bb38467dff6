package api

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/uptake"
)

// The dashboard page: server-rendered HTML that needs no script, with the charts drawn as inline SVG on
// the server (each with a text alternative, and its numbers in a table beside it) and the one stylesheet
// embedded in the binary. It follows the NHS.UK service manual's patterns (a skip link, a blue header,
// one h1, tables with header scopes, yellow focus) in CSS of its own.

//go:embed web/dashboard.html web/dashboard.css
var webFiles embed.FS

var dashboardTemplate = template.Must(template.New("dashboard.html").Funcs(template.FuncMap{
	"pct":    pct,
	"num":    num,
	"points": points,
}).ParseFS(webFiles, "web/dashboard.html"))

var dashboardCSSBytes = func() []byte {
	b, err := webFiles.ReadFile("web/dashboard.css")
	if err != nil {
		panic(err)
	}
	return b
}()

// dashboardCSS serves the stylesheet. It is the same bytes for the life of the binary, so it may be
// cached; the page links it with the binary's version so that an upgrade is fetched anew.
func (s *Server) dashboardCSS(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=86400")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Data(http.StatusOK, "text/css; charset=utf-8", dashboardCSSBytes)
}

// pageHeaders are the security headers of every dashboard page: nothing but this server's stylesheet and
// forms, and no framing.
func pageHeaders(c *gin.Context) {
	c.Header("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Header("Referrer-Policy", "no-referrer")
	c.Header("Cache-Control", "no-store")
}

// page is what the template renders: a dashboard, or a message page (Message set) for a refusal, an
// error or signing in.
type page struct {
	Title    string
	Home     string
	CSS      string
	SignedIn bool
	Logout   string

	// Message pages.
	Message   string
	Status    int
	SignIn    string
	SignedOut bool

	Period       string
	PeriodName   string
	Current      bool
	Periods      []option
	Choices      []option
	Target       string
	AsAt         string
	CountedTo    string
	JSONURL      string
	CSVURL       string
	Sort, Dir    string
	Headline     []stat
	Table        table
	BandChart    chart
	BandRows     []bandRow
	Barriers     []barrierRow
	BarrierChart chart
	Pairings     []pairingView
	Practice     *practiceView
	Definitions  []definition
}

type option struct {
	Value, Label string
	Selected     bool
}

type stat struct{ Label, Value, Note string }

type definition struct{ Term, Field, Meaning string }

type table struct {
	Caption string
	Columns []column
	Rows    []row
}

type column struct {
	Label, Key, Href, Sorted, Next string
	Numeric                        bool
}

type row struct {
	Name, Code, Href string
	Cells            []string
	Status           string
	Below, Unknown   bool
}

type bandRow struct {
	Band      string
	Practices int
	Meets     string
}

type barrierRow struct {
	Label                          string
	Practices, Unattributed, Total int
}

type pairingView struct {
	Name, Code, Href, Uptake string
	ListSize                 int
	Partners                 []partnerView
}

type partnerView struct {
	Name, Code, Href, Uptake string
	ListSize                 int
}

type practiceView struct {
	Name, Code string
	Figures    []stat
	Slots      []stat
	Barriers   []barrierRow
	Trend      chart
	TrendRows  []trendRow
	Partners   []partnerView
	Below      bool
	Meets      bool
}

type trendRow struct {
	Month                                        string
	ListSize, Users, Uptake, Appts, Presc, Views string
	Online                                       string
}

// chart is an SVG bar chart drawn on the server. Its title and description are its text alternative;
// the page shows the same numbers in a table.
type chart struct {
	ID, Title, Desc string
	Width, Height   int
	Bars            []bar
	Ticks           []tick
	Target          *targetLine
	Horizontal      bool
}

type bar struct {
	X, Y, W, H     float64
	Label          string
	LabelX, LabelY float64
	Value          string
	ValueX, ValueY float64
	Met            bool
}

type tick struct {
	Y, X1, X2, TX float64
	Label         string
}

type targetLine struct {
	X1, Y1, X2, Y2, LabelX, LabelY float64
	Label                          string
}

// pct formats a share as a percentage with one decimal; unknown is a dash that says so.
func pct(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v*100, 'f', 1, 64) + "%"
}

// points formats a share as percentage points.
func points(v float64) string { return strconv.FormatFloat(math.Abs(v)*100, 'f', 1, 64) }

// num formats a whole number with thousands separators.
func num(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func perThousand(v *float64) string {
	if v == nil {
		return "–"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

// sortKeys are the table's sortable columns, with how each compares.
var sortKeys = []struct {
	key, label string
	numeric    bool
	less       func(a, b uptake.Figures) bool
}{
	{"practice", "Practice", false, func(a, b uptake.Figures) bool { return strings.ToLower(a.Name) < strings.ToLower(b.Name) }},
	{"list", "List size", true, func(a, b uptake.Figures) bool { return a.Census.ListSize < b.Census.ListSize }},
	{"enabled", "Enabled", true, func(a, b uptake.Figures) bool { return a.Census.Enabled < b.Census.Enabled }},
	{"users", "Patients using", true, func(a, b uptake.Figures) bool { return a.Counts.Users < b.Counts.Users }},
	{"uptake", "Uptake", true, func(a, b uptake.Figures) bool { return lessShare(a.Uptake, b.Uptake) }},
	{"gap", "Gap to target", true, func(a, b uptake.Figures) bool { return lessShare(a.Gap, b.Gap) }},
	{"appts", "Appointments", true, func(a, b uptake.Figures) bool { return a.Counts.ApptsUse < b.Counts.ApptsUse }},
	{"presc", "Repeat requests", true, func(a, b uptake.Figures) bool { return a.Counts.PrescUse < b.Counts.PrescUse }},
	{"views", "Record views", true, func(a, b uptake.Figures) bool { return a.Counts.RecordViews < b.Counts.RecordViews }},
	{"slots", "Online slots per 1,000", true, func(a, b uptake.Figures) bool { return lessShare(a.OnlinePer1000, b.OnlinePer1000) }},
	{"refusals", "Refusals", true, func(a, b uptake.Figures) bool { return a.Counts.Refused() < b.Counts.Refused() }},
}

// lessShare orders unknown values first.
func lessShare(a, b *float64) bool {
	switch {
	case a == nil:
		return b != nil
	case b == nil:
		return false
	}
	return *a < *b
}

// dashboardPage is GET /dashboard: all practices for a month, or one practice with its trend.
func (s *Server) dashboardPage(req *request) error {
	q, err := s.parseDashboardQuery(req)
	if err != nil {
		return err
	}
	sortKey, dir := req.c.DefaultQuery("sort", "uptake"), req.c.DefaultQuery("dir", "asc")
	known := false
	for _, k := range sortKeys {
		known = known || k.key == sortKey
	}
	if !known {
		return fail(kindBadValue, "the table cannot be sorted by %q", sortKey).at("sort")
	}
	if dir != "asc" && dir != "desc" {
		return fail(kindBadValue, "dir must be asc or desc, not %q", dir).at("dir")
	}
	d, err := s.figures(req, q)
	if err != nil {
		return err
	}
	p := s.buildPage(d, q, sortKey, dir)
	var b bytes.Buffer
	if err := dashboardTemplate.Execute(&b, p); err != nil {
		return internal(err)
	}
	pageHeaders(req.c)
	req.c.Data(http.StatusOK, "text/html; charset=utf-8", b.Bytes())
	return nil
}

// link is a dashboard URL with the given query.
func (s *Server) link(v url.Values) string {
	if len(v) == 0 {
		return s.dashPath("")
	}
	return s.dashPath("") + "?" + v.Encode()
}

func (s *Server) buildPage(d *dashboardData, q dashboardQuery, sortKey, dir string) *page {
	p := &page{Home: s.dashPath(""), CSS: s.dashPath("/static/dashboard.css") + "?v=" + url.QueryEscape(s.cfg.Version),
		SignedIn: true, Logout: s.dashPath("/logout"), Period: d.Period.String(), PeriodName: d.Period.Label(),
		Current: d.Current, Target: pct(&d.Target), Sort: sortKey, Dir: dir,
		CountedTo: d.CountedTo.In(londonZone).Format("2 January 2006, 15:04")}
	if !d.AsAt.IsZero() {
		p.AsAt = d.AsAt.In(londonZone).Format("2 January 2006, 15:04")
	}
	period := url.Values{"period": {d.Period.String()}}
	p.JSONURL = s.dashPath("/uptake.json") + "?" + period.Encode()
	p.CSVURL = s.dashPath("/uptake.csv") + "?" + period.Encode()
	now := uptake.PeriodOf(s.now())
	for i := 0; i < 24; i++ {
		m := now.Add(-i)
		p.Periods = append(p.Periods, option{Value: m.String(), Label: m.Label(), Selected: m == d.Period})
	}
	if d.Period.Before(now.Add(-23)) {
		p.Periods = append(p.Periods, option{Value: d.Period.String(), Label: d.Period.Label(), Selected: true})
	}
	p.Choices = append(p.Choices, option{Value: "", Label: "All practices", Selected: q.practice == ""})
	byName := append([]uptake.Figures(nil), d.Practices...)
	sort.Slice(byName, func(i, j int) bool { return strings.ToLower(byName[i].Name) < strings.ToLower(byName[j].Name) })
	for _, f := range byName {
		p.Choices = append(p.Choices, option{Value: f.Practice, Label: nameOf(f) + " (" + f.Practice + ")", Selected: f.Practice == q.practice})
	}
	for _, k := range []struct{ term, field, meaning string }{
		{"List size", "patient_list_size", "Patients registered at the practice at the census."},
		{"Enabled", "Total_Pat_Enbld", "Registered patients whose access levels, set by the practice, allow at least one of: booking and cancelling appointments, ordering repeat prescriptions, seeing the detailed coded record."},
		{"Patients using", "users", "Patients who booked or cancelled an appointment, ordered a repeat prescription or saw part of their record online in the month, themselves or through a proxy."},
		{"Uptake", "uptake", "Patients using as a share of the list size. The target is " + p.Target + "."},
		{"Appointments", "Pat_Appts_Use", "Appointments booked or cancelled online by patients and proxies."},
		{"Repeat requests", "Pat_Presc_Use", "Repeat prescriptions ordered online by patients and proxies."},
		{"Record views", "Pat_DetCodeRec_Use", "Requests by patients and proxies that showed at least one record entry."},
		{"Online slots per 1,000", "slots", "Slots in the month's appointment books published for online booking, per 1,000 registered patients."},
		{"Refusals", "refusals", "Times patients or proxies were refused, or had confidential items withheld, by reason."},
	} {
		p.Definitions = append(p.Definitions, definition{k.term, k.field, k.meaning})
	}
	if d.Practice != nil {
		p.Title = nameOf(*d.Practice) + " (" + d.Practice.Practice + "): online services uptake, " + d.Period.Label()
		p.Practice = s.practicePage(d)
		p.Pairings = s.pairingViews(d, d.Practice.Practice)
		return p
	}
	p.Title = "Online services uptake, " + d.Period.Label()
	t := d.Total
	p.Headline = []stat{
		{"Practices", num(len(d.Practices)), ""},
		{"Patients registered", known(t.HasCensus, t.Census.ListSize), ""},
		{"Patients using online services", num(t.Counts.Users), ""},
		{"Uptake", pct(t.Uptake), "target " + p.Target},
		{"Practices meeting the target", num(countMeeting(d.Practices)), "of " + num(countKnown(d.Practices)) + " with a list size"},
	}
	p.Table = s.practicesTable(d, sortKey, dir)
	p.BandChart, p.BandRows = bandChart(d)
	p.Barriers = barrierRows(d.Practices, d.Unattributed)
	p.BarrierChart = barrierChart(p.Barriers)
	p.Pairings = s.pairingViews(d, "")
	return p
}

var londonZone = func() *time.Location {
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		return time.UTC
	}
	return loc
}()

func nameOf(f uptake.Figures) string {
	if f.Name != "" {
		return f.Name
	}
	return f.Practice
}

func known(ok bool, n int) string {
	if !ok {
		return "–"
	}
	return num(n)
}

func countMeeting(fs []uptake.Figures) int {
	n := 0
	for _, f := range fs {
		if f.MeetsTarget {
			n++
		}
	}
	return n
}

func countKnown(fs []uptake.Figures) int {
	n := 0
	for _, f := range fs {
		if f.Uptake != nil {
			n++
		}
	}
	return n
}

func (s *Server) practiceHref(period uptake.Period, code string) string {
	return s.link(url.Values{"period": {period.String()}, "practice": {code}})
}

func (s *Server) practicesTable(d *dashboardData, sortKey, dir string) table {
	t := table{Caption: "Practices, " + d.Period.Label()}
	rows := append([]uptake.Figures(nil), d.Practices...)
	for _, k := range sortKeys {
		c := column{Label: k.label, Key: k.key, Numeric: k.numeric}
		next := "asc"
		if k.key == sortKey {
			c.Sorted = map[string]string{"asc": "ascending", "desc": "descending"}[dir]
			if dir == "asc" {
				next = "desc"
			}
			less := k.less
			sort.SliceStable(rows, func(i, j int) bool {
				if dir == "desc" {
					return less(rows[j], rows[i])
				}
				return less(rows[i], rows[j])
			})
		}
		c.Next = map[string]string{"asc": "ascending", "desc": "descending"}[next]
		c.Href = s.link(url.Values{"period": {d.Period.String()}, "sort": {k.key}, "dir": {next}}) + "#practices"
		t.Columns = append(t.Columns, c)
	}
	for _, f := range rows {
		r := row{Name: nameOf(f), Code: f.Practice, Href: s.practiceHref(d.Period, f.Practice)}
		gap := "–"
		switch {
		case f.Gap == nil:
			r.Status, r.Unknown = "No list size", true
		case f.MeetsTarget:
			r.Status = "Meets target"
			gap = points(*f.Gap) + " points above"
		default:
			r.Status, r.Below = "Below target", true
			gap = points(*f.Gap) + " points below"
		}
		r.Cells = []string{known(f.HasCensus, f.Census.ListSize), known(f.HasCensus, f.Census.Enabled), num(f.Counts.Users),
			pct(f.Uptake), gap, num(f.Counts.ApptsUse), num(f.Counts.PrescUse), num(f.Counts.RecordViews),
			perThousand(f.OnlinePer1000), num(f.Counts.Refused())}
		t.Rows = append(t.Rows, r)
	}
	return t
}

// bands are the uptake bands of the overview chart, as [low, high) shares.
var bands = []struct {
	low, high float64
	label     string
}{
	{0, 0.1, "0–9%"}, {0.1, 0.2, "10–19%"}, {0.2, 0.3, "20–29%"}, {0.3, 0.4, "30–39%"}, {0.4, 0.5, "40–49%"}, {0.5, math.Inf(1), "50% or more"},
}

// bandChart counts the practices in each uptake band: a chart that stays readable for a thousand
// practices, where one bar each would not.
func bandChart(d *dashboardData) (chart, []bandRow) {
	counts := make([]int, len(bands))
	for _, f := range d.Practices {
		if f.Uptake == nil {
			continue
		}
		for i, b := range bands {
			if *f.Uptake >= b.low && *f.Uptake < b.high {
				counts[i]++
			}
		}
	}
	c := chart{ID: "bands", Title: "Practices by uptake, " + d.Period.Label(), Width: 640, Height: 300}
	var desc []string
	var rows []bandRow
	maxN := 1
	for _, n := range counts {
		maxN = max(maxN, n)
	}
	// Whole-number gridlines: four steps of a whole number of practices.
	step := (maxN + 3) / 4
	top := float64(step * 4)
	left, ptop, plotW, plotH := 48.0, 30.0, 572.0, 210.0
	bw := plotW / float64(len(bands))
	for i, b := range bands {
		met := b.low >= d.Target
		meets := "below target"
		if met {
			meets = "at or above target"
		} else if b.high > d.Target {
			meets = "partly below target"
		}
		h := plotH * float64(counts[i]) / top
		x := left + float64(i)*bw + bw*0.15
		c.Bars = append(c.Bars, bar{X: x, Y: ptop + plotH - h, W: bw * 0.7, H: h, Met: met,
			Label: b.label, LabelX: x + bw*0.35, LabelY: ptop + plotH + 20,
			Value: num(counts[i]), ValueX: x + bw*0.35, ValueY: ptop + plotH - h - 6})
		desc = append(desc, fmt.Sprintf("%s: %d", b.label, counts[i]))
		rows = append(rows, bandRow{Band: b.label, Practices: counts[i], Meets: meets})
	}
	for i := 0; i <= 4; i++ {
		y := ptop + plotH - plotH*float64(i)/4
		c.Ticks = append(c.Ticks, tick{Y: y, X1: left, X2: left + plotW, TX: left - 6, Label: strconv.Itoa(step * i)})
	}
	x := left + plotW*bandPosition(d.Target)
	c.Target = &targetLine{X1: x, Y1: ptop - 8, X2: x, Y2: ptop + plotH, LabelX: x + 4, LabelY: ptop - 12, Label: "Target " + pct(&d.Target)}
	c.Desc = "Bar chart of the number of practices in each band of uptake. " + strings.Join(desc, "; ") +
		". The target of " + pct(&d.Target) + " is marked with a dashed line."
	return c, rows
}

// bandPosition is where a share falls along the band axis, as a fraction of its width.
func bandPosition(v float64) float64 {
	for i, b := range bands {
		if v >= b.low && v < b.high {
			if math.IsInf(b.high, 1) {
				return float64(i) / float64(len(bands))
			}
			return (float64(i) + (v-b.low)/(b.high-b.low)) / float64(len(bands))
		}
	}
	return 0
}

func barrierRows(fs []uptake.Figures, unattributed uptake.Counts) []barrierRow {
	var out []barrierRow
	for _, b := range uptake.Barriers {
		r := barrierRow{Label: b.Label(), Unattributed: unattributed.Refusals[b]}
		for _, f := range fs {
			r.Practices += f.Counts.Refusals[b]
		}
		r.Total = r.Practices + r.Unattributed
		out = append(out, r)
	}
	proxies := barrierRow{Label: "Proxy users (people acting for a patient)"}
	for _, f := range fs {
		proxies.Practices += f.Counts.ProxyUsers
	}
	proxies.Total = proxies.Practices
	return append(out, proxies)
}

// barrierChart draws the refusals by reason as horizontal bars, labelled with their numbers.
func barrierChart(rows []barrierRow) chart {
	c := chart{ID: "barriers", Title: "Refusals and withheld items by reason", Width: 640, Height: 40 + 34*(len(rows)-1), Horizontal: true}
	maxN := 1
	for _, r := range rows[:len(rows)-1] {
		maxN = max(maxN, r.Total)
	}
	left, plotW := 250.0, 330.0
	var desc []string
	for i, r := range rows[:len(rows)-1] {
		y := 20 + float64(i)*34
		w := plotW * float64(r.Total) / float64(maxN)
		c.Bars = append(c.Bars, bar{X: left, Y: y, W: w, H: 22, Label: r.Label, LabelX: left - 8, LabelY: y + 16,
			Value: num(r.Total), ValueX: left + w + 6, ValueY: y + 16})
		desc = append(desc, fmt.Sprintf("%s: %d", r.Label, r.Total))
	}
	c.Desc = "Bar chart of refusals to patients and proxies, and answers that withheld confidential items, by reason. " +
		strings.Join(desc, "; ") + "."
	return c
}

func (s *Server) pairingViews(d *dashboardData, only string) []pairingView {
	byCode := map[string]uptake.Figures{}
	for _, f := range d.Practices {
		byCode[f.Practice] = f
	}
	var out []pairingView
	for _, f := range d.Practices {
		if f.Uptake == nil || f.MeetsTarget || only != "" && f.Practice != only {
			continue
		}
		v := pairingView{Name: nameOf(f), Code: f.Practice, Href: s.practiceHref(d.Period, f.Practice), Uptake: pct(f.Uptake), ListSize: f.Census.ListSize}
		for _, code := range f.Partners {
			o := byCode[code]
			v.Partners = append(v.Partners, partnerView{Name: nameOf(o), Code: code, Href: s.practiceHref(d.Period, code), Uptake: pct(o.Uptake), ListSize: o.Census.ListSize})
		}
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *Server) practicePage(d *dashboardData) *practiceView {
	f := *d.Practice
	v := &practiceView{Name: nameOf(f), Code: f.Practice, Meets: f.MeetsTarget, Below: f.Uptake != nil && !f.MeetsTarget}
	gap := "–"
	if f.Gap != nil {
		if f.MeetsTarget {
			gap = points(*f.Gap) + " percentage points above the target"
		} else {
			gap = points(*f.Gap) + " percentage points below the target"
		}
	}
	v.Figures = []stat{
		{"List size", known(f.HasCensus, f.Census.ListSize), "patient_list_size"},
		{"Enabled for at least one service", known(f.HasCensus, f.Census.Enabled), "Total_Pat_Enbld"},
		{"Enabled for appointments", known(f.HasCensus, f.Census.ApptsEnabled), "Pat_Appts_Enbld"},
		{"Enabled for repeat prescriptions", known(f.HasCensus, f.Census.PrescEnabled), "Pat_Presc_Enbld"},
		{"Enabled for the detailed coded record", known(f.HasCensus, f.Census.RecordEnabled), "Pat_DetCodeRec_Enbld"},
		{"Appointments booked or cancelled online", num(f.Counts.ApptsUse), "Pat_Appts_Use"},
		{"Repeat prescriptions ordered online", num(f.Counts.PrescUse), "Pat_Presc_Use"},
		{"Record views", num(f.Counts.RecordViews), "Pat_DetCodeRec_Use"},
		{"Patients using online services", num(f.Counts.Users), "users"},
		{"Uptake", pct(f.Uptake), "uptake"},
		{"Uptake among enabled patients", pct(f.UptakeEnabled), "uptake_of_enabled"},
		{"Gap to target", gap, "gap_to_target"},
	}
	v.Slots = []stat{
		{"Slots in the month", known(f.HasCensus, f.Census.Slots), ""},
		{"Published for online booking", known(f.HasCensus, f.Census.OnlineSlots), ""},
		{"Of those, booked", known(f.HasCensus, f.Census.OnlineBooked), ""},
		{"Online-bookable slots per 1,000 patients", perThousand(f.OnlinePer1000), ""},
		{"Share of slots bookable online", pct(f.OnlineShare), ""},
	}
	v.Barriers = barrierRows([]uptake.Figures{f}, uptake.Counts{})
	v.Trend = trendChart(f, d.Trend, d.Target)
	for _, t := range d.Trend {
		v.TrendRows = append(v.TrendRows, trendRow{Month: t.Period.Label(), ListSize: known(t.HasCensus, t.Census.ListSize),
			Users: num(t.Counts.Users), Uptake: pct(t.Uptake), Appts: num(t.Counts.ApptsUse), Presc: num(t.Counts.PrescUse),
			Views: num(t.Counts.RecordViews), Online: known(t.HasCensus, t.Census.OnlineSlots)})
	}
	return v
}

// trendChart draws a practice's monthly uptake as bars, with the target as a dashed line.
func trendChart(f uptake.Figures, trend []uptake.Figures, target float64) chart {
	c := chart{ID: "trend", Title: "Uptake by month, " + nameOf(f), Width: 640, Height: 300}
	top := target
	for _, t := range trend {
		if t.Uptake != nil {
			top = math.Max(top, *t.Uptake)
		}
	}
	top = math.Ceil(top*10+0.5) / 10 // the next 10% above the highest value, with room for labels
	left, ptop, plotW, plotH := 48.0, 24.0, 572.0, 216.0
	bw := plotW / float64(len(trend))
	var desc []string
	for i, t := range trend {
		x := left + float64(i)*bw + bw*0.15
		h, value := 0.0, "no data"
		if t.Uptake != nil {
			h = plotH * *t.Uptake / top
			value = pct(t.Uptake)
		}
		c.Bars = append(c.Bars, bar{X: x, Y: ptop + plotH - h, W: bw * 0.7, H: h, Met: t.MeetsTarget,
			Label: t.Period.Short(), LabelX: x + bw*0.35, LabelY: ptop + plotH + 18,
			Value: strings.TrimSuffix(value, "%"), ValueX: x + bw*0.35, ValueY: ptop + plotH - h - 5})
		desc = append(desc, t.Period.Label()+": "+value)
	}
	for i := 0; i <= 4; i++ {
		v := top * float64(i) / 4
		c.Ticks = append(c.Ticks, tick{Y: ptop + plotH - plotH*float64(i)/4, X1: left, X2: left + plotW, TX: left - 6, Label: strconv.Itoa(int(math.Round(v*100))) + "%"})
	}
	y := ptop + plotH - plotH*target/top
	c.Target = &targetLine{X1: left, Y1: y, X2: left + plotW, Y2: y, LabelX: left + 4, LabelY: y - 6, Label: "Target " + pct(&target)}
	c.Desc = "Bar chart of the practice's uptake in each of the last " + strconv.Itoa(len(trend)) + " months, as a percentage of its list size. " +
		strings.Join(desc, "; ") + ". The target of " + pct(&target) + " is a dashed line."
	return c
}

// dashboardError answers a page request that failed with a page that says why, with the status the
// error map gives it. A caller who is not signed in is offered the sign-in.
func (s *Server) dashboardError(req *request, err error) {
	c := req.c
	ae := answerOf(err)
	if ae.cause != nil || ae.status() >= 500 {
		req.logger().Error("dashboard request failed", "status", ae.status(), "error", ae.cause)
	}
	msg := "internal error (request id " + req.id + ")"
	if ae.kind != kindInternal && len(ae.issues) > 0 {
		msg = ae.issues[0].Diagnostics
	}
	p := &page{Home: s.dashPath(""), CSS: s.dashPath("/static/dashboard.css") + "?v=" + url.QueryEscape(s.cfg.Version),
		Status: ae.status(), Message: msg, Logout: s.dashPath("/logout"), SignedIn: req.caller != nil}
	switch ae.status() {
	case http.StatusUnauthorized:
		p.Title = "Sign in to see online services uptake"
		p.SignIn = s.dashPath("/login") + "?" + url.Values{"next": {c.Request.URL.RequestURI()}}.Encode()
		p.SignedOut = c.Query("signed-out") != ""
		// People are told in words, whatever was wrong with the token: a session that has ended (its
		// token expired or no longer checks out), or none at all.
		if _, err := c.Request.Cookie(sessionCookie); err == nil && bearer(c) == "" {
			s.setCookie(c, sessionCookie, "", -1)
			p.Message = "Your session has ended. Sign in again to see the figures."
		} else if bearer(c) == "" {
			p.Message = "The uptake figures are for commissioners. Sign in with your organisation's account."
		}
	case http.StatusForbidden:
		p.Title = "You cannot see the uptake figures"
	case http.StatusNotFound:
		p.Title = "Not found"
	case http.StatusBadRequest:
		p.Title = "There is a problem with the address"
	default:
		p.Title = "Sorry, there is a problem with the service"
	}
	for k, v := range ae.header {
		c.Header(k, v)
	}
	var b bytes.Buffer
	if err := dashboardTemplate.Execute(&b, p); err != nil {
		req.logger().Error("dashboard error page", "error", err)
		c.Data(http.StatusInternalServerError, "text/plain; charset=utf-8", []byte("internal error\n"))
		return
	}
	pageHeaders(c)
	c.Data(ae.status(), "text/html; charset=utf-8", b.Bytes())
}
