package conformance

import (
	"net/http"
	"strings"
)

// bundleChecks test batch and transaction at [base].
func (s *suite) bundleChecks() {
	typ := ""
	for _, t := range s.typesInOrder() {
		if s.canCreate(t) {
			typ = t
			break
		}
	}
	invalid := func(v string) map[string]any {
		b, _ := s.body(typ, v)
		// An element R4 does not define: every server must refuse it, whatever its rules.
		b["conformanceUnknownElement"] = true
		return b
	}
	s.check("bundle/batch", func(c *C) {
		if !s.cs.sysInteractions["batch"] {
			c.Skipf("the server does not declare batch")
		}
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		good, err := s.body(typ, "BA")
		if err != nil {
			c.Skipf("%v", err)
		}
		bundle := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"resource": good, "request": map[string]any{"method": "POST", "url": typ}},
			map[string]any{"resource": invalid("BB"), "request": map[string]any{"method": "POST", "url": typ}},
		}}
		e := c.send(http.MethodPost, "", bundle)
		resp := c.wantBundle(e, "batch-response")
		ens := list(resp, "entry")
		for _, en := range ens {
			if loc := str(en, "response", "location"); loc != "" {
				id, _ := idFromLocation(loc, typ)
				s.created(typ, id)
			}
		}
		if len(ens) != 2 {
			c.Fatalf("the batch-response has %d entries for 2 requests", len(ens))
		}
		if st := str(ens[0], "response", "status"); !strings.HasPrefix(st, "201") {
			c.Fatalf("the valid entry's response.status is %q, want 201", st)
		}
		if str(ens[0], "response", "location") == "" {
			c.Fatalf("the created entry's response has no location")
		}
		st := str(ens[1], "response", "status")
		if !strings.HasPrefix(st, "4") {
			c.Fatalf("the invalid entry's response.status is %q, want a 4xx", st)
		}
		if str(ens[1], "response", "outcome", "resourceType") != "OperationOutcome" {
			c.Fatalf("the failed entry's response has no outcome OperationOutcome")
		}
	})
	s.check("bundle/batch-read", func(c *C) {
		if !s.cs.sysInteractions["batch"] {
			c.Skipf("the server does not declare batch")
		}
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		a := s.need(c, typ, "A")
		bundle := map[string]any{"resourceType": "Bundle", "type": "batch", "entry": []any{
			map[string]any{"request": map[string]any{"method": "GET", "url": typ + "/" + a.id}},
		}}
		e := c.send(http.MethodPost, "", bundle)
		if e.status >= 400 && e.status < 500 {
			c.wantOutcome(e)
			c.Skipf("the server refuses GET entries in a batch (%d: %s)", e.status, e.diagnostics())
		}
		resp := c.wantBundle(e, "batch-response")
		ens := list(resp, "entry")
		if len(ens) != 1 {
			c.Fatalf("the batch-response has %d entries for 1 request", len(ens))
		}
		if st := str(ens[0], "response", "status"); strings.HasPrefix(st, "4") {
			c.Skipf("the server refuses GET entries in a batch (entry status %s)", st)
		}
		if st := str(ens[0], "response", "status"); !strings.HasPrefix(st, "200") {
			c.Fatalf("the read entry's response.status is %q, want 200", st)
		}
		if str(ens[0], "resource", "id") != a.id {
			c.Fatalf("the read entry does not hold %s", a.ref())
		}
	})
	s.check("bundle/transaction", func(c *C) {
		if !s.cs.sysInteractions["transaction"] {
			c.Skipf("the server does not declare transaction")
		}
		if !s.canCreate("Organization") || !s.canCreate("Location") {
			c.Skipf("needs Organization and Location, which point at each other, to be creatable")
		}
		org, _ := s.body("Organization", "TO")
		loc, err := s.body("Location", "TL")
		if err != nil {
			c.Skipf("%v", err)
		}
		orgURN := "urn:uuid:" + s.runID[2:] + "-0000-4000-8000-000000000001"
		loc["managingOrganization"] = reference(orgURN)
		bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"fullUrl": "urn:uuid:" + s.runID[2:] + "-0000-4000-8000-000000000002", "resource": loc,
				"request": map[string]any{"method": "POST", "url": "Location"}},
			map[string]any{"fullUrl": orgURN, "resource": org, "request": map[string]any{"method": "POST", "url": "Organization"}},
		}}
		e := c.send(http.MethodPost, "", bundle)
		if e.status == http.StatusOK {
			for _, en := range list(e.json(), "entry") {
				for _, t := range []string{"Location", "Organization"} {
					if id, _ := idFromLocation(str(en, "response", "location"), t); id != "" {
						s.created(t, id)
					}
				}
			}
		}
		resp := c.wantBundle(e, "transaction-response")
		ens := list(resp, "entry")
		if len(ens) != 2 {
			c.Fatalf("the transaction-response has %d entries for 2 requests", len(ens))
		}
		var locID, orgID string
		for i, en := range ens {
			if st := str(en, "response", "status"); !strings.HasPrefix(st, "201") {
				c.Fatalf("entry[%d] response.status is %q, want 201", i, st)
			}
		}
		// R4: the response entries are in the order of the request entries.
		locID, _ = idFromLocation(str(ens[0], "response", "location"), "Location")
		orgID, _ = idFromLocation(str(ens[1], "response", "location"), "Organization")
		if locID == "" || orgID == "" {
			c.Fatalf("the response locations do not name a Location and an Organization in request order")
		}
		res, _ := s.current(c, "Location", locID)
		if got := str(res, "managingOrganization", "reference"); got != "Organization/"+orgID && got != s.base+"/Organization/"+orgID {
			c.Fatalf("the reference to %s was stored as %q, want Organization/%s (R4 transaction: urn:uuid references are rewritten)", orgURN, got, orgID)
		}
	})
	s.check("bundle/transaction-atomic", func(c *C) {
		if !s.cs.sysInteractions["transaction"] {
			c.Skipf("the server does not declare transaction")
		}
		if typ == "" {
			c.Skipf("the suite can create no type on this server")
		}
		good, err := s.body(typ, "TG")
		if err != nil {
			c.Skipf("%v", err)
		}
		bundle := map[string]any{"resourceType": "Bundle", "type": "transaction", "entry": []any{
			map[string]any{"resource": good, "request": map[string]any{"method": "POST", "url": typ}},
			map[string]any{"resource": invalid("TB"), "request": map[string]any{"method": "POST", "url": typ}},
		}}
		e := c.send(http.MethodPost, "", bundle)
		if e.status == http.StatusOK {
			for _, en := range list(e.json(), "entry") {
				id, _ := idFromLocation(str(en, "response", "location"), typ)
				s.created(typ, id)
			}
		}
		// R4 http.html: a transaction with a failing entry fails as a whole, 400 or 422 (or 409/412/404
		// after the entry's own error) with an OperationOutcome.
		if e.status < 400 || e.status >= 500 {
			c.Fatalf("a transaction with an invalid entry got %d, want a 4xx", e.status)
		}
		c.wantOutcome(e)
		if _, ok := s.cs.typ(typ).params["identifier"]; !ok {
			return
		}
		found := c.getAs(s.principalFor(typ), typ+"?"+query("identifier", IdentifierSystem+"|"+s.identifierValue(typ, "TG")))
		if got := matches(c.wantBundle(found, "searchset"), typ); len(got) != 0 {
			for _, id := range got {
				s.created(typ, id)
			}
			c.Fatalf("the failed transaction's valid entry was stored anyway (%s/%s)", typ, got[0])
		}
	})
	s.check("bundle/wrong-type", func(c *C) {
		if !s.cs.sysInteractions["batch"] && !s.cs.sysInteractions["transaction"] {
			c.Skipf("the server declares neither batch nor transaction")
		}
		bundle := map[string]any{"resourceType": "Bundle", "type": "collection", "entry": []any{}}
		e := c.send(http.MethodPost, "", bundle)
		c.wantError(e, http.StatusBadRequest, http.StatusUnprocessableEntity)
	})
}
