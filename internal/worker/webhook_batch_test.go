package worker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/webhook"
	"github.com/ctrader/ctrader/internal/worker"
)

// matchTogether posts n big wins and processes them in one transaction, as
// a batch of events jobs is, and returns their deliveries.
func (f *hookFixture) matchTogether(t *testing.T, n int) []uuid.UUID {
	t.Helper()
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = ingest(t, f.testBundle, f.acct.ID, event.TypeWon, map[string]any{"amount": 1500.0}).ID
	}
	require.NoError(t, db.InTx(f.ctx, f.pool, func(tx pgx.Tx) error {
		return f.engine.ProcessEvents(f.ctx, tx, f.client, ids)
	}))
	var deliveries []uuid.UUID
	for _, id := range ids {
		evals := evaluationsOf(t, f.testBundle, id)
		require.Len(t, evals, 1)
		require.NotNil(t, evals[0].Actions[0].DeliveryID)
		deliveries = append(deliveries, *evals[0].Actions[0].DeliveryID)
	}
	return deliveries
}

// batchJob is the one job the deliveries name, which must be a batch job
// holding exactly them.
func (f *hookFixture) batchJob(t *testing.T, deliveries []uuid.UUID) *rivertype.JobRow {
	t.Helper()
	row := f.job(t, deliveries[0])
	for _, id := range deliveries[1:] {
		require.Equal(t, row.ID, f.job(t, id).ID, "the deliveries share a job")
	}
	require.Equal(t, jobs.WebhookDeliverBatch{}.Kind(), row.Kind)
	var args jobs.WebhookDeliverBatch
	require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
	require.ElementsMatch(t, deliveries, args.DeliveryIDs)
	return row
}

func (f *hookFixture) batchWorker() *worker.WebhookBatchWorker {
	return worker.NewWebhookBatchWorker(f.pool, webhook.NewSender(f.svc, egress.NewClient(loopback)), 5*time.Second)
}

func TestWebhookDeliveriesOfOneTransactionShareAJob(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	deliveries := f.matchTogether(t, 3)
	row := f.batchJob(t, deliveries)

	_, err := work(f.ctx, t, f.testBundle, river.Worker[jobs.WebhookDeliverBatch](f.batchWorker()), row)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, row.ID, rivertype.JobStateCompleted)

	got := f.recv.requests()
	require.Len(t, got, 3)
	seen := make(map[string]bool)
	for _, req := range got {
		require.NoError(t, req.verified[f.secret], "each request is signed")
		seen[req.header.Get("webhook-id")] = true
	}
	for _, id := range deliveries {
		require.True(t, seen[id.String()], "delivery %s was sent", id)
		d, attempts := f.delivery(t, id)
		require.Equal(t, webhook.StatusSucceeded, d.Status)
		require.Equal(t, 1, d.Attempts)
		require.Len(t, attempts, 1)
		require.Equal(t, 1, attempts[0].Attempt)
		require.Equal(t, row.ID, *d.JobID, "no other job was made")
	}
	require.Equal(t, 1, countRows(t, f.testBundle, `SELECT count(*) FROM river_job WHERE kind LIKE 'webhook.%'`))
}

func TestWebhookBatchFailuresContinueOnJobsOfTheirOwn(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: fail(http.StatusServiceUnavailable)})
	deliveries := f.matchTogether(t, 2)
	row := f.batchJob(t, deliveries)

	before := time.Now()
	_, err := work(f.ctx, t, f.testBundle, river.Worker[jobs.WebhookDeliverBatch](f.batchWorker()), row)
	after := time.Now()
	require.NoError(t, err, "an endpoint's failure is the delivery's, not the batch job's")
	requireJobState(t, f.testBundle, row.ID, rivertype.JobStateCompleted)

	for _, id := range deliveries {
		d, attempts := f.delivery(t, id)
		require.Equal(t, webhook.StatusPending, d.Status)
		require.Equal(t, 1, d.Attempts)
		require.Len(t, attempts, 1)
		require.NotNil(t, d.NextAttemptAt)
		require.WithinRange(t, *d.NextAttemptAt, before.Add(webhook.RetrySchedule[0]), after.Add(webhook.RetrySchedule[0]))

		// The delivery's own job is due when its next attempt is, and has
		// the attempts left.
		own := f.job(t, id)
		require.NotEqual(t, row.ID, own.ID)
		require.Equal(t, jobs.WebhookDeliver{}.Kind(), own.Kind)
		require.Equal(t, webhook.MaxAttempts-1, own.MaxAttempts)
		require.WithinDuration(t, *d.NextAttemptAt, own.ScheduledAt, time.Millisecond)
		require.Len(t, deliveryJobs(t, f, id), 1)
	}

	// The next attempt is the delivery's second: it is numbered so, and a
	// failure waits the schedule's second step.
	before = time.Now()
	job, err := f.attempt(t, deliveries[0])
	after = time.Now()
	requireFailedAttempt(t, err)
	require.Equal(t, 1, job.Attempt)
	require.Equal(t, 1, job.Args.AttemptsBefore)
	d, attempts := f.delivery(t, deliveries[0])
	require.Equal(t, 2, d.Attempts)
	require.Len(t, attempts, 2)
	require.Equal(t, 2, attempts[1].Attempt)
	requireNextRetry(t, f, job, before, after, webhook.RetrySchedule[1], time.Second)

	// Its last attempt gives up, as a delivery's tenth attempt does.
	_, err = f.attemptNumber(t, deliveries[0], webhook.MaxAttempts-1)
	requireFailedAttempt(t, err)
	d, _ = f.delivery(t, deliveries[0])
	require.Equal(t, webhook.StatusFailed, d.Status)
}

