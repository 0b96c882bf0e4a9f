package worker_test

import (
	"context"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/worker"
)

// activeAccount creates an account and provisions it directly in SQL, so that
// no account.created event or job joins the test's own.
func activeAccount(t *testing.T, b *testBundle, name string) *account.Account {
	t.Helper()
	ctx := context.Background()
	a, err := b.svc.Create(ctx, account.CreateInput{Name: name})
	require.NoError(t, err)
	_, err = b.pool.Exec(ctx, `UPDATE accounts SET status = 'active', activated_at = now() WHERE id = $1`, a.ID)
	require.NoError(t, err)
	got, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	return got
}

// ingest posts one event as the API does.
func ingest(t *testing.T, b *testBundle, accountID uuid.UUID, eventType string, payload map[string]any) *event.Event {
	t.Helper()
	evs, _, err := b.events.Ingest(context.Background(),
		[]event.Input{{AccountID: accountID, Type: eventType, Payload: payload}},
		func(int) string { return "body" }, nil)
	require.NoError(t, err)
	require.Len(t, evs, 1)
	return evs[0]
}

// eventJob is the job that processes an event.
func eventJob(t *testing.T, b *testBundle, eventID uuid.UUID) *river.Job[jobs.EventsProcess] {
	t.Helper()
	return onlyJob(t, b, carries(eventID))
}

// carries selects the jobs that process an event.
func carries(eventID uuid.UUID) func(jobs.EventsProcess) bool {
	return func(args jobs.EventsProcess) bool { return slices.Contains(args.EventIDs, eventID) }
}

// jobsFor counts the jobs that process an event.
func jobsFor(t *testing.T, b *testBundle, eventID uuid.UUID) int {
	t.Helper()
	return len(jobsOf(t, b, carries(eventID)))
}

// workEvent works the job that processes an event with w.
func workEvent(t *testing.T, b *testBundle, w river.Worker[jobs.EventsProcess], eventID uuid.UUID) (*rivertest.WorkResult, error) {
	t.Helper()
	return work(context.Background(), t, b, w, eventJob(t, b, eventID).JobRow)
}

func countRows(t *testing.T, b *testBundle, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func getEvent(t *testing.T, b *testBundle, id uuid.UUID) *event.Event {
	t.Helper()
	ev, err := b.events.Get(context.Background(), id)
	require.NoError(t, err)
	return ev
}

func getAccount(t *testing.T, b *testBundle, id uuid.UUID) *account.Account {
	t.Helper()
	a, err := b.svc.Get(context.Background(), id)
	require.NoError(t, err)
	return a
}

func evaluationsOf(t *testing.T, b *testBundle, eventID uuid.UUID) []*evaluation.Evaluation {
	t.Helper()
	evals, err := evaluation.ForEvent(context.Background(), b.pool, eventID)
	require.NoError(t, err)
	return evals
}

func requireJobState(t *testing.T, b *testBundle, id int64, want rivertype.JobState) {
	t.Helper()
	row, err := b.client.JobGet(context.Background(), id)
	require.NoError(t, err)
	require.Equal(t, want, row.State)
}

func createRule(t *testing.T, b *testBundle, in rule.Input) *rule.Rule {
	t.Helper()
	in.Enabled = true
	r, err := b.rules.Create(context.Background(), in)
	require.NoError(t, err)
	return r
}

// bigWin is the rule of the examples: a large win makes the account a VIP.
func bigWin() rule.Input {
	return rule.Input{
		Name: "big win", EventTypes: []string{event.TypeWon}, Condition: `event.payload.amount > 1000`,
		Actions: []rule.Action{
			{Type: rule.ActionEmitEvent, EventType: "vip_candidate", Payload: map[string]any{"reason": "big win"}},
			{Type: rule.ActionSetAccountStatus, Status: "vip"},
		},
	}
}

// refuseCompletion makes every attempt to complete a job fail until the
// returned function drops the trigger. River has no way to make completion
// fail, so the trigger goes on its table.
func refuseCompletion(t *testing.T, b *testBundle) (drop func()) {
	t.Helper()
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by test'; END $$;
		CREATE TRIGGER refuse BEFORE UPDATE ON river_job FOR EACH ROW
		WHEN (NEW.state = 'completed') EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)
	return func() {
		_, err := b.pool.Exec(ctx, `DROP TRIGGER refuse ON river_job`)
		require.NoError(t, err)
	}
}

func TestEventsWorkerRunTwiceActsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, bigWin())
	ev := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0})
	w := worker.NewEventsWorker(b.pool, b.engine)

	job := eventJob(t, b, ev.ID)
	require.Equal(t, []uuid.UUID{ev.ID}, job.Args.EventIDs)
	_, err := work(ctx, t, b, w, job.JobRow)
	require.NoError(t, err)
	first := getEvent(t, b, ev.ID)
	// A second delivery of the same job (a rescue of a slow run, say).
	_, err = workAgain(ctx, t, b, w, job)
	require.NoError(t, err)

	got := getAccount(t, b, a.ID)
	require.Equal(t, int64(1), got.WonCount, "the amount is added once")
	require.Equal(t, "1500", got.WonTotal.String())
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE id = $1 AND won_applied_at IS NOT NULL`, ev.ID))

	evals := evaluationsOf(t, b, ev.ID)
	require.Len(t, evals, 1)
	e := evals[0]
	require.Equal(t, r.ID, e.RuleID)
	require.Equal(t, 1, e.RuleVersion)
	require.Equal(t, a.ID, e.AccountID)
	require.Equal(t, evaluation.TriggerEvent, e.Trigger)
	require.Nil(t, e.RunID)
	require.True(t, e.Matched)
	require.Nil(t, e.Error)
	require.False(t, e.DepthLimited)

	var (
		followID    uuid.UUID
		causationID *uuid.UUID
		depth       int
		payload     map[string]any
	)
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'vip_candidate'`))
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, causation_id, depth, payload FROM events WHERE type = 'vip_candidate'`).
		Scan(&followID, &causationID, &depth, &payload))
	require.NotNil(t, causationID)
	require.Equal(t, ev.ID, *causationID)
	require.Equal(t, 1, depth)
	require.Equal(t, map[string]any{"reason": "big win"}, payload)
	require.Equal(t, 1, jobsFor(t, b, followID), "the follow-up event has its own job")

	require.Len(t, e.Actions, 2)
	require.Equal(t, rule.ActionEmitEvent, e.Actions[0].Type)
	require.Equal(t, "vip_candidate", e.Actions[0].EventType)
	require.NotNil(t, e.Actions[0].EventID)
	require.Equal(t, followID, *e.Actions[0].EventID)
	require.Empty(t, e.Actions[0].Skipped)
	require.Equal(t, evaluation.ActionResult{Type: rule.ActionSetAccountStatus, Status: "vip", PreviousStatus: account.StatusActive}, e.Actions[1])

	require.Equal(t, "vip", getAccount(t, b, a.ID).Status)
	got = getAccount(t, b, a.ID)
	require.Equal(t, int64(1), got.WonCount)
	processed := getEvent(t, b, ev.ID)
	require.Equal(t, event.StatusProcessed, processed.Status)
	require.NotNil(t, processed.ProcessedAt)
	require.Equal(t, first.ProcessedAt, processed.ProcessedAt, "processed once")
	require.Nil(t, processed.FailureReason)
	requireJobState(t, b, job.ID, rivertype.JobStateCompleted)
}

func TestEventsWorkerEffectAndCompletionAreOneTransaction(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, bigWin())
	ev := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0})
	evaluate := worker.NewEventsWorker(b.pool, b.engine)

	drop := refuseCompletion(t, b)
	_, err := workEvent(t, b, evaluate, ev.ID)
	require.Error(t, err)
	require.Empty(t, evaluationsOf(t, b, ev.ID), "no evaluation without completion")
	require.Zero(t, getAccount(t, b, a.ID).WonCount, "no amount added")
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM events WHERE causation_id IS NOT NULL`), "no follow-up event")
	require.Equal(t, account.StatusActive, getAccount(t, b, a.ID).Status, "no status change")
	got := getEvent(t, b, ev.ID)
	require.Equal(t, event.StatusPending, got.Status)
	require.Nil(t, got.ProcessedAt)
	require.Nil(t, got.FailureReason, "an early attempt does not fail the event")

	drop()
	res, err := workEvent(t, b, evaluate, ev.ID)
	require.NoError(t, err)
	require.Len(t, evaluationsOf(t, b, ev.ID), 1)
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events WHERE causation_id = $1`, ev.ID))
	require.Equal(t, "vip", getAccount(t, b, a.ID).Status)
	require.Equal(t, event.StatusProcessed, getEvent(t, b, ev.ID).Status)
	requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
}

func TestEvaluationUsesRuleVersionCurrentWhenEvaluated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	r := createRule(t, b, bigWin())
	ev := ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0})

	// Version 1 would match the event; version 2 does not.
	cond := `event.payload.amount > 2000`
	updated, err := b.rules.Update(ctx, r.ID, rule.Patch{Condition: &cond})
	require.NoError(t, err)
	require.Equal(t, 2, updated.Version)

	_, err = workEvent(t, b, worker.NewEventsWorker(b.pool, b.engine), ev.ID)
	require.NoError(t, err)

	evals := evaluationsOf(t, b, ev.ID)
	require.Len(t, evals, 1)
	require.Equal(t, r.ID, evals[0].RuleID)
	require.Equal(t, 2, evals[0].RuleVersion)
	require.False(t, evals[0].Matched)
	require.Nil(t, evals[0].Error)
	require.Empty(t, evals[0].Actions)
	require.Equal(t, account.StatusActive, getAccount(t, b, a.ID).Status)
}

func TestEvaluationErrorsAreRecordedNotRetried(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	evaluate := worker.NewEventsWorker(b.pool, b.engine)
	setVIP := []rule.Action{{Type: rule.ActionSetAccountStatus, Status: "vip"}}
	createRule(t, b, rule.Input{Name: "missing key", EventTypes: []string{event.TypeWon},
		Condition: `event.payload.missing > 1`, Actions: setVIP})
	// contains costs a tenth of one string's length times a tenth of the
	// other's: 2,000 × 2,000 = 4,000,000 for 20,000 characters, over
	// rule.CostLimit, and 900 × 900 = 810,000 for 9,000, under it. The strings
	// are compared in a few milliseconds, so the cost limit and not the
	// evaluation deadline ends the expensive one.
	// The write-time estimate refuses it now (both strings may be 32 KiB),
	// but a rule stored before that still runs, under the cost limit.
	expensiveRule := createRule(t, b, rule.Input{Name: "expensive", EventTypes: []string{"probe"}, Condition: `true`})
	storeCondition(t, b, expensiveRule, `event.payload.s.contains(event.payload.s)`)
	// So does one that spent 39 s inside one built-in call: the caps end it.
	stalling := createRule(t, b, rule.Input{Name: "stalling", EventTypes: []string{"stall"}, Condition: `true`})
	storeCondition(t, b, stalling, `lists.range(60000).distinct().size() > 0`)

	run := func(ev *event.Event) *evaluation.Evaluation {
		t.Helper()
		res, err := workEvent(t, b, evaluate, ev.ID)
		require.NoError(t, err, "an evaluation error is the outcome, not a failure")
		requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
		got := getEvent(t, b, ev.ID)
		require.Equal(t, event.StatusProcessed, got.Status)
		require.Nil(t, got.FailureReason)
		evals := evaluationsOf(t, b, ev.ID)
		require.Len(t, evals, 1)
		return evals[0]
	}

	missing := run(ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 1500.0}))
	require.False(t, missing.Matched)
	require.NotNil(t, missing.Error)
	require.Contains(t, *missing.Error, "no such key")
	require.Empty(t, missing.Actions)
	require.Equal(t, account.StatusActive, getAccount(t, b, a.ID).Status, "no action on an error")

	expensive := run(ingest(t, b, a.ID, "probe", map[string]any{"s": strings.Repeat("a", 20_000)}))
	require.False(t, expensive.Matched)
	require.NotNil(t, expensive.Error)
	require.Contains(t, *expensive.Error, "cost limit exceeded")

	cheap := run(ingest(t, b, a.ID, "probe", map[string]any{"s": strings.Repeat("a", 9_000)}))
	require.Nil(t, cheap.Error, "the same condition under the limit")
	require.True(t, cheap.Matched)

	stalled := run(ingest(t, b, a.ID, "stall", map[string]any{}))
	require.False(t, stalled.Matched)
	require.NotNil(t, stalled.Error)
	require.Contains(t, *stalled.Error, "lists.range")
}

// lastAttempt works the job that processes an event with w as its last
// attempt.
func lastAttempt(t *testing.T, b *testBundle, w river.Worker[jobs.EventsProcess], eventID uuid.UUID) (*rivertest.WorkResult, error) {
	t.Helper()
	row := eventJob(t, b, eventID).JobRow
	row.Attempt = row.MaxAttempts - 1 // the test worker counts this attempt from the row given
	return work(context.Background(), t, b, w, row)
}

// storeCondition gives r a condition the way a rule stored before the
// write-time checks has it, past those checks.
func storeCondition(t *testing.T, b *testBundle, r *rule.Rule, condition string) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `UPDATE rules SET condition = $1 WHERE id = $2`, condition, r.ID)
	require.NoError(t, err)
}

// waitIdle waits until no job is waiting, running or due to run again.
func waitIdle(t *testing.T, b *testBundle, also func() bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		res, err := b.client.JobList(context.Background(), river.NewJobListParams().States(busyStates...).First(1))
		return err == nil && len(res.Jobs) == 0 && (also == nil || also())
	}, 30*time.Second, 50*time.Millisecond, "the queue did not settle")
}

func TestLoopGuardEndToEnd(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.Stop(stopCtx))
	})
	r := createRule(t, b, rule.Input{Name: "ping pong", EventTypes: []string{"ping"}, Condition: `true`,
		Actions: []rule.Action{{Type: rule.ActionEmitEvent, EventType: "ping", PayloadExpr: `{'n': event.depth + 1}`}}})
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	root := ingest(t, b, a.ID, "ping", map[string]any{"n": 0})

	waitIdle(t, b, func() bool {
		var n int
		err := b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type = 'ping' AND status = 'processed'`).Scan(&n)
		return err == nil && n == engine.DefaultMaxDepth+1
	})
	require.Zero(t, unfinished(t, b), "no job failed")

	rows, err := b.pool.Query(ctx, `SELECT id, causation_id, depth, payload, status FROM events WHERE type = 'ping' ORDER BY depth`)
	require.NoError(t, err)
	type ping struct {
		id, causation *uuid.UUID
		depth         int
		payload       map[string]any
		status        string
	}
	var chain []ping
	for rows.Next() {
		var p ping
		require.NoError(t, rows.Scan(&p.id, &p.causation, &p.depth, &p.payload, &p.status))
		chain = append(chain, p)
	}
	require.NoError(t, rows.Err())
	require.Len(t, chain, engine.DefaultMaxDepth+1)
	for d, p := range chain {
		require.Equal(t, d, p.depth)
		require.Equal(t, event.StatusProcessed, p.status)
		require.Equal(t, json.Number(strconv.Itoa(d)), p.payload["n"], "read back as stored")
		if d == 0 {
			require.Equal(t, root.ID, *p.id)
			require.Nil(t, p.causation)
		} else {
			require.Equal(t, *chain[d-1].id, *p.causation)
		}
		evals := evaluationsOf(t, b, *p.id)
		require.Len(t, evals, 1)
		e := evals[0]
		require.Equal(t, r.ID, e.RuleID)
		require.True(t, e.Matched)
		require.Len(t, e.Actions, 1)
		if d < engine.DefaultMaxDepth {
			require.False(t, e.DepthLimited)
			require.Empty(t, e.Actions[0].Skipped)
			require.Equal(t, *chain[d+1].id, *e.Actions[0].EventID)
		} else {
			require.True(t, e.DepthLimited)
			require.Equal(t, engine.SkippedDepthLimit, e.Actions[0].Skipped)
			require.Equal(t, "ping", e.Actions[0].EventType)
			require.Nil(t, e.Actions[0].EventID)
		}
	}
	require.Equal(t, account.StatusActive, getAccount(t, b, a.ID).Status)
}

func TestAccountWorkerRecordsAccountCreatedOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	w := workerFor(b)

	job := jobByID[jobs.AccountProvision](t, b, provisionJob(t, b, a.ID).ID)
	_, err = work(ctx, t, b, w, job.JobRow)
	require.NoError(t, err)
	_, err = workAgain(ctx, t, b, w, job)
	require.NoError(t, err)

	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events`))
	var (
		id        uuid.UUID
		accountID uuid.UUID
		depth     int
		status    string
		payload   map[string]any
	)
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT id, account_id, depth, status, payload FROM events WHERE type = $1`,
		event.TypeAccountCreated).Scan(&id, &accountID, &depth, &status, &payload))
	require.Equal(t, a.ID, accountID)
	require.Zero(t, depth)
	require.Equal(t, event.StatusPending, status)
	require.Empty(t, payload)
	require.Equal(t, 1, jobsFor(t, b, id), "the event goes on to its processing")
}

func TestEventIsMarkedFailedOnItsLastAttempt(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	ev := ingest(t, b, a.ID, "ping", map[string]any{})
	evaluate := worker.NewEventsWorker(b.pool, b.engine)
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'evaluations refused by test'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON evaluations FOR EACH ROW EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)

	// An attempt that River will retry leaves the event pending.
	res, err := workEvent(t, b, evaluate, ev.ID)
	require.Less(t, res.Job.Attempt, res.Job.MaxAttempts)
	require.Equal(t, jobs.EventMaxAttempts, res.Job.MaxAttempts)
	require.ErrorContains(t, err, "evaluations refused by test")
	got := getEvent(t, b, ev.ID)
	require.Equal(t, event.StatusPending, got.Status)
	require.Nil(t, got.FailureReason)
	require.Nil(t, got.ProcessedAt)

	// The last attempt fails the event with the reason.
	res, err = lastAttempt(t, b, evaluate, ev.ID)
	require.Equal(t, res.Job.MaxAttempts, res.Job.Attempt)
	require.ErrorContains(t, err, "evaluations refused by test")
	var cancel *rivertype.JobCancelError
	require.NotErrorAs(t, err, &cancel)
	got = getEvent(t, b, ev.ID)
	require.Equal(t, event.StatusFailed, got.Status)
	require.NotNil(t, got.ProcessedAt)
	require.NotNil(t, got.FailureReason)
	require.Contains(t, *got.FailureReason, "gave up after 10 attempts")
	require.Contains(t, *got.FailureReason, "evaluations refused by test")
	require.Empty(t, evaluationsOf(t, b, ev.ID))
}

