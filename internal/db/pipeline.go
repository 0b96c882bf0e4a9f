package db

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// InTxPipelined is InTx for a short transaction on the path of a request,
// whose round trips are most of its time: its BEGIN is sent with its first
// statement, and Execs made with a context from DeferExec wait for the next
// statement that needs a round trip (a Query, an Exec, a batch, a copy) or
// for the COMMIT, and go with it. A group of single POSTs (BEGIN, the
// events' INSERT, River's job insert and its NOTIFY, COMMIT) takes two round
// trips instead of five. (pgx's Batch.BeginTx saves only BEGIN's round
// trip: the INSERT and River's NOTIFY would still take one each.) fn must
// not start a nested transaction.
func InTxPipelined(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	c, err := pool.Acquire(ctx)
	if err != nil {
		return Translate(err)
	}
	// A connection left inside a transaction (a failed COMMIT or ROLLBACK)
	// is closed by the pool rather than reused.
	defer c.Release()
	tx := &pipelinedTx{conn: c.Conn()}
	if err := fn(tx); err != nil {
		// As pgx.BeginFunc: fn's error is the one to return; a connection
		// the rollback could not end is not reused.
		_ = tx.Rollback(context.WithoutCancel(ctx))
		return Translate(err)
	}
	return Translate(tx.Commit(ctx))
}

type deferKey struct{}

// DeferExec returns a context whose Execs in a transaction of
// InTxPipelined are sent later, with the next statement that needs a round
// trip or with the COMMIT. Such an Exec returns an empty command tag and no
// error: its error comes from the statement that sends it, or from the
// commit, and fails the transaction just the same. Use it around code that
// reads no Exec's command tag and changes no Exec's arguments after the
// call, as River's job insert (its NOTIFY) and an INSERT of rows whose ids
// are known.
func DeferExec(ctx context.Context) context.Context {
	return context.WithValue(ctx, deferKey{}, true)
}

func deferred(ctx context.Context) bool {
	d, _ := ctx.Value(deferKey{}).(bool)
	return d
}

type queuedExec struct {
	sql  string
	args []any
}

// pipelinedTx is a transaction whose BEGIN, until it is sent, and deferred
// Execs wait for the next statement that needs a round trip.
type pipelinedTx struct {
	conn   *pgx.Conn
	begun  bool         // BEGIN has been sent
	queued []queuedExec // deferred Execs not sent yet
	done   bool         // committed or rolled back
}

var errTxDone = errors.New("the transaction has ended")

// waiting reports whether anything waits to be sent.
func (t *pipelinedTx) waiting() bool { return !t.begun || len(t.queued) > 0 }

// send sends what waits, followed by extra, in one round trip and reads the
// results of what waited: br is left at extra's first result, and a failure
// of what waited is returned with br closed.
func (t *pipelinedTx) send(ctx context.Context, extra ...queuedExec) (pgx.BatchResults, error) {
	b := &pgx.Batch{}
	if !t.begun {
		b.Queue("begin")
	}
	for _, q := range append(t.queued, extra...) {
		b.Queue(q.sql, q.args...)
	}
	waited := b.Len() - len(extra)
	t.queued, t.begun = nil, true
	br := t.conn.SendBatch(ctx, b)
	for range waited {
		if _, err := br.Exec(); err != nil {
			return nil, closeBatch(br, err)
		}
	}
	return br, nil
}

// flush sends what waits, if anything does.
func (t *pipelinedTx) flush(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	if !t.waiting() {
		return nil
	}
	br, err := t.send(ctx)
	if err != nil {
		return err
	}
	return br.Close()
}

// closeBatch closes br and returns err, or the error of closing it when
// err is nil (Close repeats the batch's first error).
func closeBatch(br pgx.BatchResults, err error) error {
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return err
}

func (t *pipelinedTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	switch {
	case t.done:
		return pgconn.CommandTag{}, errTxDone
	case deferred(ctx):
		t.queued = append(t.queued, queuedExec{sql: sql, args: args})
		return pgconn.CommandTag{}, nil
	case !t.waiting():
		return t.conn.Exec(ctx, sql, args...)
	}
	br, err := t.send(ctx, queuedExec{sql: sql, args: args})
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	return tag, closeBatch(br, err)
}