func TestWebhookBatchAbandonsDeliveriesToADisabledEndpoint(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	deliveries := f.matchTogether(t, 2)
	row := f.batchJob(t, deliveries)
	disabled := false
	_, err := f.svc.Update(f.ctx, f.ep.ID, webhook.Patch{Enabled: &disabled})
	require.NoError(t, err)

	_, err = work(f.ctx, t, f.testBundle, river.Worker[jobs.WebhookDeliverBatch](f.batchWorker()), row)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, row.ID, rivertype.JobStateCompleted)
	require.Empty(t, f.recv.requests())
	for _, id := range deliveries {
		d, attempts := f.delivery(t, id)
		require.Equal(t, webhook.StatusFailed, d.Status)
		require.Empty(t, attempts)
		require.Contains(t, *d.LastError, "disabled")
	}
}

func TestWebhookBatchLeavesAReplayedDeliveryToItsNewJob(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	deliveries := f.matchTogether(t, 2)
	row := f.batchJob(t, deliveries)
	// The first delivery moves to a job of its own, as a replay through
	// River UI or a rescue might leave it.
	res, err := f.client.Insert(f.ctx, jobs.WebhookDeliver{DeliveryID: deliveries[0]}, nil)
	require.NoError(t, err)
	_, err = f.pool.Exec(f.ctx, `UPDATE webhook_deliveries SET job_id = $2 WHERE id = $1`, deliveries[0], res.Job.ID)
	require.NoError(t, err)

	_, err = work(context.Background(), t, f.testBundle, river.Worker[jobs.WebhookDeliverBatch](f.batchWorker()), row)
	require.NoError(t, err)
	got := f.recv.requests()
	require.Len(t, got, 1)
	require.Equal(t, deliveries[1].String(), got[0].header.Get("webhook-id"))
	d, _ := f.delivery(t, deliveries[0])
	require.Equal(t, webhook.StatusPending, d.Status)
	require.Zero(t, d.Attempts)
}

func TestOneWebhookDeliveryGetsItsOwnJob(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{})
	deliveries := f.matchTogether(t, 1)
	require.Equal(t, jobs.WebhookDeliver{}.Kind(), f.job(t, deliveries[0]).Kind)
}

// A batch job sends webhook.SendConcurrency deliveries at a time and starts
// no send after its timeout: what it did not get to continues at once on
// jobs of their own, with no attempt counted, so a slow endpoint neither
// holds a batch past its time nor loses a delivery.
func TestWebhookBatchHandsOnWhatItDidNotSendInTime(t *testing.T) {
	t.Parallel()
	f := newHook(t, hookOptions{respond: func(_ int, w http.ResponseWriter) {
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}})
	n := webhook.SendConcurrency + 4
	require.LessOrEqual(t, n, webhook.BatchSize)
	deliveries := f.matchTogether(t, n)
	row := f.batchJob(t, deliveries)

	batch := worker.NewWebhookBatchWorker(f.pool, webhook.NewSender(f.svc, egress.NewClient(loopback)), 100*time.Millisecond)
	_, err := work(f.ctx, t, f.testBundle, river.Worker[jobs.WebhookDeliverBatch](batch), row)
	require.NoError(t, err)
	requireJobState(t, f.testBundle, row.ID, rivertype.JobStateCompleted)
	require.Len(t, f.recv.requests(), webhook.SendConcurrency, "one round of sends, then the timeout")

	var handedOn []uuid.UUID
	for _, id := range deliveries {
		d, attempts := f.delivery(t, id)
		if d.Status == webhook.StatusSucceeded {
			require.Len(t, attempts, 1)
			require.Equal(t, row.ID, *d.JobID)
			continue
		}
		require.Equal(t, webhook.StatusPending, d.Status)
		require.Zero(t, d.Attempts, "a delivery not sent has no attempt")
		require.Empty(t, attempts)
		own := f.job(t, id)
		require.NotEqual(t, row.ID, own.ID)
		require.Equal(t, jobs.WebhookDeliver{}.Kind(), own.Kind)
		require.Equal(t, rivertype.JobStateAvailable, own.State, "due at once")
		require.Equal(t, webhook.MaxAttempts, own.MaxAttempts)
		handedOn = append(handedOn, id)
	}
	require.Len(t, handedOn, n-webhook.SendConcurrency)

	// Its own job makes the delivery's first attempt.
	job, err := f.attempt(t, handedOn[0])
	require.NoError(t, err)
	require.Zero(t, job.Args.AttemptsBefore)
	d, attempts := f.delivery(t, handedOn[0])
	require.Equal(t, webhook.StatusSucceeded, d.Status)
	require.Len(t, attempts, 1)
	require.Equal(t, 1, attempts[0].Attempt)
}
