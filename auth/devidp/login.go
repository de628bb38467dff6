package devidp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"

	"github.com/gpfhir/gpfhir/fhir"
)

// loginPage is the provider's sign-in page: plain HTML forms, no script, one labelled control per field,
// so that it works with a screen reader, a keyboard, and `gpfhir dev-token` posting the form.
type loginPage struct {
	idp      *IdP
	callback func(context.Context, string) string
}

type testUser struct {
	Label     string
	NHSNumber string
	Level     string
	ProxyFor  string
	Role      string
}

// CommissionerName is the development commissioner, whom the dashboard client's sign-in page offers.
const CommissionerName = "Chris Commissioner"

// commissionerSubject is the development commissioner's stable subject.
const commissionerSubject = "dev-commissioner-1"

// testUsers are the seeded people the page offers, one per case an app has to handle.
func (l *loginPage) testUsers() []testUser {
	d := l.idp.cfg.People
	var out []testUser
	levels := []string{"P9", "P5", "P0"}
	for i, lv := range levels {
		if i < len(d.Patients) {
			p := d.Patients[i]
			out = append(out, testUser{Label: p.Name + ", patient at " + p.PracticeODS + ", identity verified to " + lv,
				NHSNumber: p.NHSNumber, Level: lv})
		}
	}
	for i, p := range d.Patients {
		if i > 0 && p.State != "" {
			out = append(out, testUser{Label: p.Name + ", patient at " + p.PracticeODS + ": " + p.State + " (P9)",
				NHSNumber: p.NHSNumber, Level: "P9"})
		}
	}
	if d.Proxy.NHSNumber != "" {
		if d.Proxy.ExpiredFor != "" {
			out = append(out, testUser{Label: d.Proxy.Name + ", acting for someone whose proxy grant has ended (P9)",
				NHSNumber: d.Proxy.NHSNumber, Level: "P9", ProxyFor: d.Proxy.ExpiredFor})
		}
		out = append(out,
			testUser{Label: d.Proxy.Name + ", acting for the patient they care for (P9)", NHSNumber: d.Proxy.NHSNumber, Level: "P9", ProxyFor: d.Proxy.ProxyFor},
			testUser{Label: d.Proxy.Name + " as themselves: P9, but no GP record at this service", NHSNumber: d.Proxy.NHSNumber, Level: "P9"})
	}
	return out
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in – gpfhir development identity provider</title></head>
<body>
<main>
<h1>Sign in (development only)</h1>
<p>This is gpfhir's development identity provider. It behaves like NHS login but checks nothing:
choose a test user, or type any valid NHS number and an identity level.</p>
{{if .Error}}<p role="alert"><strong>Could not sign in:</strong> {{.Error}}</p>{{end}}
{{if .Staff}}<h2>Commissioners</h2>
<p>The uptake dashboard is for commissioners. Patients sign in to their own GP record through an app instead.</p>
<ul>
{{range .Staff}}<li><form method="post" action="{{$.Action}}">
<input type="hidden" name="authRequestID" value="{{$.ID}}">
<input type="hidden" name="role" value="{{.Role}}">
<button type="submit">Sign in as {{.Label}}</button>
</form></li>
{{end}}</ul>
{{else}}<h2>Test users</h2>
<ul>
{{range .Users}}<li><form method="post" action="{{$.Action}}">
<input type="hidden" name="authRequestID" value="{{$.ID}}">
<input type="hidden" name="nhs_number" value="{{.NHSNumber}}">
<input type="hidden" name="level" value="{{.Level}}">
<input type="hidden" name="proxy_for" value="{{.ProxyFor}}">
<button type="submit">Sign in as {{.Label}}</button>
</form></li>
{{end}}</ul>
<h2>Any NHS number</h2>
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<p><label for="nhs_number">NHS number (10 digits)</label><br>
<input id="nhs_number" name="nhs_number" inputmode="numeric" autocomplete="off" required pattern="[0-9]{10}"></p>
<fieldset><legend>Identity verification level</legend>
<p><input type="radio" id="level-p9" name="level" value="P9" checked> <label for="level-p9">P9: fully verified (can see a GP record)</label></p>
<p><input type="radio" id="level-p5" name="level" value="P5"> <label for="level-p5">P5: partly verified</label></p>
<p><input type="radio" id="level-p0" name="level" value="P0"> <label for="level-p0">P0: not verified</label></p>
</fieldset>
<p><label for="proxy_for">Acting for (NHS number of the person you care for; leave empty to act for yourself)</label><br>
<input id="proxy_for" name="proxy_for" inputmode="numeric" autocomplete="off" pattern="[0-9]{10}"></p>
<p><button type="submit">Sign in</button></p>
</form>
{{end}}
</main>
</body>
</html>
`))

func (l *loginPage) render(w http.ResponseWriter, status int, id, errMsg string, staff bool) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	data := map[string]any{"ID": id, "Error": errMsg, "Users": l.testUsers(), "Action": l.idp.prefix + "/login"}
	if staff {
		data["Staff"] = []testUser{{Label: CommissionerName + ", commissioner (uptake dashboard)", Role: "commissioner"}}
	}
	_ = loginTemplate.Execute(w, data)
}

// forDashboard reports whether a sign-in request comes from the dashboard client.
func (l *loginPage) forDashboard(r *http.Request, id string) bool {
	req, err := l.idp.storage.AuthRequestByID(r.Context(), id)
	return err == nil && req.GetClientID() == DashboardClientID
}

func (l *loginPage) show(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("authRequestID")
	req, err := l.idp.storage.AuthRequestByID(r.Context(), id)
	if err != nil {
		l.render(w, http.StatusBadRequest, "", "there is no sign-in request to answer; start again from the app", false)
		return
	}
	l.render(w, http.StatusOK, id, "", req.GetClientID() == DashboardClientID)
}

func (l *loginPage) submit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		l.render(w, http.StatusBadRequest, "", "the form could not be read", false)
		return
	}
	id := r.PostForm.Get("authRequestID")
	staff := l.forDashboard(r, id)
	if r.PostForm.Get("role") == "commissioner" {
		if !staff {
			l.render(w, http.StatusUnprocessableEntity, id, "commissioners sign in to the uptake dashboard, not to patient apps", false)
			return
		}
		if err := l.idp.storage.completeLogin(id, &user{sub: commissionerSubject, commissioner: true}); err != nil {
			l.render(w, http.StatusBadRequest, "", err.Error(), false)
			return
		}
		http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
		return
	}
	nhs, level, proxyFor := r.PostForm.Get("nhs_number"), r.PostForm.Get("level"), r.PostForm.Get("proxy_for")
	if err := fhir.CheckNHSNumber(nhs); err != nil {
		l.render(w, http.StatusUnprocessableEntity, id, "that is not a valid NHS number: "+err.Error(), staff)
		return
	}
	switch level {
	case "P9", "P5", "P0":
	default:
		l.render(w, http.StatusUnprocessableEntity, id, "choose an identity level: P9, P5 or P0", staff)
		return
	}
	if proxyFor != "" {
		if err := fhir.CheckNHSNumber(proxyFor); err != nil {
			l.render(w, http.StatusUnprocessableEntity, id, "the 'acting for' NHS number is not valid: "+err.Error(), staff)
			return
		}
	}
	// The subject is opaque and stable per identity, as NHS login's is; it never reveals the NHS number.
	sum := sha256.Sum256([]byte("gpfhir dev-idp subject\x00" + nhs + "\x00" + level + "\x00" + proxyFor))
	u := &user{sub: "dev-" + hex.EncodeToString(sum[:10]), nhsNumber: nhs, level: level, proxyFor: proxyFor}
	if err := l.idp.storage.completeLogin(id, u); err != nil {
		l.render(w, http.StatusBadRequest, "", err.Error(), false)
		return
	}
	http.Redirect(w, r, l.callback(r.Context(), id), http.StatusFound)
}
