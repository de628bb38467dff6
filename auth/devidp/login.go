package devidp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"html/template"
	"net/http"
	"strings"

	"github.com/gpfhir/gpfhir/fhir"
)

// loginPage is the provider's sign-in page: plain HTML forms, no script, one labelled control per field,
// so that it works with a screen reader, a keyboard, and `gpfhir dev-token` posting the form.
type loginPage struct {
	idp      *IdP
	callback func(context.Context, string) string
}

type testUser struct {
	// Name is who signs in; Shows is the case the user demonstrates, in plain words.
	Name      string
	Shows     string
	Practice  string
	NHSNumber string
	Level     string
	ProxyFor  string
	Role      string
}

// SpacedNHSNumber is the NHS number as people read and type it: 3, 3 and 4 digits.
func (u testUser) SpacedNHSNumber() string {
	n := u.NHSNumber
	if len(n) != 10 {
		return n
	}
	return n[:3] + " " + n[3:6] + " " + n[6:]
}

// CommissionerName is the development commissioner, whom the dashboard client's sign-in page offers.
const CommissionerName = "Chris Commissioner"

// commissionerSubject is the development commissioner's stable subject.
const commissionerSubject = "dev-commissioner-1"

// testUsers are the seeded people the page offers, one per case an app has to handle: full access, the
// identity levels that see no record, the practice's own settings (access off, items kept confidential),
// a proxy in force and one whose grant has ended, and someone with no record here at all.
func (l *loginPage) testUsers() []testUser {
	d := l.idp.cfg.People
	var out []testUser
	shows := map[string]string{
		"P9": "full access: identity verified to P9, sees their GP record",
		"P5": "identity only partly verified (P5): may book and order, but sees no record",
		"P0": "identity not verified (P0): is told why nothing is shown",
	}
	for i, lv := range []string{"P9", "P5", "P0"} {
		if i < len(d.Patients) {
			p := d.Patients[i]
			show := shows[lv]
			if lv == "P9" && p.State != "" {
				show += "; " + p.State
			}
			out = append(out, testUser{Name: p.Name, Shows: show, Practice: p.PracticeODS, NHSNumber: p.NHSNumber, Level: lv})
		}
	}
	for i, p := range d.Patients {
		if i > 0 && p.State != "" {
			out = append(out, testUser{Name: p.Name, Shows: p.State + " (P9)", Practice: p.PracticeODS, NHSNumber: p.NHSNumber, Level: "P9"})
		}
	}
	if d.Proxy.NHSNumber != "" {
		name := strings.TrimSuffix(d.Proxy.Name, " (proxy)")
		out = append(out, testUser{Name: name, Shows: "proxy: acting for the child they care for, NHS number " + spaced(d.Proxy.ProxyFor) + " (P9)",
			NHSNumber: d.Proxy.NHSNumber, Level: "P9", ProxyFor: d.Proxy.ProxyFor})
		if d.Proxy.ExpiredFor != "" {
			out = append(out, testUser{Name: name, Shows: "proxy whose grant has ended, for NHS number " + spaced(d.Proxy.ExpiredFor) + ": refused (P9)",
				NHSNumber: d.Proxy.NHSNumber, Level: "P9", ProxyFor: d.Proxy.ExpiredFor})
		}
		out = append(out, testUser{Name: name, Shows: "as themselves: no GP record at this service (P9)", NHSNumber: d.Proxy.NHSNumber, Level: "P9"})
	}
	return out
}

func spaced(nhs string) string { return testUser{NHSNumber: nhs}.SpacedNHSNumber() }

