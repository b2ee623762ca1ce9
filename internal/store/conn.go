package store

import (
	"context"
	"database/sql"
	"errors"
)

// conn is the database handle with the dialect applied to every
// statement, so the store's methods read the same for both engines.
type conn struct {
	db *sql.DB
	d  dialect
}

func (c *conn) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return c.db.ExecContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c *conn) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return c.db.QueryContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c *conn) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return c.db.QueryRowContext(ctx, c.d.rebind(q), c.d.args(args)...)
}

func (c *conn) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return c.db.PrepareContext(ctx, c.d.rebind(q))
}

// BeginTx starts a transaction. On SQLite every write transaction takes
// the database's one write lock at BEGIN (_txlock=immediate), which makes
// them serializable. On PostgreSQL transactions run at READ COMMITTED
// (the default): every statement that must not race another writer says
// so itself (ON CONFLICT upserts, unique constraints, FOR UPDATE ... SKIP
// LOCKED when claiming jobs, conditional UPDATEs checked by row count).
func (c *conn) BeginTx(ctx context.Context, opts *sql.TxOptions) (*Tx, error) {
	tx, err := c.db.BeginTx(ctx, opts)
	if err != nil {
		return nil, err
	}
	return &Tx{tx: tx, d: c.d}, nil
}

func (c *conn) Conn(ctx context.Context) (*sql.Conn, error) { return c.db.Conn(ctx) }

func (c *conn) Close() error { return c.db.Close() }

// Tx is a transaction with the dialect applied.
type Tx struct {
	tx *sql.Tx
	d  dialect
}

func (t *Tx) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *Tx) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *Tx) QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.rebind(q), t.d.args(args)...)
}

func (t *Tx) PrepareContext(ctx context.Context, q string) (*sql.Stmt, error) {
	return t.tx.PrepareContext(ctx, t.d.rebind(q))
}

// Commit ends the transaction.
func (t *Tx) Commit() error { return t.tx.Commit() }

// Rollback undoes the transaction; after Commit it does nothing.
func (t *Tx) Rollback() error { return t.tx.Rollback() }

// ExecMayConflict runs a statement whose unique-constraint violation the
// caller handles (isUnique) and then goes on in the same transaction. A
// failed statement aborts a whole PostgreSQL transaction, so there it
// runs under a savepoint that is rolled back on error; SQLite undoes only
// the failed statement anyway.
func (t *Tx) ExecMayConflict(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if t.d != postgres {
		return t.ExecContext(ctx, q, args...)
	}
	var res sql.Result
	err := t.savepoint(ctx, func() error {
		var err error
		res, err = t.ExecContext(ctx, q, args...)
		return err
	})
	return res, err
}

// InsertID runs an INSERT and returns the id of the new row (RETURNING id
// on both engines; PostgreSQL has no last insert id), with the same
// savepoint as ExecMayConflict.
func (t *Tx) InsertID(ctx context.Context, q string, args ...any) (int64, error) {
	var id int64
	run := func() error { return t.QueryRowContext(ctx, q+` RETURNING id`, args...).Scan(&id) }
	if t.d != postgres {
		return id, run()
	}
	return id, t.savepoint(ctx, run)
}

func (t *Tx) savepoint(ctx context.Context, fn func() error) error {
	if _, err := t.tx.ExecContext(ctx, `SAVEPOINT may_conflict`); err != nil {
		return err
	}
	if err := fn(); err != nil {
		if _, rerr := t.tx.ExecContext(ctx, `ROLLBACK TO SAVEPOINT may_conflict`); rerr != nil {
			return errors.Join(err, rerr)
		}
		return err
	}
	_, err := t.tx.ExecContext(ctx, `RELEASE SAVEPOINT may_conflict`)
	return err
}
