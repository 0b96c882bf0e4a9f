package rule

import (
	"context"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/page"
)

const columns = `id, name, description, event_types, scheduled, condition, actions, enabled, version, created_at, updated_at, deleted_at`

func scan(row pgx.Row) (*Rule, error) {
	var r Rule
	err := row.Scan(&r.ID, &r.Name, &r.Description, &r.EventTypes, &r.Scheduled, &r.Condition, &r.Actions,
		&r.Enabled, &r.Version, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

func collect(rows pgx.Rows, err error) ([]*Rule, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Rule, error) { return scan(r) })
}

func saveVersion(ctx context.Context, tx pgx.Tx, r *Rule) error {
	_, err := tx.Exec(ctx, `
		INSERT INTO rule_versions (rule_id, version, name, description, event_types, scheduled, condition, actions, enabled)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		r.ID, r.Version, r.Name, r.Description, r.EventTypes, r.Scheduled, r.Condition, r.Actions, r.Enabled)
	return err
}

func insert(ctx context.Context, tx pgx.Tx, id uuid.UUID, in Input) (*Rule, error) {
	r, err := scan(tx.QueryRow(ctx, `
		INSERT INTO rules (id, name, description, event_types, scheduled, condition, actions, enabled)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
		RETURNING `+columns,
		id, in.Name, in.Description, in.EventTypes, in.Scheduled, in.Condition, in.Actions, in.Enabled))
	if err != nil {
		return nil, err
	}
	return r, saveVersion(ctx, tx, r)
}

func update(ctx context.Context, tx pgx.Tx, cur *Rule, in Input, deleting bool) (*Rule, error) {
	r, err := scan(tx.QueryRow(ctx, `
		UPDATE rules SET name = $2, description = $3, event_types = $4, scheduled = $5, condition = $6,
			actions = $7, enabled = $8, version = version + 1, updated_at = now(),
			deleted_at = CASE WHEN $9 THEN now() ELSE deleted_at END
		WHERE id = $1
		RETURNING `+columns,
		cur.ID, in.Name, in.Description, in.EventTypes, in.Scheduled, in.Condition, in.Actions, in.Enabled, deleting))
	if err != nil {
		return nil, err
	}
	return r, saveVersion(ctx, tx, r)
}

// Get reads a rule through q.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (*Rule, error) {
	r, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM rules WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get rule", err)
	}
	return r, nil
}

// NamesSendingTo names, in order, the rules not deleted that have a webhook
// action sending to endpointID, read through q. A webhook endpoint is deleted
// only when it returns none.
func NamesSendingTo(ctx context.Context, q db.Querier, endpointID uuid.UUID) ([]string, error) {
	rows, err := q.Query(ctx, `
		SELECT name FROM rules
		WHERE deleted_at IS NULL AND actions @> jsonb_build_array(jsonb_build_object('endpoint_id', $1::text))
		ORDER BY name`, endpointID.String())
	if err != nil {
		return nil, fmt.Errorf("read rules sending to a webhook endpoint: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read rules sending to a webhook endpoint: %w", err)
	}
	return names, nil
}

// getForUpdate locks a rule against other changes. FOR NO KEY UPDATE lets
// evaluations referencing the rule be written meanwhile.
func getForUpdate(ctx context.Context, tx pgx.Tx, id uuid.UUID) (*Rule, error) {
	return scan(tx.QueryRow(ctx, `SELECT `+columns+` FROM rules WHERE id = $1 FOR NO KEY UPDATE`, id))
}

// List reads one page of rules through q, newest first.
func List(ctx context.Context, q db.Querier, f Filter, p page.Params) (page.Page[*Rule], error) {
	var c db.Conditions
	if !f.IncludeDeleted {
		c.AddFixed("deleted_at IS NULL")
	}
	if f.Enabled != nil {
		c.Add("enabled = $%d", *f.Enabled)
	}
	if f.Scheduled != nil {
		c.Add("scheduled = $%d", *f.Scheduled)
	}
	query, args := c.Page(`SELECT `+columns+` FROM rules`, p)
	items, err := collect(q.Query(ctx, query, args...))
	if err != nil {
		return page.Page[*Rule]{}, wrap("list rules", err)
	}
	return page.Build(items, p.Limit, func(r *Rule) uuid.UUID { return r.ID }), nil
}

// BatchForTypes adds to b the read of the enabled rules evaluated for any of
// the event types types selects, in id order, and sets *out when b runs.
// AppliesTo tells which event types each is evaluated for.
func BatchForTypes(b *pgx.Batch, types db.Subquery, out *[]*Rule) {
	b.Queue(`
		SELECT `+columns+` FROM rules
		WHERE enabled AND deleted_at IS NULL
		  AND ((event_types = '{}' AND NOT scheduled)
		       OR event_types && ARRAY(`+types.SQL+`))
		ORDER BY id`, types.Args...).Query(func(rows pgx.Rows) error {
		items, err := collect(rows, nil)
		if err != nil {
			return wrap("rules for events", err)
		}
		*out = items
		return nil
	})
}

// AppliesTo reports whether the rule, when enabled, is evaluated for events
// of eventType: a rule names the types it is for, or names none and is then
// for every type unless it is scheduled.
func (r *Rule) AppliesTo(eventType string) bool {
	if len(r.EventTypes) == 0 {
		return !r.Scheduled
	}
	return slices.Contains(r.EventTypes, eventType)
}

// Enabled returns the enabled rules among ids, or every enabled scheduled rule
// when ids is empty.
func Enabled(ctx context.Context, q db.Querier, ids []uuid.UUID) ([]*Rule, error) {
	var (
		items []*Rule
		err   error
	)
	if len(ids) == 0 {
		items, err = collect(q.Query(ctx, `
			SELECT `+columns+` FROM rules WHERE enabled AND deleted_at IS NULL AND scheduled ORDER BY id`))
	} else {
		items, err = collect(q.Query(ctx, `
			SELECT `+columns+` FROM rules WHERE enabled AND deleted_at IS NULL AND id = ANY ($1) ORDER BY id`, ids))
	}
	if err != nil {
		return nil, wrap("enabled rules", err)
	}
	return items, nil
}

// GetVersion reads one version of a rule, as it was when it was current,
// through q. Its UpdatedAt is when the version was made.
func GetVersion(ctx context.Context, q db.Querier, id uuid.UUID, version int) (*Rule, error) {
	r := Rule{ID: id, Version: version}
	err := q.QueryRow(ctx, `
		SELECT name, description, event_types, scheduled, condition, actions, enabled, created_at
		FROM rule_versions WHERE rule_id = $1 AND version = $2`, id, version).
		Scan(&r.Name, &r.Description, &r.EventTypes, &r.Scheduled, &r.Condition, &r.Actions, &r.Enabled, &r.UpdatedAt)
	if err != nil {
		return nil, wrap("get rule version", err)
	}
	r.CreatedAt = r.UpdatedAt
	return &r, nil
}
