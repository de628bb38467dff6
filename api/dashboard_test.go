package api_test

import (
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/auth/devidp"
	"github.com/gpfhir/gpfhir/uptake"
)

// commissionerToken signs in as the development commissioner through the dashboard client.
func (ts *testServer) commissionerToken() string {
	ts.t.Helper()
	tok, err := devidp.CommissionerToken(context.Background(), nil, ts.Issuer)
	if err != nil {
		ts.t.Fatalf("commissioner token: %v", err)
	}
	return tok.AccessToken
}

// uptakeOf is the JSON answer for a period (and practice), as the commissioner reads it.
func (ts *testServer) uptakeOf(tok, query string) map[string]any {
	ts.t.Helper()
	return ts.mustStatus(ts.do("GET", "/dashboard/uptake.json?"+query, nil, bearer(tok)), 200).JSON(ts.t)
}

// practiceFigures is one practice's entry of a JSON answer.
func practiceFigures(t *testing.T, answer map[string]any, code string) map[string]any {
	t.Helper()
	for _, p := range list(answer["practices"]) {
		if p["practice_code"] == code {
			return p
		}
	}
	t.Fatalf("practice %s is not in the answer: %v", code, answer["practices"])
	return nil
}

func number(m map[string]any, path ...string) float64 {
	var v any = m
	for _, p := range path {
		mm, _ := v.(map[string]any)
		v = mm[p]
	}
	n, _ := v.(float64)
	return n
}

func thisMonth() string { return uptake.PeriodOf(time.Now()).String() }

func TestDashboardIsForCommissionersOnlyAndSaysWhy(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	commissioner := ts.commissionerToken()
	patient := ts.patientToken(w.meNHS, "P9", "")
	gp := ts.systemToken(devidp.PracticeClientID(testPracticeODS), "system/*.rs")
	auditor := ts.auditorToken()
	tests := []struct {
		name   string
		token  string
		status int
		says   string
	}{
		{"a commissioner", commissioner, 200, ""},
		{"no token", "", 401, "sign in at /dashboard/login"},
		{"a patient", patient, 403, "own GP record"},
		{"a GP system", gp, 403, "GP system token"},
		{"an auditor", auditor, 403, "AuditEvents only"},
	}
	for _, tc := range tests {
		for _, path := range []string{"/dashboard/uptake.json", "/dashboard/uptake.csv"} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				r := ts.mustStatus(ts.do("GET", path, nil, bearer(tc.token)), tc.status)
				if tc.status == 200 {
					return
				}
				iss := r.issue(t)
				if d, _ := iss["diagnostics"].(string); !strings.Contains(d, tc.says) {
					t.Errorf("diagnostics %q do not say %q", d, tc.says)
				}
				if tc.status == 403 && !strings.Contains(iss["diagnostics"].(string), "gpfhir/dashboard.read") {
					t.Errorf("a refusal should name the scope the dashboard needs: %s", r.Body)
				}
				if tc.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("401 without a Bearer challenge: %v", r.Header)
				}
			})
		}
	}
	t.Run("the page tells a person in words", func(t *testing.T) {
		r := ts.mustStatus(ts.do("GET", "/dashboard", nil, bearer(patient)), 403)
		if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") || !strings.Contains(string(r.Body), "own GP record") {
			t.Errorf("%s: %s", ct, r.Body)
		}
		r = ts.mustStatus(ts.do("GET", "/dashboard?period=2025-01", nil, bearer("")), 401)
		if !strings.Contains(string(r.Body), `href="/dashboard/login?next=%2Fdashboard%3Fperiod%3D2025-01"`) {
			t.Errorf("the signed-out page should offer the sign-in, coming back to the same page: %s", r.Body)
		}
	})
	t.Run("a commissioner's token reads no FHIR resource", func(t *testing.T) {
		ts.mustStatus(ts.do("GET", "/Patient", nil, bearer(commissioner)), 403)
	})
}