var loginTemplate = template.Must(template.New("login").Funcs(template.FuncMap{"spaced": spaced}).Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in – gpfhir development identity provider</title>
<style>
body { font: 1rem/1.5 system-ui, sans-serif; color: #1d1d1d; background: #fff; margin: 0; }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.75rem; margin: 0.5rem 0; }
.users { list-style: none; padding: 0; margin: 0; }
.user { border: 1px solid #767676; border-radius: 4px; padding: 0.75rem 1rem; margin: 0 0 0.75rem; }
.user p { margin: 0 0 0.5rem; }
.user dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.125rem 1rem; margin: 0 0 0.75rem; }
.user dt { font-weight: 600; }
.user dd { margin: 0; overflow-wrap: anywhere; }
.nhs { font-variant-numeric: tabular-nums; letter-spacing: 0.05em; }
button { font: inherit; padding: 0.5rem 1rem; border: 2px solid #005eb8; border-radius: 4px; background: #005eb8; color: #fff; cursor: pointer; }
button:focus-visible, input:focus-visible { outline: 3px solid #ffb81c; outline-offset: 2px; }
.alert { border-left: 6px solid #d5281b; padding: 0.5rem 1rem; background: #fdf2f1; }
input[type=text] { font: inherit; padding: 0.25rem; border: 2px solid #4c6272; }
</style></head>
<body>
<main>
<h1>Sign in (development only)</h1>
<p>This is gpfhir's development identity provider. It behaves like NHS login but checks nothing:
choose a test user, or type any valid NHS number and an identity level.</p>
{{if .Error}}<p role="alert" class="alert"><strong>Could not sign in:</strong> {{.Error}}</p>{{end}}
{{if .Staff}}<h2>Commissioners</h2>
<p>The uptake dashboard is for commissioners. Patients sign in to their own GP record through an app instead.</p>
<ul>
{{range .Staff}}<li><form method="post" action="{{$.Action}}">
<input type="hidden" name="authRequestID" value="{{$.ID}}">
<input type="hidden" name="role" value="{{.Role}}">
<button type="submit">Sign in as {{.Name}}, {{.Shows}}</button>
</form></li>
{{end}}</ul>
{{else}}<h2>Test users</h2>
<p>Each test user shows one case an app has to handle. Their NHS numbers work with
<code>gpfhir dev-token --nhs-number</code> too.</p>
<ul class="users">
{{range $i, $u := .Users}}<li class="user"><form method="post" action="{{$.Action}}">
<p id="user-{{$i}}"><strong>{{.Name}}</strong>: {{.Shows}}</p>
<dl>
<dt>NHS number</dt><dd class="nhs">{{.SpacedNHSNumber}}</dd>
{{if .Practice}}<dt>Practice</dt><dd>{{.Practice}}</dd>{{end}}
<dt>Identity level</dt><dd>{{.Level}}</dd>
{{if .ProxyFor}}<dt>Acting for</dt><dd class="nhs">{{spaced .ProxyFor}}</dd>{{end}}
</dl>
<input type="hidden" name="authRequestID" value="{{$.ID}}">
<input type="hidden" name="nhs_number" value="{{.NHSNumber}}">
<input type="hidden" name="level" value="{{.Level}}">
<input type="hidden" name="proxy_for" value="{{.ProxyFor}}">
<button type="submit" aria-describedby="user-{{$i}}">Sign in as {{.Name}}</button>
</form></li>
{{end}}</ul>
<h2>Any NHS number</h2>
<form method="post" action="{{.Action}}">
<input type="hidden" name="authRequestID" value="{{.ID}}">
<p><label for="nhs_number">NHS number (10 digits)</label><br>
<input type="text" id="nhs_number" name="nhs_number" inputmode="numeric" autocomplete="off" required pattern="[0-9 ]{10,12}"></p>
<fieldset><legend>Identity verification level</legend>
<p><input type="radio" id="level-p9" name="level" value="P9" checked> <label for="level-p9">P9: fully verified (can see a GP record)</label></p>
<p><input type="radio" id="level-p5" name="level" value="P5"> <label for="level-p5">P5: partly verified</label></p>
<p><input type="radio" id="level-p0" name="level" value="P0"> <label for="level-p0">P0: not verified</label></p>
</fieldset>
<p><label for="proxy_for">Acting for (NHS number of the person you care for; leave empty to act for yourself)</label><br>
<input type="text" id="proxy_for" name="proxy_for" inputmode="numeric" autocomplete="off" pattern="[0-9 ]{10,12}"></p>
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
		data["Staff"] = []testUser{{Name: CommissionerName, Shows: "commissioner (uptake dashboard)", Role: "commissioner"}}
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
	// People type NHS numbers in groups (943 476 5919), as the page shows them.
	unspace := func(v string) string { return strings.Join(strings.Fields(v), "") }
	nhs, level, proxyFor := unspace(r.PostForm.Get("nhs_number")), r.PostForm.Get("level"), unspace(r.PostForm.Get("proxy_for"))
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
