package conformance

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"
)

// The gpfhir profile: promises gpfhir makes beyond FHIR R4, from its README and design. They are
// checked only with --profile gpfhir.

const (
	securityLabels   = "https://gpfhir.example/CodeSystem/security-label"
	warningCodes     = "https://fhir.nhs.uk/STU3/CodeSystem/CareConnect-ListWarningCode-1"
	snomedRenewal    = "103742009"
	repeatInfoExt    = "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-MedicationRepeatInformation"
	auditXRequestID  = "XrequestId"
	balpEntitySystem = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
)

// answered is a request that got an answer, kept for the audit checks.
type answered struct {
	rid, method, url string
}

func (s *suite) gpfhirChecks() {
	s.nhsNumberChecks()
	s.hygieneChecks()
	me := s.meChecks()
	s.withheldCheck(me)
	s.bookingChecks(me)
	s.repeatChecks()
	s.auditChecks()
}

func (s *suite) nhsNumberChecks() {
	cases := []struct{ name, value, says string }{
		{"check-digit", "", "Modulus 11"},
		{"length", "999123456", "10 digits"},
		{"digits", "99912345X7", "digits"},
	}
	for _, tc := range cases {
		s.check("gpfhir/nhs-number/"+tc.name, func(c *C) {
			if !s.canCreate("Patient") {
				c.Skipf("needs Patient create")
			}
			b, err := s.body("Patient", "E")
			if err != nil {
				c.Skipf("%v", err)
			}
			v := tc.value
			if v == "" {
				good := s.nhsNumber("E")
				v = good[:9] + string("0123456789"[(int(good[9]-'0')+1)%10])
			}
			b["identifier"] = []any{map[string]any{"system": nhsSystem, "value": v}}
			e := c.send(http.MethodPost, "Patient", b)
			s.createdFrom("Patient", e)
			// gpfhir: an NHS number failing its length, digit or Modulus 11 check is a 422 that says which.
			c.wantError(e, http.StatusUnprocessableEntity)
			if d := e.diagnostics(); !strings.Contains(d, tc.says) {
				c.Fatalf("the OperationOutcome does not say which check failed (want %q in %q)", tc.says, d)
			}
			if !hasExpression(e, "Patient.identifier[0].value") {
				c.Fatalf("the OperationOutcome has no expression Patient.identifier[0].value")
			}
		})
	}
}

func hasExpression(e *exchange, expr string) bool {
	for _, is := range list(e.json(), "issue") {
		for _, x := range list(is, "expression") {
			if x == expr {
				return true
			}
		}
	}
	return false
}

// hygieneChecks: request ids, link shapes, the words of errors and SMART discovery, each promised in the
// README or asked for by the conformance issue.
func (s *suite) hygieneChecks() {
	s.check("gpfhir/x-request-id", func(c *C) {
		e := c.get("Patient?_count=1", "X-Request-ID", s.runID+"-echo")
		if got := e.header.Get("X-Request-ID"); got != s.runID+"-echo" {
			c.Fatalf("X-Request-ID is echoed as %q", got)
		}
	})
	s.check("gpfhir/link-shape", func(c *C) {
		typ := s.probeType()
		if typ == "" {
			c.Skipf("the suite can create no type here")
		}
		f := s.need(c, typ, "C")
		// Searches and histories without parameters, where an empty query shows.
		for _, target := range []string{typ, typ + "/_history", typ + "/" + f.id + "/_history", "_history"} {
			e := c.get(target)
			bundle := c.wantBundle(e, str(e.json(), "type"))
			for _, rel := range []string{"self", "next"} {
				if l := link(bundle, rel); strings.HasSuffix(l, "?") || strings.Contains(l, "?&") {
					c.Fatalf("the %s link %s has an empty query part (no '?' without parameters, no '?&')", rel, clip(l, 120))
				}
			}
		}
	})
	s.check("gpfhir/error-names-value", func(c *C) {
		t, p := s.dateParam()
		if p == "" {
			c.Skipf("no date parameter")
		}
		e := c.get(t + "?" + query(p, "foo"))
		c.wantError(e, http.StatusBadRequest)
		d := e.diagnostics()
		if !strings.Contains(d, p) || !strings.Contains(d, "foo") {
			c.Fatalf("the diagnostics %q do not name the parameter and the value", d)
		}
		for _, q := range quoted(d) {
			if q != "foo" && strings.Contains("foo", q) {
				c.Fatalf("the diagnostics quote %q, a fragment of the value, as if it were the value: %q", q, d)
			}
		}
	})
	s.check("gpfhir/smart-scopes", func(c *C) {
		e := c.getAs("none", ".well-known/smart-configuration")
		c.wantStatus(e, http.StatusOK)
		scopes := list(e.json(), "scopes_supported")
		for _, want := range []string{"patient/*.cruds", "patient/*.rs", "system/*.cruds", "user/AuditEvent.rs"} {
			if !slices.Contains(scopes, any(want)) {
				c.Fatalf("scopes_supported omits %s, which the README's walkthrough uses", want)
			}
		}
	})
}

