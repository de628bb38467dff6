package api

import (
	"context"
	"fmt"

	"github.com/gpfhir/gpfhir/fhir"
)

// Import creates one resource with a chosen id through the same checks as a client write (validation,
// NHS numbers, references). It is for loaders such as the --dev seed; it fails if the resource exists.
func (s *Server) Import(ctx context.Context, typ, id string, body []byte) error {
	ti, ok := fhir.LookupType(typ)
	if !ok {
		return fmt.Errorf("resource type %q is not served", typ)
	}
	if !validID(id) {
		return fmt.Errorf("%q is not a valid id", id)
	}
	res, err := fhir.Parse(body)
	if err != nil {
		return err
	}
	if res.Type() != ti.Name {
		return fmt.Errorf("body is a %s, not a %s", res.Type(), ti.Name)
	}
	// A loader is trusted in-process code, not a caller: the write guard lets it through, and it
	// writes no audit record.
	req := &request{base: ctx, internal: true, interaction: "create", serverLog: s.log}
	if err := s.checkReferences(req, res, typ+"/"+id); err != nil {
		return err
	}
	v, err := s.prepareVersion(req, res, ti.Name, id, 0)
	if err != nil {
		return err
	}
	return s.commit(req, v.change(req.interaction, 0, nil))
}
