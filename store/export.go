package store

import (
	"context"
	"io"
	"time"
)

// ExportJob is a bulk export job as a backend keeps it. State is the API's own description of the job,
// opaque to the store; the other fields are what claiming and expiry need.
type ExportJob struct {
	ID    string
	State []byte
	// Finished is set by the save that ends the job (complete or failed). A finished job is never
	// claimed again.
	Finished time.Time
	// Claim is the token of the runner that holds the job (or finished it); empty before the first claim.
	Claim string
	// Lease is when Claim's hold ends unless renewed. A job that is not finished and whose lease has
	// passed (or that was never claimed) may be claimed.
	Lease time.Time
	// Claims counts the claims so far, so that a job that keeps killing its runners can be failed
	// instead of claimed forever.
	Claims int
}

// ExportFile is a file of a job being written. Nothing is readable until Close returns nil; Abort
// discards what was written. Exactly one of the two must be called.
type ExportFile interface {
	io.Writer
	Close() error
	Abort() error
}

// ExportJobs is implemented by a Store that keeps bulk export jobs and their files itself, so that
// every process on the same database shares them: a job kicked off on one process is run by whichever
// claims it, and polled, downloaded and cancelled on any. A Store without it (SQLite: one process per
// data directory) leaves jobs to the API's export directory.
//
// Times are the caller's: the store compares leases with the now it is given and never reads a clock,
// so processes should keep their clocks in step to well within a lease.
type ExportJobs interface {
	// CreateExportJob stores a new job, unclaimed. ErrVersionConflict if the id is taken.
	CreateExportJob(ctx context.Context, id string, state []byte) error

	// ExportJob returns a job. ErrNotFound if there is none: never created, removed or expired.
	ExportJob(ctx context.Context, id string) (ExportJob, error)

	// ListExportJobs returns every job, for expiry.
	ListExportJobs(ctx context.Context) ([]ExportJob, error)

	// ClaimExportJob claims one job that is not finished and is unclaimed or whose lease ended before
	// now, for the token claim, with a lease until until. Of several callers claiming the same job,
	// in this process or others, exactly one gets it. It returns the job as claimed, or ErrNotFound
	// when there is nothing to claim.
	ClaimExportJob(ctx context.Context, claim string, now, until time.Time) (ExportJob, error)

	// RenewExportJob extends claim's lease to until. A zero until releases the job: it can be
	// claimed at once (a runner that stops without finishing). ErrNotFound if the job was removed;
	// ErrVersionConflict if claim no longer holds it (its lease passed and another runner claimed it):
	// the caller must stop running it.
	RenewExportJob(ctx context.Context, id, claim string, until time.Time) error

	// SaveExportJob replaces the state of a job that claim holds and renews its lease to until. A
	// non-zero finished ends the job. Errors as RenewExportJob.
	SaveExportJob(ctx context.Context, id, claim string, state []byte, finished, until time.Time) error

	// RemoveExportJob removes a job and every file written for it, by any claim. Removing a job that
	// does not exist is not an error. A runner still holding it learns at its next save or renewal
	// (ErrNotFound).
	RemoveExportJob(ctx context.Context, id string) error

	// CreateExportFile starts writing a file of a job for claim, replacing any earlier file of the
	// name by the same claim. Files are written in pieces, so memory does not depend on the size.
	// ErrNotFound if the job does not exist.
	CreateExportFile(ctx context.Context, id, claim, name string) (ExportFile, error)

	// OpenExportFile opens for reading a file that the job's current claim wrote and closed: files of
	// an earlier claim (a runner that died or was deposed) are never served. It streams the file.
	// ErrNotFound if the job or the file does not exist.
	OpenExportFile(ctx context.Context, id, name string) (io.ReadCloser, error)
}
