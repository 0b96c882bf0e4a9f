package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/worker"
)

// storedEvent stores an event the events worker has already processed, as
// history is, without evaluating anything.
func storedEvent(t *testing.T, b *testBundle, accountID uuid.UUID, eventType string, amount float64, occurred time.Time) uuid.UUID {
	t.Helper()
	id, err := uuid.NewV7()
	require.NoError(t, err)
	_, err = b.pool.Exec(context.Background(), `
		INSERT INTO events (id, account_id, type, payload, occurred_at, received_at, status, processed_at)
		VALUES ($1, $2, $3, jsonb_build_object('amount', $4::numeric), $5, now(), 'processed', now())`,
		id, accountID, eventType, amount, occurred)
	require.NoError(t, err)
	return id
}

// storedEvents stores n processed won events of amount 1500 in one
// statement, occurred an hour ago.
func storedEvents(t *testing.T, b *testBundle, accountID uuid.UUID, n int) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO events (id, account_id, type, payload, occurred_at, received_at, status, processed_at)
		SELECT CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
			placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
			52, 1), 53, 1), 'hex') AS uuid), $1, 'won', '{"amount": 1500}', now() - interval '1 hour', now(), 'processed', now()
		FROM generate_series(1, $2)`, accountID, n)
	require.NoError(t, err)
}

func startBackfill(t *testing.T, b *testBundle, in backfill.Input) *backfill.Backfill {
	t.Helper()
	bf, err := backfill.NewService(b.pool, b.client).Create(context.Background(), in)
	require.NoError(t, err)
	return bf
}

func getBackfill(t *testing.T, b *testBundle, id uuid.UUID) *backfill.Backfill {
	t.Helper()
	bf, err := backfill.Get(context.Background(), b.pool, id)
	require.NoError(t, err)
	return bf
}

// pageJob is the backfill's one page job waiting to run.
func pageJob(t *testing.T, b *testBundle, id uuid.UUID) *rivertype.JobRow {
	t.Helper()
	return onlyJob(t, b, func(args jobs.BackfillPage) bool { return args.BackfillID == id }, busyStates...).JobRow
}

// runBackfill works the backfill's page jobs one after the other until none
// is left, and returns the backfill.
func runBackfill(t *testing.T, b *testBundle, id uuid.UUID) *backfill.Backfill {
	t.Helper()
	w := worker.NewBackfillWorker(b.pool, b.engine)
	for range 100 {
		waiting := jobsOf(t, b, func(args jobs.BackfillPage) bool { return args.BackfillID == id }, busyStates...)
		if len(waiting) == 0 {
			return getBackfill(t, b, id)
		}
		require.Len(t, waiting, 1, "one page at a time")
		_, err := work(context.Background(), t, b, w, waiting[0].JobRow)
		require.NoError(t, err)
	}
	t.Fatal("the backfill did not finish")
	return nil
}

func backfillEvaluations(t *testing.T, b *testBundle, id uuid.UUID) map[uuid.UUID]*evaluation.Evaluation {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT event_id FROM evaluations WHERE backfill_id = $1`, id)
	require.NoError(t, err)
	out := map[uuid.UUID]*evaluation.Evaluation{}
	for rows.Next() {
		var eventID uuid.UUID
		require.NoError(t, rows.Scan(&eventID))
		for _, e := range evaluationsOf(t, b, eventID) {
			if e.BackfillID != nil && *e.BackfillID == id {
				out[eventID] = e
			}
		}
	}
	require.NoError(t, rows.Err())
	return out
}

