package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

type testBundle struct {
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx]
	svc      *account.Service
	compiler *rule.Compiler
	engine   *engine.Engine
	rules    *rule.Service
	events   *event.Service
}

// testSender delivers webhooks to any address, test servers on loopback
// included.
func testSender(pool *pgxpool.Pool) *webhook.Sender {
	return webhook.NewSender(webhook.NewService(pool, nil, 0), egress.NewClient(egress.Options{AllowPrivate: true, Timeout: 5 * time.Second}))
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.New(t)
	compiler, err := rule.NewCompiler()
	require.NoError(t, err)
	eng := engine.New(compiler, engine.DefaultMaxDepth, dbtest.Logger(t))
	client, err := worker.NewClient(pool, dbtest.Logger(t), worker.Options{
		Work: true, Concurrency: 2, JobTimeout: 10 * time.Second, RescueAfter: time.Minute,
		Engine: eng, Webhooks: testSender(pool), WebhookTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	return &testBundle{
		pool: pool, client: client, svc: account.NewService(pool, client),
		compiler: compiler, engine: eng,
		rules:  rule.NewService(pool, compiler, webhook.Referable),
		events: event.NewService(pool, client),
	}
}

// runningJob fetches the account's provisioning job and moves it to running,
// as River's producer does before calling Work.
func runningJob(t *testing.T, b *testBundle, accountID uuid.UUID) *river.Job[jobs.AccountProvision] {
	t.Helper()
	return running[jobs.AccountProvision](t, b, `args->>'account_id' = $2`, accountID.String())
}

// running moves the one job of T's kind that filter (an SQL condition on
// river_job whose parameters start at $2) selects to running, counting an
// attempt as River's producer does before calling Work, and returns it.
func running[T river.JobArgs](t *testing.T, b *testBundle, filter string, args ...any) *river.Job[T] {
	t.Helper()
	ctx := context.Background()
	var zero T
	rows, err := b.pool.Query(ctx, `
		UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = now(), finalized_at = NULL
		WHERE kind = $1 AND (`+filter+`)
		RETURNING id`, append([]any{zero.Kind()}, args...)...)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	require.Len(t, ids, 1, "%s jobs where %s", zero.Kind(), filter)
	row, err := b.client.JobGet(ctx, ids[0])
	require.NoError(t, err)
	var decoded T
	require.NoError(t, json.Unmarshal(row.EncodedArgs, &decoded))
	return &river.Job[T]{JobRow: row, Args: decoded}
}

func workerFor(b *testBundle) river.Worker[jobs.AccountProvision] {
	return worker.NewAccountWorker(b.pool)
}

func TestAccountWorkerEffectAndCompletionAreOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	w := workerFor(b)

	// Completing the job fails: the activation must roll back with it.
	_, err = b.pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by test'; END $$;
		CREATE TRIGGER refuse BEFORE UPDATE ON river_job FOR EACH ROW
		WHEN (NEW.state = 'completed') EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)
	job := runningJob(t, b, a.ID)
	require.Error(t, w.Work(ctx, job))
	got, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusPending, got.Status, "no effect without completion")

	// Once completion can succeed, both happen.
	_, err = b.pool.Exec(ctx, `DROP TRIGGER refuse ON river_job`)
	require.NoError(t, err)
	require.NoError(t, w.Work(ctx, job))
	got, err = b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusActive, got.Status)
	row, err := b.client.JobGet(ctx, job.ID)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, row.State)
}

func TestAccountWorkerRunTwiceActsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	w := workerFor(b)

	require.NoError(t, w.Work(ctx, runningJob(t, b, a.ID)))
	first, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.NotNil(t, first.ActivatedAt)

	// A second delivery of the same job (a rescue of a slow run, say).
	require.NoError(t, w.Work(ctx, runningJob(t, b, a.ID)))
	second, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusActive, second.Status)
	require.Equal(t, first.ActivatedAt, second.ActivatedAt, "activated once")
	require.Equal(t, first.UpdatedAt, second.UpdatedAt)
}

func TestAccountWorkerCancelsForMissingAccount(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, a.ID)
	require.NoError(t, err)

	err = workerFor(b).Work(ctx, runningJob(t, b, a.ID))
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, err, &cancel)
}

func TestClientWorksAccountsEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, unsubscribe := b.client.Subscribe(river.EventKindJobCompleted)
	defer unsubscribe()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.client.Stop(context.Background())) })

	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	select {
	case ev := <-events:
		require.Equal(t, jobs.AccountProvision{}.Kind(), ev.Job.Kind)
	case <-ctx.Done():
		t.Fatal("account job not completed")
	}
	got, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusActive, got.Status)
}