// quoted returns the double-quoted parts of s.
func quoted(s string) []string {
	var out []string
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(s[i+1:], '"')
		if j < 0 {
			return out
		}
		out = append(out, s[i+1:i+1+j])
		s = s[i+2+j:]
	}
}

// meInfo is what Patient/$me says about one patient role.
type meInfo struct {
	self     string            // the Patient id of the caller's own record, "" when none
	levels   map[string]string // service -> level, for the own record
	proxyFor []meProxy
}

type meProxy struct {
	patient   string
	available bool
	reason    string
}

// meChecks ask $me for each patient role, and check that what it says about access levels is what the
// server then does.
func (s *suite) meChecks() map[string]*meInfo {
	out := map[string]*meInfo{}
	for _, p := range s.patients {
		s.check("gpfhir/me/"+p, func(c *C) {
			e := c.getAs(p, "Patient/$me")
			c.wantStatus(e, http.StatusOK)
			doc := c.wantBody(e, "Parameters")
			info := &meInfo{levels: map[string]string{}}
			sawCaller := false
			for _, prm := range list(doc, "parameter") {
				switch str(prm, "name") {
				case "caller":
					sawCaller = true
					for _, part := range list(prm, "part") {
						if str(part, "name") == "role" && str(part, "valueCode") != "patient" {
							c.Fatalf("$me says the caller's role is %q, want patient", str(part, "valueCode"))
						}
					}
				case "patient":
					var rel, ref, reason string
					avail := false
					levels := map[string]string{}
					for _, part := range list(prm, "part") {
						switch str(part, "name") {
						case "relationship":
							rel = str(part, "valueCode")
						case "patient":
							ref = str(part, "valueReference", "reference")
						case "available":
							avail, _ = get(part, "valueBoolean").(bool)
						case "reason":
							reason = str(part, "valueString")
						case "service":
							var name, level string
							for _, sp := range list(part, "part") {
								switch str(sp, "name") {
								case "name":
									name = str(sp, "valueCode")
								case "level":
									level = str(sp, "valueCode")
								}
							}
							levels[name] = level
						}
					}
					id := strings.TrimPrefix(ref, "Patient/")
					if !avail && reason == "" {
						c.Fatalf("$me lists %s as unavailable without a reason", ref)
					}
					switch rel {
					case "self":
						if avail {
							info.self, info.levels = id, levels
						}
					case "proxy":
						info.proxyFor = append(info.proxyFor, meProxy{patient: id, available: avail, reason: reason})
					}
				}
			}
			if !sawCaller {
				c.Fatalf("$me has no caller parameter")
			}
			out[p] = info
			c.Notef("record %s, prescriptions %s, appointments %s, %d proxy grants",
				info.levels["record"], info.levels["prescriptions"], info.levels["appointments"], len(info.proxyFor))
		})
		s.check("gpfhir/access-levels/"+p, func(c *C) {
			info := out[p]
			if info == nil || info.self == "" {
				c.Skipf("$me names no record of this patient's own")
			}
			// README: record summary and above shows Immunizations; appointments follow their level.
			for _, x := range []struct{ service, typ, need string }{
				{"record", "Immunization", "summary"},
				{"appointments", "Appointment", "view"},
			} {
				level := info.levels[x.service]
				e := c.getAs(p, x.typ+"?"+query("patient", "Patient/"+info.self, "_count", "1"))
				if level == "none" {
					c.wantError(e, http.StatusForbidden)
					if d := e.diagnostics(); !strings.Contains(d, "practice") {
						c.Fatalf("the refusal does not say the practice has not switched it on: %q", d)
					}
				} else {
					c.wantBundle(e, "searchset")
				}
			}
		})
		s.check("gpfhir/proxy/"+p, func(c *C) {
			info := out[p]
			if info == nil || len(info.proxyFor) == 0 {
				c.Skipf("$me lists no proxy grant for this patient role")
			}
			for _, px := range info.proxyFor {
				e := c.getAs(p, "Patient/"+px.patient)
				if px.available {
					c.wantStatus(e, http.StatusOK)
					continue
				}
				c.wantError(e, http.StatusForbidden)
				if e.diagnostics() == "" {
					c.Fatalf("the refusal of a proxy outside its grant does not say why")
				}
			}
			c.Notef("%d grants", len(info.proxyFor))
		})
	}
	return out
}

