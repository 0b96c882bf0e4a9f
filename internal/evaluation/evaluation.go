// Package evaluation stores what happened when a rule was evaluated: whether
// it matched, the error if it could not be evaluated, and the actions taken.
package evaluation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/partition"
)

// Triggers of an evaluation.
const (
	TriggerEvent    = "event"    // an event of a matching type
	TriggerSchedule = "schedule" // the periodic scheduled evaluation
	TriggerManual   = "manual"   // POST /v1/rules/{id}/evaluations
	TriggerBackfill = "backfill" // a backfill over stored events
)

// ActionResult is what one action of a matched rule did.
type ActionResult struct {
	Type           string     `json:"type"`
	EventType      string     `json:"event_type,omitempty"`
	EventID        *uuid.UUID `json:"event_id,omitempty"`
	Status         string     `json:"status,omitempty"`
	PreviousStatus string     `json:"previous_status,omitempty"`
	EndpointID     string     `json:"endpoint_id,omitempty"`
	DeliveryID     *uuid.UUID `json:"delivery_id,omitempty"`
	Skipped        string     `json:"skipped,omitempty"` // why the action was not taken, such as "depth_limit"
	Error          string     `json:"error,omitempty"`
}

// Evaluation is one evaluation of one rule version.
type Evaluation struct {
	ID           uuid.UUID
	RuleID       uuid.UUID
	RuleVersion  int
	AccountID    uuid.UUID
	EventID      *uuid.UUID
	Trigger      string
	RunID        *string
	BackfillID   *uuid.UUID
	Matched      bool
	Error        *string
	Actions      []ActionResult
	DepthLimited bool
	StartedAt    time.Time
	EvaluatedAt  time.Time
}

const insertSQL = `
		INSERT INTO evaluations (id, rule_id, rule_version, account_id, event_id, trigger, run_id,
			matched, error, depth_limited, started_at, evaluated_at, backfill_id, actions)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::uuid[], $5::uuid[], $6::text[], $7::text[],
			$8::bool[], $9::text[], $10::bool[], $11::timestamptz[], $12::timestamptz[], $13::uuid[], $14::text[]::jsonb[])
		ON CONFLICT DO NOTHING`

// insertArgs are the column arrays of evals, in insertSQL's order.
func insertArgs(evals []*Evaluation) ([]any, error) {
	n := len(evals)
	var (
		ids, ruleIDs, accountIDs = make([]uuid.UUID, n), make([]uuid.UUID, n), make([]uuid.UUID, n)
		eventIDs, backfillIDs    = make([]*uuid.UUID, n), make([]*uuid.UUID, n)
		versions                 = make([]int32, n)
		triggers, actions        = make([]string, n), make([]string, n)
		runIDs, errs             = make([]*string, n), make([]*string, n)
		matched, limited         = make([]bool, n), make([]bool, n)
		started, evaluated       = make([]time.Time, n), make([]time.Time, n)
	)
	for i, e := range evals {
		ids[i], ruleIDs[i], accountIDs[i], eventIDs[i] = e.ID, e.RuleID, e.AccountID, e.EventID
		versions[i], triggers[i], runIDs[i], errs[i] = int32(e.RuleVersion), e.Trigger, e.RunID, e.Error
		matched[i], limited[i], started[i], evaluated[i] = e.Matched, e.DepthLimited, e.StartedAt, e.EvaluatedAt
		backfillIDs[i] = e.BackfillID
		actions[i] = "[]"
		if len(e.Actions) > 0 {
			b, err := json.Marshal(e.Actions)
			if err != nil {
				return nil, fmt.Errorf("encode actions: %w", err)
			}
			actions[i] = string(b)
		}
	}
	return []any{ids, ruleIDs, versions, accountIDs, eventIDs, triggers, runIDs, matched, errs, limited, started, evaluated,
		backfillIDs, actions}, nil
}

// ErrRecordedMeanwhile is returned when an evaluation that acted could not be
// stored because another transaction stored it first: that one's actions
// stand, and this transaction's must be rolled back. Running the work again
// finds the evaluation recorded (see Recorded) and does not act.
var ErrRecordedMeanwhile = errors.New("the evaluation was recorded by another transaction meanwhile")

// Recorded returns which of evals are stored already. Whoever stores an
// evaluation first acts on it; the callers hold locks (the events'), so
// that none can be stored between this read and their insert, and InsertNew
// tells them when one was anyway.
func Recorded(ctx context.Context, tx pgx.Tx, evals []*Evaluation) (map[uuid.UUID]bool, error) {
	if len(evals) == 0 {
		return nil, nil
	}
	ids := make([]uuid.UUID, len(evals))
	for i, e := range evals {
		ids[i] = e.ID
	}
	lo, hi := partition.Span(ids)
	return idSet(ctx, tx, "read recorded evaluations",
		`SELECT id FROM evaluations WHERE id = ANY($1) AND id BETWEEN $2 AND $3`, ids, lo, hi)
}

