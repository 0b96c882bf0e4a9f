package worker

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/idempotency"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
)

// ScheduleWorker starts the scheduled evaluation of one window.
type ScheduleWorker struct {
	river.WorkerDefaults[jobs.RulesSchedule]
	pool *pgxpool.Pool
}

// Work fans the window out over every provisioned account.
func (w *ScheduleWorker) Work(ctx context.Context, job *river.Job[jobs.RulesSchedule]) error {
	runID := evaluation.TriggerSchedule + ":" + job.Args.WindowStart.UTC().Format(time.RFC3339)
	return db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		rules, err := rule.Enabled(ctx, tx, nil)
		if err != nil {
			return err
		}
		if len(rules) > 0 {
			if err := fanOut(ctx, tx, evaluation.TriggerSchedule, runID, nil); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
}

// FanOutWorker starts a manual evaluation of rules against every account.
type FanOutWorker struct {
	river.WorkerDefaults[jobs.RulesFanOut]
	pool *pgxpool.Pool
}

// Work fans the run out over every provisioned account.
func (w *FanOutWorker) Work(ctx context.Context, job *river.Job[jobs.RulesFanOut]) error {
	return db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		if err := fanOut(ctx, tx, job.Args.Trigger, job.Args.RunID, job.Args.RuleIDs); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// fanOut inserts one EvaluateAccounts job per page of provisioned accounts.
// The jobs are unique by their arguments, so a repeated fan-out of the same
// run queues nothing twice.
func fanOut(ctx context.Context, tx pgx.Tx, trigger, runID string, ruleIDs []uuid.UUID) error {
	var (
		after  uuid.UUID
		params []river.InsertManyParams
	)
	for {
		ids, err := account.ProvisionedIDs(ctx, tx, after, SchedulePageSize)
		if err != nil {
			return err
		}
		if len(ids) == 0 {
			break
		}
		last := ids[len(ids)-1]
		params = append(params, river.InsertManyParams{Args: jobs.EvaluateAccounts{
			Trigger: trigger, RunID: runID, RuleIDs: ruleIDs, After: after, Through: last,
		}})
		after = last
		if len(ids) < SchedulePageSize {
			break
		}
	}
	if len(params) == 0 {
		return nil
	}
	_, err := inserter(ctx).InsertManyTx(ctx, tx, params)
	return err
}

// EvaluateAccountsWorker evaluates rules against one page of accounts.
type EvaluateAccountsWorker struct {
	river.WorkerDefaults[jobs.EvaluateAccounts]
	pool   *pgxpool.Pool
	engine *engine.Engine
}

// Work evaluates and acts, then completes the job, in one transaction.
func (w *EvaluateAccountsWorker) Work(ctx context.Context, job *river.Job[jobs.EvaluateAccounts]) error {
	return db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		if _, err := w.engine.EvaluateAccounts(ctx, tx, inserter(ctx), job.Args); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}

// IdempotencyCleanupWorker deletes expired idempotency keys.
type IdempotencyCleanupWorker struct {
	river.WorkerDefaults[jobs.IdempotencyCleanup]
	pool *pgxpool.Pool
}

// Work deletes the keys.
// The follow-up counts of cascades that stopped growing a day ago go with
// them: nothing is left to count.
func (w *IdempotencyCleanupWorker) Work(ctx context.Context, _ *river.Job[jobs.IdempotencyCleanup]) error {
	if _, err := idempotency.DeleteExpired(ctx, w.pool); err != nil {
		return err
	}
	_, err := event.DeleteSettledCascades(ctx, w.pool, 24*time.Hour)
	return err
}
