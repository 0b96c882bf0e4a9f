package backfill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/partition"
	"github.com/ctrader/ctrader/internal/rule"
)

const columns = `id, rule_id, rule_version, mode, state, occurred_from, occurred_to, event_types, account_id,
	scan_from, scan_to, scan_after, pages, events_scanned, events_evaluated, events_matched, events_skipped, errors,
	events_estimated, failure_reason, created_at, started_at, finished_at`

func scan(row pgx.Row) (*Backfill, error) {
	var b Backfill
	err := row.Scan(&b.ID, &b.RuleID, &b.RuleVersion, &b.Mode, &b.State, &b.From, &b.To, &b.EventTypes, &b.AccountID,
		&b.ScanFrom, &b.ScanTo, &b.ScanAfter, &b.Pages, &b.Scanned, &b.Evaluated, &b.Matched, &b.Skipped, &b.Errors,
		&b.Estimated, &b.FailureReason, &b.CreatedAt, &b.StartedAt, &b.FinishedAt)
	if err != nil {
		return nil, err
	}
	return &b, nil
}

func wrap(action string, err error) error {
	if code, constraint := db.ConstraintOf(err); code == db.CodeUniqueViolation && constraint == "backfills_active_apply_key" {
		return ErrApplyActive
	}
	return db.Wrap(action, err, ErrNotFound)
}

// Get reads a backfill through q.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (*Backfill, error) {
	b, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM backfills WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get backfill", err)
	}
	return b, nil
}

// Lock reads a backfill in tx and locks it until tx ends: a page and a
// cancellation take turns.
func Lock(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Backfill, error) {
	b, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM backfills WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, wrap("lock backfill", err)
	}
	return b, nil
}

// Applied returns the ids of every apply backfill of the rule, whatever its
// state: the evaluations of their pages may have acted.
func Applied(ctx context.Context, q db.Querier, ruleID uuid.UUID) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, `SELECT id FROM backfills WHERE rule_id = $1 AND mode = 'apply'`, ruleID)
	if err != nil {
		return nil, wrap("apply backfills", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, wrap("apply backfills", err)
	}
	return ids, nil
}

// Advance records a page in tx: the totals, where the next page starts,
// and whether the backfill is done.
func Advance(ctx context.Context, tx pgx.Tx, id uuid.UUID, p Page) error {
	state := StateRunning
	if p.Done {
		state = StateSucceeded
	}
	_, err := tx.Exec(ctx, `
		UPDATE backfills SET state = $2, scan_after = $3, pages = pages + 1,
			events_scanned = events_scanned + $4, events_evaluated = events_evaluated + $5,
			events_matched = events_matched + $6, events_skipped = events_skipped + $7, errors = errors + $8,
			started_at = coalesce(started_at, clock_timestamp()),
			finished_at = CASE WHEN $2 = 'succeeded' THEN clock_timestamp() END
		WHERE id = $1`, id, state, p.Last, p.Scanned, p.Evaluated, p.Matched, p.Skipped, p.Errors)
	if err != nil {
		return wrap("advance backfill", err)
	}
	return nil
}

// Fail records that a backfill's page was given up on, and why.
func Fail(ctx context.Context, q db.Querier, id uuid.UUID, reason string) error {
	if len(reason) > 2000 {
		reason = reason[:2000]
	}
	if _, err := q.Exec(ctx, `
		UPDATE backfills SET state = 'failed', failure_reason = $2, finished_at = clock_timestamp()
		WHERE id = $1 AND state IN ('pending', 'running')`, id, reason); err != nil {
		return wrap("fail backfill", err)
	}
	return nil
}

// Stop cancels a backfill in tx from its own page, saying why.
func Stop(ctx context.Context, tx pgx.Tx, id uuid.UUID, reason string) error {
	if _, err := tx.Exec(ctx, `
		UPDATE backfills SET state = 'cancelled', failure_reason = $2, finished_at = clock_timestamp()
		WHERE id = $1`, id, reason); err != nil {
		return wrap("stop backfill", err)
	}
	return nil
}

// Filter narrows a list of backfills; zero fields match everything.
type Filter struct {
	RuleID uuid.UUID
	State  string
}

