package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// checkpointEvery is how often the checkpointer copies the WAL back into the database file.
const checkpointEvery = 250 * time.Millisecond

// checkpointer runs PASSIVE checkpoints on a connection of its own, so that no commit ever does one:
// SQLite's automatic checkpoint runs inside the commit that crosses the threshold, and that commit (an
// Apply, or an audit append every waiting request depends on) would take as long as copying a
// thousand pages. A PASSIVE checkpoint never waits for readers or writers; what it cannot copy yet, the
// next one does. Without it the WAL would grow for ever, so Open fails if it cannot start.
type checkpointer struct {
	db     *sql.DB
	cancel context.CancelFunc
	done   chan struct{}
}

func (s *Store) startCheckpointer(ctx context.Context, dsn string) error {
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
	c := &checkpointer{db: db, cancel: cancel, done: make(chan struct{})}
	s.checkpointer = c
	go c.run(cctx)
	return nil
}

func (c *checkpointer) run(ctx context.Context) {
	defer close(c.done)
	t := time.NewTicker(checkpointEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A failure (the file busy with another process's checkpoint) is retried on the next tick.
		_, _ = c.db.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
	}
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
