package conformance

import (
	"net/http"
	"slices"
)

// operationChecks call each declared type-level operation without parameters. The suite cannot know
// what an operation does, but a declared one must be routed: not 404 or 405, and the answer, whatever
// it is (a result, a refusal for want of parameters or permission), is FHIR JSON.
func (s *suite) operationChecks() {
	for _, typ := range s.typesInOrder() {
		for _, op := range s.cs.typ(typ).operations {
			if op == "" {
				continue
			}
			s.check("operations/"+typ+"/$"+op, func(c *C) {
				e := c.getAs(s.principalFor(typ), typ+"/$"+op)
				if slices.Contains([]int{http.StatusNotFound, http.StatusMethodNotAllowed, http.StatusNotImplemented}, e.status) {
					c.Fatalf("the declared operation $%s on %s answers %d: %s", op, typ, e.status, e.diagnostics())
				}
				c.wantFHIRJSON(e)
				if e.status >= 400 {
					c.wantOutcome(e)
				}
			})
		}
	}
}
