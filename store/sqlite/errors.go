package sqlite

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/gpfhir/gpfhir/store"
)

// translate maps a driver error onto the store's sentinel errors, so that no caller ever sees a SQLite
// type. It is the only place that knows SQLite's result codes.
func translate(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrVersionConflict) ||
		errors.Is(err, store.ErrInvalidQuery) || errors.Is(err, store.ErrUnavailable) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return err
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		// AppendAudit checks the head inside its transaction, so its only possible duplicate is an
		// AuditEvent id already in the chain, which the contract calls a malformed batch. SQLite names
		// the constraint only in the message ("UNIQUE constraint failed: audit.id").
		if strings.Contains(se.Error(), "audit.id") {
			return fmt.Errorf("%w: an AuditEvent id of the batch is already stored: %w", store.ErrInvalidQuery, err)
		}
		// Only reachable if another process slipped a version in between our check and our insert,
		// which BEGIN IMMEDIATE rules out; still, a duplicate version is by definition a lost CAS race.
		return fmt.Errorf("%w: %w", store.ErrVersionConflict, err)
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		// busy_timeout has already waited; another process holds the write lock for too long.
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	case sqlite3.SQLITE_INTERRUPT:
		// The driver interrupts a statement when its context ends.
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	case sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY:
		return fmt.Errorf("%w: %w", store.ErrUnavailable, err)
	case sqlite3.SQLITE_ERROR:
		// A statement SQLite could not prepare is our bug, not the caller's.
		return fmt.Errorf("%w: %w", store.ErrInvalidQuery, err)
	}
	return err
}

// isBusy reports whether err means another connection holds the write lock, which is worth one more try.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	c := se.Code() & 0xff
	return c == sqlite3.SQLITE_BUSY || c == sqlite3.SQLITE_LOCKED
}
