package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/backfill"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
)

// BackfillWorker works one page of a backfill. The page's evaluations and
// actions, the backfill's new position, the next page's job and this job's
// completion commit together, so a crash leaves the backfill where its last
// committed page left it, and the retried job starts there.
type BackfillWorker struct {
	river.WorkerDefaults[jobs.BackfillPage]
	pool   *pgxpool.Pool
	engine *engine.Engine
}

// Work runs the page, or does nothing when the backfill was cancelled or
// the job is a stale duplicate. An apply backfill whose rule has been
// disabled or deleted is cancelled instead.
func (w *BackfillWorker) Work(ctx context.Context, job *river.Job[jobs.BackfillPage]) error {
	err := db.InTxCustomPlans(ctx, w.pool, func(tx pgx.Tx) error {
		b, err := backfill.Lock(ctx, tx, job.Args.BackfillID)
		if err != nil {
			return err
		}
		if !b.Active() || b.Pages != job.Args.Page {
			return complete(ctx, tx, job)
		}
		if b.Mode == backfill.ModeApply {
			r, err := rule.Get(ctx, tx, b.RuleID)
			if err != nil {
				return err
			}
			if r.DeletedAt != nil || !r.Enabled {
				if err := backfill.Stop(ctx, tx, b.ID, backfill.RuleOff); err != nil {
					return err
				}
				return complete(ctx, tx, job)
			}
		}
		p, err := w.engine.BackfillPage(ctx, tx, inserter(ctx), b)
		if err != nil {
			return err
		}
		if err := backfill.Advance(ctx, tx, b.ID, p); err != nil {
			return err
		}
		if !p.Done {
			next := jobs.BackfillPage{BackfillID: b.ID, Page: b.Pages + 1}
			if _, err := inserter(ctx).InsertTx(ctx, tx, next, nil); err != nil {
				return fmt.Errorf("insert next backfill page: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, backfill.ErrNotFound):
		return river.JobCancel(err)
	case job.Attempt >= job.MaxAttempts:
		reason := fmt.Sprintf("page %d gave up after %d attempts: %v", job.Args.Page, job.Attempt, err)
		if failErr := backfill.Fail(context.WithoutCancel(ctx), w.pool, job.Args.BackfillID, reason); failErr != nil {
			return errors.Join(err, failErr)
		}
	}
	return err
}
