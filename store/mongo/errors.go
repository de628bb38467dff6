package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/gpfhir/gpfhir/store"
)

// This file is the only place where driver errors are translated into the store's sentinel errors.

// Server error codes that mean "someone else changed this document first".
const (
	codeWriteConflict       = 112
	codeNoSuchTransaction   = 251
	codeLockTimeout         = 24
	codeInterrupted         = 11601
	codeExceededTimeLimit   = 262
	codeNotWritablePrimary  = 10107
	codePrimarySteppedDown  = 189
	codeShutdownInProgress  = 91
	codeHostUnreachable     = 6
	codeNetworkTimeout      = 89
	codeSocketException     = 9001
	codeNotPrimaryNoSecOK   = 13435
	codeInterruptedShutdown = 11600
)

// translate maps a driver error to the store's sentinels. op names the operation for the message.
// It never returns a driver error type in the chain for sentinel cases; other errors are flattened into
// text so that callers cannot depend on driver types.
func translate(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound), errors.Is(err, store.ErrVersionConflict),
		errors.Is(err, store.ErrInvalidQuery), errors.Is(err, store.ErrUnavailable):
		return err
	case errors.Is(err, mongo.ErrNoDocuments), errors.Is(err, mongo.ErrFileNotFound):
		return store.ErrNotFound
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("store/mongo: %s: %w", op, context.Canceled)
	case mongo.IsDuplicateKeyError(err), hasCode(err, codeWriteConflict), hasCode(err, codeNoSuchTransaction):
		return fmt.Errorf("%w (%s)", store.ErrVersionConflict, op)
	case isUnavailable(err):
		return fmt.Errorf("%w: %s: %v", store.ErrUnavailable, op, err)
	default:
		return fmt.Errorf("store/mongo: %s: %v", op, err)
	}
}

// isDuplicate reports whether err is a duplicate key error (code 11000).
func isDuplicate(err error) bool { return mongo.IsDuplicateKeyError(err) }

func isUnavailable(err error) bool {
	var sse topology.ServerSelectionError
	switch {
	case errors.Is(err, context.DeadlineExceeded), mongo.IsTimeout(err), mongo.IsNetworkError(err),
		errors.As(err, &sse), errors.Is(err, topology.ErrTopologyClosed), errors.Is(err, mongo.ErrClientDisconnected):
		return true
	}
	for _, c := range []int{codeLockTimeout, codeInterrupted, codeExceededTimeLimit, codeNotWritablePrimary,
		codePrimarySteppedDown, codeShutdownInProgress, codeHostUnreachable, codeNetworkTimeout,
		codeSocketException, codeNotPrimaryNoSecOK, codeInterruptedShutdown} {
		if hasCode(err, c) {
			return true
		}
	}
	return false
}

func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}