func TestBackfillDryRunRecordsEvaluationsAndTakesNoActions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, bigWin())
	now := time.Now()
	big := storedEvent(t, b, a.ID, event.TypeWon, 1500, now.Add(-2*time.Hour))
	small := storedEvent(t, b, a.ID, event.TypeWon, 500, now.Add(-2*time.Hour))
	bigger := storedEvent(t, b, a.ID, event.TypeWon, 2000, now.Add(-90*time.Minute))
	storedEvent(t, b, a.ID, event.TypeWon, 5000, now.Add(-5*time.Hour)) // before from
	storedEvent(t, b, a.ID, "deposit", 5000, now.Add(-2*time.Hour))     // a type the rule is not for
	pending := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 3000.0})

	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: now.Add(-3 * time.Hour), Mode: backfill.ModeDryRun})
	require.Equal(t, backfill.StatePending, bf.State)
	require.Equal(t, r.Version, bf.RuleVersion)
	require.Equal(t, []string{event.TypeWon}, bf.EventTypes, "the rule's types by default")
	row := pageJob(t, b, bf.ID)
	require.Equal(t, queue.Backfill, row.Queue)
	require.Equal(t, "backfill.page", row.Kind)

	bf = runBackfill(t, b, bf.ID)
	require.Equal(t, backfill.StateSucceeded, bf.State)
	require.NotNil(t, bf.StartedAt)
	require.NotNil(t, bf.FinishedAt)
	require.Equal(t, backfill.Totals{Scanned: 5, Evaluated: 3, Matched: 2, Skipped: 1}, bf.Totals,
		"the won events received since from less a day; the pending one is skipped")

	evals := backfillEvaluations(t, b, bf.ID)
	require.Len(t, evals, 3)
	require.True(t, evals[big].Matched)
	require.False(t, evals[small].Matched)
	require.True(t, evals[bigger].Matched)
	for eventID, e := range evals {
		require.Equal(t, evaluation.TriggerBackfill, e.Trigger)
		require.Equal(t, r.Version, e.RuleVersion)
		require.Empty(t, e.Actions, "a dry run takes no actions")
		require.Equal(t, eventID[:6], e.ID[:6], "the evaluation id carries the event's time")
		require.Equal(t, uuid.Version(7), e.ID.Version())
		require.Equal(t, uuid.RFC4122, e.ID.Variant())
	}
	require.Empty(t, evaluationsOf(t, b, pending.ID))
	require.Equal(t, account.StatusActive, getAccount(t, b, a.ID).Status)
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'vip_candidate'`))
}

func TestBackfillApplyActsOncePerRuleVersionAndEvent(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	other := activeAccount(t, b, "Jane Doe")
	in := bigWin()
	in.Actions = in.Actions[:1] // emit_event only
	r := createRule(t, b, in)
	// One event the events worker evaluated with this version.
	live := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0})
	_, err := workEvent(t, b, worker.NewEventsWorker(b.pool, b.engine), live.ID)
	require.NoError(t, err)
	require.Len(t, evaluationsOf(t, b, live.ID), 1)
	// Two from before the rule.
	old1 := storedEvent(t, b, a.ID, event.TypeWon, 1500, time.Now().Add(-time.Hour))
	old2 := storedEvent(t, b, other.ID, event.TypeWon, 2500, time.Now().Add(-time.Hour))
	followUps := func() int {
		return countRows(t, b, `SELECT count(*) FROM events WHERE type = 'vip_candidate'`)
	}
	require.Equal(t, 1, followUps())
	from := time.Now().Add(-2 * time.Hour)

	// A dry run first takes nothing away from the apply after it.
	dry := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: from, Mode: backfill.ModeDryRun}).ID)
	require.Equal(t, int64(3), dry.Evaluated)
	require.Equal(t, 1, followUps())

	apply := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: from, Mode: backfill.ModeApply})
	_, err = backfill.NewService(b.pool, b.client).Create(ctx, backfill.Input{RuleID: r.ID, From: from, Mode: backfill.ModeApply})
	require.ErrorIs(t, err, backfill.ErrApplyActive, "one apply backfill of a rule at a time")
	apply = runBackfill(t, b, apply.ID)
	require.Equal(t, backfill.StateSucceeded, apply.State)
	require.Equal(t, int64(2), apply.Evaluated)
	require.Equal(t, int64(1), apply.Skipped, "the event evaluated live is skipped")
	require.Equal(t, 3, followUps(), "one follow-up for each old event")
	evals := backfillEvaluations(t, b, apply.ID)
	require.Len(t, evals, 2)
	for _, id := range []uuid.UUID{old1, old2} {
		require.Len(t, evals[id].Actions, 1)
		require.NotNil(t, evals[id].Actions[0].EventID)
		require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE causation_id = $1`, id))
	}

	// The same range again acts on nothing.
	again := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: from, Mode: backfill.ModeApply}).ID)
	require.Equal(t, backfill.StateSucceeded, again.State)
	require.Zero(t, again.Evaluated)
	require.Equal(t, int64(3), again.Skipped)
	require.Equal(t, 3, followUps())

	// A new version of the rule acts again, once.
	_, err = b.rules.Update(ctx, r.ID, rule.Patch{Condition: ptr(`event.payload.amount > 2000`)})
	require.NoError(t, err)
	v2 := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: from, Mode: backfill.ModeApply}).ID)
	require.Equal(t, 2, v2.RuleVersion)
	require.Equal(t, int64(3), v2.Evaluated)
	require.Equal(t, int64(1), v2.Matched)
	require.Equal(t, 4, followUps())
	require.Equal(t, 2, countRows(t, b, `SELECT count(*) FROM events WHERE causation_id = $1`, old2))
}

