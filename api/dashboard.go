package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/gpfhir/gpfhir/auth"
	"github.com/gpfhir/gpfhir/uptake"
	"github.com/gpfhir/gpfhir/uptake/tally"
)

// The commissioners' uptake dashboard: the page for people (dashboard_page.go), the same figures as JSON
// and as POMI CSV, and the sign-in that gives people a session (dashboard_session.go). The figures are
// read from package uptake/tally, which keeps them as requests happen; nothing here scans the audit
// trail. Every view is a request of its own kind: identified (a bearer token, or the session cookie),
// authorised (commissioners only, auth.AuthorizeDashboard) and audited like a FHIR interaction, as an
// operation named after the view with the query it asked.

// dashboardOps are the audited views, by route, each named as the audit record's operation.
var dashboardOps = map[string]string{
	"/dashboard":             "dashboard",
	"/dashboard/uptake.json": "dashboard/uptake.json",
	"/dashboard/uptake.csv":  "dashboard/uptake.csv",
}

// trendMonths is the length of a practice's trend.
const trendMonths = 12

// dashboardRoutes mounts the dashboard on r.
func (s *Server) dashboardRoutes(r *gin.Engine) {
	r.GET("/dashboard", s.dashboardView(s.dashboardPage, true))
	r.GET("/dashboard/uptake.json", s.dashboardView(s.uptakeJSON, false))
	r.GET("/dashboard/uptake.csv", s.dashboardView(s.uptakeCSV, false))
	r.GET("/dashboard/login", s.dashboardLogin)
	r.GET("/dashboard/callback", s.dashboardCallback)
	r.POST("/dashboard/logout", s.dashboardLogout)
	r.GET("/dashboard/static/dashboard.css", s.dashboardCSS)
}

// dashboardView wraps a view: the request is named for the audit record, identified and authorised,
// then handled; an error is answered as an OperationOutcome, or for the page as an HTML page that says
// the same.
func (s *Server) dashboardView(h func(*request) error, page bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		req := requestOf(c)
		req.interaction, req.op, req.dashboard = "operation", dashboardOps[c.FullPath()], true
		err := s.identifyDashboard(req)
		if err == nil {
			err = h(req)
		}
		if err == nil {
			return
		}
		if page {
			s.dashboardError(req, err)
			return
		}
		s.respondError(c, err)
	}
}

// identifyDashboard works out the caller from the bearer token, or else the session cookie, and lets
// commissioners through only.
func (s *Server) identifyDashboard(req *request) error {
	token := bearer(req.c)
	if token == "" {
		token = s.sessionToken(req.c)
	}
	if token == "" {
		req.decide(auth.Decision{Outcome: "deny-token"})
		return unauthorized("no bearer token and no dashboard session: sign in at " + s.dashPath("/login") +
			", or send Authorization: Bearer <access token> with the scope " + auth.DashboardScope)
	}
	caller, err := s.cfg.Auth.Verify(req.ctx(), token)
	if err != nil {
		var ref *auth.Refusal
		if errors.As(err, &ref) {
			return s.refuse(req, auth.Decision{Outcome: auth.DenyScope, Reason: ref.Reason})
		}
		req.decide(auth.Decision{Outcome: "deny-token"})
		return err
	}
	req.caller = caller
	d := auth.AuthorizeDashboard(caller)
	if !d.Allow() {
		return s.refuse(req, d)
	}
	req.decide(d)
	return nil
}

// dashPath is a path under the dashboard, below the base URL's own path.
func (s *Server) dashPath(p string) string {
	prefix := ""
	if u, err := url.Parse(s.cfg.BaseURL); err == nil {
		prefix = strings.TrimRight(u.Path, "/")
	}
	return prefix + "/dashboard" + p
}

// dashboardQuery is what a view was asked for.
type dashboardQuery struct {
	period   uptake.Period
	practice string
}

// parseDashboardQuery reads period (YYYY-MM; default the last complete month, as monthly reports are of
// complete months, and the current month is always behind) and practice (an ODS code).
func (s *Server) parseDashboardQuery(req *request) (dashboardQuery, error) {
	current := uptake.PeriodOf(s.now())
	q := dashboardQuery{period: current.Add(-1)}
	if v := req.c.Query("period"); v != "" {
		p, err := uptake.ParsePeriod(v)
		if err != nil {
			return q, fail(kindBadValue, "period: %v", err).at("period")
		}
		if current.Before(p) {
			return q, fail(kindBadValue, "period %s has not begun; the latest month with figures is %s", p, current).at("period")
		}
		q.period = p
	}
	if v := req.c.Query("practice"); v != "" {
		if len(v) > 12 || !onlyBytes(v, "") {
			return q, fail(kindBadValue, "practice %q is not an ODS code (letters and digits, such as A81001)", v).at("practice")
		}
		q.practice = strings.ToUpper(v)
	}
	return q, nil
}

