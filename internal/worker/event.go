package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
)

// WonWorker adds a won event's amount to its account's totals exactly once,
// then queues the event's rule evaluation, all in the transaction that
// completes its job. Rules therefore see totals that include the event.
type WonWorker struct {
	river.WorkerDefaults[jobs.EventWon]
	pool *pgxpool.Pool
}

// Work applies the amount and hands the event on.
func (w *WonWorker) Work(ctx context.Context, job *river.Job[jobs.EventWon]) error {
	err := db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		ev, err := event.GetForUpdate(ctx, tx, job.Args.EventID)
		if err != nil {
			return err
		}
		claimed, err := event.ClaimWon(ctx, tx, ev.ID)
		if err != nil {
			return err
		}
		if claimed {
			amount, ok := ev.Payload["amount"].(float64)
			if !ok {
				return fmt.Errorf("won event %s has no numeric amount", ev.ID)
			}
			if err := account.AddWon(ctx, tx, ev.AccountID, amount); err != nil {
				return err
			}
			if _, err := inserter(ctx).InsertTx(ctx, tx, jobs.EventEvaluate{EventID: ev.ID}, nil); err != nil {
				return fmt.Errorf("queue evaluation: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
	return finishEventJob(ctx, w.pool, job.JobRow, job.Args.EventID, err)
}

// EvaluateWorker is the rules worker: it evaluates the rules that match an
// event and marks the event processed, in the transaction that completes its
// job.
type EvaluateWorker struct {
	river.WorkerDefaults[jobs.EventEvaluate]
	pool   *pgxpool.Pool
	engine *engine.Engine
}

// Work evaluates the event.
func (w *EvaluateWorker) Work(ctx context.Context, job *river.Job[jobs.EventEvaluate]) error {
	err := db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		if err := w.engine.EvaluateEvent(ctx, tx, inserter(ctx), job.Args.EventID); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
	return finishEventJob(ctx, w.pool, job.JobRow, job.Args.EventID, err)
}

// finishEventJob turns an event job's error into River's verdict. An event
// that no longer exists cancels the job; when the last attempt fails, the
// event is marked failed with the reason before River discards the job.
func finishEventJob(ctx context.Context, pool *pgxpool.Pool, job *rivertype.JobRow, eventID uuid.UUID, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, event.ErrNotFound) {
		return river.JobCancel(err)
	}
	if job.Attempt >= job.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, err)
		if markErr := event.MarkFailed(context.WithoutCancel(ctx), pool, eventID, reason); markErr != nil {
			return errors.Join(err, markErr)
		}
	}
	return err
}
