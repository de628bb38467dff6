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
	// A loader is trusted in-process code, not a caller: the write guard lets it through.
	ctx = withInternal(ctx)
	if err := s.checkReferences(ctx, res, typ+"/"+id); err != nil {
		return err
	}
	_, err = s.putVersion(ctx, res, ti.Name, id, 0)
	return err
}
