package account

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/page"
)

const columns = `id, name, status, metadata, created_at, updated_at, activated_at`

func scan(row pgx.Row) (*Account, error) {
	var a Account
	if err := row.Scan(&a.ID, &a.Name, &a.Status, &a.Metadata, &a.CreatedAt, &a.UpdatedAt, &a.ActivatedAt); err != nil {
		return nil, err
	}
	return &a, nil
}

func insert(ctx context.Context, q db.Querier, id uuid.UUID, in CreateInput) (*Account, error) {
	row := q.QueryRow(ctx, `
		INSERT INTO accounts (id, name, metadata)
		VALUES ($1, $2, $3)
		RETURNING `+columns, id, in.Name, in.Metadata)
	return scan(row)
}

// Get reads one account through q.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (*Account, error) {
	a, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM accounts WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get account", err)
	}
	return a, nil
}

// List reads one page of accounts through q, newest first.
func List(ctx context.Context, q db.Querier, p page.Params) (page.Page[*Account], error) {
	rows, err := q.Query(ctx, `
		SELECT `+columns+` FROM accounts
		WHERE ($1::uuid IS NULL OR id < $1)
		ORDER BY id DESC
		LIMIT $2`, nullID(p.After), p.Limit+1)
	if err != nil {
		return page.Page[*Account]{}, wrap("list accounts", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Account, error) { return scan(r) })
	if err != nil {
		return page.Page[*Account]{}, wrap("list accounts", err)
	}
	return page.Build(items, p.Limit, func(a *Account) uuid.UUID { return a.ID }), nil
}

// Activate moves a pending account to active through q and reports whether it
// changed anything: running it again is a no-op.
func Activate(ctx context.Context, q db.Querier, id uuid.UUID) (bool, error) {
	tag, err := q.Exec(ctx, `
		UPDATE accounts SET status = 'active', activated_at = now(), updated_at = now()
		WHERE id = $1 AND status = 'pending'`, id)
	if err != nil {
		return false, wrap("activate account", err)
	}
	if tag.RowsAffected() == 1 {
		return true, nil
	}
	var exists bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)`, id).Scan(&exists); err != nil {
		return false, wrap("activate account", err)
	}
	if !exists {
		return false, ErrNotFound
	}
	return false, nil
}

func nullID(id uuid.UUID) *uuid.UUID {
	if id == uuid.Nil {
		return nil
	}
	return &id
}

func wrap(action string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNotFound
	}
	err = db.Translate(err)
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	return fmt.Errorf("%s: %w", action, err)
}