func TestEventIsMarkedFailedWithALongReason(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	evaluate := worker.NewEventsWorker(b.pool, b.engine)

	// A reason over the stored limit is cut; 'é' takes two bytes, so with or
	// without one more leading byte, one of the two cuts falls inside a
	// character.
	for _, lead := range []string{"", "x"} {
		_, err := b.pool.Exec(ctx, `
			CREATE OR REPLACE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION '%', `+"'"+lead+"'"+` || repeat('é', 3000); END $$;
			CREATE OR REPLACE TRIGGER refuse BEFORE INSERT ON evaluations FOR EACH ROW EXECUTE FUNCTION refuse();`)
		require.NoError(t, err)
		ev := ingest(t, b, a.ID, "ping", map[string]any{})
		_, err = lastAttempt(t, b, evaluate, ev.ID)
		require.ErrorContains(t, err, "ééé")
		msg := err.Error()
		require.False(t, strings.Contains(msg, "mark events failed"), "not marked failed: %s", msg[max(0, len(msg)-200):])
		got := getEvent(t, b, ev.ID)
		require.Equal(t, event.StatusFailed, got.Status)
		require.NotNil(t, got.FailureReason)
		require.True(t, utf8.ValidString(*got.FailureReason))
		require.LessOrEqual(t, len(*got.FailureReason), 2000)
		require.Contains(t, *got.FailureReason, "gave up after 10 attempts")
	}
}