func TestDashboardAnswersBadInputClearly(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.commissionerToken()
	future := uptake.PeriodOf(time.Now()).Add(1).String()
	tests := []struct {
		name, path string
		status     int
		code, says string
	}{
		{"a month that is no month", "/dashboard/uptake.json?period=2025-13", 400, "value", "YYYY-MM"},
		{"a month to come", "/dashboard/uptake.json?period=" + future, 400, "value", "has not begun"},
		{"an ODS code with spaces", "/dashboard/uptake.csv?practice=A8+1001", 400, "value", "not an ODS code"},
		{"a practice with no figures", "/dashboard/uptake.json?practice=Z99999", 404, "not-found", "no practice with ODS code Z99999"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			iss := ts.mustStatus(ts.do("GET", tc.path, nil, bearer(tok)), tc.status).issue(t)
			if iss["code"] != tc.code || !strings.Contains(iss["diagnostics"].(string), tc.says) {
				t.Errorf("issue %v, want code %s saying %q", iss, tc.code, tc.says)
			}
		})
	}
	t.Run("the page says what is wrong in a page", func(t *testing.T) {
		r := ts.mustStatus(ts.do("GET", "/dashboard?sort=colour", nil, bearer(tok)), 400)
		if !strings.Contains(string(r.Body), "cannot be sorted by &#34;colour&#34;") || !strings.Contains(string(r.Body), "<h1>") {
			t.Errorf("error page: %s", r.Body)
		}
	})
}

// TestDashboardCountsExactlyWhatPatientsDidThroughTheAPI books, cancels, orders and views through the
// API as patients and a proxy, alongside GP-system traffic and refused requests, and finds exactly those
// uses counted.
func TestDashboardCountsExactlyWhatPatientsDidThroughTheAPI(t *testing.T) {
	ts := newTestServer(t)
	w := newServicesWorld(t, ts)
	carer := nhsNumber(t, 9)
	now := time.Now()
	ts.create("RelatedPerson", grant(w.me, carer, now.AddDate(0, -1, 0), now.AddDate(1, 0, 0), onlineAccess("summary", "", "manage", "manage")))
	imm := ts.create("Immunization", immunization(w.me, now.AddDate(0, -3, 0)))
	pl := ts.create("MedicationRequest", plan(w.me, "active", 0, 5, now.AddDate(1, 0, 0)))
	tok := ts.commissionerToken()
	period := thisMonth()
	query := "period=" + period + "&practice=" + testPracticeODS
	before := practiceFigures(t, ts.uptakeOf(tok, query), testPracticeODS)

	me := bearer(ts.patientToken(w.meNHS, "P9", "", "patient/*.cruds"))
	other := bearer(ts.patientToken(w.otherNHS, "P9", "", "patient/*.cruds"))
	proxy := bearer(ts.patientToken(carer, "P9", w.meNHS, "patient/*.cruds"))
	d3 := w.base.Add(72 * time.Hour)
	// Two bookings and a cancellation: three appointment actions.
	appt := ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, d3, d3.Add(10*time.Minute), w.slotFree), me), 201).JSON(t)
	ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.me, d3.Add(10*time.Minute), d3.Add(20*time.Minute), w.slotNext), me), 201)
	appt["status"], appt["cancelationReason"] = "cancelled", obj{"text": "I feel better"}
	ts.mustStatus(ts.do("PUT", "/Appointment/"+appt["id"].(string), appt, header{"Authorization": me["Authorization"], "If-Match": `W/"1"`}), 200)
	// One repeat request.
	ts.mustStatus(ts.do("POST", "/Task", repeatTask(w.me, pl), me), 201)
	// Two record views by the patient and one by the proxy; reading demographics and an empty search are none.
	ts.mustStatus(ts.do("GET", "/Immunization", nil, me), 200)
	ts.mustStatus(ts.do("GET", "/Immunization/"+imm, nil, me), 200)
	ts.mustStatus(ts.do("GET", "/Immunization", nil, proxy), 200)
	ts.mustStatus(ts.do("GET", "/Patient/"+w.me, nil, me), 200)
	ts.mustStatus(ts.do("GET", "/Immunization", nil, other), 200)
	// Refusals and failures: none is a use.
	ts.mustStatus(ts.do("GET", "/Immunization", nil, bearer(ts.patientToken(w.meNHS, "P5", ""))), 403)
	ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.other, d3.Add(10*time.Minute), d3.Add(20*time.Minute), w.slotNext), other), 409)
	// GP-system traffic: none counts.
	ts.mustStatus(ts.do("POST", "/Appointment", w.appointment(w.other, d3, d3.Add(10*time.Minute), w.slotFar), nil), 201)
	ts.mustStatus(ts.do("GET", "/Immunization", nil, nil), 200)

	answer := ts.uptakeOf(tok, query)
	after := practiceFigures(t, answer, testPracticeODS)
	for _, f := range []struct {
		path []string
		want float64
	}{
		{[]string{"Pat_Appts_Use"}, 3},
		{[]string{"Pat_Presc_Use"}, 1},
		{[]string{"Pat_DetCodeRec_Use"}, 3},
		{[]string{"users"}, 1},
		{[]string{"proxy_users"}, 1},
		{[]string{"refusals", "proofing_level"}, 1},
		{[]string{"refusals", "other"}, 0},
		{[]string{"refusals", "switched_off"}, 0},
	} {
		if got := number(after, f.path...) - number(before, f.path...); got != f.want {
			t.Errorf("%s went up by %v, want %v", strings.Join(f.path, "."), got, f.want)
		}
	}
	// Reading again counts nothing twice, and the commissioner's views count for nothing.
	again := practiceFigures(t, ts.uptakeOf(tok, query), testPracticeODS)
	if number(again, "Pat_DetCodeRec_Use") != number(after, "Pat_DetCodeRec_Use") || number(again, "Pat_Appts_Use") != number(after, "Pat_Appts_Use") {
		t.Errorf("a second read changed the counts: %v then %v", after, again)
	}
	if trend := list(answer["trend"]); len(trend) != 12 || trend[11]["period"] != period {
		t.Errorf("the trend should be the 12 months up to %s: %v", period, answer["trend"])
	}
}