func ptr[T any](v T) *T { return &v }

func TestBackfillApplyChangesStatusInEventOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, rule.Input{
		Name: "promote", EventTypes: []string{event.TypeWon}, Condition: `account.status == 'active'`,
		Actions: []rule.Action{{Type: rule.ActionSetAccountStatus, Status: "vip"}},
	})
	first := storedEvent(t, b, a.ID, event.TypeWon, 10, time.Now().Add(-time.Hour))
	second := storedEvent(t, b, a.ID, event.TypeWon, 10, time.Now().Add(-time.Hour))

	bf := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeApply}).ID)
	require.Equal(t, int64(1), bf.Matched, "the second event sees the status the first set")
	evals := backfillEvaluations(t, b, bf.ID)
	require.True(t, evals[first].Matched)
	require.False(t, evals[second].Matched)
	require.Equal(t, "vip", getAccount(t, b, a.ID).Status)
}

func TestBackfillFilters(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	other := activeAccount(t, b, "Jane Doe")
	r := createRule(t, b, rule.Input{Name: "any", EventTypes: []string{event.TypeWon, "deposit"}, Condition: `true`})
	from := time.Now().Add(-2 * time.Hour).UTC().Truncate(time.Second)
	to := from.Add(time.Hour)
	atFrom := storedEvent(t, b, a.ID, "deposit", 1, from)
	storedEvent(t, b, a.ID, "deposit", 1, to) // to is exclusive
	storedEvent(t, b, a.ID, "deposit", 1, from.Add(-time.Microsecond))
	justBeforeTo := storedEvent(t, b, a.ID, "deposit", 1, to.Add(-time.Microsecond))
	storedEvent(t, b, a.ID, event.TypeWon, 1, from.Add(time.Minute))     // another type
	storedEvent(t, b, other.ID, "deposit", 1, from.Add(time.Minute))     // another account
	storedEvent(t, b, a.ID, "withdrawal", 1, from.Add(time.Minute))      // a type the rule is not for
	storedEvent(t, b, a.ID, "deposit", 1, time.Now().Add(-48*time.Hour)) // long before

	bf := runBackfill(t, b, startBackfill(t, b, backfill.Input{
		RuleID: r.ID, From: from, To: &to, EventTypes: []string{"deposit"}, AccountID: a.ID, Mode: backfill.ModeDryRun,
	}).ID)
	require.Equal(t, backfill.StateSucceeded, bf.State)
	evals := backfillEvaluations(t, b, bf.ID)
	require.Len(t, evals, 2)
	require.Contains(t, evals, atFrom, "from is inclusive")
	require.Contains(t, evals, justBeforeTo)

	byType := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: from, To: &to, Mode: backfill.ModeDryRun}).ID)
	require.Equal(t, int64(4), byType.Evaluated, "both of the rule's types, both accounts")
}