// withheldCheck: an item the practice hides from online access is not shown to the patient, who is told
// that something was withheld, never what.
func (s *suite) withheldCheck(me map[string]*meInfo) {
	s.check("gpfhir/withheld", func(c *C) {
		if len(s.patients) == 0 {
			c.Skipf("needs a patient role (--role patient CMD)")
		}
		p := s.patients[0]
		info := me[p]
		if info == nil || info.self == "" || info.levels["record"] == "none" {
			c.Skipf("the first patient role has no record access to hide an item from")
		}
		if !s.canCreate("Immunization") {
			c.Skipf("needs Immunization create")
		}
		b, err := s.body("Immunization", "H")
		if err != nil {
			c.Skipf("%v", err)
		}
		b["patient"] = reference("Patient/" + info.self)
		meta := s.meta()
		meta["security"] = append(meta["security"].([]any), coding(securityLabels, "redacted-online", "Redacted for online access"))
		b["meta"] = meta
		e := c.send(http.MethodPost, "Immunization", b)
		id := s.createdFrom("Immunization", e)
		c.wantStatus(e, http.StatusCreated)
		e = c.getAs(p, s.tagged("Immunization", "_count", "100"))
		bundle := c.wantBundle(e, "searchset")
		if slices.Contains(matches(bundle, "Immunization"), id) {
			c.Fatalf("the patient's search returned the item the practice redacted")
		}
		notice := false
		for _, en := range entries(bundle) {
			if en.mode == "outcome" && en.typ == "OperationOutcome" {
				for _, is := range list(en.resource, "issue") {
					for _, cd := range list(is, "details", "coding") {
						notice = notice || (str(is, "code") == "suppressed" && str(cd, "system") == warningCodes && str(cd, "code") == "confidential-items")
					}
				}
			}
		}
		if !notice {
			c.Fatalf("the searchset has no outcome entry saying items were withheld (suppressed, %s|confidential-items)", warningCodes)
		}
		// A redacted item reads as not found, so that its existence is not confirmed.
		c.wantError(c.getAs(p, "Immunization/"+id), http.StatusNotFound)
	})
}

