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

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
)

// EventsWorker is the won-event and rules worker: it adds won amounts to
// their accounts' totals exactly once, evaluates the rules that match each
// event and marks the events processed, in the transaction that completes its
// job. Jobs that run at the same time share transactions (see batcher); a
// job that failed once runs alone, so one bad event cannot fail its
// neighbours' jobs twice.
type EventsWorker struct {
	river.WorkerDefaults[jobs.EventsProcess]
	pool   *pgxpool.Pool
	engine *engine.Engine
	batch  *batcher      // nil: every job alone
	full   chan struct{} // a slot for each job too big to share, run alone at once
}

// BatchLeaders is how many shared transactions of events jobs one process
// runs at once. One keeps them from waiting for each other's account locks;
// the events queue's concurrency (QUEUE_CONCURRENCY) bounds how many jobs
// can be waiting to join the next.
const BatchLeaders = 1

// FullJobsAtOnce is how many jobs of half a batch or more (the jobs of a
// posted batch of events) one process runs at once, each alone: they gain
// nothing from sharing, and a batch's jobs rarely share accounts.
const FullJobsAtOnce = 8

func newEventsWorker(pool *pgxpool.Pool, eng *engine.Engine, leaders int) *EventsWorker {
	w := &EventsWorker{pool: pool, engine: eng, full: make(chan struct{}, FullJobsAtOnce)}
	if leaders > 0 {
		w.batch = newBatcher(leaders, jobs.EventsPerJob, w.runBatch)
	}
	return w
}

// Work processes the job's events.
func (w *EventsWorker) Work(ctx context.Context, job *river.Job[jobs.EventsProcess]) error {
	switch {
	case w.batch == nil || job.Attempt > 1:
		return w.runBatch(ctx, []eventsJob{job})
	case len(job.Args.EventIDs) >= jobs.EventsPerJob/2:
		select {
		case w.full <- struct{}{}:
			defer func() { <-w.full }()
		case <-ctx.Done():
			return ctx.Err()
		}
		return w.runBatch(ctx, []eventsJob{job})
	default:
		return w.batch.do(ctx, job)
	}
}

// runBatch processes the events of every job in one transaction that
// completes them all.
func (w *EventsWorker) runBatch(ctx context.Context, batch []eventsJob) error {
	if len(batch) == 1 {
		job := batch[0]
		return processEvents(ctx, w.pool, w.engine, job.JobRow, job.Args.EventIDs, func(tx pgx.Tx) error {
			return complete(ctx, tx, job)
		})
	}
	var ids []uuid.UUID
	for _, job := range batch {
		ids = append(ids, job.Args.EventIDs...)
	}
	err := db.InTxGenericPlans(ctx, w.pool, func(tx pgx.Tx) error {
		if err := w.engine.ProcessEvents(ctx, tx, inserter(ctx), ids); err != nil {
			return err
		}
		for _, job := range batch {
			if err := complete(ctx, tx, job); err != nil {
				return err
			}
		}
		return nil
	})
	if errors.Is(err, event.ErrNotFound) {
		return river.JobCancel(err)
	}
	// Every job of a failed batch is on its first attempt: none is given up
	// yet, and each runs alone next time.
	return err
}

// WonWorker works event.won jobs queued by an earlier version.
type WonWorker struct {
	river.WorkerDefaults[jobs.EventWon]
	pool   *pgxpool.Pool
	engine *engine.Engine
}

// Work processes the job's event.
func (w *WonWorker) Work(ctx context.Context, job *river.Job[jobs.EventWon]) error {
	return processEvents(ctx, w.pool, w.engine, job.JobRow, []uuid.UUID{job.Args.EventID}, func(tx pgx.Tx) error {
		return complete(ctx, tx, job)
	})
}

// EvaluateWorker works event.evaluate jobs queued by an earlier version.
type EvaluateWorker struct {
	river.WorkerDefaults[jobs.EventEvaluate]
	pool   *pgxpool.Pool
	engine *engine.Engine
}

// Work processes the job's event.
func (w *EvaluateWorker) Work(ctx context.Context, job *river.Job[jobs.EventEvaluate]) error {
	return processEvents(ctx, w.pool, w.engine, job.JobRow, []uuid.UUID{job.Args.EventID}, func(tx pgx.Tx) error {
		return complete(ctx, tx, job)
	})
}

// processEvents runs the engine over ids and completes the job in the same
// transaction, then turns an error into River's verdict. Events that no
// longer exist cancel the job; when the last attempt fails, the events still
// pending are marked failed with the reason before River discards the job.
func processEvents(ctx context.Context, pool *pgxpool.Pool, eng *engine.Engine, job *rivertype.JobRow, ids []uuid.UUID, complete func(pgx.Tx) error) error {
	err := db.InTxGenericPlans(ctx, pool, func(tx pgx.Tx) error {
		if err := eng.ProcessEvents(ctx, tx, inserter(ctx), ids); err != nil {
			return err
		}
		return complete(tx)
	})
	if err == nil {
		return nil
	}
	if errors.Is(err, event.ErrNotFound) {
		return river.JobCancel(err)
	}
	if job.Attempt >= job.MaxAttempts {
		reason := fmt.Sprintf("gave up after %d attempts: %v", job.Attempt, err)
		if markErr := event.MarkFailed(context.WithoutCancel(ctx), pool, ids, reason); markErr != nil {
			return errors.Join(err, markErr)
		}
	}
	return err
}
