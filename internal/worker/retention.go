package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/partition"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Retention is how long each kind of row is kept; a zero period keeps it
// forever.
type Retention struct {
	Events, Evaluations, WebhookDeliveries time.Duration
	// Interval is how often the retention job runs; 0 never.
	Interval time.Duration
}

// deliveryBatch is how many webhook deliveries one transaction deletes.
const deliveryBatch = 1000

// RetentionWorker keeps the weekly partitions of events and evaluations
// ahead of time and drops those past retention (see package partition),
// then deletes finished webhook deliveries past theirs in small batches,
// each its own transaction.
type RetentionWorker struct {
	river.WorkerDefaults[jobs.Retention]
	pool       *pgxpool.Pool
	partitions *partition.Maintainer
	retention  Retention
	logger     *slog.Logger
}

// NewRetentionWorker returns a RetentionWorker working through pool.
func NewRetentionWorker(pool *pgxpool.Pool, r Retention, logger *slog.Logger) *RetentionWorker {
	return &RetentionWorker{pool: pool, partitions: partition.New(pool, logger), retention: r, logger: logger}
}

// deliveryBudget is how long one run deletes deliveries; a backlog larger
// than that is left to the next runs.
const deliveryBudget = 5 * time.Minute

// Work runs the partition maintenance and deletes old deliveries; a failure
// of one does not keep the other from running. A run that finds another one
// at work leaves the partitions to it.
func (w *RetentionWorker) Work(ctx context.Context, _ *river.Job[jobs.Retention]) error {
	report, err := w.partitions.Run(ctx, []partition.Policy{
		{Table: "events", Retention: w.retention.Events},
		{Table: "evaluations", Retention: w.retention.Evaluations},
	})
	switch {
	case errors.Is(err, partition.ErrBusy):
		w.logger.InfoContext(ctx, "partition maintenance left to the run in progress")
		err = nil
	case err != nil:
	case len(report.Created)+len(report.Dropped) > 0 || report.Moved+report.Deleted > 0:
		w.logger.InfoContext(ctx, "partitions maintained", slog.Any("created", report.Created),
			slog.Any("dropped", report.Dropped), slog.Int64("moved", report.Moved), slog.Int64("deleted", report.Deleted))
	}
	return errors.Join(err, w.deleteDeliveries(ctx))
}

// deleteDeliveries deletes finished deliveries past retention, a batch per
// transaction, until none is left or the run's budget is spent.
func (w *RetentionWorker) deleteDeliveries(ctx context.Context) error {
	if w.retention.WebhookDeliveries <= 0 {
		return nil
	}
	before := time.Now().Add(-w.retention.WebhookDeliveries)
	stop := time.Now().Add(deliveryBudget)
	var total int64
	defer func() {
		if total > 0 {
			w.logger.InfoContext(ctx, "webhook deliveries deleted", slog.Int64("deliveries", total))
		}
	}()
	for time.Now().Before(stop) {
		n, err := webhook.DeleteFinishedBefore(ctx, w.pool, before, deliveryBatch)
		total += n
		if err != nil || n < deliveryBatch {
			return err
		}
	}
	return nil
}

// Timeout leaves a run that deletes a large backlog of deliveries time to
// finish; what it does not finish the next run does.
func (w *RetentionWorker) Timeout(*river.Job[jobs.Retention]) time.Duration { return 10 * time.Minute }