// dashboardData is what every view shows: one month's figures for every practice, and for one practice
// its trend.
type dashboardData struct {
	Period  uptake.Period
	Current bool
	Target  float64
	// Practices are sorted by ODS code, with their partners paired.
	Practices []uptake.Figures
	Total     uptake.Figures
	// Unattributed are the refusals that belong to no practice.
	Unattributed uptake.Counts
	// Practice is the practice asked for, if one was; Trend its last trendMonths months, oldest first.
	Practice *uptake.Figures
	Trend    []uptake.Figures
	// AsAt is the time of the latest census among the practices; zero when there is none.
	AsAt time.Time
	// CountedTo is when the counts were brought up to date.
	CountedTo time.Time
}

// figures brings the counts up to date and reads the month's figures.
func (s *Server) figures(req *request, q dashboardQuery) (*dashboardData, error) {
	ctx := req.ctx()
	if s.tally == nil {
		return nil, fail(kindUnavailable, "the uptake figures are counted from the audit trail, which this server runs without")
	}
	if err := s.tally.CatchUp(ctx); err != nil {
		return nil, err
	}
	d := &dashboardData{Period: q.period, Current: q.period == uptake.PeriodOf(s.now()), Target: s.target(), CountedTo: s.now()}
	if err := s.tally.EnsureCensus(ctx, q.period, s.cfg.censusFresher); err != nil {
		return nil, err
	}
	m, err := s.tally.Month(ctx, q.period)
	if err != nil {
		return nil, err
	}
	codes := map[string]bool{}
	for code := range m.Census {
		codes[code] = true
	}
	for code := range m.Counts {
		if code != tally.Unattributed {
			codes[code] = true
		}
	}
	for code := range codes {
		var census *uptake.Census
		if c, ok := m.Census[code]; ok {
			census = &c
			if c.AsAt.After(d.AsAt) {
				d.AsAt = c.AsAt
			}
		}
		d.Practices = append(d.Practices, uptake.Compute(q.period, code, census, m.Counts[code], d.Target))
	}
	sort.Slice(d.Practices, func(i, j int) bool { return d.Practices[i].Practice < d.Practices[j].Practice })
	uptake.Pair(d.Practices)
	d.Total = uptake.Total(q.period, d.Practices, d.Target)
	d.Unattributed = m.Counts[tally.Unattributed]
	if q.practice == "" {
		return d, nil
	}
	for i := range d.Practices {
		if d.Practices[i].Practice == q.practice {
			d.Practice = &d.Practices[i]
		}
	}
	if d.Practice == nil {
		return nil, fail(kindNotFound, "no practice with ODS code %s has figures for %s", q.practice, q.period).at("practice")
	}
	for i := trendMonths - 1; i >= 0; i-- {
		p := q.period.Add(-i)
		census, counts, err := s.tally.Practice(ctx, p, q.practice)
		if err != nil {
			return nil, err
		}
		d.Trend = append(d.Trend, uptake.Compute(p, q.practice, census, counts, d.Target))
	}
	return d, nil
}

// target is the uptake target as a share.
func (s *Server) target() float64 {
	if s.cfg.UptakeTarget > 0 {
		return s.cfg.UptakeTarget
	}
	return uptake.DefaultTarget
}