func (t *pipelinedTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	switch {
	case t.done:
		return nil, errTxDone
	case !t.waiting():
		return t.conn.Query(ctx, sql, args...)
	}
	br, err := t.send(ctx, queuedExec{sql: sql, args: args})
	if err != nil {
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		return nil, closeBatch(br, err)
	}
	return &batchRows{Rows: rows, br: br}, nil
}

func (t *pipelinedTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return &queryRow{rows: rows, err: err}
}

func (t *pipelinedTx) SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if err := t.flush(ctx); err != nil {
		return &failedBatch{err: err}
	}
	return t.conn.SendBatch(ctx, b)
}

func (t *pipelinedTx) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	if err := t.flush(ctx); err != nil {
		return 0, err
	}
	return t.conn.CopyFrom(ctx, table, columns, src)
}

func (t *pipelinedTx) Prepare(ctx context.Context, name, sql string) (*pgconn.StatementDescription, error) {
	return t.conn.Prepare(ctx, name, sql)
}

// Commit sends what waits and COMMIT in one round trip. A transaction
// that sent nothing and has nothing waiting has nothing to commit.
func (t *pipelinedTx) Commit(ctx context.Context) error {
	if t.done {
		return errTxDone
	}
	t.done = true
	if !t.begun && len(t.queued) == 0 {
		return nil
	}
	br, err := t.send(ctx, queuedExec{sql: "commit"})
	if err == nil {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		if err == nil && tag.String() == "ROLLBACK" { // the transaction had failed
			err = pgx.ErrTxCommitRollback
		}
		err = closeBatch(br, err)
	}
	if err != nil {
		// A failed statement left the transaction open and aborted.
		if t.conn.PgConn().TxStatus() != 'I' {
			_, _ = t.conn.Exec(context.WithoutCancel(ctx), "rollback")
		}
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Rollback ends the transaction; what is still queued is dropped unsent.
func (t *pipelinedTx) Rollback(ctx context.Context) error {
	if t.done {
		return nil
	}
	t.done = true
	t.queued = nil
	if !t.begun {
		return nil
	}
	_, err := t.conn.Exec(ctx, "rollback")
	return err
}

func (t *pipelinedTx) Begin(context.Context) (pgx.Tx, error) {
	return nil, errors.New("a pipelined transaction has no nested transactions")
}

// LargeObjects is not supported: its zero value fails on use.
func (t *pipelinedTx) LargeObjects() pgx.LargeObjects { return pgx.LargeObjects{} }

func (t *pipelinedTx) Conn() *pgx.Conn { return t.conn }

// batchRows are the rows of a batch's last statement; closing them closes
// the batch.
type batchRows struct {
	pgx.Rows
	br  pgx.BatchResults
	err error
}

func (r *batchRows) Close() {
	r.Rows.Close()
	if r.br != nil {
		r.err = r.br.Close()
		r.br = nil
	}
}

func (r *batchRows) Next() bool {
	if r.Rows.Next() {
		return true
	}
	r.Close()
	return false
}

func (r *batchRows) Err() error {
	if err := r.Rows.Err(); err != nil {
		return err
	}
	return r.err
}

// queryRow is QueryRow's row: the first row of a query.
type queryRow struct {
	rows pgx.Rows
	err  error
}

func (r *queryRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	_, err := pgx.CollectOneRow(r.rows, func(row pgx.CollectableRow) (struct{}, error) {
		return struct{}{}, row.Scan(dest...)
	})
	return err
}

// failedBatch answers every result of a batch that could not be sent with
// the reason.
type failedBatch struct{ err error }

func (b *failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, b.err }
func (b *failedBatch) Query() (pgx.Rows, error)         { return nil, b.err }
func (b *failedBatch) QueryRow() pgx.Row                { return &queryRow{err: b.err} }
func (b *failedBatch) Close() error                     { return b.err }
func (b *failedBatch) Tx() pgx.Tx                       { return nil }
