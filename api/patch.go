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
		switch op.Kind() {
		case "add", "remove", "replace", "move", "copy", "test":
		default:
			return nil, fail(kindMalformed, "JSON Patch operation %d has unknown op %q", i, op.Kind())
		}
	}
	return ops, nil
}

// applyPatch applies ops to a stored body. A failed "test" or a path that does not exist is the client's
// mistake about the resource, so it is 422 rather than 400.
func applyPatch(ops jsonpatch.Patch, body []byte) ([]byte, *apiError) {
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