func TestDashboardCensusCountsListsEnabledPatientsAndSlots(t *testing.T) {
	ts := newTestServer(t, api.UptakeEvery(50*time.Millisecond))
	w := newServicesWorld(t, ts)
	tok := ts.commissionerToken()
	period := uptake.PeriodOf(time.Now())
	query := "period=" + period.String() + "&practice=" + testPracticeODS
	f := practiceFigures(t, ts.uptakeOf(tok, query), testPracticeODS)
	slots, online := 0, 0
	for _, s := range []struct {
		start  time.Time
		online bool
	}{{w.base.Add(72 * time.Hour), true}, {w.base.Add(72*time.Hour + 10*time.Minute), true}, {w.base.Add(3 * time.Hour), true},
		{w.base.Add(72 * time.Hour), false}, {w.base.Add(-48 * time.Hour), true}, {w.base.Add(20 * 24 * time.Hour), true}} {
		if uptake.PeriodOf(s.start) == period {
			slots++
			if s.online {
				online++
			}
		}
	}
	want := map[string]float64{"patient_list_size": 2, "Total_Pat_Enbld": 2, "Pat_Appts_Enbld": 2, "Pat_Presc_Enbld": 2, "Pat_DetCodeRec_Enbld": 0}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("%s = %v, want %v", k, f[k], v)
		}
	}
	if number(f, "slots", "slots") != float64(slots) || number(f, "slots", "online_bookable") != float64(online) {
		t.Errorf("slots %v, want %d of which %d online", f["slots"], slots, online)
	}
	// The practice switches everything off for one patient, and turns on the detailed record for the other.
	w.setAccess(t, w.other, onlineAccess("none", "", "none", "none"))
	w.setAccess(t, w.me, onlineAccess("detailed", "", "manage", "manage"))
	f = practiceFigures(t, ts.uptakeOf(tok, query), testPracticeODS)
	want = map[string]float64{"patient_list_size": 2, "Total_Pat_Enbld": 1, "Pat_Appts_Enbld": 1, "Pat_DetCodeRec_Enbld": 1}
	for k, v := range want {
		if f[k] != v {
			t.Errorf("after the change %s = %v, want %v", k, f[k], v)
		}
	}
}

