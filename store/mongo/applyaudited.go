package mongo

import (
	"context"
	"errors"
	"fmt"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
)

// auditAttempts bounds how often ApplyAudited chains its records again after another appender took the
// head first. Each lost attempt means that some other batch was appended, so running out takes that many
// appends by others during one call.
const auditAttempts = 100

// headMoved marks a conflict on the audit head inside an ApplyAudited transaction, as opposed to a
// write's compare-and-swap failing: the first is retried on the new head, the second is the caller's.
type headMoved struct{ error }

func (h headMoved) Unwrap() error { return h.error }

// ApplyAudited makes the writes and appends their audit records, chained on the head read while doing
// so, all or none. See doc.go, "Audited writes", for the two strategies and the one-sided guarantee
// without transactions.
func (s *Store) ApplyAudited(ctx context.Context, writes []store.Write, records []audit.Record) error {
	if err := s.begin(); err != nil {
		return err
	}
	defer s.wg.Done()
	if len(records) == 0 {
		return fmt.Errorf("%w: ApplyAudited without audit records", store.ErrInvalidQuery)
	}
	types, err := checkWrites(writes)
	if err != nil {
		return err
	}
	// Chained on an empty chain for now, so that the batch is checked before anything is written (in
	// journal mode a malformed batch would otherwise cost the writes and their rollback); the append
	// chains it again on the real head, which keeps every link CheckAuditBatch checks.
	audit.Chain(nil, 0, records)
	if err := audit.CheckBatch(records); err != nil {
		return err
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	for _, t := range append(types, store.AuditEventType) {
		if err := s.ensureType(ctx, t); err != nil {
			return err
		}
	}
	if s.txn {
		return s.applyAuditedTxn(ctx, writes, records)
	}
	appendRecords := func(ctx context.Context) error {
		for range auditAttempts {
			err := s.appendAuditJournal(ctx, records, true)
			if !errors.Is(err, store.ErrVersionConflict) {
				return err
			}
		}
		return headContended()
	}
	if len(writes) == 0 {
		return appendRecords(ctx)
	}
	return s.applyJournal(ctx, writes, appendRecords)
}

// applyAuditedTxn makes the writes and the append in one transaction, and starts it again when another
// appender took the head first (the records are chained anew on the head the next one reads).
func (s *Store) applyAuditedTxn(ctx context.Context, writes []store.Write, records []audit.Record) error {
	for range auditAttempts {
		err := s.inTxn(ctx, func(ctx context.Context) error {
			if err := s.applyTxn(ctx, writes); err != nil {
				return err
			}
			if err := s.appendAuditTxn(ctx, records, true); err != nil {
				if errors.Is(err, store.ErrVersionConflict) {
					return headMoved{err}
				}
				return err
			}
			return nil
		})
		if !errors.As(err, new(headMoved)) {
			return err
		}
	}
	return headContended()
}

// headContended is the error of an ApplyAudited whose every attempt lost the head to another appender.
// It is not ErrVersionConflict, which would tell the caller that one of its writes is stale.
func headContended() error {
	return fmt.Errorf("%w: the audit chain head kept moving (%d attempts); nothing was written", store.ErrUnavailable, auditAttempts)
}