func TestFollowUpEventsThatCannotBeStoredAreActionErrors(t *testing.T) {
	t.Parallel()
	b := setup(t)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "grow", EventTypes: []string{"grow"}, Condition: `true`,
		Actions: []rule.Action{
			// Twice the source's 20,000 characters: over event.MaxPayloadBytes.
			{Type: rule.ActionEmitEvent, EventType: "grown", PayloadExpr: `{'s': event.payload.s + event.payload.s}`},
			// Postgres cannot store NUL in jsonb.
			{Type: rule.ActionEmitEvent, EventType: "nul", PayloadExpr: `{'s': 'a\u0000b'}`},
			{Type: rule.ActionSetAccountStatus, Status: "grown"},
		}})
	ev := ingest(t, b, a.ID, "grow", map[string]any{"s": strings.Repeat("a", 20_000)})

	res, err := workEvent(t, b, worker.NewEventsWorker(b.pool, b.engine), ev.ID)
	require.NoError(t, err)
	requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
	require.Equal(t, event.StatusProcessed, getEvent(t, b, ev.ID).Status)
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM events`), "no follow-up event")

	evals := evaluationsOf(t, b, ev.ID)
	require.Len(t, evals, 1)
	require.True(t, evals[0].Matched)
	actions := evals[0].Actions
	require.Len(t, actions, 3)
	for _, res := range actions[:2] {
		require.Nil(t, res.EventID)
		require.NotEmpty(t, res.Error)
	}
	require.Contains(t, actions[0].Error, "bytes")
	require.Contains(t, actions[1].Error, "NUL")
	require.Empty(t, actions[2].Error)
	require.Equal(t, "grown", getAccount(t, b, a.ID).Status, "the other actions are taken")
}

// A job of several events processes them in order, each seeing the totals and
// the status the ones before it left, as separate jobs would.
func TestEventsWorkerProcessesABatchInOrder(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	john, jane := activeAccount(t, b, "John Doe"), activeAccount(t, b, "Jane Roe")
	second := createRule(t, b, rule.Input{Name: "second win", EventTypes: []string{event.TypeWon},
		Condition: `account.won_count == 2 && account.won_total == 300.0`,
		Actions:   []rule.Action{{Type: rule.ActionSetAccountStatus, Status: "regular"}}})
	regular := createRule(t, b, rule.Input{Name: "regular", EventTypes: []string{event.TypeWon},
		Condition: `account.status == 'regular'`})

	in := func(a *account.Account, amount float64) event.Input {
		return event.Input{AccountID: a.ID, Type: event.TypeWon, Payload: map[string]any{"amount": amount}}
	}
	evs, _, err := b.events.Ingest(context.Background(),
		[]event.Input{in(john, 100), in(jane, 5), in(john, 200), in(john, 300)},
		func(i int) string { return "body.events" }, nil)
	require.NoError(t, err)
	require.Len(t, evs, 4)

	job := eventJob(t, b, evs[0].ID)
	require.ElementsMatch(t, []uuid.UUID{evs[0].ID, evs[1].ID, evs[2].ID, evs[3].ID}, job.Args.EventIDs, "one job for the batch")
	_, err = work(ctx, t, b, worker.NewEventsWorker(b.pool, b.engine), job.JobRow)
	require.NoError(t, err)
	requireJobState(t, b, job.ID, rivertype.JobStateCompleted)

	matched := func(ev *event.Event) map[uuid.UUID]bool {
		out := map[uuid.UUID]bool{}
		for _, e := range evaluationsOf(t, b, ev.ID) {
			out[e.RuleID] = e.Matched
		}
		return out
	}
	require.Equal(t, map[uuid.UUID]bool{second.ID: false, regular.ID: false}, matched(evs[0]))
	require.Equal(t, map[uuid.UUID]bool{second.ID: false, regular.ID: false}, matched(evs[1]))
	require.Equal(t, map[uuid.UUID]bool{second.ID: true, regular.ID: false}, matched(evs[2]),
		"the second win sees both amounts; the rules of one event all see the account as the event found it")
	require.Equal(t, map[uuid.UUID]bool{second.ID: false, regular.ID: true}, matched(evs[3]), "the next event sees the new status")

	got := getAccount(t, b, john.ID)
	require.Equal(t, "regular", got.Status)
	require.Equal(t, int64(3), got.WonCount)
	require.Equal(t, "600", got.WonTotal.String())
	got = getAccount(t, b, jane.ID)
	require.Equal(t, account.StatusActive, got.Status)
	require.Equal(t, int64(1), got.WonCount)
	require.Equal(t, "5", got.WonTotal.String())
	for _, ev := range evs {
		require.Equal(t, event.StatusProcessed, getEvent(t, b, ev.ID).Status)
	}
}

// A job whose events no longer exist is cancelled, not retried.
func TestEventsJobWithoutEventsIsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	missing := uuid.New()
	_, err := b.client.Insert(ctx, jobs.EventsProcess{EventIDs: []uuid.UUID{missing}}, nil)
	require.NoError(t, err)
	res, err := workEvent(t, b, worker.NewEventsWorker(b.pool, b.engine), missing)
	require.NoError(t, err, "a cancelled job is no failure")
	require.Equal(t, river.EventKindJobCancelled, res.EventKind)
	require.Equal(t, rivertype.JobStateCancelled, res.Job.State)
}

// The whole cascade of one root event is bounded, not only its depth: a rule
// that emits two events of its own type would double at every level, and
// stops at the cascade limit, the emits beyond it recorded as skipped.
func TestCascadeBreadthIsBounded(t *testing.T) {
	t.Parallel()
	const limit = 20
	b := setup(t)
	b.engine.WithCascadeLimit(limit)
	ctx := context.Background()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.Stop(stopCtx))
	})
	fan := rule.Action{Type: rule.ActionEmitEvent, EventType: "fan", Payload: map[string]any{}}
	createRule(t, b, rule.Input{Name: "fan out", EventTypes: []string{"fan"}, Condition: `true`,
		Actions: []rule.Action{fan, fan}})
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)
	root := ingest(t, b, a.ID, "fan", map[string]any{})

	waitIdle(t, b, func() bool {
		return countRows(t, b, `SELECT count(*) FROM events WHERE status = 'pending'`) == 0
	})
	require.Equal(t, limit, countRows(t, b, `SELECT count(*) FROM events WHERE type = 'fan' AND causation_id IS NOT NULL`),
		"follow-ups of one root event")
	require.Zero(t, unfinished(t, b), "no job failed")
	require.Positive(t, countRows(t, b, `
		SELECT count(*) FROM evaluations, jsonb_array_elements(actions) a
		WHERE a->>'skipped' = '`+engine.SkippedCascadeLimit+`'`), "skipped emits are recorded")
	var rooted int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE root_id = $1`, root.ID).Scan(&rooted))
	require.Equal(t, limit, rooted, "every follow-up names its root")
}
