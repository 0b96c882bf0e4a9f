package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/worker"
)

// Jobs that run while a batch is in its transaction are processed together
// in the next one: the events of twelve jobs are written by two transactions.
func TestEventsWorkerSharesTransactions(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	// The first transaction to store evaluations sleeps, once.
	_, err := b.pool.Exec(ctx, `
		CREATE TABLE slow_once (x int); INSERT INTO slow_once VALUES (1);
		CREATE FUNCTION slow_once() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			DELETE FROM slow_once;
			IF FOUND THEN PERFORM pg_sleep(1); END IF;
			RETURN NULL;
		END $$;
		CREATE TRIGGER slow_once AFTER INSERT ON evaluations FOR EACH STATEMENT EXECUTE FUNCTION slow_once();`)
	require.NoError(t, err)

	events := make([]*event.Event, 12)
	queued := make([]*river.Job[jobs.EventsProcess], len(events))
	for i := range events {
		events[i] = ingest(t, b, a.ID, "ping", map[string]any{"n": i})
		queued[i] = eventJob(t, b, events[i].ID)
	}
	w := worker.NewBatchingEventsWorker(b.pool, b.engine, 1)

	var wg sync.WaitGroup
	errs := make([]error, len(queued))
	wg.Go(func() { _, errs[0] = work(ctx, t, b, w, queued[0].JobRow) })
	require.Eventually(t, func() bool {
		var n int
		require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'`).Scan(&n))
		return n > 0
	}, 10*time.Second, 5*time.Millisecond, "the first batch is in its transaction")
	for i := 1; i < len(queued); i++ {
		wg.Go(func() { _, errs[i] = work(ctx, t, b, w, queued[i].JobRow) })
	}
	wg.Wait()

	for i, err := range errs {
		require.NoError(t, err)
		requireJobState(t, b, queued[i].ID, rivertype.JobStateCompleted)
		require.Equal(t, event.StatusProcessed, getEvent(t, b, events[i].ID).Status)
		require.Len(t, evaluationsOf(t, b, events[i].ID), 1)
	}
	// Rows written by one transaction share its id.
	require.Equal(t, 2, countRows(t, b, `SELECT count(DISTINCT xmin::text) FROM events`), "two transactions")
}

