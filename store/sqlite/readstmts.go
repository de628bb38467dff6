package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// maxReadStmts bounds the prepared search statements. Searches are built from a small set of shapes (the
// values are parameters), so a few hundred cover every shape a deployment sends; a text beyond the bound
// is simply run unprepared.
const maxReadStmts = 512

// readStmts keeps search statements prepared on the read pool, keyed by their SQL text, so that a search
// does not pay for SQLite parsing and planning its statement again on every request. database/sql
// prepares each on a connection the first time it runs there.
type readStmts struct {
	mu sync.RWMutex
	m  map[string]*sql.Stmt
}

// query runs text with args, through its prepared statement when there is one or room for one.
func (c *readStmts) query(ctx context.Context, db *sql.DB, text string, args ...any) (*sql.Rows, error) {
	st, err := c.stmt(ctx, db, text)
	if err != nil {
		return nil, err
	}
	if st == nil {
		return db.QueryContext(ctx, text, args...)
	}
	return st.QueryContext(ctx, args...)
}

func (c *readStmts) stmt(ctx context.Context, db *sql.DB, text string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, full := c.m[text], len(c.m) >= maxReadStmts
	c.mu.RUnlock()
	if st != nil || full {
		return st, nil
	}
	st, err := db.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	if other := c.m[text]; other != nil || len(c.m) >= maxReadStmts {
		_ = st.Close()
		return other, nil
	}
	c.m[text] = st
	return st, nil
}

func (c *readStmts) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}
