package worker_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
)

// work runs w on the job in row with River's test worker, as River's producer
// does: it moves the job to running, counting an attempt from the row given,
// calls Work, and gives the job the state River gives Work's result. It
// returns the job as worked and the error Work returned, nil when Work
// cancelled the job. It makes no assertion, so a test may call it from a
// goroutine of its own.
func work[T river.JobArgs](ctx context.Context, t *testing.T, b *testBundle, w river.Worker[T], row *rivertype.JobRow) (*rivertest.WorkResult, error) {
	t.Helper()
	return testWorker(t, b, w).WorkJob(ctx, t, autocommit{pool: b.pool}, row)
}

// workAgain inserts a copy of job and works it with w as work does: the same
// work delivered a second time, as when a rescued run and the run it was
// rescued from both finish. River never runs a finished job again, so the
// copy stands in for it; rivertest inserts it past the uniqueness its
// arguments may have.
func workAgain[T river.JobArgs](ctx context.Context, t *testing.T, b *testBundle, w river.Worker[T], job *river.Job[T]) (*rivertest.WorkResult, error) {
	t.Helper()
	return testWorker(t, b, w).Work(ctx, t, autocommit{pool: b.pool}, job.Args, nil)
}

func testWorker[T river.JobArgs](t *testing.T, b *testBundle, w river.Worker[T]) *rivertest.Worker[T, pgx.Tx] {
	t.Helper()
	return rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{Logger: dbtest.Logger(t)},
		river.Worker[T](asClient[T]{Worker: w, client: b.client}))
}

// asClient is a worker that works its jobs as client, the client its
// process runs. The workers insert their follow-up jobs with the client their
// context names, and some of those jobs are unique by their arguments;
// rivertest's Worker names a client of its own that leaves uniqueness
// unenforced.
type asClient[T river.JobArgs] struct {
	river.Worker[T]
	client *river.Client[pgx.Tx]
}

func (w asClient[T]) Work(ctx context.Context, job *river.Job[T]) error {
	return w.Worker.Work(rivertest.WorkContext(ctx, w.client), job)
}

// jobsOf lists the jobs of T's kind whose arguments match (every one when
// match is nil), oldest first, in one of states (any state when none is
// given).
func jobsOf[T river.JobArgs](t *testing.T, b *testBundle, match func(T) bool, states ...rivertype.JobState) []*river.Job[T] {
	t.Helper()
	var zero T
	params := river.NewJobListParams().Kinds(zero.Kind()).First(10_000)
	if len(states) > 0 {
		params = params.States(states...)
	}
	res, err := b.client.JobList(context.Background(), params)
	require.NoError(t, err)
	var out []*river.Job[T]
	for _, row := range res.Jobs {
		var args T
		require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
		if match == nil || match(args) {
			out = append(out, &river.Job[T]{JobRow: row, Args: args})
		}
	}
	return out
}

// onlyJob is the one job jobsOf finds.
func onlyJob[T river.JobArgs](t *testing.T, b *testBundle, match func(T) bool, states ...rivertype.JobState) *river.Job[T] {
	t.Helper()
	found := jobsOf(t, b, match, states...)
	var zero T
	require.Len(t, found, 1, "%s jobs", zero.Kind())
	return found[0]
}

// jobByID is the job with id, its arguments decoded.
func jobByID[T river.JobArgs](t *testing.T, b *testBundle, id int64) *river.Job[T] {
	t.Helper()
	row, err := b.client.JobGet(context.Background(), id)
	require.NoError(t, err)
	var args T
	require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
	return &river.Job[T]{JobRow: row, Args: args}
}

// busyStates are the states of a job that has yet to finish.
var busyStates = []rivertype.JobState{
	rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
	rivertype.JobStateRunning, rivertype.JobStateScheduled,
}

// unfinished counts the jobs of any kind that are not completed.
func unfinished(t *testing.T, b *testBundle) int {
	t.Helper()
	res, err := b.client.JobList(context.Background(), river.NewJobListParams().First(10_000).
		States(append(busyStates, rivertype.JobStateCancelled, rivertype.JobStateDiscarded)...))
	require.NoError(t, err)
	return len(res.Jobs)
}

// autocommit is a pgx.Tx whose statements each commit on their own, for
// rivertest's Worker. The workers record their effects and complete their jobs
// in transactions of their own on the pool, as they do in production; the test
// worker must not hold the job's row locked meanwhile, in a transaction that
// completing the job would wait for.
type autocommit struct {
	pgx.Tx // unset: River's executor uses only the methods below
	pool   *pgxpool.Pool
}

func (a autocommit) Begin(ctx context.Context) (pgx.Tx, error) { return a.pool.Begin(ctx) }

// Config is the pool's, where River's driver looks for the query mode before
// it asks a transaction for its connection.
func (a autocommit) Config() *pgxpool.Config { return a.pool.Config() }

func (a autocommit) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	return a.pool.Exec(ctx, sql, args...)
}

func (a autocommit) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	return a.pool.Query(ctx, sql, args...)
}

func (a autocommit) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	return a.pool.QueryRow(ctx, sql, args...)
}

func (a autocommit) CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error) {
	return a.pool.CopyFrom(ctx, table, columns, src)
}
