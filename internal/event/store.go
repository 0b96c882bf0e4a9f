package event

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
)

const columns = `id, account_id, type, payload, occurred_at, received_at, status, processed_at, failure_reason, causation_id, depth`

func scan(row pgx.Row) (*Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.AccountID, &e.Type, &e.Payload, &e.OccurredAt, &e.ReceivedAt, &e.Status,
		&e.ProcessedAt, &e.FailureReason, &e.CausationID, &e.Depth)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Insert stores events and, for each, the first job of its pipeline, in tx.
// A single event is a plain INSERT; several are copied in bulk.
func Insert(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, events []*Event) error {
	if len(events) == 1 {
		e := events[0]
		if _, err := tx.Exec(ctx, `
			INSERT INTO events (id, account_id, type, payload, occurred_at, received_at, causation_id, depth)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
			e.ID, e.AccountID, e.Type, e.Payload, e.OccurredAt, e.ReceivedAt, e.CausationID, e.Depth); err != nil {
			return fmt.Errorf("insert event: %w", err)
		}
		if _, err := inserter.InsertTx(ctx, tx, jobs.ForEvent(e.ID, e.Type), nil); err != nil {
			return fmt.Errorf("insert event job: %w", err)
		}
		return nil
	}
	rows := make([][]any, len(events))
	params := make([]river.InsertManyParams, len(events))
	for i, e := range events {
		rows[i] = []any{e.ID, e.AccountID, e.Type, e.Payload, e.OccurredAt, e.ReceivedAt, e.CausationID, e.Depth}
		params[i] = river.InsertManyParams{Args: jobs.ForEvent(e.ID, e.Type)}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
		[]string{"id", "account_id", "type", "payload", "occurred_at", "received_at", "causation_id", "depth"},
		pgx.CopyFromRows(rows)); err != nil {
		return fmt.Errorf("copy events: %w", err)
	}
	// Event jobs have no unique options, so the COPY-based insert cannot
	// trip over a duplicate.
	if _, err := inserter.InsertManyFastTx(ctx, tx, params); err != nil {
		return fmt.Errorf("insert event jobs: %w", err)
	}
	return nil
}

// Get reads one event through q.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (*Event, error) {
	e, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM events WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get event", err)
	}
	return e, nil
}

// GetForUpdate reads one event and locks it until tx ends, so that two runs
// of the same job serialize on it.
func GetForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Event, error) {
	e, err := scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM events WHERE id = $1 FOR UPDATE`, id))
	if err != nil {
		return nil, wrap("lock event", err)
	}
	return e, nil
}

// List reads one page of events through q, newest first.
func List(ctx context.Context, q db.Querier, f Filter, p page.Params) (page.Page[*Event], error) {
	var c db.Conditions
	if f.AccountID != uuid.Nil {
		c.Add("account_id = $%d", f.AccountID)
	}
	if f.Type != "" {
		c.Add("type = $%d", f.Type)
	}
	if f.Status != "" {
		c.Add("status = $%d", f.Status)
	}
	query, args := c.Page(`SELECT `+columns+` FROM events`, p)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Event]{}, wrap("list events", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Event, error) { return scan(r) })
	if err != nil {
		return page.Page[*Event]{}, wrap("list events", err)
	}
	return page.Build(items, p.Limit, func(e *Event) uuid.UUID { return e.ID }), nil
}

// MarkProcessed records that every matching rule has been evaluated.
func MarkProcessed(ctx context.Context, q db.Querier, id uuid.UUID) error {
	if _, err := q.Exec(ctx, `
		UPDATE events SET status = 'processed', processed_at = clock_timestamp()
		WHERE id = $1 AND status = 'pending'`, id); err != nil {
		return wrap("mark event processed", err)
	}
	return nil
}

// MarkFailed records that the event's job was given up on, and why.
func MarkFailed(ctx context.Context, q db.Querier, id uuid.UUID, reason string) error {
	// Postgres rejects text that is not UTF-8, so the cut must not split a
	// character.
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) > 2000 {
		reason = strings.ToValidUTF8(reason[:2000], "")
	}
	if _, err := q.Exec(ctx, `
		UPDATE events SET status = 'failed', processed_at = clock_timestamp(), failure_reason = $2
		WHERE id = $1 AND status = 'pending'`, id, reason); err != nil {
		return wrap("mark event failed", err)
	}
	return nil
}

// ClaimWon marks a won event as applied to its account's totals and reports
// whether this call did it: true exactly once per event.
func ClaimWon(ctx context.Context, tx pgx.Tx, id uuid.UUID) (bool, error) {
	tag, err := tx.Exec(ctx, `UPDATE events SET won_applied_at = now() WHERE id = $1 AND won_applied_at IS NULL`, id)
	if err != nil {
		return false, wrap("claim won event", err)
	}
	return tag.RowsAffected() == 1, nil
}
