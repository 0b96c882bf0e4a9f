package account

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/page"
)

const columns = `id, name, status, metadata, won_count, won_total, created_at, updated_at, activated_at`

func scan(row pgx.Row) (*Account, error) {
	var a Account
	if err := row.Scan(&a.ID, &a.Name, &a.Status, &a.Metadata, &a.WonCount, &a.WonTotal, &a.CreatedAt, &a.UpdatedAt, &a.ActivatedAt); err != nil {
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

// CopyActive stores already provisioned accounts in one COPY, with no
// provisioning jobs, and returns their ids in the order of ins. It is for
// loading many accounts at once where provisioning is not what matters, such
// as the load command's reference run; clients' accounts go through Create.
func CopyActive(ctx context.Context, q db.Querier, ins []CreateInput) ([]uuid.UUID, error) {
	ids := make([]uuid.UUID, len(ins))
	rows := make([][]any, len(ins))
	now := time.Now()
	for i, in := range ins {
		if err := in.normalize(); err != nil {
			return nil, err
		}
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		ids[i] = id
		rows[i] = []any{id, in.Name, StatusActive, in.Metadata, now}
	}
	_, err := q.CopyFrom(ctx, pgx.Identifier{"accounts"},
		[]string{"id", "name", "status", "metadata", "activated_at"}, pgx.CopyFromRows(rows))
	if err != nil {
		return nil, wrap("copy accounts", err)
	}
	return ids, nil
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
	query, args := db.Conditions{}.Page(`SELECT `+columns+` FROM accounts`, p)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Account]{}, wrap("list accounts", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Account, error) { return scan(r) })
	if err != nil {
		return page.Page[*Account]{}, wrap("list accounts", err)
	}
	return page.Build(items, p.Limit, func(a *Account) uuid.UUID { return a.ID }), nil
}

// Existing returns which of ids name an account, read through q.
func Existing(ctx context.Context, q db.Querier, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	rows, err := q.Query(ctx, `SELECT id FROM accounts WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, wrap("look up accounts", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, wrap("look up accounts", err)
	}
	exists := make(map[uuid.UUID]bool, len(found))
	for _, id := range found {
		exists[id] = true
	}
	return exists, nil
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

func wrap(action string, err error) error {
	return db.Wrap(action, err, ErrNotFound)
}

// BatchLock adds to b the read of the accounts whose ids ids selects,
// locked against other writers until the transaction ends, and sets *out
// when b runs. They are locked in the order of their ids, so two
// transactions locking overlapping sets cannot deadlock; inserting events
// for them is not blocked.
func BatchLock(b *pgx.Batch, ids db.Subquery, out *map[uuid.UUID]*Account) {
	batchRead(b, ids, " ORDER BY id FOR NO KEY UPDATE", out)
}

// BatchRead adds to b the read of the accounts whose ids ids selects,
// without locking them, and sets *out when b runs.
func BatchRead(b *pgx.Batch, ids db.Subquery, out *map[uuid.UUID]*Account) {
	batchRead(b, ids, "", out)
}

func batchRead(b *pgx.Batch, ids db.Subquery, lock string, out *map[uuid.UUID]*Account) {
	b.Queue(`
		SELECT `+columns+` FROM accounts
		WHERE id IN (`+ids.SQL+`)`+lock, ids.Args...).Query(func(rows pgx.Rows) error {
		items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Account, error) { return scan(r) })
		if err != nil {
			return wrap("read accounts", err)
		}
		m := make(map[uuid.UUID]*Account, len(items))
		for _, a := range items {
			m[a.ID] = a
		}
		*out = m
		return nil
	})
}

// BatchAddWon adds to b the update that adds won amounts to their accounts'
// totals: amounts[i] belongs to ids[i], and an account may appear more than
// once. Nothing is added for no amounts. The amounts travel as their text,
// so Postgres adds them exactly.
func BatchAddWon(b *pgx.Batch, ids []uuid.UUID, amounts []decimal.Decimal) {
	if len(ids) == 0 {
		return
	}
	texts := make([]string, len(amounts))
	for i, a := range amounts {
		texts[i] = a.String()
	}
	b.Queue(`
		UPDATE accounts a SET won_count = a.won_count + w.n, won_total = a.won_total + w.total, updated_at = now()
		FROM (SELECT id, count(*) AS n, sum(amount) AS total
		      FROM unnest($1::uuid[], $2::text[]::numeric[]) AS t(id, amount) GROUP BY id) w
		WHERE a.id = w.id`, ids, texts)
}

// SetStatus sets the account's status through q and returns the previous one.
// Setting the status it already has changes nothing. The row is locked FOR NO
// KEY UPDATE, the mode an UPDATE of non-key columns takes anyway: it
// serializes status changes but lets the foreign-key checks of events and
// evaluations being inserted for the account (KEY SHARE) through, so batch
// ingest and status changes cannot deadlock.
func SetStatus(ctx context.Context, q db.Querier, id uuid.UUID, status string) (previous string, err error) {
	err = q.QueryRow(ctx, `
		WITH old AS (SELECT status FROM accounts WHERE id = $1 FOR NO KEY UPDATE)
		UPDATE accounts SET status = $2, updated_at = now()
		FROM old WHERE accounts.id = $1 AND old.status <> $2
		RETURNING old.status`, id, status).Scan(&previous)
	if err == nil {
		return previous, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", wrap("set account status", err)
	}
	// Either the account is gone or it already has this status.
	a, err := Get(ctx, q, id)
	if err != nil {
		return "", err
	}
	return a.Status, nil
}

// ProvisionedIDs returns up to limit ids of provisioned accounts after after,
// in id order.
func ProvisionedIDs(ctx context.Context, q db.Querier, after uuid.UUID, limit int) ([]uuid.UUID, error) {
	rows, err := q.Query(ctx, `
		SELECT id FROM accounts
		WHERE activated_at IS NOT NULL AND id > $1
		ORDER BY id LIMIT $2`, after, limit)
	if err != nil {
		return nil, wrap("list provisioned accounts", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, wrap("list provisioned accounts", err)
	}
	return ids, nil
}

// ProvisionedRange returns provisioned accounts with after < id <= through.
func ProvisionedRange(ctx context.Context, q db.Querier, after, through uuid.UUID) ([]*Account, error) {
	rows, err := q.Query(ctx, `
		SELECT `+columns+` FROM accounts
		WHERE activated_at IS NOT NULL AND id > $1 AND id <= $2
		ORDER BY id`, after, through)
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Account, error) { return scan(r) })
	if err != nil {
		return nil, wrap("list accounts", err)
	}
	return items, nil
}
