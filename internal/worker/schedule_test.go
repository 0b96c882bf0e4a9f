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
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/worker"
)

// startClient starts a working River client over pool, as a separate ctrader
// process would, and stops it when the test ends.
func startClient(t *testing.T, pool *pgxpool.Pool, id string, rulesInterval time.Duration) *river.Client[pgx.Tx] {
	t.Helper()
	compiler, err := rule.NewCompiler()
	require.NoError(t, err)
	client, err := worker.NewClient(pool, dbtest.Logger(t), worker.Options{
		Work: true, Concurrency: 2, JobTimeout: 10 * time.Second, RescueAfter: time.Minute,
		Engine: engine.New(compiler, engine.DefaultMaxDepth, dbtest.Logger(t)), RulesInterval: rulesInterval, ID: id,
		Webhooks: testSender(pool), WebhookTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	require.NoError(t, client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, client.Stop(ctx))
	})
	return client
}

func scheduledRule(t *testing.T, b *testBundle) *rule.Rule {
	t.Helper()
	return createRule(t, b, rule.Input{Name: "every account", Scheduled: true, Condition: `account.won_total >= 0`,
		Actions: []rule.Action{{Type: rule.ActionSetAccountStatus, Status: "checked"}}})
}

func TestScheduledEvaluationRunsOncePerWindowAcrossClients(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	accounts := make(map[uuid.UUID]bool)
	for _, name := range []string{"Ann", "Bob", "Cy"} {
		accounts[activeAccount(t, b, name).ID] = true
	}
	r := scheduledRule(t, b)

	// Two processes over the same database, each with its own pool, both
	// scheduling the rules every hour starting now.
	clients := []*river.Client[pgx.Tx]{
		startClient(t, b.pool, "process-a", time.Hour),
		startClient(t, dbtest.Pool(t, b.pool.Config().ConnString()), "process-b", time.Hour),
	}
	scheduled := func() int {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM evaluations WHERE trigger = 'schedule'`).Scan(&n)
		if err != nil {
			return -1
		}
		return n
	}
	waitIdle(t, b, func() bool { return scheduled() == len(accounts) })

	window := onlyJob[jobs.RulesSchedule](t, b, nil).Args.WindowStart.UTC()
	require.Equal(t, window.Truncate(time.Hour), window)
	runID := evaluation.TriggerSchedule + ":" + window.Format(time.RFC3339)

	rows, err := b.pool.Query(ctx, `SELECT account_id, rule_id, rule_version, run_id, matched, actions FROM evaluations`)
	require.NoError(t, err)
	seen := make(map[uuid.UUID]bool)
	for rows.Next() {
		var (
			accountID, ruleID uuid.UUID
			version           int
			run               *string
			matched           bool
			actions           []evaluation.ActionResult
		)
		require.NoError(t, rows.Scan(&accountID, &ruleID, &version, &run, &matched, &actions))
		require.True(t, accounts[accountID])
		require.False(t, seen[accountID], "one evaluation per account")
		seen[accountID] = true
		require.Equal(t, r.ID, ruleID)
		require.Equal(t, 1, version)
		require.NotNil(t, run)
		require.Equal(t, runID, *run)
		require.True(t, matched)
		require.Equal(t, []evaluation.ActionResult{{Type: rule.ActionSetAccountStatus, Status: "checked", PreviousStatus: account.StatusActive}}, actions)
	}
	require.NoError(t, rows.Err())
	require.Len(t, seen, len(accounts))

	// The same window again, through either process, is a duplicate.
	for _, c := range clients {
		res, err := c.Insert(ctx, jobs.RulesSchedule{WindowStart: window}, nil)
		require.NoError(t, err)
		require.True(t, res.UniqueSkippedAsDuplicate)
	}
	waitIdle(t, b, nil)
	require.Len(t, jobsOf[jobs.RulesSchedule](t, b, nil), 1)
	require.Len(t, jobsOf[jobs.EvaluateAccounts](t, b, nil), 1)
	require.Equal(t, len(accounts), scheduled())
}

func TestScheduleFansOutPagesOfAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	const n = 2500
	_, err := b.pool.Exec(ctx, `
		INSERT INTO accounts (id, name, status, activated_at)
		SELECT gen_random_uuid(), 'a' || g, 'active', now() FROM generate_series(1, $1) g`, n)
	require.NoError(t, err)
	// Not provisioned, so not scheduled.
	pending, err := b.svc.Create(ctx, account.CreateInput{Name: "pending"})
	require.NoError(t, err)
	r := scheduledRule(t, b)

	window := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	res, err := b.client.Insert(ctx, jobs.RulesSchedule{WindowStart: window}, nil)
	require.NoError(t, err)
	require.False(t, res.UniqueSkippedAsDuplicate)
	schedule := worker.NewScheduleWorker(b.pool)
	_, err = work(ctx, t, b, schedule, res.Job)
	require.NoError(t, err)
	requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
	// The job run again (a rescue, say) queues no page twice.
	_, err = workAgain(ctx, t, b, schedule, jobByID[jobs.RulesSchedule](t, b, res.Job.ID))
	require.NoError(t, err)

	pages := jobsOf[jobs.EvaluateAccounts](t, b, nil)
	require.Len(t, pages, (n+worker.SchedulePageSize-1)/worker.SchedulePageSize)

	runID := evaluation.TriggerSchedule + ":2026-01-02T03:00:00Z"
	evaluate := worker.NewEvaluateAccountsWorker(b.pool, b.engine)
	var after uuid.UUID
	for i, job := range pages {
		require.Equal(t, evaluation.TriggerSchedule, job.Args.Trigger)
		require.Equal(t, runID, job.Args.RunID)
		require.Empty(t, job.Args.RuleIDs)
		require.Equal(t, uuid.Nil, job.Args.AccountID)
		require.Equal(t, after, job.Args.After, "pages are contiguous")
		after = job.Args.Through
		_, err := work(ctx, t, b, evaluate, job.JobRow)
		require.NoError(t, err)
		requireJobState(t, b, job.ID, rivertype.JobStateCompleted)
		want := min((i+1)*worker.SchedulePageSize, n)
		require.Equal(t, want, countRows(t, b, `SELECT count(*) FROM evaluations WHERE run_id = $1`, runID))
	}
	require.Equal(t, n, countRows(t, b, `SELECT count(DISTINCT account_id) FROM evaluations WHERE rule_id = $1 AND run_id = $2 AND trigger = 'schedule'`, r.ID, runID))
	require.Equal(t, n, countRows(t, b, `SELECT count(*) FROM evaluations`))
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM evaluations WHERE account_id = $1`, pending.ID))
	require.Equal(t, n, countRows(t, b, `SELECT count(*) FROM accounts WHERE status = 'checked'`))
}

