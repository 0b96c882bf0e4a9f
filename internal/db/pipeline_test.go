package db_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
)

// sends counts what a pool sends to the server: each statement sent alone
// and each batch is one round trip.
type sends struct {
	mu      sync.Mutex
	single  []string
	batches [][]string
}

func (s *sends) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.single = append(s.single, d.SQL)
	return ctx
}

func (s *sends) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

func (s *sends) TraceBatchStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchStartData) context.Context {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sqls []string
	for _, q := range d.Batch.QueuedQueries {
		sqls = append(sqls, q.SQL)
	}
	s.batches = append(s.batches, sqls)
	return ctx
}

func (s *sends) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (s *sends) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

func (s *sends) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.single, s.batches = nil, nil
}

func (s *sends) roundTrips() ([]string, [][]string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.single, s.batches
}

func tracedPool(t *testing.T) (*pgxpool.Pool, *sends) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(dbtest.URL(t))
	require.NoError(t, err)
	tr := &sends{}
	cfg.ConnConfig.Tracer = tr
	cfg.MaxConns = 1 // one connection: its statement cache is warm after one run
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = pool.Exec(context.Background(), `CREATE TABLE pipelined (n int PRIMARY KEY)`)
	require.NoError(t, err)
	return pool, tr
}

// A pipelined transaction sends its BEGIN and deferred Execs with the next
// statement that needs a round trip, and what is still queued with COMMIT:
// an insert, a River job insert and its notification take two round trips.
func TestPipelinedTransactionTakesTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, tr := tracedPool(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: dbtest.Logger(t)})
	require.NoError(t, err)

	store := func(n int) error {
		return db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
			dctx := db.DeferExec(ctx)
			if _, err := tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES ($1)`, n); err != nil {
				return err
			}
			_, err := client.InsertManyTx(dctx, tx, []river.InsertManyParams{{Args: jobs.EventsProcess{}}})
			return err
		})
	}
	require.NoError(t, store(1)) // prepares the statements
	tr.reset()
	require.NoError(t, store(2))

	single, batches := tr.roundTrips()
	require.Empty(t, single, "nothing is sent alone")
	require.Len(t, batches, 2)
	require.Equal(t, "begin", batches[0][0])
	require.Contains(t, batches[0][1], "INSERT INTO pipelined")
	require.Contains(t, batches[0][2], "JobInsertFastMany")
	require.Equal(t, "commit", batches[1][len(batches[1])-1])

	var rows, jobRows int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM pipelined), (SELECT count(*) FROM river_job)`).Scan(&rows, &jobRows))
	require.Equal(t, 2, rows)
	require.Equal(t, 2, jobRows)
}

func requireDuplicate(t *testing.T, err error) {
	t.Helper()
	code, constraint := db.ConstraintOf(err)
	require.Equal(t, db.CodeUniqueViolation, code, "%v", err)
	require.Equal(t, "pipelined_pkey", constraint)
}

// Each bad input gets its error from the statement that sends it, or from
// the commit; nothing of the transaction stays, and the connection serves
// the next one.
func TestPipelinedTransactionFailsWhole(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, tr := tracedPool(t)
	_, err := pool.Exec(ctx, `INSERT INTO pipelined (n) VALUES (1)`)
	require.NoError(t, err)
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM pipelined`).Scan(&n))
		return n
	}

	dctx := db.DeferExec(ctx)

	// A duplicate key, sent with the query after it: the query fails with it.
	err = db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		_, _ = tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (2)`)
		_, _ = tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (1)`)
		var n int
		return tx.QueryRow(ctx, `SELECT count(*) FROM pipelined`).Scan(&n)
	})
	requireDuplicate(t, err)
	require.Equal(t, 1, count())

	// The same, found at the commit.
	err = db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		_, _ = tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (3)`)
		_, err := tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (1)`)
		return err
	})
	requireDuplicate(t, err)
	require.Equal(t, 1, count())

	// An Exec not deferred goes with BEGIN, and answers at once: its own
	// error, or its command tag.
	tr.reset()
	err = db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO pipelined (n) VALUES (1)`)
		requireDuplicate(t, err)
		return err
	})
	requireDuplicate(t, err)
	single, batches := tr.roundTrips()
	require.Equal(t, []string{"rollback"}, single)
	require.Equal(t, [][]string{{"begin", `INSERT INTO pipelined (n) VALUES (1)`}}, batches)
	require.NoError(t, db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO pipelined (n) VALUES (7) ON CONFLICT DO NOTHING`)
		require.Equal(t, int64(1), tag.RowsAffected())
		return err
	}))
	require.Equal(t, 2, count())

	// fn's own error: what was queued is never sent, not even BEGIN.
	tr.reset()
	boom := errors.New("boom")
	err = db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		_, _ = tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (4)`)
		return boom
	})
	require.ErrorIs(t, err, boom)
	single, batches = tr.roundTrips()
	require.Empty(t, single)
	require.Empty(t, batches)
	require.Equal(t, 2, count())

	// A transaction that ran nothing sends nothing.
	tr.reset()
	require.NoError(t, db.InTxPipelined(ctx, pool, func(pgx.Tx) error { return nil }))
	single, batches = tr.roundTrips()
	require.Empty(t, single)
	require.Empty(t, batches)

	// Reads see the transaction's own writes; no row is ErrNoRows.
	require.NoError(t, db.InTxPipelined(ctx, pool, func(tx pgx.Tx) error {
		_, _ = tx.Exec(dctx, `INSERT INTO pipelined (n) VALUES (5)`)
		var n int
		if err := tx.QueryRow(ctx, `SELECT n FROM pipelined WHERE n = 5`).Scan(&n); err != nil {
			return err
		}
		require.Equal(t, 5, n)
		err := tx.QueryRow(ctx, `SELECT n FROM pipelined WHERE n = 6`).Scan(&n)
		require.ErrorIs(t, err, pgx.ErrNoRows)
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO pipelined (n) VALUES (6)`)
		return tx.SendBatch(ctx, b).Close()
	}))
	require.Equal(t, 4, count())
}