func TestDashboardCSVIsPOMILongFormat(t *testing.T) {
	ts := newTestServer(t)
	ts.create("Organization", obj{"resourceType": "Organization", "name": "=HYPERLINK(\"http://evil\")",
		"identifier": arr{obj{"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "X00009"}}})
	tok := ts.commissionerToken()
	period := uptake.PeriodOf(time.Now())
	r := ts.mustStatus(ts.do("GET", "/dashboard/uptake.csv?period="+period.String(), nil, bearer(tok)), 200)
	if ct := r.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	rows, err := csv.NewReader(strings.NewReader(string(r.Body))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "report_period_end,practice_code,practice_name,field,value" {
		t.Fatalf("header %v", rows[0])
	}
	fields := map[string]map[string]string{}
	for _, row := range rows[1:] {
		if row[0] != period.LastDay() {
			t.Errorf("report_period_end %q, want %s", row[0], period.LastDay())
		}
		if fields[row[1]] == nil {
			fields[row[1]] = map[string]string{}
		}
		fields[row[1]][row[3]] = row[4]
		if row[1] == "X00009" && !strings.HasPrefix(row[2], "'=") {
			t.Errorf("a practice name a spreadsheet would run as a formula is written as %q", row[2])
		}
	}
	for _, code := range []string{testPracticeODS, "X00009"} {
		for _, field := range []string{"patient_list_size", "Total_Pat_Enbld", "Pat_Appts_Enbld", "Pat_Presc_Enbld",
			"Pat_DetCodeRec_Enbld", "Pat_Appts_Use", "Pat_Presc_Use", "Pat_DetCodeRec_Use"} {
			if _, ok := fields[code][field]; !ok {
				t.Errorf("%s has no %s row", code, field)
			}
		}
	}
}

func TestDashboardViewsAreAuditedWithWhatWasAsked(t *testing.T) {
	ts := newTestServer(t)
	tok := ts.commissionerToken()
	h := bearer(tok)
	h["X-Request-ID"] = "dashboard-view-1"
	ts.mustStatus(ts.do("GET", "/dashboard/uptake.json?period="+thisMonth(), nil, h), 200)
	refused := bearer(ts.systemToken(devidp.AllPracticesClientID, "system/*.rs"))
	refused["X-Request-ID"] = "dashboard-view-2"
	ts.mustStatus(ts.do("GET", "/dashboard", nil, refused), 403)
	for _, tc := range []struct{ reqID, desc string }{
		{"dashboard-view-1", "dashboard/uptake.json: 200 OK"},
		{"dashboard-view-2", "dashboard: 403 Forbidden (deny-role)"},
	} {
		ev := ts.auditEvent(tc.reqID)
		if ev["outcomeDesc"] != tc.desc {
			t.Errorf("%s: outcomeDesc %v, want %q", tc.reqID, ev["outcomeDesc"], tc.desc)
		}
		var query string
		for _, e := range list(ev["entity"]) {
			if q, ok := e["query"].(string); ok {
				raw, _ := base64.StdEncoding.DecodeString(q)
				query = string(raw)
			}
		}
		if tc.reqID == "dashboard-view-1" && query != "period="+thisMonth() {
			t.Errorf("the record names the query %q", query)
		}
	}
}

// signInClient is a browser without JavaScript: it keeps cookies and follows redirects, and the
// identity provider's sign-in page is a form it posts.
func signInClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar}
}

func TestDashboardSignInKeepsASessionInASealedCookie(t *testing.T) {
	ts := newTestServer(t)
	hc := signInClient(t)
	noFollow := &http.Client{Jar: hc.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// The sign-in goes to the issuer with PKCE (S256) and a state.
	resp, err := noFollow.Get(ts.URL + "/dashboard/login?next=" + url.QueryEscape("/dashboard?period="+thisMonth()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth, _ := url.Parse(resp.Header.Get("Location"))
	q := auth.Query()
	if resp.StatusCode != 302 || !strings.HasPrefix(auth.String(), ts.Issuer) || q.Get("code_challenge_method") != "S256" ||
		q.Get("code_challenge") == "" || q.Get("state") == "" || q.Get("client_id") != devidp.DashboardClientID ||
		!strings.Contains(q.Get("scope"), "gpfhir/dashboard.read") || q.Get("redirect_uri") != ts.URL+"/dashboard/callback" {
		t.Fatalf("sign-in redirect %d %s", resp.StatusCode, auth)
	}
	// The identity provider's page, its commissioner button, and the way back.
	resp, err = hc.Get(auth.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Request.URL.Query().Get("authRequestID")
	resp, err = hc.PostForm(ts.Issuer+"/login", url.Values{"authRequestID": {id}, "role": {"commissioner"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Request.URL.Path != "/dashboard" || resp.Request.URL.Query().Get("period") != thisMonth() {
		t.Fatalf("after signing in: %d at %s", resp.StatusCode, resp.Request.URL)
	}
	var session *http.Cookie
	for _, c := range resp.Request.Response.Cookies() {
		if c.Name == "gpfhir_dashboard" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Path != "/dashboard" || session.Secure {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Lax, Path=/dashboard, not Secure over http", session)
	}
	if strings.Contains(session.Value, ".") {
		t.Error("the session cookie holds the token in the clear")
	}
	// The session reads the JSON too; a tampered cookie reads nothing.
	jsonURL := ts.URL + "/dashboard/uptake.json?period=" + thisMonth()
	get := func(cookie string) int {
		req, _ := http.NewRequest("GET", jsonURL, nil)
		req.AddCookie(&http.Cookie{Name: "gpfhir_dashboard", Value: cookie})
		r, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	if got := get(session.Value); got != 200 {
		t.Errorf("with the session cookie: %d", got)
	}
	tampered := []byte(session.Value)
	tampered[len(tampered)/2] ^= 1
	if got := get(string(tampered)); got != 401 {
		t.Errorf("with a tampered cookie: %d", got)
	}
	// A callback that does not match the sign-in started here is refused.
	resp, err = hc.Get(ts.URL + "/dashboard/callback?code=x&state=forged")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("a forged callback: %d", resp.StatusCode)
	}
	// Signing out ends the session.
	resp, err = hc.PostForm(ts.URL+"/dashboard/logout", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("after signing out the dashboard answers %d", resp.StatusCode)
	}
}

func TestDashboardPageShowsTheFiguresAsTablesAndDescribedCharts(t *testing.T) {
	ts := newTestServer(t)
	newServicesWorld(t, ts)
	tok := ts.commissionerToken()
	period := thisMonth()
	body := string(ts.mustStatus(ts.do("GET", "/dashboard?period="+period+"&sort=list&dir=desc", nil, bearer(tok)), 200).Body)
	for _, want := range []string{
		`<a class="skip-link" href="#main">`, `<main id="main"`, `<th scope="col" aria-sort="descending"`,
		`<th scope="row"><a href="/dashboard?period=` + period + `&amp;practice=` + testPracticeODS + `">Test Practice</a>`,
		`<svg role="img" aria-labelledby="bands-title bands-desc"`, `<desc id="bands-desc">Bar chart`,
		`<caption id="bands-caption"`, `<h2 id="definitions">`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	detail := string(ts.mustStatus(ts.do("GET", "/dashboard?period="+period+"&practice="+testPracticeODS, nil, bearer(tok)), 200).Body)
	if !strings.Contains(detail, `aria-labelledby="trend-title trend-desc"`) || strings.Count(detail, "<tr><th scope=\"row\">") < 12 {
		t.Errorf("the practice page lacks its trend chart or its table")
	}
	var answer map[string]any
	if err := json.Unmarshal(ts.mustStatus(ts.do("GET", "/dashboard/uptake.json?period="+period, nil, bearer(tok)), 200).Body, &answer); err != nil {
		t.Fatal(err)
	}
	if number(answer, "target") != 0.3 {
		t.Errorf("the default target is %v", answer["target"])
	}
}
