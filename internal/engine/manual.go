package engine

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/rule"
)

// Manual starts evaluations by hand. It checks the rule and the account and
// queues the jobs that evaluate them, in one transaction.
type Manual struct {
	pool *pgxpool.Pool
	jobs jobs.Inserter
}

// NewManual returns a Manual reading through pool and enqueuing through
// inserter.
func NewManual(pool *pgxpool.Pool, inserter jobs.Inserter) *Manual {
	return &Manual{pool: pool, jobs: inserter}
}

// Run describes an evaluation started by hand.
type Run struct {
	RunID       string
	RuleID      uuid.UUID
	RuleVersion int
	AccountID   uuid.UUID // uuid.Nil: every provisioned account
}

// ErrUnknownAccount is returned when a manual evaluation names no account.
var ErrUnknownAccount = apperr.InvalidFields("unknown account",
	apperr.FieldError{Location: "body.account_id", Message: "no account has this id"})

// EvaluateNow queues the evaluation of a rule against one account, or every
// provisioned account when accountID is uuid.Nil, with trigger "manual". A
// deleted or disabled rule is refused (rule.ErrDeleted, rule.ErrDisabled).
func (m *Manual) EvaluateNow(ctx context.Context, ruleID, accountID uuid.UUID) (*Run, error) {
	runUUID, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	run := &Run{RunID: evaluation.TriggerManual + ":" + runUUID.String(), RuleID: ruleID, AccountID: accountID}
	err = db.InTx(ctx, m.pool, func(tx pgx.Tx) error {
		r, err := rule.Get(ctx, tx, ruleID)
		if err != nil {
			return err
		}
		switch {
		case r.DeletedAt != nil:
			return rule.ErrDeleted
		case !r.Enabled:
			return rule.ErrDisabled
		}
		run.RuleVersion = r.Version
		var args river.JobArgs = jobs.RulesFanOut{Trigger: evaluation.TriggerManual, RunID: run.RunID, RuleIDs: []uuid.UUID{ruleID}}
		if accountID != uuid.Nil {
			if _, err := account.Get(ctx, tx, accountID); errors.Is(err, account.ErrNotFound) {
				return ErrUnknownAccount
			} else if err != nil {
				return err
			}
			args = jobs.EvaluateAccounts{Trigger: evaluation.TriggerManual, RunID: run.RunID, RuleIDs: []uuid.UUID{ruleID}, AccountID: accountID}
		}
		_, err = m.jobs.InsertTx(ctx, tx, args, nil)
		return err
	})
	if err != nil {
		return nil, db.Wrap("evaluate rule", err, rule.ErrNotFound)
	}
	return run, nil
}