func TestManualEvaluation(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	one := activeAccount(t, b, "Ann")
	activeAccount(t, b, "Bob")
	activeAccount(t, b, "Cy")
	r := createRule(t, b, rule.Input{Name: "flag", EventTypes: []string{"never"}, Condition: `account.won_total >= 0`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "flagged", Payload: map[string]any{}}}})
	evaluate := worker.NewEvaluateAccountsWorker(b.pool, b.engine)
	runJob := func(runID string) *river.Job[jobs.EvaluateAccounts] {
		t.Helper()
		return onlyJob(t, b, func(args jobs.EvaluateAccounts) bool { return args.RunID == runID })
	}
	runOnce := func(job *river.Job[jobs.EvaluateAccounts]) {
		t.Helper()
		_, err := work(ctx, t, b, evaluate, job.JobRow)
		require.NoError(t, err)
	}
	evaluations := func(runID string) int {
		t.Helper()
		return countRows(t, b, `SELECT count(*) FROM evaluations WHERE run_id = $1 AND trigger = 'manual' AND rule_id = $2 AND matched`, runID, r.ID)
	}

	// One account.
	run, err := engine.NewManual(b.pool, b.client).EvaluateNow(ctx, r.ID, one.ID)
	require.NoError(t, err)
	require.Equal(t, 1, run.RuleVersion)
	page := runJob(run.RunID)
	runOnce(page)
	_, err = workAgain(ctx, t, b, evaluate, page)
	require.NoError(t, err, "run twice")
	require.Equal(t, 1, evaluations(run.RunID))
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM evaluations WHERE run_id = $1 AND account_id = $2`, run.RunID, one.ID))
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'flagged'`), "acted once")
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'flagged' AND account_id = $1 AND depth = 0 AND causation_id IS NULL`, one.ID))

	// Every account: a fan-out, then one page.
	all, err := engine.NewManual(b.pool, b.client).EvaluateNow(ctx, r.ID, uuid.Nil)
	require.NoError(t, err)
	require.NotEqual(t, run.RunID, all.RunID)
	fanOut := worker.NewFanOutWorker(b.pool)
	fan := onlyJob(t, b, func(args jobs.RulesFanOut) bool { return args.RunID == all.RunID })
	require.Equal(t, []uuid.UUID{r.ID}, fan.Args.RuleIDs)
	_, err = work(ctx, t, b, fanOut, fan.JobRow)
	require.NoError(t, err)
	_, err = workAgain(ctx, t, b, fanOut, fan)
	require.NoError(t, err, "fan out twice")
	require.Len(t, jobsOf(t, b, func(args jobs.EvaluateAccounts) bool { return args.RunID == all.RunID }), 1,
		"the page is queued once")
	page = runJob(all.RunID)
	require.Equal(t, []uuid.UUID{r.ID}, page.Args.RuleIDs)
	require.Equal(t, evaluation.TriggerManual, page.Args.Trigger)
	runOnce(page)
	_, err = workAgain(ctx, t, b, evaluate, page)
	require.NoError(t, err, "run twice")
	require.Equal(t, 3, evaluations(all.RunID))
	require.Equal(t, 4, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'flagged'`), "acted once per account")
	require.Equal(t, 4, countRows(t, b, `SELECT count(*) FROM evaluations`))
}