// idSet runs a query of ids and returns them as a set; what names the work
// in errors.
func idSet(ctx context.Context, tx pgx.Tx, what, sql string, args ...any) (map[uuid.UUID]bool, error) {
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := make(map[uuid.UUID]bool, len(found))
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// InsertNew stores evaluations with their actions, skipping any that were
// already recorded for the same rule version and event (or run and
// account), and returns the ids of the ones it stored.
func InsertNew(ctx context.Context, tx pgx.Tx, evals []*Evaluation) (map[uuid.UUID]bool, error) {
	if len(evals) == 0 {
		return nil, nil
	}
	args, err := insertArgs(evals)
	if err != nil {
		return nil, err
	}
	return idSet(ctx, tx, "insert evaluations", insertSQL+` RETURNING id`, args...)
}

// BatchInsert adds to b the storing of evaluations that do not act,
// skipping any already recorded, as InsertNew does. Nothing is added for
// none.
func BatchInsert(b *pgx.Batch, evals []*Evaluation) error {
	if len(evals) == 0 {
		return nil
	}
	args, err := insertArgs(evals)
	if err != nil {
		return err
	}
	b.Queue(insertSQL, args...)
	return nil
}

const columns = `id, rule_id, rule_version, account_id, event_id, trigger, run_id, matched, error, actions, depth_limited, started_at, evaluated_at, backfill_id`

func scan(row pgx.Row) (*Evaluation, error) {
	var e Evaluation
	err := row.Scan(&e.ID, &e.RuleID, &e.RuleVersion, &e.AccountID, &e.EventID, &e.Trigger, &e.RunID,
		&e.Matched, &e.Error, &e.Actions, &e.DepthLimited, &e.StartedAt, &e.EvaluatedAt, &e.BackfillID)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Filter narrows a list of evaluations; zero fields match everything.
type Filter struct {
	AccountID  uuid.UUID
	RuleID     uuid.UUID
	EventID    uuid.UUID
	RunID      string
	Trigger    string
	BackfillID uuid.UUID
	Matched    *bool
}

// List reads one page of evaluations through q, newest first.
func List(ctx context.Context, q db.Querier, f Filter, p page.Params) (page.Page[*Evaluation], error) {
	var c db.Conditions
	if f.AccountID != uuid.Nil {
		c.Add("account_id = $%d", f.AccountID)
	}
	if f.RuleID != uuid.Nil {
		c.Add("rule_id = $%d", f.RuleID)
	}
	if f.EventID != uuid.Nil {
		c.Add("event_id = $%d", f.EventID)
		// No evaluation of the event is older than it: the partitions
		// before its own are skipped.
		c.Add("id >= $%d", LowestID(f.EventID))
	}
	if f.RunID != "" {
		c.Add("run_id = $%d", f.RunID)
	}
	if f.Trigger != "" {
		c.Add("trigger = $%d", f.Trigger)
	}
	if f.BackfillID != uuid.Nil {
		c.Add("backfill_id = $%d", f.BackfillID)
	}
	if f.Matched != nil {
		c.Add("matched = $%d", *f.Matched)
	}
	query, args := c.Page(`SELECT `+columns+` FROM evaluations`, p)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Evaluation]{}, translate("list evaluations", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Evaluation, error) { return scan(r) })
	if err != nil {
		return page.Page[*Evaluation]{}, translate("list evaluations", err)
	}
	return page.Build(items, p.Limit, func(e *Evaluation) uuid.UUID { return e.ID }), nil
}

// ForEvent returns every evaluation of an event, in the order they started.
func ForEvent(ctx context.Context, q db.Querier, eventID uuid.UUID) ([]*Evaluation, error) {
	rows, err := q.Query(ctx, `SELECT `+columns+` FROM evaluations WHERE event_id = $1 AND id >= $2 ORDER BY started_at, id`,
		eventID, LowestID(eventID))
	if err != nil {
		return nil, translate("evaluations of event", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Evaluation, error) { return scan(r) })
	if err != nil {
		return nil, translate("evaluations of event", err)
	}
	return items, nil
}

// Service reads evaluations.
type Service struct{ pool *pgxpool.Pool }

// NewService returns a Service.
func NewService(pool *pgxpool.Pool) *Service { return &Service{pool: pool} }

// List returns one page of evaluations, newest first.
func (s *Service) List(ctx context.Context, f Filter, p page.Params) (page.Page[*Evaluation], error) {
	return List(ctx, s.pool, f, p)
}

// ForEvent returns every evaluation of an event.
func (s *Service) ForEvent(ctx context.Context, eventID uuid.UUID) ([]*Evaluation, error) {
	return ForEvent(ctx, s.pool, eventID)
}

func translate(action string, err error) error {
	return db.Wrap(action, err, nil)
}
