package worker

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/redact"
	"github.com/ctrader/ctrader/internal/webhook"
)

// WebhookWorker makes one attempt at a webhook delivery. A success is
// recorded in the transaction that completes the job; a failure records the
// attempt and returns an error, and River retries the job when NextRetry says.
// The delivery's attempt number is the job's, after the attempts a
// WebhookDeliverBatch job made before it.
type WebhookWorker struct {
	river.WorkerDefaults[jobs.WebhookDeliver]
	pool    *pgxpool.Pool
	sender  *webhook.Sender
	timeout time.Duration
	metrics *metrics.Metrics
}

// Work attempts the delivery.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[jobs.WebhookDeliver]) error {
	out, err := w.sender.Prepare(ctx, job.Args.DeliveryID)
	if errors.Is(err, webhook.ErrDeliveryNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return giveUpAtLast(ctx, w.pool, job.JobRow, err, job.Args.DeliveryID)
	}
	if out == nil { // finished already
		return db.InTx(ctx, w.pool, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	}
	if !out.Endpoint.Enabled || out.Endpoint.DeletedAt != nil {
		return db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
			if err := webhook.Abandon(ctx, tx, "the endpoint is disabled or deleted", out.Delivery.ID); err != nil {
				return err
			}
			return complete(ctx, tx, job)
		})
	}

	res := w.sender.Send(ctx, out)
	var outcome webhook.Outcome
	// The attempt is recorded even when the job's context ended during it.
	recordCtx := context.WithoutCancel(ctx)
	err = db.InTx(recordCtx, w.pool, func(tx pgx.Tx) error {
		var err error
		if outcome, err = webhook.Record(recordCtx, tx, out, res, attemptOf(job)); err != nil {
			return err
		}
		if outcome == webhook.OutcomeSucceeded {
			return complete(recordCtx, tx, job)
		}
		return nil
	})
	if err == nil {
		w.metrics.WebhookDelivered(string(outcome))
	}
	switch {
	case err != nil:
		return err
	case outcome == webhook.OutcomeSucceeded:
		return nil
	case res.Status == 410:
		return river.JobCancel(errors.New("the endpoint answered 410 Gone and was disabled"))
	default:
		return fmt.Errorf("delivery attempt %d failed: %s", attemptOf(job), attemptError(res))
	}
}

func attemptError(res webhook.Result) string {
	if res.Err != nil {
		return redact.Text(res.Err.Error())
	}
	return fmt.Sprintf("answered %d", res.Status)
}

// NextRetry follows the webhook schedule, stretched by a Retry-After header,
// as the failed attempt recorded it. When no attempt was recorded (the
// delivery could not be prepared), it waits the scheduled time alone.
func (w *WebhookWorker) NextRetry(job *river.Job[jobs.WebhookDeliver]) time.Time {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if t, err := webhook.NextAttemptAt(ctx, w.pool, job.Args.DeliveryID); err == nil {
		return t
	}
	return time.Now().Add(webhook.RetryWait(attemptOf(job), 0))
}

// attemptOf is the delivery's attempt number that job makes.
func attemptOf(job *river.Job[jobs.WebhookDeliver]) int {
	return job.Attempt + job.Args.AttemptsBefore
}

// Timeout leaves room for the HTTP timeout and the bookkeeping around it.
func (w *WebhookWorker) Timeout(*river.Job[jobs.WebhookDeliver]) time.Duration {
	return w.timeout + 15*time.Second
}

// WebhookBatchWorker makes the first attempts at a group of deliveries that
// one transaction stored: it sends them, webhook.SendConcurrency at a time,
// and records every attempt in the transaction that completes the job, so a
// stream of matches costs a job and two round trips per group rather than
// per delivery. A delivery whose attempt failed continues on a
// WebhookDeliver job of its own, and so does one the job did not start
// before its HTTP timeout had passed (a slow endpoint), with no attempt
// counted; the batch job itself is retried only when recording fails, and
// then sends again what it had sent (deliveries are at least once).
type WebhookBatchWorker struct {
	river.WorkerDefaults[jobs.WebhookDeliverBatch]
	pool    *pgxpool.Pool
	sender  *webhook.Sender
	timeout time.Duration
	metrics *metrics.Metrics
}

