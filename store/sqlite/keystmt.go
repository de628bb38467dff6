package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// keyStmt is a look-up by key on the read pool, run through the driver rather than database/sql: prepared
// once on each connection and called with the driver's own values. database/sql's wrapping of a prepared
// statement (its statement on the connection, Rows, the conversion of every column) took about half of
// a look-up's allocations, 33 against 17 in a throwaway benchmark of a read by id, and the API makes one
// or two such look-ups in every request.
type keyStmt struct {
	db    *sql.DB
	query string
	stmts *connStmts
}

// connStmts holds the statements prepared through the driver on each connection, by their text. A
// connection is used by one goroutine at a time, inside (*sql.Conn).Raw, and so are its statements. The
// pools keep their connections for the store's life, so this holds as many sets as the pools have
// connections; the store closes them all in Close, once nothing uses them.
type connStmts struct {
	on sync.Map // driver connection -> map[string]driver.Stmt
}

// get returns text's statement on the driver connection dc, prepared there on first use. The caller is
// inside dc's Raw.
func (c *connStmts) get(ctx context.Context, dc any, text string) (driver.Stmt, error) {
	v, ok := c.on.Load(dc)
	if !ok {
		v, _ = c.on.LoadOrStore(dc, map[string]driver.Stmt{})
	}
	m := v.(map[string]driver.Stmt)
	if st := m[text]; st != nil {
		return st, nil
	}
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: the driver's connection %T cannot prepare with a context", dc)
	}
	st, err := p.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	_, q := st.(driver.StmtQueryContext)
	_, e := st.(driver.StmtExecContext)
	if !q || !e {
		st.Close()
		return nil, fmt.Errorf("sqlite: the driver's statement %T cannot run with a context", st)
	}
	m[text] = st
	return st, nil
}

// close closes every statement on every connection.
func (c *connStmts) close() error {
	var errs []error
	c.on.Range(func(dc, v any) bool {
		for _, st := range v.(map[string]driver.Stmt) {
			errs = append(errs, st.Close())
		}
		c.on.Delete(dc)
		return true
	})
	return errors.Join(errs...)
}

// namedArgs gives args the driver's ordinals.
func namedArgs(args []any) []driver.NamedValue {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
	}
	return named
}

// newKeyStmt prepares query on one connection of db, so that a statement that cannot be prepared fails
// when the store opens rather than on the first request.
func newKeyStmt(ctx context.Context, db *sql.DB, stmts *connStmts, query string) (*keyStmt, error) {
	k := &keyStmt{db: db, query: query, stmts: stmts}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		_, err := stmts.get(ctx, dc, query)
		return err
	}); err != nil {
		return nil, err
	}
	return k, nil
}

// row runs the look-up with args and reads its first row into dest, which has a place for each column;
// false when there is no row. The values are the driver's: int64, float64, []byte, string or nil. The
// caller passes a context that cannot be cancelled (uncancelled), or the driver watches it with a
// goroutine.
func (k *keyStmt) row(ctx context.Context, dest []driver.Value, args ...any) (bool, error) {
	conn, err := k.db.Conn(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Close()
	found := false
	err = conn.Raw(func(dc any) error {
		st, err := k.stmts.get(ctx, dc, k.query)
		if err != nil {
			return err
		}
		found, err = firstRow(ctx, st, dest, args)
		return err
	})
	return found, err
}

// firstRow runs the query st with args and reads its first row into dest; false when there is none.
func firstRow(ctx context.Context, st driver.Stmt, dest []driver.Value, args []any) (bool, error) {
	rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, namedArgs(args))
	if err != nil {
		return false, err
	}
	switch err := rows.Next(dest); {
	case err == io.EOF:
		return false, rows.Close()
	case err != nil:
		rows.Close()
		return false, err
	}
	return true, rows.Close()
}

// Conversions of the driver's values to the columns' Go types, as database/sql's Scan made them.

func intValue(v driver.Value) (int64, error) {
	if n, ok := v.(int64); ok {
		return n, nil
	}
	return 0, fmt.Errorf("sqlite: an integer column holds %T", v)
}

func bytesValue(v driver.Value) ([]byte, error) {
	switch b := v.(type) {
	case []byte:
		return b, nil
	case string:
		return []byte(b), nil
	case nil:
		return nil, nil
	}
	return nil, fmt.Errorf("sqlite: a blob column holds %T", v)
}
