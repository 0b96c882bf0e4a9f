package worker_test

import (
	"context"
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

// provisionJob is the account's provisioning job.
func provisionJob(t *testing.T, b *testBundle, accountID uuid.UUID) *rivertype.JobRow {
	t.Helper()
	return onlyJob(t, b, func(args jobs.AccountProvision) bool { return args.AccountID == accountID }).JobRow
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
	drop := refuseCompletion(t, b)
	res, err := work(ctx, t, b, w, provisionJob(t, b, a.ID))
	require.Error(t, err)
	got, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusPending, got.Status, "no effect without completion")

	// Once completion can succeed, both happen.
	drop()
	_, err = work(ctx, t, b, w, provisionJob(t, b, a.ID))
	require.NoError(t, err)
	got, err = b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, account.StatusActive, got.Status)
	requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
}

func TestAccountWorkerRunTwiceActsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	w := workerFor(b)

	job := provisionJob(t, b, a.ID)
	_, err = work(ctx, t, b, w, job)
	require.NoError(t, err)
	first, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.NotNil(t, first.ActivatedAt)

	// A second delivery of the same job (a rescue of a slow run, say).
	_, err = workAgain(ctx, t, b, w, jobByID[jobs.AccountProvision](t, b, job.ID))
	require.NoError(t, err)
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

	res, err := work(ctx, t, b, workerFor(b), provisionJob(t, b, a.ID))
	require.NoError(t, err, "a cancelled job is no failure")
	require.Equal(t, river.EventKindJobCancelled, res.EventKind)
	require.Equal(t, rivertype.JobStateCancelled, res.Job.State)
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