// bookingChecks: a free published slot booked by many at once is booked once; a cancellation needs
// If-Match and frees the slot; an unpublished slot and an unbounded free-slot search are refused.
func (s *suite) bookingChecks(me map[string]*meInfo) {
	var slotID, apptID string
	var pat, p string
	ready := func(c *C) {
		if len(s.patients) == 0 {
			c.Skipf("needs a patient role (--role patient CMD)")
		}
		p = s.patients[0]
		info := me[p]
		if info == nil || info.self == "" {
			c.Skipf("the first patient role has no record of its own here")
		}
		if lvl := info.levels["appointments"]; lvl != "manage" {
			c.Skipf("the first patient role may not book (appointments %s)", lvl)
		}
		if !s.canCreate("Slot") || !s.canCreate("Schedule") {
			c.Skipf("needs Schedule and Slot create")
		}
		pat = info.self
	}
	slotStart := time.Now().UTC().Add(72 * time.Hour).Truncate(time.Hour)
	newSlot := func(c *C, v string, published bool) (string, map[string]any) {
		sched, err := s.body("Schedule", v)
		if err != nil {
			c.Skipf("%v", err)
		}
		// The appointment book belongs to the patient's own practice: a server may refuse (gpfhir does)
		// a patient's booking at a practice they are not registered with. The book is kept at a
		// Location the practice manages.
		if s.canCreate("Location") {
			pt, _ := s.current(c, "Patient", pat)
			if org, ok := pt["managingOrganization"].(map[string]any); ok {
				loc, err := s.body("Location", v)
				if err != nil {
					c.Skipf("%v", err)
				}
				loc["managingOrganization"] = org
				e := c.send(http.MethodPost, "Location", loc)
				c.wantStatus(e, http.StatusCreated)
				sched["actor"] = []any{reference("Location/" + s.createdFrom("Location", e))}
			}
		}
		sched["extension"] = bookable(published)
		sched["planningHorizon"] = map[string]any{"start": slotStart.Add(-96 * time.Hour).Format(time.RFC3339), "end": slotStart.Add(30 * 24 * time.Hour).Format(time.RFC3339)}
		e := c.send(http.MethodPost, "Schedule", sched)
		schedID := s.createdFrom("Schedule", e)
		c.wantStatus(e, http.StatusCreated)
		slot, err := s.body("Slot", v)
		if err != nil {
			c.Skipf("%v", err)
		}
		slot["schedule"] = reference("Schedule/" + schedID)
		slot["status"] = "free"
		slot["start"] = slotStart.Format(time.RFC3339)
		slot["end"] = slotStart.Add(15 * time.Minute).Format(time.RFC3339)
		slot["extension"] = bookable(published)
		e = c.send(http.MethodPost, "Slot", slot)
		id := s.createdFrom("Slot", e)
		c.wantStatus(e, http.StatusCreated)
		return id, slot
	}
	booking := func(slotID string, slot map[string]any) map[string]any {
		return map[string]any{"resourceType": "Appointment", "meta": s.meta(), "status": "booked",
			"description": "Conformance booking", "slot": []any{reference("Slot/" + slotID)},
			"start": slot["start"], "end": slot["end"],
			"participant": []any{map[string]any{"actor": reference("Patient/" + pat), "status": "accepted"}}}
	}
	s.check("gpfhir/booking/race", func(c *C) {
		ready(c)
		id, slot := newSlot(c, "R", true)
		const n = 6
		results := make([]*exchange, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = s.do(request{method: http.MethodPost, target: "Appointment", body: encode(booking(id, slot)), as: p})
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, e := range results {
			if aid := s.createdFrom("Appointment", e); aid != "" {
				apptID = aid
			}
			switch e.status {
			case http.StatusCreated:
				won++
			case http.StatusConflict:
				c.show(e)
				c.wantOutcome(e)
			default:
				c.show(e)
				c.Fatalf("a concurrent booking got %d, want 201 for one and 409 for the rest", e.status)
			}
		}
		if won != 1 {
			c.Fatalf("%d of %d concurrent bookings of one slot succeeded, want exactly 1", won, n)
		}
		res, _ := s.current(c, "Slot", id)
		if st := str(res, "status"); st != "busy" {
			c.Fatalf("the booked slot's status is %q, want busy", st)
		}
		slotID = id
	})
	s.check("gpfhir/booking/cancel-needs-if-match", func(c *C) {
		if apptID == "" {
			c.Skipf("needs the booking of gpfhir/booking/race")
		}
		e := c.do(request{method: http.MethodPatch, target: "Appointment/" + apptID, as: p, body: encode(cancelOps()),
			header: []string{"Content-Type", "application/json-patch+json"}})
		c.wantError(e, http.StatusPreconditionRequired)
	})
	s.check("gpfhir/booking/cancel", func(c *C) {
		if apptID == "" {
			c.Skipf("needs the booking of gpfhir/booking/race")
		}
		e := c.getAs(p, "Appointment/"+apptID)
		c.wantStatus(e, http.StatusOK)
		v := versionOf(e.json())
		e = c.do(request{method: http.MethodPatch, target: "Appointment/" + apptID, as: p, body: encode(cancelOps()),
			header: []string{"Content-Type", "application/json-patch+json", "If-Match", `W/"` + v + `"`}})
		c.wantStatus(e, http.StatusOK)
		res, _ := s.current(c, "Slot", slotID)
		if st := str(res, "status"); st != "free" {
			c.Fatalf("after the cancellation the slot's status is %q, want free", st)
		}
	})
	s.check("gpfhir/booking/unpublished", func(c *C) {
		ready(c)
		id, slot := newSlot(c, "V", false)
		e := c.sendAs(p, http.MethodPost, "Appointment", booking(id, slot))
		s.createdFrom("Appointment", e)
		c.wantError(e, http.StatusUnprocessableEntity, http.StatusNotFound, http.StatusForbidden)
	})
	s.check("gpfhir/booking/search-window", func(c *C) {
		ready(c)
		e := c.getAs(p, "Slot?status=free")
		c.wantError(e, http.StatusBadRequest)
		from := time.Now().UTC().Format("2006-01-02")
		to := time.Now().UTC().Add(13 * 24 * time.Hour).Format("2006-01-02")
		e = c.getAs(p, "Slot?"+query("status", "free", "start", "ge"+from, "start", "le"+to, "_count", "1"))
		c.wantBundle(e, "searchset")
	})
}

func cancelOps() []any {
	return []any{
		map[string]any{"op": "replace", "path": "/status", "value": "cancelled"},
		map[string]any{"op": "add", "path": "/cancelationReason", "value": map[string]any{"text": "conformance run"}},
	}
}

// repeatChecks: of many repeat requests for one plan at once, one is made; another is refused while
// it is outstanding; an inactive plan cannot be ordered.
func (s *suite) repeatChecks() {
	var planID string
	task := func(plan, patient string) map[string]any {
		return map[string]any{"resourceType": "Task", "meta": s.meta(), "status": "requested", "intent": "order",
			"code":  concept(snomed, snomedRenewal, "Renewal of prescription"),
			"focus": reference("MedicationRequest/" + plan), "for": reference(patient),
			"note": []any{map[string]any{"text": "conformance run"}}}
	}
	var patient, winner string
	s.check("gpfhir/repeat/race", func(c *C) {
		if !s.canCreate("MedicationRequest") || !s.canCreate("Task") {
			c.Skipf("needs MedicationRequest and Task create")
		}
		pa := s.need(c, "Patient", "A")
		patient = pa.ref()
		plan, err := s.body("MedicationRequest", "R")
		if err != nil {
			c.Skipf("%v", err)
		}
		plan["intent"], plan["status"] = "plan", "active"
		plan["subject"] = reference(patient)
		plan["dispenseRequest"] = map[string]any{"numberOfRepeatsAllowed": 5,
			"validityPeriod": map[string]any{"start": time.Now().UTC().Add(-24 * time.Hour).Format(time.RFC3339),
				"end": time.Now().UTC().Add(180 * 24 * time.Hour).Format(time.RFC3339)}}
		plan["extension"] = []any{map[string]any{"url": repeatInfoExt, "extension": []any{
			map[string]any{"url": "numberOfPrescriptionsIssued", "valueUnsignedInt": 1}}}}
		e := c.send(http.MethodPost, "MedicationRequest", plan)
		planID = s.createdFrom("MedicationRequest", e)
		c.wantStatus(e, http.StatusCreated)
		const n = 5
		results := make([]*exchange, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i] = s.do(request{method: http.MethodPost, target: "Task", body: encode(task(planID, patient)), as: s.gp()})
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for _, e := range results {
			if id := s.createdFrom("Task", e); id != "" && e.status == http.StatusCreated {
				winner = id
			}
			switch e.status {
			case http.StatusCreated:
				won++
			case http.StatusConflict:
				c.show(e)
				c.wantOutcome(e)
			default:
				c.show(e)
				c.Fatalf("a concurrent repeat request got %d, want 201 for one and 409 for the rest", e.status)
			}
		}
		if won != 1 {
			c.Fatalf("%d of %d concurrent requests for one plan were made, want exactly 1", won, n)
		}
	})
	s.check("gpfhir/repeat/outstanding", func(c *C) {
		if winner == "" {
			c.Skipf("needs the request of gpfhir/repeat/race")
		}
		e := c.sendAs(s.gp(), http.MethodPost, "Task", task(planID, patient))
		s.createdFrom("Task", e)
		c.wantError(e, http.StatusConflict)
		if !strings.Contains(e.diagnostics(), winner) {
			c.Fatalf("the refusal does not name the outstanding request Task/%s: %q", winner, e.diagnostics())
		}
	})
	s.check("gpfhir/repeat/reject", func(c *C) {
		if winner == "" {
			c.Skipf("needs the request of gpfhir/repeat/race")
		}
		res, v := s.current(c, "Task", winner)
		res["status"] = "rejected"
		res["statusReason"] = map[string]any{"text": "conformance run: not needed"}
		delete(res, "meta")
		res["meta"] = s.meta()
		e := c.sendAs(s.gp(), http.MethodPut, "Task/"+winner, res, "If-Match", `W/"`+v+`"`)
		c.wantStatus(e, http.StatusOK)
		// With the request finished, the plan can be ordered again.
		e = c.sendAs(s.gp(), http.MethodPost, "Task", task(planID, patient))
		id := s.createdFrom("Task", e)
		c.wantStatus(e, http.StatusCreated)
		res, v = s.current(c, "Task", id)
		res["status"] = "rejected"
		res["statusReason"] = map[string]any{"text": "conformance run: not needed"}
		res["meta"] = s.meta()
		c.wantStatus(c.sendAs(s.gp(), http.MethodPut, "Task/"+id, res, "If-Match", `W/"`+v+`"`), http.StatusOK)
	})
	s.check("gpfhir/repeat/inactive-plan", func(c *C) {
		b := s.need(c, "MedicationRequest", "B") // intent plan, status stopped
		if patient == "" {
			patient = s.need(c, "Patient", "B").ref()
		}
		pb := s.need(c, "Patient", "B")
		e := c.sendAs(s.gp(), http.MethodPost, "Task", task(b.id, pb.ref()))
		s.createdFrom("Task", e)
		c.wantError(e, http.StatusUnprocessableEntity)
		if !strings.Contains(e.diagnostics(), "no longer active") {
			c.Fatalf("the refusal does not say the plan is no longer active: %q", e.diagnostics())
		}
	})
}

// auditChecks look, with the auditor role, for the audit records of the suite's own calls.
func (s *suite) auditChecks() {
	aud := func(c *C) {
		if _, ok := s.tokens[RoleAuditor]; !ok {
			c.Skipf("needs the auditor role (--role auditor CMD)")
		}
	}
	s.check("gpfhir/audit/records", func(c *C) {
		aud(c)
		pa, pc := s.need(c, "Patient", "A"), s.need(c, "Patient", "C")
		type probe struct {
			e                       *exchange
			entity, subtype, action string
			outcome                 string
		}
		var probes []probe
		add := func(e *exchange, entity, subtype, action, outcome string) {
			probes = append(probes, probe{e, entity, subtype, action, outcome})
		}
		add(c.get("Patient/"+pa.id), pa.ref(), "read", "R", "0")
		add(c.get("Patient/"+pa.id+"/_history/"+pa.version), pa.ref(), "vread", "R", "0")
		add(c.get("Patient?"+query("_id", pa.id)), pa.ref(), "search-type", "E", "0")
		_, v := s.current(c, "Patient", pc.id)
		add(c.send(http.MethodPut, "Patient/"+pc.id, s.editBody(pc, "unknown"), "If-Match", `W/"`+v+`"`), pc.ref(), "update", "U", "0")
		missing := "Patient/" + s.runID + "-audit-missing"
		add(c.get(missing), missing, "read", "R", "4")
		add(c.getAs("none", "Patient/"+pa.id), pa.ref(), "read", "R", "4")
		if len(s.patients) > 0 {
			add(c.getAs(s.patients[0], "Patient/"+pa.id), pa.ref(), "read", "R", "4")
		}
		since := s.since()
		events := map[string][]map[string]any{}
		for _, pr := range probes {
			if _, done := events[pr.entity]; done {
				continue
			}
			e := c.getAs(RoleAuditor, "AuditEvent?"+query("entity", pr.entity, "date", "ge"+since, "_count", "1000"))
			for _, en := range entries(c.wantBundle(e, "searchset")) {
				events[pr.entity] = append(events[pr.entity], en.resource)
			}
		}
		for _, pr := range probes {
			var ev map[string]any
			for _, cand := range events[pr.entity] {
				if requestIDOf(cand) == pr.e.rid {
					ev = cand
				}
			}
			c.show(pr.e)
			if ev == nil {
				c.Fatalf("no AuditEvent names %s and carries this request's X-Request-ID", pr.entity)
			}
			if got := str(list(ev, "subtype")[0], "code"); got != pr.subtype {
				c.Fatalf("the AuditEvent's subtype is %q, want %q", got, pr.subtype)
			}
			if got := str(ev, "action"); got != pr.action {
				c.Fatalf("the AuditEvent's action is %q, want %q", got, pr.action)
			}
			if got := str(ev, "outcome"); got != pr.outcome {
				c.Fatalf("the AuditEvent's outcome is %q, want %q (%d answer)", got, pr.outcome, pr.e.status)
			}
		}
		c.Notef("%d calls, each with its record", len(probes))
	})
	s.check("gpfhir/audit/every-call", func(c *C) {
		aud(c)
		s.mu.Lock()
		calls := append([]answered(nil), s.answered...)
		s.mu.Unlock()
		want := map[string]string{}
		for _, a := range calls {
			u, err := url.Parse(a.url)
			if err != nil {
				continue
			}
			path := strings.TrimPrefix(strings.TrimPrefix(u.Path, mustPath(s.base)), "/")
			// Only FHIR interactions are audited: not the public CapabilityStatement or SMART discovery.
			if path == "metadata" || strings.HasPrefix(path, ".well-known") || a.method == http.MethodOptions {
				continue
			}
			want[a.rid] = a.method + " " + clip(path, 60)
		}
		since := s.since()
		next := "AuditEvent?" + query("date", "ge"+since, "_count", "1000")
		seen := 0
		for page := 0; next != "" && page < 20; page++ {
			bundle := c.wantBundle(c.getAs(RoleAuditor, next), "searchset")
			for _, en := range entries(bundle) {
				if rid := requestIDOf(en.resource); want[rid] != "" {
					delete(want, rid)
				}
				seen++
			}
			next = link(bundle, "next")
		}
		if len(want) > 0 {
			var some []string
			for rid, what := range want {
				some = append(some, rid+" "+what)
				if len(some) == 3 {
					break
				}
			}
			c.Fatalf("%d of the suite's calls have no AuditEvent (for example %s)", len(want), strings.Join(some, "; "))
		}
		c.Notef("%d calls, %d records read", len(calls), seen)
	})
	s.check("gpfhir/audit/append-only", func(c *C) {
		aud(c)
		e := c.getAs(RoleAuditor, "AuditEvent?_count=1")
		bundle := c.wantBundle(e, "searchset")
		ids := matches(bundle, "AuditEvent")
		if len(ids) == 0 {
			c.Skipf("no AuditEvent to try to change")
		}
		c.wantError(c.sendAs(RoleAuditor, http.MethodDelete, "AuditEvent/"+ids[0], nil), http.StatusMethodNotAllowed)
		ev := entryResource(bundle, "AuditEvent", ids[0])
		c.wantError(c.sendAs(RoleAuditor, http.MethodPut, "AuditEvent/"+ids[0], ev), http.StatusMethodNotAllowed)
	})
	s.check("gpfhir/audit/verify", func(c *C) {
		aud(c)
		e := c.getAs(RoleAuditor, "AuditEvent/$verify")
		c.wantStatus(e, http.StatusOK)
		doc := c.wantBody(e, "Parameters")
		for _, prm := range list(doc, "parameter") {
			if str(prm, "name") == "intact" {
				if ok, _ := get(prm, "valueBoolean").(bool); !ok {
					c.Fatalf("$verify says the audit chain is not intact")
				}
				return
			}
		}
		c.Fatalf("$verify's Parameters has no intact parameter")
	})
}

func requestIDOf(ev map[string]any) string {
	for _, en := range list(ev, "entity") {
		if str(en, "type", "code") == auditXRequestID && str(en, "type", "system") == balpEntitySystem {
			return str(en, "what", "identifier", "value")
		}
	}
	return ""
}

func mustPath(base string) string {
	u, err := url.Parse(base)
	if err != nil {
		return ""
	}
	return u.Path
}
