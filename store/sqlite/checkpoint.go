package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL back into the database file, and
// sizeEvery how often it looks at the WAL's size: a busy writer adds tens of megabytes a second to the
// WAL (each commit appends every page it touched), so a limit checked only every quarter second
// would be overshot by that much.
const (
	checkpointEvery = 250 * time.Millisecond
	sizeEvery       = 50 * time.Millisecond
)

// writerBusyTimeout is how long (ms) the store's connections wait for another process's lock.
const writerBusyTimeout = 10000

// DefaultWALLimit is the WAL size above which the checkpointer truncates the WAL.
const DefaultWALLimit = 64 << 20

// truncateTries and truncateWait bound one attempt to truncate the WAL. A TRUNCATE checkpoint holds the
// write lock while it waits for readers of older snapshots, so each wait is short: writers queue behind
// it, and a request waiting on an audit commit waits with them.
const (
	truncateTries = 8
	truncateWait  = 100 // milliseconds of busy timeout while truncating
)

// Option tunes Open.
type Option func(*options)

type options struct {
	walLimit int64
}

// WithWALLimit sets the WAL size (bytes) above which the checkpointer truncates the WAL (default
// DefaultWALLimit). The WAL can exceed it by what is written between two checkpoints, and for as long
// as one transaction is still reading the snapshot the WAL holds.
func WithWALLimit(n int64) Option {
	return func(o *options) {
		if n > 0 {
			o.walLimit = n
		}
	}
}

// checkpointer runs checkpoints on a connection of its own, so that no commit ever does one: SQLite's
// automatic checkpoint runs inside the commit that crosses the threshold, and that commit (an Apply, or
// an audit append every waiting request depends on) would take as long as copying a thousand pages.
//
// A PASSIVE checkpoint never waits for readers or writers, but it never shrinks the file either, and
// the WAL only starts again from its beginning when no reader is using it: under steady reads that
// never happens, and the WAL grew without bound (207 MB beside a 6 MB database). So once the WAL passes
// its limit the checkpointer asks for a TRUNCATE checkpoint, which waits (briefly, and a few times) for
// readers to move to the latest snapshot, copies everything and cuts the file to zero.
// journal_size_limit makes the writer cut the file too when it restarts the WAL on its own.
// Without the checkpointer the WAL would grow for ever, so Open fails if it cannot start.
type checkpointer struct {
	db      *sql.DB
	writer  *sql.DB // the store's single writer connection, held during a TRUNCATE (see truncate)
	walPath string
	limit   int64
	cancel  context.CancelFunc
	done    chan struct{}
}

func (s *Store) startCheckpointer(ctx context.Context, path string, o options) error {
	dsn := fmt.Sprintf("file:%s?_pragma=busy_timeout(%d)&_pragma=synchronous(FULL)&_pragma=journal_size_limit(%d)",
		path, truncateWait, journalSizeLimit(o.walLimit))
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return translate(err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return translate(err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	c := &checkpointer{db: db, writer: s.w, walPath: path + "-wal", limit: o.walLimit, cancel: cancel, done: make(chan struct{})}
	s.checkpointer = c
	go c.run(cctx)
	return nil
}

// journalSizeLimit is what a WAL is cut back to when it restarts: a quarter of the limit, so that a
// file which reached the limit once does not stay that size.
func journalSizeLimit(walLimit int64) int64 {
	return walLimit / 4
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(sizeEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.walBytes() > c.limit {
			c.truncate(ctx)
			last = time.Now()
			continue
		}
		if time.Since(last) < checkpointEvery {
			continue
		}
		last = time.Now()
		// A failure (the file busy with another process's checkpoint) is retried on the next tick.
		_, _ = c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
}

// truncate tries a few times to checkpoint the whole WAL and cut it to zero. What it cannot do now,
// because a reader stays on an old snapshot, it tries again on the next tick.
//
// Each try holds the store's writer connection, so that this process's writers queue in the pool
// rather than in SQLite's busy handler: the handler is not fair, and back-to-back commits kept the
// checkpoint from the write lock for its whole busy timeout while the WAL grew by megabytes. Between
// tries the writers run.
func (c *checkpointer) truncate(ctx context.Context) {
	for range truncateTries {
		var busy, logFrames, copied int
		err := c.tryTruncate(ctx, &busy, &logFrames, &copied)
		if err == nil && busy == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// The TRUNCATE runs on the writer connection itself, not the checkpointer's. A checkpoint that restarts
// the WAL gives it a new header, and a connection that finds the header changed by another connection
// throws its whole page cache away at its next transaction: the writer lost its 64 MiB of index pages at
// every truncate and read them back page by page (pprof of the Synthea import: 8 s of 85 s CPU freeing
// pages in those resets, and the re-reads besides). The connection that restarts the WAL keeps its cache.
// Its busy timeout is lowered for the try, so that waiting for readers stays as short as it was on the
// checkpointer's connection.
func (c *checkpointer) tryTruncate(ctx context.Context, busy, logFrames, copied *int) (err error) {
	w, err := c.writer.Conn(ctx)
	if err != nil {
		return err
	}
	defer w.Close()
	if _, err := w.ExecContext(ctx, fmt.Sprintf(`PRAGMA busy_timeout = %d`, truncateWait)); err != nil {
		return err
	}
	defer func() {
		// The writer goes back to its own busy timeout, or is discarded.
		if _, rerr := w.ExecContext(context.Background(), fmt.Sprintf(`PRAGMA busy_timeout = %d`, writerBusyTimeout)); rerr != nil {
			_ = w.Raw(func(any) error { return driver.ErrBadConn })
			if err == nil {
				err = rerr
			}
		}
	}()
	return w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(busy, logFrames, copied)
}

// walBytes is the WAL's size on disk, 0 when there is none.
func (c *checkpointer) walBytes() int64 {
	fi, err := os.Stat(c.walPath)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// stop ends the checkpointer and closes its connection. Close then checkpoints what is left as the
// last connection to the file closes (SQLite does so on its own).
func (c *checkpointer) stop() error {
	if c == nil {
		return nil
	}
	c.cancel()
	<-c.done
	return c.db.Close()
}

// WALBytes is the size of the write-ahead log on disk, for /metrics.
func (s *Store) WALBytes() int64 {
	return s.checkpointer.walBytes()
}

// WALLimitBytes is the WAL size above which the checkpointer truncates it, for /metrics.
func (s *Store) WALLimitBytes() int64 {
	return s.checkpointer.limit
}
