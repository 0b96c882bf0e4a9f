package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
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

// SlowBatchAfter is how long an events job waits for the batches ahead of it
// before it may start one beside them, up to SlowBatchExtraLeaders more: a
// batch held up by a slow rule or a lock then does not hold the events of
// other accounts behind it.
const (
	SlowBatchAfter        = 200 * time.Millisecond
	SlowBatchExtraLeaders = 3
)

// FullJobsAtOnce is how many jobs of half a batch or more (the jobs of a
// posted batch of events) one process runs at once, each alone: they gain
// nothing from sharing, and a batch's jobs rarely share accounts.
const FullJobsAtOnce = 8

func newEventsWorker(pool *pgxpool.Pool, eng *engine.Engine, leaders int) *EventsWorker {
	w := &EventsWorker{pool: pool, engine: eng, full: make(chan struct{}, FullJobsAtOnce)}
	if leaders > 0 {
		w.batch = newBatcher(leaders, jobs.EventsPerJob, w.runBatch).relieveSlowBatches(SlowBatchExtraLeaders, SlowBatchAfter)
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
	var ids []uuid.UUID
	last := batch[0].Attempt
	for _, job := range batch {
		ids = append(ids, job.Args.EventIDs...)
		if job.Attempt < job.MaxAttempts {
			last = 0
		}
	}
	return processEvents(ctx, w.pool, w.engine, ids, last, func(tx pgx.Tx) error {
		return completeAll(ctx, tx, batch)
	})
}

// completeAll marks every job of batch completed in tx, as river.JobCompleteTx
// does for one job, in one statement rather than one per job.
func completeAll(ctx context.Context, tx pgx.Tx, batch []eventsJob) error {
	client, err := river.ClientFromContextSafely[pgx.Tx](ctx)
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	now := time.Now()
	params := &riverdriver.JobSetStateIfRunningManyParams{Schema: client.Schema()}
	for _, job := range batch {
		if job.State != rivertype.JobStateRunning {
			return fmt.Errorf("complete job %d: job must be running", job.ID)
		}
		p := riverdriver.JobSetStateCompleted(job.ID, now, nil)
		params.ID = append(params.ID, p.ID)
		params.Attempt = append(params.Attempt, p.Attempt)
		params.ErrData = append(params.ErrData, p.ErrData)
		params.FinalizedAt = append(params.FinalizedAt, p.FinalizedAt)
		params.MetadataDoMerge = append(params.MetadataDoMerge, false)
		params.MetadataUpdates = append(params.MetadataUpdates, nil)
		params.ScheduledAt = append(params.ScheduledAt, p.ScheduledAt)
		params.State = append(params.State, p.State)
	}
	rows, err := client.Pilot().JobSetStateIfRunningMany(ctx, client.Driver().UnwrapExecutor(tx), params)
	if err != nil {
		return fmt.Errorf("complete jobs: %w", err)
	}
	if len(rows) != len(batch) {
		return fmt.Errorf("complete jobs: %d of %d found: %w", len(rows), len(batch), rivertype.ErrNotFound)
	}
	return nil
}

// processEvents runs the engine over ids and completes their jobs (complete)
// in the same transaction, then turns an error into River's verdict. Events
// that no longer exist cancel the jobs; when the jobs are on their last
// attempt (last is its number, 0 before that) and it fails, the events still
// pending are marked failed with the reason before River discards the jobs.
func processEvents(ctx context.Context, pool *pgxpool.Pool, eng *engine.Engine, ids []uuid.UUID, last int, complete func(pgx.Tx) error) error {
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
	if last > 0 {
		reason := fmt.Sprintf("gave up after %d attempts: %v", last, err)
		if markErr := event.MarkFailed(context.WithoutCancel(ctx), pool, ids, reason); markErr != nil {
			return errors.Join(err, markErr)
		}
	}
	return err
}
