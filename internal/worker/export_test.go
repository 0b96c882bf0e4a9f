package worker

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Constructors for the workers NewClient registers, so tests can call their
// Work methods directly.

// NewEventsWorker returns an events worker whose jobs run alone.
func NewEventsWorker(pool *pgxpool.Pool, e *engine.Engine) *EventsWorker {
	return newEventsWorker(pool, e, 0)
}

// NewBatchingEventsWorker returns an events worker that shares transactions
// between jobs, with at most leaders of them at once.
func NewBatchingEventsWorker(pool *pgxpool.Pool, e *engine.Engine, leaders int) *EventsWorker {
	return newEventsWorker(pool, e, leaders)
}

func NewScheduleWorker(pool *pgxpool.Pool) *ScheduleWorker { return &ScheduleWorker{pool: pool} }

func NewFanOutWorker(pool *pgxpool.Pool) *FanOutWorker { return &FanOutWorker{pool: pool} }

func NewEvaluateAccountsWorker(pool *pgxpool.Pool, e *engine.Engine) *EvaluateAccountsWorker {
	return &EvaluateAccountsWorker{pool: pool, engine: e}
}

func NewWebhookWorker(pool *pgxpool.Pool, sender *webhook.Sender, timeout time.Duration) *WebhookWorker {
	return &WebhookWorker{pool: pool, sender: sender, timeout: timeout}
}

func NewWebhookBatchWorker(pool *pgxpool.Pool, sender *webhook.Sender, timeout time.Duration) *WebhookBatchWorker {
	return &WebhookBatchWorker{pool: pool, sender: sender, timeout: timeout}
}

func NewVacuumWorker(pool *pgxpool.Pool) *VacuumWorker {
	return &VacuumWorker{pool: pool, logger: slog.New(slog.DiscardHandler)}
}

// RunBatch processes jobs in one transaction, as a batch of jobs run at once
// does.
func (w *EventsWorker) RunBatch(ctx context.Context, batch []*river.Job[jobs.EventsProcess]) error {
	return w.runBatch(ctx, batch)
}

// NewScheduleTickWorker returns a tick worker for windows of interval that
// reads the time from now.
func NewScheduleTickWorker(pool *pgxpool.Pool, interval time.Duration, now func() time.Time, logger *slog.Logger) *ScheduleTickWorker {
	return &ScheduleTickWorker{pool: pool, interval: interval, now: now, logger: logger}
}

// RiverRetention is how a retention period is given to River.
var RiverRetention = riverRetention

func NewBackfillWorker(pool *pgxpool.Pool, e *engine.Engine) *BackfillWorker {
	return &BackfillWorker{pool: pool, engine: e}
}
