package api

import (
	"errors"

	jsonpatch "github.com/evanphx/json-patch/v5"
)

// decodePatch parses a JSON Patch document (RFC 6902). evanphx/json-patch is the patch library that
// Kubernetes uses; it is well kept and implements every operation, including test.
func decodePatch(raw []byte) (jsonpatch.Patch, *apiError) {
	ops, err := jsonpatch.DecodePatch(raw)
	if err != nil {
		return nil, fail(kindMalformed, "the body is not a JSON Patch document (an array of operations): %v", err)
	}
	for i, op := range ops {
		// RFC 6902 section 4: the members each op must carry. The library assumes them (a "test" with no
		// "value" panicked in it), so they are checked here, where the client can be told.
		var need []string
		switch op.Kind() {
		case "remove":
			need = []string{"path"}
		case "add", "replace", "test":
			need = []string{"path", "value"}
		case "move", "copy":
			need = []string{"path", "from"}
		default:
			return nil, fail(kindMalformed, "JSON Patch operation %d has unknown op %q", i, op.Kind())
		}
		for _, m := range need {
			if op[m] == nil {
				return nil, fail(kindMalformed, "JSON Patch operation %d (%s) has no %q member, which RFC 6902 requires", i, op.Kind(), m)
			}
		}
	}
	return ops, nil
}

// applyPatch applies ops to a stored body. A failed "test" or a path that does not exist is the client's
// mistake about the resource, so it is 422 rather than 400.
func applyPatch(ops jsonpatch.Patch, body []byte) (out []byte, aerr *apiError) {
	defer func() {
		// A patch the library cannot handle is the client's to fix, not a server fault.
		if v := recover(); v != nil {
			out, aerr = nil, fail(kindProcessing, "the JSON Patch could not be applied: %v", v)
		}
	}()
	opts := jsonpatch.NewApplyOptions()
	opts.SupportNegativeIndices = false // not in RFC 6902
	out, err := ops.ApplyWithOptions(body, opts)
	if err != nil {
		if errors.Is(err, jsonpatch.ErrTestFailed) {
			return nil, fail(kindProcessing, "a JSON Patch test operation failed: %v", err)
		}
		return nil, fail(kindProcessing, "the JSON Patch could not be applied: %v", err)
	}
	return out, nil
}
