package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
)

// AccountWorker provisions new accounts: it activates the account and records
// an account.created event in the same transaction that completes the job, so
// a crash either leaves all of it undone (and the job runs again) or all done.
type AccountWorker struct {
	river.WorkerDefaults[jobs.AccountProvision]
	pool *pgxpool.Pool
}

// NewAccountWorker returns the worker for jobs.AccountProvision.
func NewAccountWorker(pool *pgxpool.Pool) *AccountWorker {
	return &AccountWorker{pool: pool}
}

// Work activates the account and completes the job.
func (w *AccountWorker) Work(ctx context.Context, job *river.Job[jobs.AccountProvision]) error {
	err := db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		activated, err := account.Activate(ctx, tx, job.Args.AccountID)
		if err != nil {
			return err
		}
		if activated {
			created, err := event.New(event.Input{AccountID: job.Args.AccountID, Type: event.TypeAccountCreated, Payload: map[string]any{}}, event.Now())
			if err != nil {
				return err
			}
			if err := event.Insert(ctx, tx, inserter(ctx), []*event.Event{created}); err != nil {
				return err
			}
		}
		return complete(ctx, tx, job)
	})
	if errors.Is(err, account.ErrNotFound) {
		// The account is inserted in the same transaction as this job, so it
		// can only be missing if it was removed by hand. Retrying won't help.
		return river.JobCancel(err)
	}
	return err
}

// inserter is the River client working the current job.
func inserter(ctx context.Context) jobs.Inserter {
	return river.ClientFromContext[pgx.Tx](ctx)
}

// complete marks job completed in tx, together with the job's effects.
func complete[T river.JobArgs](ctx context.Context, tx pgx.Tx, job *river.Job[T]) error {
	if _, err := river.JobCompleteTx[*riverpgxv5.Driver](ctx, tx, job); err != nil {
		return fmt.Errorf("complete job: %w", err)
	}
	return nil
}
