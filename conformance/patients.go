package conformance

import (
	"net/http"
	"slices"
)

// patientChecks use the patient roles: each must see a record of their own, and the first must not reach
// the second's record or the data the suite makes for it, by any path.
func (s *suite) patientChecks() {
	own := map[string][]string{}
	for _, p := range s.patients {
		s.check("patients/"+p+"/own-record", func(c *C) {
			if !s.cs.supports("Patient", "search-type") {
				c.Skipf("the server does not declare Patient search")
			}
			bundle := c.wantBundle(c.getAs(p, "Patient?_count=50"), "searchset")
			ids := matches(bundle, "Patient")
			if len(ids) == 0 {
				c.Fatalf("the %s token finds no Patient record of its own", p)
			}
			own[p] = ids
			e := c.getAs(p, "Patient/"+ids[0])
			c.wantStatus(e, http.StatusOK)
			c.wantResource(e, "Patient")
		})
	}
	if len(s.patients) < 2 {
		s.check("patients/isolation", func(c *C) {
			c.Skipf("needs two patient roles (--role patient CMD, twice) to check that one cannot reach the other's data")
		})
		return
	}
	p1, p2 := s.patients[0], s.patients[1]
	var other string
	otherOf := func(c *C) string {
		if other != "" {
			return other
		}
		if len(own[p1]) == 0 || len(own[p2]) == 0 {
			c.Skipf("needs both patients' own records (see patients/*/own-record)")
		}
		for _, id := range own[p2] {
			if !slices.Contains(own[p1], id) {
				other = id
				return id
			}
		}
		c.Fatalf("the two patient tokens see the same %d Patient records; each patient must see only their own", len(own[p1]))
		return ""
	}
	refused := func(c *C, e *exchange) {
		// Another patient's record is refused (403) or, so as not to confirm that it exists, not found
		// (404), with an OperationOutcome either way.
		c.wantError(e, http.StatusForbidden, http.StatusNotFound)
	}
	s.check("patients/other-read", func(c *C) {
		refused(c, c.getAs(p1, "Patient/"+otherOf(c)))
	})
	s.check("patients/other-vread", func(c *C) {
		if !s.cs.supports("Patient", "vread") {
			c.Skipf("the server does not declare Patient vread")
		}
		refused(c, c.getAs(p1, "Patient/"+otherOf(c)+"/_history/1"))
	})
	s.check("patients/other-history", func(c *C) {
		if !s.cs.supports("Patient", "history-instance") {
			c.Skipf("the server does not declare Patient history-instance")
		}
		refused(c, c.getAs(p1, "Patient/"+otherOf(c)+"/_history"))
	})
	s.check("patients/other-search", func(c *C) {
		e := c.getAs(p1, "Patient?"+query("_id", otherOf(c)))
		if e.status == http.StatusForbidden {
			c.wantOutcome(e)
			return
		}
		if got := matches(c.wantBundle(e, "searchset"), "Patient"); len(got) != 0 {
			c.Fatalf("a search by _id found the other patient's record")
		}
	})

	// Data of the second patient's, made by the main token, tagged like the rest.
	ctype := ""
	for _, t := range []string{"Immunization", "MedicationRequest"} {
		if s.canCreate(t) && s.cs.supports(t, "search-type") {
			ctype = t
			break
		}
	}
	var item string
	s.check("patients/control", func(c *C) {
		id := otherOf(c)
		if ctype == "" {
			c.Skipf("the suite can create neither Immunization nor MedicationRequest here")
		}
		b, err := s.body(ctype, "Q")
		if err != nil {
			c.Skipf("%v", err)
		}
		if ctype == "Immunization" {
			b["patient"] = reference("Patient/" + id)
		} else {
			b["subject"] = reference("Patient/" + id)
		}
		e := c.send(http.MethodPost, ctype, b)
		item = s.createdFrom(ctype, e)
		if item == "" {
			c.Skipf("the main token could not create a %s for the second patient (%d: %s)", ctype, e.status, e.diagnostics())
		}
		// The second patient sees it: so the first patient not seeing it below is isolation, not a
		// resource no one may read.
		g := c.getAs(p2, ctype+"/"+item)
		if g.status == http.StatusForbidden {
			item = ""
			c.Skipf("the second patient may not read their own %s (%s), so it cannot show isolation", ctype, g.diagnostics())
		}
		c.wantStatus(g, http.StatusOK)
	})
	withItem := func(c *C) string {
		if item == "" {
			c.Skipf("needs the second patient's %s (see patients/control)", ctype)
		}
		return item
	}
	s.check("patients/other-compartment-read", func(c *C) {
		refused(c, c.getAs(p1, ctype+"/"+withItem(c)))
	})
	s.check("patients/other-compartment-search", func(c *C) {
		it := withItem(c)
		param := "patient"
		if ctype == "MedicationRequest" {
			param = "subject"
		}
		e := c.getAs(p1, ctype+"?"+query(param, "Patient/"+other, "_count", "50"))
		if e.status == http.StatusForbidden {
			c.wantOutcome(e)
		} else if got := matches(c.wantBundle(e, "searchset"), ctype); len(got) > 0 {
			c.Fatalf("searching the other patient's %s found %d of them", ctype, len(got))
		}
		e = c.getAs(p1, s.tagged(ctype, "_count", "100"))
		if e.status == http.StatusForbidden {
			c.wantOutcome(e)
			return
		}
		if got := matches(c.wantBundle(e, "searchset"), ctype); slices.Contains(got, it) {
			c.Fatalf("a search by the run's tag returned the other patient's %s/%s", ctype, it)
		}
	})
	s.check("patients/other-include", func(c *C) {
		withItem(c)
		inc := ctype + ":patient"
		if ctype == "MedicationRequest" {
			inc = ctype + ":subject"
		}
		e := c.getAs(p1, s.tagged(ctype, "_include", inc, "_count", "100"))
		if e.status == http.StatusForbidden {
			c.wantOutcome(e)
			return
		}
		bundle := c.wantBundle(e, "searchset")
		for _, en := range entries(bundle) {
			if (en.typ == "Patient" && en.id == other) || (en.typ == ctype && en.id == item) {
				c.Fatalf("_include returned the other patient's %s/%s", en.typ, en.id)
			}
		}
		if own := own[p1]; len(own) > 0 {
			rev := ctype + ":patient"
			if ctype == "MedicationRequest" {
				rev = ctype + ":subject"
			}
			e = c.getAs(p1, "Patient?"+query("_id", own[0], "_revinclude", rev, "_count", "100"))
			if e.status == http.StatusOK {
				for _, en := range entries(c.wantBundle(e, "searchset")) {
					if en.typ == ctype && en.id == item {
						c.Fatalf("_revinclude returned the other patient's %s/%s", ctype, item)
					}
				}
			}
		}
	})
	s.check("patients/other-write", func(c *C) {
		id := otherOf(c)
		if ctype == "" {
			c.Skipf("the suite can create neither Immunization nor MedicationRequest here")
		}
		b, _ := s.body(ctype, "W")
		if ctype == "Immunization" {
			b["patient"] = reference("Patient/" + id)
		} else {
			b["subject"] = reference("Patient/" + id)
		}
		e := c.sendAs(p1, http.MethodPost, ctype, b)
		s.createdFrom(ctype, e)
		refused(c, e)
	})
}
