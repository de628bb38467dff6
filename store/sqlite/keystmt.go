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
	// on holds the statement prepared on each driver connection. A connection is used by one goroutine
	// at a time, inside (*sql.Conn).Raw, and so is its statement. The pool keeps its connections for the
	// store's life, so the map holds as many as the pool has; Close closes them.
	on sync.Map
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
		_, err := k.stmtOn(ctx, dc)
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
		st, err := k.stmtOn(ctx, dc)
		if err != nil {
			return err
		}
		named := make([]driver.NamedValue, len(args))
		for i, a := range args {
			named[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
		}
		rows, err := st.(driver.StmtQueryContext).QueryContext(ctx, named)
		if err != nil {
			return err
		}
		switch err := rows.Next(dest); {
		case err == nil:
			found = true
		case err != io.EOF:
			rows.Close()
			return err
		}
		return rows.Close()
	})
	return found, err
}

func (k *keyStmt) stmtOn(ctx context.Context, dc any) (driver.Stmt, error) {
	if st, ok := k.on.Load(dc); ok {
		return st.(driver.Stmt), nil
	}
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: the driver's connection %T cannot prepare with a context", dc)
	}
	st, err := p.PrepareContext(ctx, k.query)
	if err != nil {
		return nil, err
	}
	if _, ok := st.(driver.StmtQueryContext); !ok {
		st.Close()
		return nil, fmt.Errorf("sqlite: the driver's statement %T cannot query with a context", st)
	}
	k.on.Store(dc, st)
	return st, nil
}

// close closes the statement on every connection. The store calls it in Close, before the pool closes
// and once nothing uses the statements any more.
func (k *keyStmt) close() error {
	var errs []error
	k.on.Range(func(dc, st any) bool {
		errs = append(errs, st.(driver.Stmt).Close())
		k.on.Delete(dc)
		return true
	})
	return errors.Join(errs...)
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
