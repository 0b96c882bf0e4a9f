package rule

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
)

// ErrVersionNotFound is returned when a rule exists but never had the
// version asked for.
var ErrVersionNotFound = apperr.New(apperr.NotFound, "rule version not found")

// Draft checks in as creating a rule does, except that a draft needs no
// name, and returns the rule it describes with its compiled form. The rule is
// stored nowhere: its id is uuid.Nil and its version 0, and its programs are
// not cached. Its webhook endpoints are not looked up; RequireEndpoints does
// that.
func (c *Compiler) Draft(in Input) (*Rule, *Compiled, error) {
	compiled, err := c.normalize(&in, true)
	if err != nil {
		return nil, nil, err
	}
	return &Rule{Name: in.Name, Description: in.Description, EventTypes: in.EventTypes, Scheduled: in.Scheduled,
		Condition: in.Condition, Actions: in.Actions, Enabled: in.Enabled}, compiled, nil
}

// GetVersion reads version of rule id, as rule_versions keeps it, through q:
// ErrNotFound when there is no such rule, ErrVersionNotFound when it never
// had that version. The rule's own timestamps come with it, as they are now.
func GetVersion(ctx context.Context, q db.Querier, id uuid.UUID, version int) (*Rule, error) {
	var (
		r     Rule
		found bool
	)
	err := q.QueryRow(ctx, `
		SELECT r.id, v.version IS NOT NULL, coalesce(v.name, ''), coalesce(v.description, ''), coalesce(v.event_types, '{}'),
			coalesce(v.scheduled, false), coalesce(v.condition, ''), coalesce(v.actions, '[]'), coalesce(v.enabled, false),
			coalesce(v.version, 0), r.created_at, r.updated_at, r.deleted_at
		FROM rules r LEFT JOIN rule_versions v ON v.rule_id = r.id AND v.version = $2
		WHERE r.id = $1`, id, version).Scan(&r.ID, &found, &r.Name, &r.Description, &r.EventTypes, &r.Scheduled,
		&r.Condition, &r.Actions, &r.Enabled, &r.Version, &r.CreatedAt, &r.UpdatedAt, &r.DeletedAt)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return nil, ErrNotFound
	case err != nil:
		return nil, wrap("get rule version", err)
	case !found:
		return nil, ErrVersionNotFound
	}
	return &r, nil
}