// A batch is one transaction: when one of its events cannot be processed,
// none is, and every job fails. Their retries run alone, so the others then
// succeed.
func TestEventsWorkerBatchFailsWholeAndRetriesAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF EXISTS (SELECT 1 FROM events WHERE id = NEW.event_id AND payload ? 'poison') THEN
				RAISE EXCEPTION 'poison refused by test';
			END IF;
			RETURN NEW;
		END $$;
		CREATE TRIGGER refuse_poison BEFORE INSERT ON evaluations FOR EACH ROW EXECUTE FUNCTION refuse_poison();`)
	require.NoError(t, err)
	good1 := ingest(t, b, a.ID, "ping", map[string]any{})
	poison := ingest(t, b, a.ID, "ping", map[string]any{"poison": true})
	good2 := ingest(t, b, a.ID, "ping", map[string]any{})
	all := []*event.Event{good1, poison, good2}
	w := worker.NewBatchingEventsWorker(b.pool, b.engine, 1)

	batch := make([]*river.Job[jobs.EventsProcess], len(all))
	for i, ev := range all {
		batch[i] = runningEventJob(t, b, ev.ID)
	}
	require.ErrorContains(t, w.RunBatch(ctx, batch), "poison refused by test")
	for _, ev := range all {
		require.Equal(t, event.StatusPending, getEvent(t, b, ev.ID).Status, "nothing of a failed batch is kept")
		require.Empty(t, evaluationsOf(t, b, ev.ID))
	}

	// Second attempts.
	for _, ev := range all {
		res, err := workEvent(t, b, w, ev.ID)
		require.Equal(t, 2, res.Job.Attempt)
		if ev.ID == poison.ID {
			require.ErrorContains(t, err, "poison refused by test")
			continue
		}
		require.NoError(t, err)
		requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
		require.Equal(t, event.StatusProcessed, getEvent(t, b, ev.ID).Status)
	}
	require.Equal(t, event.StatusPending, getEvent(t, b, poison.ID).Status)
}

// A batch's jobs are completed together, in the transaction of its effects:
// when completion fails, no event of the batch is processed and no job is
// completed; once it can succeed, every job is completed, by one statement.
func TestEventsWorkerBatchCompletesItsJobsWithItsEffects(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	var all []*event.Event
	var batch []*river.Job[jobs.EventsProcess]
	for i := range 3 {
		ev := ingest(t, b, a.ID, "ping", map[string]any{"n": i})
		all = append(all, ev)
		batch = append(batch, runningEventJob(t, b, ev.ID))
	}
	w := worker.NewBatchingEventsWorker(b.pool, b.engine, 1)

	drop := refuseCompletion(t, b)
	require.ErrorContains(t, w.RunBatch(ctx, batch), "refused by test")
	for i, ev := range all {
		require.Equal(t, event.StatusPending, getEvent(t, b, ev.ID).Status, "no effect without completion")
		require.Empty(t, evaluationsOf(t, b, ev.ID))
		requireJobState(t, b, batch[i].ID, rivertype.JobStateRunning)
	}

	drop()
	_, err := b.pool.Exec(ctx, `
		CREATE TABLE completions (n int);
		CREATE FUNCTION count_completions() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN INSERT INTO completions VALUES (1); RETURN NULL; END $$;
		CREATE TRIGGER count_completions AFTER UPDATE ON river_job FOR EACH STATEMENT EXECUTE FUNCTION count_completions();`)
	require.NoError(t, err)
	require.NoError(t, w.RunBatch(ctx, batch))
	for i, ev := range all {
		require.Equal(t, event.StatusProcessed, getEvent(t, b, ev.ID).Status)
		require.Len(t, evaluationsOf(t, b, ev.ID), 1)
		requireJobState(t, b, batch[i].ID, rivertype.JobStateCompleted)
	}
	require.Equal(t, 1, countRows(t, b, `SELECT count(*) FROM completions`), "one statement completes the batch")
}

// A batch whose events are all gone cancels its jobs.
func TestEventsWorkerBatchWithoutEventsIsCancelled(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	var batch []*river.Job[jobs.EventsProcess]
	for range 2 {
		missing := uuid.New()
		_, err := b.client.Insert(ctx, jobs.EventsProcess{EventIDs: []uuid.UUID{missing}}, nil)
		require.NoError(t, err)
		batch = append(batch, runningEventJob(t, b, missing))
	}
	var cancel *rivertype.JobCancelError
	require.ErrorAs(t, worker.NewBatchingEventsWorker(b.pool, b.engine, 1).RunBatch(ctx, batch), &cancel)
}

// A job of half a batch or more runs alone, beside the shared transactions.
func TestEventsWorkerRunsFullJobsAlone(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	a := activeAccount(t, b, "John Doe")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	inputs := make([]event.Input, jobs.EventsPerJob/2)
	for i := range inputs {
		inputs[i] = event.Input{AccountID: a.ID, Type: "ping", Payload: map[string]any{"n": i}}
	}
	evs, _, err := b.events.Ingest(context.Background(), inputs, func(int) string { return "body.events" }, nil)
	require.NoError(t, err)
	small := ingest(t, b, a.ID, "ping", map[string]any{})
	full, one := eventJob(t, b, evs[0].ID), eventJob(t, b, small.ID)
	require.Len(t, full.Args.EventIDs, len(inputs))

	w := worker.NewBatchingEventsWorker(b.pool, b.engine, 1)
	var wg sync.WaitGroup
	var fullErr, oneErr error
	wg.Go(func() { _, fullErr = work(ctx, t, b, w, full.JobRow) })
	wg.Go(func() { _, oneErr = work(ctx, t, b, w, one.JobRow) })
	wg.Wait()
	require.NoError(t, fullErr)
	require.NoError(t, oneErr)
	require.Zero(t, countRows(t, b, `SELECT count(*) FROM events WHERE status <> 'processed'`))
	require.Equal(t, 2, countRows(t, b, `SELECT count(DISTINCT xmin::text) FROM events`), "each job in its own transaction")
}

// A batch that is held up (here by a lock on its account, as a slow rule
// would hold it) does not hold another account's event behind it: that job
// starts a batch beside it and completes while the first still waits.
func TestEventsWorkerSlowBatchDoesNotHoldOtherAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := rivertest.WorkContext(context.Background(), b.client)
	slowAccount := activeAccount(t, b, "Slow Ltd")
	otherAccount := activeAccount(t, b, "Other Ltd")
	createRule(t, b, rule.Input{Name: "any ping", EventTypes: []string{"ping"}, Condition: `true`})
	held := ingest(t, b, slowAccount.ID, "ping", map[string]any{"n": 1})
	other := ingest(t, b, otherAccount.ID, "ping", map[string]any{"n": 2})
	heldJob, otherJob := eventJob(t, b, held.ID), eventJob(t, b, other.ID)

	lock, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = lock.Rollback(context.Background()) }()
	_, err = lock.Exec(ctx, `SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE`, slowAccount.ID)
	require.NoError(t, err)

	w := worker.NewBatchingEventsWorker(b.pool, b.engine, 1)
	heldDone := make(chan error, 1)
	go func() {
		_, err := work(ctx, t, b, w, heldJob.JobRow)
		heldDone <- err
	}()
	require.Eventually(t, func() bool {
		return countRows(t, b, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`) > 0
	}, 10*time.Second, 5*time.Millisecond, "the first batch waits for its account")

	otherDone := make(chan error, 1)
	go func() {
		_, err := work(ctx, t, b, w, otherJob.JobRow)
		otherDone <- err
	}()
	select {
	case err := <-otherDone:
		require.NoError(t, err)
	case <-time.After(30 * time.Second):
		t.Fatal("the other account's event waited for the held batch")
	}
	requireJobState(t, b, otherJob.ID, rivertype.JobStateCompleted)
	require.Equal(t, event.StatusProcessed, getEvent(t, b, other.ID).Status)
	require.Equal(t, event.StatusPending, getEvent(t, b, held.ID).Status, "still held")

	require.NoError(t, lock.Rollback(ctx))
	require.NoError(t, <-heldDone)
	require.Equal(t, event.StatusProcessed, getEvent(t, b, held.ID).Status)
}

// runningEventJob moves the job that processes an event to running, counting
// an attempt, as River's producer does before it hands the job to a worker.
// RunBatch is no River worker, so River's test worker cannot do this for it.
func runningEventJob(t *testing.T, b *testBundle, eventID uuid.UUID) *river.Job[jobs.EventsProcess] {
	t.Helper()
	id := eventJob(t, b, eventID).ID
	_, err := b.pool.Exec(context.Background(), `
		UPDATE river_job SET state = 'running', attempt = attempt + 1, attempted_at = now() WHERE id = $1`, id)
	require.NoError(t, err)
	return jobByID[jobs.EventsProcess](t, b, id)
}