func TestBackfillResumesWhereItsLastPageCommitted(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, rule.Input{Name: "big", EventTypes: []string{event.TypeWon}, Condition: `event.payload.amount > 1000`})
	n := 2*backfill.PageSize + backfill.PageSize/4 // the third page is not full
	storedEvents(t, b, a.ID, n)
	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeDryRun})
	w := worker.NewBackfillWorker(b.pool, b.engine)
	evaluated := func() int {
		return countRows(t, b, `SELECT count(*) FROM evaluations WHERE backfill_id = $1`, bf.ID)
	}

	// The first page fails to complete its job: nothing of it stays.
	drop := refuseCompletion(t, b)
	first := pageJob(t, b, bf.ID)
	_, err := work(context.Background(), t, b, w, first)
	require.Error(t, err)
	require.Zero(t, evaluated())
	got := getBackfill(t, b, bf.ID)
	require.Nil(t, got.ScanAfter)
	require.Zero(t, got.Pages)
	require.Equal(t, backfill.StatePending, got.State)
	drop()

	// Run again, it commits its page with the position and the next job.
	_, err = work(context.Background(), t, b, w, pageJob(t, b, bf.ID))
	require.NoError(t, err)
	require.Equal(t, backfill.PageSize, evaluated())
	got = getBackfill(t, b, bf.ID)
	require.Equal(t, backfill.StateRunning, got.State)
	require.Equal(t, 1, got.Pages)
	require.NotNil(t, got.ScanAfter)
	next := pageJob(t, b, bf.ID)
	require.NotEqual(t, first.ID, next.ID)

	// A stale copy of the first page's job does nothing.
	_, err = workAgain(context.Background(), t, b, w, jobByID[jobs.BackfillPage](t, b, first.ID))
	require.NoError(t, err)
	require.Equal(t, backfill.PageSize, evaluated())

	got = runBackfill(t, b, bf.ID)
	require.Equal(t, backfill.StateSucceeded, got.State)
	require.Equal(t, n, evaluated(), "every event once")
	require.Equal(t, n, countRows(t, b, `SELECT count(DISTINCT event_id) FROM evaluations WHERE backfill_id = $1`, bf.ID))
	require.Equal(t, int64(n), got.Evaluated)
	require.Equal(t, int64(n), got.Matched)
	require.Equal(t, 3, got.Pages)
}

func TestBackfillCancelStopsAtAPageBoundary(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, rule.Input{Name: "big", EventTypes: []string{event.TypeWon}, Condition: `true`})
	storedEvents(t, b, a.ID, backfill.PageSize+10)
	svc := backfill.NewService(b.pool, b.client)
	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeDryRun})
	w := worker.NewBackfillWorker(b.pool, b.engine)
	_, err := work(ctx, t, b, w, pageJob(t, b, bf.ID))
	require.NoError(t, err)

	cancelled, err := svc.Cancel(ctx, bf.ID)
	require.NoError(t, err)
	require.Equal(t, backfill.StateCancelled, cancelled.State)
	require.NotNil(t, cancelled.FinishedAt)
	again, err := svc.Cancel(ctx, bf.ID)
	require.NoError(t, err)
	require.Equal(t, cancelled.FinishedAt, again.FinishedAt, "cancelling again changes nothing")

	res, err := work(ctx, t, b, w, pageJob(t, b, bf.ID))
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	require.Equal(t, backfill.PageSize, countRows(t, b, `SELECT count(*) FROM evaluations WHERE backfill_id = $1`, bf.ID),
		"the page before the cancellation stays; none runs after")
	require.Empty(t, jobsOf(t, b, func(args jobs.BackfillPage) bool { return args.BackfillID == bf.ID }, busyStates...))

	done := runBackfill(t, b, startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeDryRun}).ID)
	_, err = svc.Cancel(ctx, done.ID)
	require.ErrorIs(t, err, backfill.ErrFinished)
}