// JSON shapes. POMI's own field names where POMI defines the figure; snake_case for the rest.
type (
	uptakeAnswer struct {
		Period       string            `json:"period"`
		PeriodEnd    string            `json:"report_period_end"`
		Target       float64           `json:"target"`
		CensusAsAt   *time.Time        `json:"census_as_at,omitempty"`
		CountedTo    time.Time         `json:"counted_to"`
		Totals       practiceJSON      `json:"totals"`
		Practices    []practiceJSON    `json:"practices"`
		Unattributed map[string]int    `json:"unattributed_refusals"`
		Pairings     []pairingJSON     `json:"pairings"`
		Trend        []practiceJSON    `json:"trend,omitempty"`
		Definitions  map[string]string `json:"definitions"`
	}
	practiceJSON struct {
		Period            string         `json:"period,omitempty"`
		Code              string         `json:"practice_code,omitempty"`
		Name              string         `json:"practice_name,omitempty"`
		ListSize          *int           `json:"patient_list_size"`
		Enabled           *int           `json:"Total_Pat_Enbld"`
		ApptsEnabled      *int           `json:"Pat_Appts_Enbld"`
		PrescEnabled      *int           `json:"Pat_Presc_Enbld"`
		RecordEnabled     *int           `json:"Pat_DetCodeRec_Enbld"`
		ApptsUse          int            `json:"Pat_Appts_Use"`
		PrescUse          int            `json:"Pat_Presc_Use"`
		RecordViews       int            `json:"Pat_DetCodeRec_Use"`
		Users             int            `json:"users"`
		Uptake            *float64       `json:"uptake"`
		UptakeEnabled     *float64       `json:"uptake_of_enabled"`
		MeetsTarget       bool           `json:"meets_target"`
		Gap               *float64       `json:"gap_to_target"`
		Slots             *slotsJSON     `json:"slots"`
		Refusals          map[string]int `json:"refusals"`
		ProxyUsers        int            `json:"proxy_users"`
		CensusAsAt        *time.Time     `json:"census_as_at,omitempty"`
		SuggestedPartners []string       `json:"suggested_partners,omitempty"`
	}
	slotsJSON struct {
		Slots         int      `json:"slots"`
		Online        int      `json:"online_bookable"`
		OnlineBooked  int      `json:"online_bookable_booked"`
		OnlinePer1000 *float64 `json:"online_bookable_per_1000_patients"`
		OnlineShare   *float64 `json:"online_bookable_share"`
	}
	pairingJSON struct {
		Code     string        `json:"practice_code"`
		Name     string        `json:"practice_name"`
		Uptake   *float64      `json:"uptake"`
		ListSize int           `json:"patient_list_size"`
		Partners []partnerJSON `json:"partners"`
	}
	partnerJSON struct {
		Code     string   `json:"practice_code"`
		Name     string   `json:"practice_name"`
		Uptake   *float64 `json:"uptake"`
		ListSize int      `json:"patient_list_size"`
	}
)

func practiceOf(f uptake.Figures, withPeriod bool) practiceJSON {
	p := practiceJSON{Code: f.Practice, Name: f.Name, ApptsUse: f.Counts.ApptsUse, PrescUse: f.Counts.PrescUse,
		RecordViews: f.Counts.RecordViews, Users: f.Counts.Users, Uptake: f.Uptake, UptakeEnabled: f.UptakeEnabled,
		MeetsTarget: f.MeetsTarget, Gap: f.Gap, ProxyUsers: f.Counts.ProxyUsers, Refusals: refusalsOf(f.Counts),
		SuggestedPartners: f.Partners}
	if withPeriod {
		p.Period = f.Period.String()
	}
	if f.HasCensus {
		c := f.Census
		p.ListSize, p.Enabled, p.ApptsEnabled, p.PrescEnabled, p.RecordEnabled = &c.ListSize, &c.Enabled, &c.ApptsEnabled, &c.PrescEnabled, &c.RecordEnabled
		p.Slots = &slotsJSON{Slots: c.Slots, Online: c.OnlineSlots, OnlineBooked: c.OnlineBooked, OnlinePer1000: f.OnlinePer1000, OnlineShare: f.OnlineShare}
		if !c.AsAt.IsZero() {
			at := c.AsAt
			p.CensusAsAt = &at
		}
	}
	return p
}

// refusalsOf lists every barrier, zeros included, so that a reader sees what is counted.
func refusalsOf(c uptake.Counts) map[string]int {
	out := make(map[string]int, len(uptake.Barriers))
	for _, b := range uptake.Barriers {
		out[string(b)] = c.Refusals[b]
	}
	return out
}

// pairings lists the practices below target with their suggested partners.
func pairings(d *dashboardData) []pairingJSON {
	byCode := map[string]*uptake.Figures{}
	for i := range d.Practices {
		byCode[d.Practices[i].Practice] = &d.Practices[i]
	}
	out := []pairingJSON{}
	for _, f := range d.Practices {
		if f.Uptake == nil || f.MeetsTarget || d.Practice != nil && f.Practice != d.Practice.Practice {
			continue
		}
		p := pairingJSON{Code: f.Practice, Name: f.Name, Uptake: f.Uptake, ListSize: f.Census.ListSize, Partners: []partnerJSON{}}
		for _, code := range f.Partners {
			o := byCode[code]
			p.Partners = append(p.Partners, partnerJSON{Code: code, Name: o.Name, Uptake: o.Uptake, ListSize: o.Census.ListSize})
		}
		out = append(out, p)
	}
	return out
}

