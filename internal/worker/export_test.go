package worker

import (
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Constructors for the workers NewClient registers, so tests can call their
// Work methods directly.

func NewEventsWorker(pool *pgxpool.Pool, e *engine.Engine) *EventsWorker {
	return &EventsWorker{pool: pool, engine: e}
}

func NewWonWorker(pool *pgxpool.Pool, e *engine.Engine) *WonWorker {
	return &WonWorker{pool: pool, engine: e}
}

func NewEvaluateWorker(pool *pgxpool.Pool, e *engine.Engine) *EvaluateWorker {
	return &EvaluateWorker{pool: pool, engine: e}
}

func NewScheduleWorker(pool *pgxpool.Pool) *ScheduleWorker { return &ScheduleWorker{pool: pool} }

func NewFanOutWorker(pool *pgxpool.Pool) *FanOutWorker { return &FanOutWorker{pool: pool} }

func NewEvaluateAccountsWorker(pool *pgxpool.Pool, e *engine.Engine) *EvaluateAccountsWorker {
	return &EvaluateAccountsWorker{pool: pool, engine: e}
}

func NewWebhookWorker(pool *pgxpool.Pool, sender *webhook.Sender, timeout time.Duration) *WebhookWorker {
	return &WebhookWorker{pool: pool, sender: sender, timeout: timeout}
}

func NewVacuumWorker(pool *pgxpool.Pool) *VacuumWorker {
	return &VacuumWorker{pool: pool, logger: slog.New(slog.DiscardHandler)}
}