func TestBackfillIsMarkedFailedOnItsLastAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, rule.Input{Name: "big", EventTypes: []string{event.TypeWon}, Condition: `true`})
	storedEvent(t, b, a.ID, event.TypeWon, 1, time.Now().Add(-time.Hour))
	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeDryRun})
	row := pageJob(t, b, bf.ID)
	_, err := b.pool.Exec(context.Background(), `UPDATE river_job SET attempt = max_attempts - 1 WHERE id = $1`, row.ID)
	require.NoError(t, err)
	row, err = b.client.JobGet(context.Background(), row.ID)
	require.NoError(t, err)

	drop := refuseCompletion(t, b)
	defer drop()
	_, err = work(context.Background(), t, b, worker.NewBackfillWorker(b.pool, b.engine), row)
	require.Error(t, err)
	got := getBackfill(t, b, bf.ID)
	require.Equal(t, backfill.StateFailed, got.State)
	require.NotNil(t, got.FailureReason)
	require.Contains(t, *got.FailureReason, "gave up after 5 attempts")
	require.NotNil(t, got.FinishedAt)
}

// Live events processed while an apply backfill walks over them: whichever
// comes first, the rule version acts on each event once.
func TestBackfillApplyBesideLiveEventsActsOnceEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := activeAccount(t, b, "John Doe")
	in := bigWin()
	in.Actions = in.Actions[:1] // emit_event only
	r := createRule(t, b, in)
	storedEvents(t, b, a.ID, backfill.PageSize+100)
	var live []uuid.UUID
	for range 30 {
		live = append(live, ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0}).ID)
	}
	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeApply})

	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.Stop(stopCtx))
	})
	for range 30 {
		live = append(live, ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0}).ID)
	}
	// The follow-up events the backfill emits are left to the events worker.
	require.Eventually(t, func() bool {
		return getBackfill(t, b, bf.ID).State == backfill.StateSucceeded &&
			countRows(t, b, `SELECT count(*) FROM events WHERE type = 'won' AND status <> 'processed'`) == 0
	}, 30*time.Second, 50*time.Millisecond)
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM river_job WHERE state IN ('retryable', 'discarded', 'cancelled')`), "no job failed")

	require.Zero(t, countRows(t, b, `
		SELECT count(*) FROM (
			SELECT event_id FROM evaluations
			WHERE rule_id = $1 AND (trigger = 'event' OR backfill_id = $2)
			GROUP BY event_id HAVING count(*) > 1) twice`, r.ID, bf.ID), "no event acted on twice")
	require.Zero(t, countRows(t, b, `
		SELECT count(*) FROM (
			SELECT causation_id FROM events WHERE type = 'vip_candidate'
			GROUP BY causation_id HAVING count(*) > 1) twice`), "no event followed up twice")
	won := countRows(t, b, `SELECT count(*) FROM events WHERE type = 'won'`)
	require.Equal(t, won, countRows(t, b, `SELECT count(DISTINCT causation_id) FROM events WHERE type = 'vip_candidate'`),
		"every won event followed up once, live or by the backfill")
	got := getBackfill(t, b, bf.ID)
	require.Equal(t, int64(backfill.PageSize+100), got.Evaluated, "the stored events, by the backfill")
	require.Equal(t, int64(30), got.Skipped, "the events posted before it, left to the events worker or skipped as acted on")
	for _, id := range live {
		require.Equal(t, event.StatusProcessed, getEvent(t, b, id).Status)
	}
}

func TestBackfillApplyStopsWhenItsRuleIsDisabled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, bigWin())
	storedEvent(t, b, a.ID, event.TypeWon, 1500, time.Now().Add(-time.Hour))
	bf := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeApply})
	dry := startBackfill(t, b, backfill.Input{RuleID: r.ID, From: time.Now().Add(-2 * time.Hour), Mode: backfill.ModeDryRun})
	_, err := b.rules.Update(ctx, r.ID, rule.Patch{Enabled: ptr(false)})
	require.NoError(t, err)

	got := runBackfill(t, b, bf.ID)
	require.Equal(t, backfill.StateCancelled, got.State)
	require.NotNil(t, got.FailureReason)
	require.Equal(t, backfill.RuleOff, *got.FailureReason)
	require.Zero(t, got.Pages)
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM evaluations WHERE backfill_id = $1`, bf.ID))
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'vip_candidate'`))

	require.Equal(t, backfill.StateSucceeded, runBackfill(t, b, dry.ID).State, "a dry run goes on")
}