// uptakeJSON is GET /dashboard/uptake.json?period=YYYY-MM[&practice=ODS].
func (s *Server) uptakeJSON(req *request) error {
	q, err := s.parseDashboardQuery(req)
	if err != nil {
		return err
	}
	d, err := s.figures(req, q)
	if err != nil {
		return err
	}
	a := uptakeAnswer{Period: d.Period.String(), PeriodEnd: d.Period.LastDay(), Target: d.Target, CountedTo: d.CountedTo,
		Totals: practiceOf(d.Total, false), Practices: []practiceJSON{}, Unattributed: refusalsOf(d.Unattributed),
		Pairings: pairings(d), Definitions: definitionsJSON}
	a.Totals.Name = "All practices"
	if !d.AsAt.IsZero() {
		at := d.AsAt
		a.CensusAsAt = &at
	}
	for _, f := range d.Practices {
		if d.Practice == nil || f.Practice == d.Practice.Practice {
			a.Practices = append(a.Practices, practiceOf(f, false))
		}
	}
	for _, f := range d.Trend {
		a.Trend = append(a.Trend, practiceOf(f, true))
	}
	body, err := json.Marshal(a)
	if err != nil {
		return internal(err)
	}
	req.c.Header("Cache-Control", "no-store")
	req.c.Data(http.StatusOK, "application/json; charset=utf-8", body)
	return nil
}

// uptakeCSV is GET /dashboard/uptake.csv?period=YYYY-MM: POMI's long format, one row per practice and
// field, so that tools written for NHS Digital's POMI files read it.
func (s *Server) uptakeCSV(req *request) error {
	q, err := s.parseDashboardQuery(req)
	if err != nil {
		return err
	}
	d, err := s.figures(req, q)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"report_period_end", "practice_code", "practice_name", "field", "value"})
	for _, f := range d.Practices {
		if d.Practice != nil && f.Practice != d.Practice.Practice {
			continue
		}
		for _, fl := range f.POMI() {
			_ = w.Write([]string{d.Period.LastDay(), f.Practice, csvCell(f.Name), fl.Name, strconv.Itoa(fl.Value)})
		}
	}
	w.Flush()
	if err := w.Error(); err != nil {
		return internal(err)
	}
	req.c.Header("Cache-Control", "no-store")
	req.c.Header("Content-Disposition", `attachment; filename="pomi-`+d.Period.String()+`.csv"`)
	req.c.Data(http.StatusOK, "text/csv; charset=utf-8", b.Bytes())
	return nil
}

// csvCell keeps a practice name that a spreadsheet would read as a formula from being run as one.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// definitionsJSON says what each figure means, in the JSON answer itself.
var definitionsJSON = map[string]string{
	"patient_list_size":    "Patients registered at the practice (managing organisation, else general practitioner) at the census",
	"Total_Pat_Enbld":      "Registered patients whose access levels enable at least one of appointments, prescriptions or the detailed coded record",
	"Pat_Appts_Enbld":      "Registered patients whose appointments access is manage (book and cancel)",
	"Pat_Presc_Enbld":      "Registered patients whose prescriptions access is manage (order repeats)",
	"Pat_DetCodeRec_Enbld": "Registered patients whose record access is detailed or full",
	"Pat_Appts_Use":        "Appointments booked or cancelled online by patients and proxies in the month",
	"Pat_Presc_Use":        "Repeat prescriptions requested online by patients and proxies in the month",
	"Pat_DetCodeRec_Use":   "Successful patient or proxy requests in the month that showed at least one record entry",
	"users":                "Patients who used at least one of the three services in the month (a proxy's use counts for the patient)",
	"uptake":               "users as a share of patient_list_size",
	"uptake_of_enabled":    "users as a share of Total_Pat_Enbld",
	"gap_to_target":        "target minus uptake; positive when the practice is below target",
	"slots":                "Slots starting in the month in the practice's appointment books, those published for online booking, and those of them booked",
	"refusals":             "Refusals to patients and proxies in the month by reason, and answers that withheld confidential items",
	"proxy_users":          "People who acted for a patient of the practice as a proxy in the month",
	"suggested_partners":   "For a practice below target: up to three practices at or above target whose list size is within a factor of two, closest first",
}

// CountUptake brings the uptake counts up to date with the audit trail now, for a loader that has just
// written a history of activity and wants the first dashboard view not to count it while a browser
// waits (on FerretDB beside other work that took longer than 30 s). serve does not call it: there the
// background count does it without holding back readiness.
func (s *Server) CountUptake(ctx context.Context) error {
	if s.tally == nil {
		return nil
	}
	return s.tally.CatchUp(ctx)
}

// TakeCensuses takes the census of the current month and of each of the months-1 before it that has
// none, for a loader that has just filled an empty store (the --dev seed) and its history.
func (s *Server) TakeCensuses(ctx context.Context, months int) error {
	if s.tally == nil {
		return nil
	}
	now := uptake.PeriodOf(s.now())
	for i := 0; i < months; i++ {
		if err := s.tally.TakeCensus(ctx, now.Add(-i)); err != nil {
			return err
		}
	}
	return nil
}