// Work attempts the deliveries.
func (w *WebhookBatchWorker) Work(ctx context.Context, job *river.Job[jobs.WebhookDeliverBatch]) error {
	outs, err := w.sender.PrepareMany(ctx, job.Args.DeliveryIDs)
	if err != nil {
		return giveUpAtLast(ctx, w.pool, job.JobRow, err, job.Args.DeliveryIDs...)
	}
	var (
		attempts []webhook.Attempted
		abandon  []uuid.UUID
	)
	for _, out := range outs {
		switch {
		case out.Delivery.JobID == nil || *out.Delivery.JobID != job.ID:
			// Another job has the delivery now (a replay).
		case out.Endpoint == nil || !out.Endpoint.Enabled || out.Endpoint.DeletedAt != nil:
			abandon = append(abandon, out.Delivery.ID)
		default:
			attempts = append(attempts, webhook.Attempted{Out: out, Attempt: out.Delivery.Attempts + 1})
		}
	}
	attempts, unsent := w.sendAll(ctx, attempts, time.Now().Add(w.timeout))

	// The attempts are recorded even when the job's context ended during them.
	// Its statements run once per batch, each by key: with generic plans
	// River's completion is not planned again for every batch.
	recordCtx := context.WithoutCancel(ctx)
	var recorded []webhook.Recorded
	err = db.InTxGenericPlans(recordCtx, w.pool, func(tx pgx.Tx) error {
		if len(abandon) > 0 {
			if err := webhook.Abandon(recordCtx, tx, "the endpoint is disabled or deleted", abandon...); err != nil {
				return err
			}
		}
		var err error
		if recorded, err = webhook.RecordMany(recordCtx, tx, attempts); err != nil {
			return err
		}
		if err := webhook.Continue(recordCtx, tx, inserter(ctx), attempts, recorded, unsent); err != nil {
			return err
		}
		return complete(recordCtx, tx, job)
	})
	if err != nil {
		return err
	}
	for _, r := range recorded {
		w.metrics.WebhookDelivered(string(r.Outcome))
	}
	return nil
}

// sendAll makes attempts, webhook.SendConcurrency at a time, starting none
// once deadline has passed or ctx has ended, and returns the attempts it
// made, with their results, and those it did not.
func (w *WebhookBatchWorker) sendAll(ctx context.Context, attempts []webhook.Attempted, deadline time.Time) (sent, unsent []webhook.Attempted) {
	started := make([]bool, len(attempts))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(webhook.SendConcurrency, len(attempts)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(attempts) {
					return
				}
				if ctx.Err() != nil || !time.Now().Before(deadline) {
					continue
				}
				started[i] = true
				attempts[i].Result = w.sender.Send(ctx, attempts[i].Out)
			}
		})
	}
	wg.Wait()
	for i, a := range attempts {
		if started[i] {
			sent = append(sent, a)
		} else {
			unsent = append(unsent, a)
		}
	}
	return sent, unsent
}

// Timeout leaves room for the sends, which start until the HTTP timeout has
// passed and may then take that long again, and the bookkeeping around
// them.
func (w *WebhookBatchWorker) Timeout(*river.Job[jobs.WebhookDeliverBatch]) time.Duration {
	return 2*w.timeout + 15*time.Second
}

// giveUpAtLast returns err, the failure to prepare deliveries, after marking
// them failed when job has no attempt left: River discards the job, and its
// deliveries must not stay pending.
func giveUpAtLast(ctx context.Context, pool *pgxpool.Pool, job *rivertype.JobRow, err error, ids ...uuid.UUID) error {
	if job.Attempt < job.MaxAttempts {
		return err
	}
	ctx = context.WithoutCancel(ctx)
	if ferr := db.InTx(ctx, pool, func(tx pgx.Tx) error {
		return webhook.Abandon(ctx, tx, "gave up: "+err.Error(), ids...)
	}); ferr != nil {
		return errors.Join(err, ferr)
	}
	return err
}