// A page of accounts whose evaluation outlasts the engine's budget per job
// stops there and queues the rest of its range as a new job, in the
// transaction that completes it: a slow rule over a thousand accounts never
// runs a job past its timeout, and every account is still evaluated once.
func TestEvaluateAccountsContinuesPastItsBudget(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.engine.WithAccountsBudget(time.Nanosecond) // one account per job
	ctx := rivertest.WorkContext(context.Background(), b.client)
	for _, name := range []string{"Ann", "Bob", "Cy"} {
		activeAccount(t, b, name)
	}
	r := createRule(t, b, rule.Input{Name: "all", EventTypes: []string{"never"}, Condition: `account.won_total >= 0`})
	all, err := engine.NewManual(b.pool, b.client).EvaluateNow(ctx, r.ID, uuid.Nil)
	require.NoError(t, err)
	ofRun := func(args jobs.EvaluateAccounts) bool { return args.RunID == all.RunID }
	fan := onlyJob(t, b, func(args jobs.RulesFanOut) bool { return args.RunID == all.RunID })
	_, err = work(ctx, t, b, worker.NewFanOutWorker(b.pool), fan.JobRow)
	require.NoError(t, err)

	evaluate := worker.NewEvaluateAccountsWorker(b.pool, b.engine)
	for i := range 3 {
		job := onlyJob(t, b, ofRun, rivertype.JobStateAvailable)
		_, err := work(ctx, t, b, evaluate, job.JobRow)
		require.NoError(t, err)
		require.Equal(t, i+1, countRows(t, b, `SELECT count(*) FROM evaluations WHERE run_id = $1`, all.RunID))
	}
	require.Empty(t, jobsOf[jobs.EvaluateAccounts](t, b, nil, rivertype.JobStateAvailable),
		"nothing left after the last account")
	require.Equal(t, 3, countRows(t, b, `SELECT count(DISTINCT account_id) FROM evaluations WHERE run_id = $1`, all.RunID))
}
