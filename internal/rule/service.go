package rule

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/page"
)

// Service manages rules.
type Service struct {
	pool      *pgxpool.Pool
	compiler  *Compiler
	endpoints EndpointCheck
}

// NewService returns a Service that checks conditions with compiler and
// the endpoints of webhook actions with endpoints, which is required.
func NewService(pool *pgxpool.Pool, compiler *Compiler, endpoints EndpointCheck) *Service {
	if endpoints == nil {
		panic("rule: an endpoint check is required")
	}
	return &Service{pool: pool, compiler: compiler, endpoints: endpoints}
}

// Create checks and stores a new rule at version 1.
func (s *Service) Create(ctx context.Context, in Input) (*Rule, error) {
	if _, err := s.compiler.normalize(&in, false); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	var r *Rule
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.requireEndpoints(ctx, tx, in.Actions); err != nil {
			return err
		}
		var err error
		r, err = insert(ctx, tx, id, in)
		return err
	})
	if err != nil {
		return nil, wrap("create rule", err)
	}
	return r, nil
}

// Get returns a rule, deleted or not.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Rule, error) {
	return Get(ctx, s.pool, id)
}

// Filter narrows a list of rules.
type Filter struct {
	IncludeDeleted bool
	Enabled        *bool
	Scheduled      *bool
}

// List returns one page of rules, newest first.
func (s *Service) List(ctx context.Context, f Filter, p page.Params) (page.Page[*Rule], error) {
	return List(ctx, s.pool, f, p)
}

// Update applies a patch. A patch that changes anything makes a new version;
// one that changes nothing returns the rule as it is.
func (s *Service) Update(ctx context.Context, id uuid.UUID, p Patch) (*Rule, error) {
	var out *Rule
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := getForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.DeletedAt != nil {
			return ErrDeleted
		}
		in := p.apply(cur)
		if _, err := s.compiler.normalize(&in, false); err != nil {
			return err
		}
		if in.equal(cur) {
			out = cur
			return nil
		}
		if err := s.requireEndpoints(ctx, tx, in.Actions); err != nil {
			return err
		}
		out, err = update(ctx, tx, cur, in, false)
		return err
	})
	if err != nil {
		return nil, wrap("update rule", err)
	}
	return out, nil
}

// Delete disables the rule and marks it deleted; its versions and
// evaluations stay. Deleting a deleted rule changes nothing.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := getForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.DeletedAt != nil {
			return nil
		}
		in := Patch{}.apply(cur)
		in.Enabled = false
		_, err = update(ctx, tx, cur, in, true)
		return err
	})
	if err != nil {
		return wrap("delete rule", err)
	}
	return nil
}