// List reads one page of backfills through q, newest first.
func List(ctx context.Context, q db.Querier, f Filter, p page.Params) (page.Page[*Backfill], error) {
	var c db.Conditions
	if f.RuleID != uuid.Nil {
		c.Add("rule_id = $%d", f.RuleID)
	}
	if f.State != "" {
		c.Add("state = $%d", f.State)
	}
	query, args := c.Page(`SELECT `+columns+` FROM backfills`, p)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Backfill]{}, wrap("list backfills", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Backfill, error) { return scan(r) })
	if err != nil {
		return page.Page[*Backfill]{}, wrap("list backfills", err)
	}
	return page.Build(items, p.Limit, func(b *Backfill) uuid.UUID { return b.ID }), nil
}

// Service starts, reads and cancels backfills.
type Service struct {
	pool *pgxpool.Pool
	jobs jobs.Inserter
	now  func() time.Time
}

// NewService returns a Service over pool that enqueues through inserter.
func NewService(pool *pgxpool.Pool, inserter jobs.Inserter) *Service {
	return &Service{pool: pool, jobs: inserter, now: event.Now}
}

// Create checks in against the rule's current version and stores the
// backfill with its first page job, in one transaction. A deleted rule is
// refused (rule.ErrDeleted), and so is applying a disabled one
// (rule.ErrDisabled): it would act where the rule does not.
func (s *Service) Create(ctx context.Context, in Input) (*Backfill, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	now := s.now()
	var b *Backfill
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		r, err := rule.Get(ctx, tx, in.RuleID)
		if err != nil {
			return err
		}
		switch {
		case r.DeletedAt != nil:
			return rule.ErrDeleted
		case !r.Enabled && in.Mode == ModeApply:
			return rule.ErrDisabled
		}
		to, types, err := in.validate(r, now)
		if err != nil {
			return err
		}
		var accountID *uuid.UUID
		if in.AccountID != uuid.Nil {
			if _, err := account.Get(ctx, tx, in.AccountID); errors.Is(err, account.ErrNotFound) {
				return ErrUnknownAccount
			} else if err != nil {
				return err
			}
			accountID = &in.AccountID
		}
		var active int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM backfills WHERE state IN ('pending', 'running')`).Scan(&active); err != nil {
			return err
		}
		if active >= MaxActive {
			return ErrTooMany
		}
		from := in.From.UTC().Truncate(time.Microsecond)
		rng := event.Range{Types: types, From: from, To: to, After: event.IDFloor(from), Below: partition.Bound(now.Add(time.Millisecond))}
		if accountID != nil {
			rng.AccountID = *accountID
		}
		estimate, err := event.Estimate(ctx, tx, rng)
		if err != nil {
			return err
		}
		if b, err = scan(tx.QueryRow(ctx, `
			INSERT INTO backfills (id, rule_id, rule_version, mode, occurred_from, occurred_to, event_types, account_id,
				scan_from, scan_to, events_estimated, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
			RETURNING `+columns,
			id, r.ID, r.Version, in.Mode, from, to, types, accountID, rng.After, rng.Below, estimate, now)); err != nil {
			return err
		}
		if _, err := s.jobs.InsertTx(ctx, tx, jobs.BackfillPage{BackfillID: id}, nil); err != nil {
			return fmt.Errorf("insert backfill job: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, wrap("create backfill", err)
	}
	return b, nil
}

// Get returns a backfill.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Backfill, error) {
	return Get(ctx, s.pool, id)
}

// List returns one page of backfills, newest first.
func (s *Service) List(ctx context.Context, f Filter, p page.Params) (page.Page[*Backfill], error) {
	return List(ctx, s.pool, f, p)
}

// Cancel stops a pending or running backfill: a page running now finishes
// first (the cancellation waits for it), and no page runs after. The
// evaluations and actions of pages already run stay. Cancelling a cancelled
// backfill changes nothing; a finished one is ErrFinished.
func (s *Service) Cancel(ctx context.Context, id uuid.UUID) (*Backfill, error) {
	var b *Backfill
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if b, err = Lock(ctx, tx, id); err != nil {
			return err
		}
		switch {
		case b.State == StateCancelled:
			return nil
		case !b.Active():
			return ErrFinished
		}
		b, err = scan(tx.QueryRow(ctx, `
			UPDATE backfills SET state = 'cancelled', finished_at = clock_timestamp()
			WHERE id = $1 RETURNING `+columns, id))
		return err
	})
	if err != nil {
		return nil, wrap("cancel backfill", err)
	}
	return b, nil
}
