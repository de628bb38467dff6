package conformance

import (
	"net/http"
	"slices"
)

// instanceOnly are operation definitions that a CapabilityStatement lists under a resource type but that
// are called on an instance only, so a call on the type proves nothing.
var instanceOnly = map[string]bool{
	"http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export": true,
}

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
				if def := s.cs.typ(typ).opDefinitions[op]; instanceOnly[def] {
					c.Skipf("%s is an instance-level operation (%s/[id]/$%s); the suite has no %s of its own to call it on", def, typ, op, typ)
				}
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
