package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"

	msqlite "modernc.org/sqlite"
)

// keyStmt is a look-up by key on the read pool, run through the driver rather than database/sql: prepared
// once on each connection and called with the driver's own values. database/sql's wrapping of a prepared
// statement (its statement on the connection, Rows, the conversion of every column) took about half of
// a look-up's allocations, 33 against 17 in a throwaway benchmark of a read by id, and the API makes one
// or two such look-ups in every request.
type keyStmt struct {
	db    *sql.DB
	query string
}

// openPool opens a pool of the store's connections (stmtConn) on dsn.
func openPool(dsn string) (*sql.DB, error) {
	c, err := msqlite.NewConnector(dsn)
	if err != nil {
		return nil, err
	}
	return sql.OpenDB(stmtConnector{c}), nil
}

// stmtConnector makes the driver's connections into stmtConns.
type stmtConnector struct{ driver.Connector }

func (c stmtConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	dc, ok := conn.(driverConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("sqlite: the driver's connection %T lacks a method database/sql uses", conn)
	}
	return &stmtConn{driverConn: dc}, nil
}

// driverConn is what database/sql uses of the driver's connection; stmtConn passes it all on.
type driverConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
}

// stmtConn is one of the pools' connections, with the statements the store prepares on it through the
// driver, by their text. It is used by one goroutine at a time (database/sql hands a connection to one
// user, and the store reaches stmts only inside (*sql.Conn).Raw), and its statements close with it,
// whenever database/sql closes it: with the pool, or when it discards a connection (one whose statement
// was interrupted, or that the store discards itself).
type stmtConn struct {
	driverConn
	stmts map[string]driver.Stmt
}

// stmt returns text's statement on this connection, prepared on first use.
func (c *stmtConn) stmt(ctx context.Context, text string) (driver.Stmt, error) {
	if st := c.stmts[text]; st != nil {
		return st, nil
	}
	st, err := c.prepare(ctx, text)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]driver.Stmt{}
	}
	c.stmts[text] = st
	return st, nil
}

// maxConnStmts bounds the statements kept on one connection. Searches are built from a small set of
// shapes (the values are parameters), so a few hundred cover every shape a deployment sends; beyond the
// bound a statement is prepared for its one run.
const maxConnStmts = 512

// boundedStmt is stmt for statements of many shapes (searches): kept is false for one prepared only
// for this run, which the caller closes.
func (c *stmtConn) boundedStmt(ctx context.Context, text string) (st driver.Stmt, kept bool, err error) {
	if c.stmts[text] != nil || len(c.stmts) < maxConnStmts {
		st, err := c.stmt(ctx, text)
		return st, err == nil, err
	}
	st, err = c.prepare(ctx, text)
	return st, false, err
}

// prepare prepares text through the driver, refusing a statement the store could not run with a
// context (modernc's always can).
func (c *stmtConn) prepare(ctx context.Context, text string) (driver.Stmt, error) {
	st, err := c.PrepareContext(ctx, text)
	if err != nil {
		return nil, err
	}
	_, q := st.(driver.StmtQueryContext)
	_, e := st.(driver.StmtExecContext)
	if !q || !e {
		st.Close()
		return nil, fmt.Errorf("sqlite: the driver's statement %T cannot run with a context", st)
	}
	return st, nil
}

func (c *stmtConn) Close() error {
	var errs []error
	for _, st := range c.stmts {
		errs = append(errs, st.Close())
	}
	c.stmts = nil
	return errors.Join(append(errs, c.driverConn.Close())...)
}

// stmtOn returns text's statement on the driver connection dc, which the caller is inside the Raw of.
func stmtOn(ctx context.Context, dc any, text string) (driver.Stmt, error) {
	c, err := connOf(dc)
	if err != nil {
		return nil, err
	}
	return c.stmt(ctx, text)
}

// connOf is the store's connection under a (*sql.Conn).Raw callback's driver connection; every pool
// the store opens is openPool's, so another kind is a bug, reported rather than panicked on.
func connOf(dc any) (*stmtConn, error) {
	c, ok := dc.(*stmtConn)
	if !ok {
		return nil, fmt.Errorf("sqlite: a connection %T not opened by openPool", dc)
	}
	return c, nil
}

// namedArgs gives args the driver's ordinals, converted as database/sql converts them for a driver
// without converters of its own (an int becomes an int64).
func namedArgs(args []any) ([]driver.NamedValue, error) {
	named := make([]driver.NamedValue, len(args))
	for i, a := range args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return nil, fmt.Errorf("sqlite: argument %d: %w", i+1, err)
		}
		named[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return named, nil
}

// newKeyStmt prepares query on one connection of db, so that a statement that cannot be prepared fails
// when the store opens rather than on the first request.
func newKeyStmt(ctx context.Context, db *sql.DB, query string) (*keyStmt, error) {
	k := &keyStmt{db: db, query: query}
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if err := conn.Raw(func(dc any) error {
		_, err := stmtOn(ctx, dc, query)
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
		st, err := stmtOn(ctx, dc, k.query)
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
	named, err := namedArgs(args)
	if err != nil {
		return false, err
	}
	rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, named)
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

func stringValue(v driver.Value) (string, error) {
	switch t := v.(type) {
	case string:
		return t, nil
	case []byte:
		return string(t), nil
	}
	return "", fmt.Errorf("sqlite: a text column holds %T", v)
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
