package account_test

import (
	"context"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/worker"
)

type testBundle struct {
	pool *pgxpool.Pool
	svc  *account.Service
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.New(t)
	client, err := worker.NewClient(pool, dbtest.Logger(t), worker.Options{})
	require.NoError(t, err)
	return &testBundle{pool: pool, svc: account.NewService(pool, client)}
}

func count(t *testing.T, pool *pgxpool.Pool, query string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(context.Background(), query).Scan(&n))
	return n
}

func TestCreateStoresAccountAndJobTogether(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)

	a, err := b.svc.Create(ctx, account.CreateInput{Name: "  John Doe ", Metadata: map[string]any{"tier": "gold"}})
	require.NoError(t, err)
	require.Equal(t, "John Doe", a.Name, "name is trimmed")
	require.Equal(t, account.StatusPending, a.Status)
	require.Equal(t, map[string]any{"tier": "gold"}, a.Metadata)
	require.Nil(t, a.ActivatedAt)

	job := rivertest.RequireInserted(ctx, t, riverpgxv5.New(b.pool), jobs.AccountProvision{}, &rivertest.RequireInsertedOpts{Queue: queue.Accounts})
	require.Equal(t, a.ID, job.Args.AccountID)

	got, err := b.svc.Get(ctx, a.ID)
	require.NoError(t, err)
	require.Equal(t, a.ID, got.ID)
}

func TestCreateJobInsertFailureLeavesNoAccount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	// Make every job insert fail inside Postgres.
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by test'; END $$;
		CREATE TRIGGER refuse BEFORE INSERT ON river_job FOR EACH ROW EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)

	_, err = b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.Error(t, err)
	require.Equal(t, apperr.Internal, apperr.CodeOf(err))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM accounts`), "the account row was rolled back with the job")
}

func TestCreateAccountInsertFailureLeavesNoJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	// Fail the account insert after it reached Postgres (a deferred
	// constraint-like failure at the row level).
	_, err := b.pool.Exec(ctx, `
		CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'refused by test'; END $$;
		CREATE CONSTRAINT TRIGGER refuse AFTER INSERT ON accounts
		DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse();`)
	require.NoError(t, err)

	_, err = b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.Error(t, err, "the commit fails after both inserts ran")
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM river_job`), "the job was rolled back with the account")
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM accounts`))
}

func TestCreateRejectsBadInput(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name     string
		in       account.CreateInput
		location string
	}{
		{"blank name", account.CreateInput{Name: " \t "}, "body.name"},
		{"name too long", account.CreateInput{Name: strings.Repeat("é", 201)}, "body.name"},
		{"metadata too large", account.CreateInput{Name: "x", Metadata: map[string]any{"blob": strings.Repeat("a", 17*1024)}}, "body.metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := b.svc.Create(context.Background(), tt.in)
			var ae *apperr.Error
			require.ErrorAs(t, err, &ae)
			require.Equal(t, apperr.Invalid, ae.Code)
			require.Len(t, ae.Fields, 1)
			require.Equal(t, tt.location, ae.Fields[0].Location)
		})
	}
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM accounts`))
	require.Zero(t, count(t, b.pool, `SELECT count(*) FROM river_job`))
}

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	b := setup(t)
	_, err := b.svc.Get(context.Background(), uuid.Must(uuid.NewV7()))
	require.ErrorIs(t, err, account.ErrNotFound)
}

func TestListPaginatesNewestFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	var created []uuid.UUID
	for i := range 7 {
		a, err := b.svc.Create(ctx, account.CreateInput{Name: "account " + string(rune('a'+i))})
		require.NoError(t, err)
		created = append(created, a.ID)
	}

	var seen []uuid.UUID
	p := page.Params{Limit: 3}
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4, "pagination must end")
		res, err := b.svc.List(ctx, p)
		require.NoError(t, err)
		require.LessOrEqual(t, len(res.Items), 3)
		for _, a := range res.Items {
			seen = append(seen, a.ID)
		}
		if res.NextCursor == "" {
			break
		}
		p.After, err = page.DecodeCursor(res.NextCursor)
		require.NoError(t, err)
	}
	require.Len(t, seen, 7)
	for i := range seen {
		require.Equal(t, created[len(created)-1-i], seen[i], "newest first, no gaps or repeats")
	}
}

func TestDecodeCursorRejectsForgeries(t *testing.T) {
	t.Parallel()
	for _, c := range []string{"zzz", "!!!!", "AAAAAAAAAAAAAAAAAAAAAA", page.EncodeCursor(uuid.Nil) + "A"} {
		_, err := page.DecodeCursor(c)
		require.ErrorIs(t, err, page.ErrBadCursor, c)
	}
	id := uuid.Must(uuid.NewV7())
	got, err := page.DecodeCursor(page.EncodeCursor(id))
	require.NoError(t, err)
	require.Equal(t, id, got)
}

// A status change must not block what only needs the account to exist: the
// foreign-key checks of events and evaluations being inserted for it (KEY
// SHARE locks). A FOR UPDATE lock did, and deadlocked batch ingest against
// the workers that change statuses.
func TestSetStatusDoesNotBlockForeignKeyChecks(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t)
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "locked"})
	require.NoError(t, err)

	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer tx.Rollback(ctx) //nolint:errcheck
	previous, err := account.SetStatus(ctx, tx, a.ID, "vip")
	require.NoError(t, err)
	require.Equal(t, account.StatusPending, previous)

	other, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer other.Rollback(ctx) //nolint:errcheck
	_, err = other.Exec(ctx, `SET LOCAL lock_timeout = '2s'`)
	require.NoError(t, err)
	_, err = other.Exec(ctx, `
		INSERT INTO events (id, account_id, type, payload, occurred_at)
		VALUES ($1, $2, 'won', '{"amount": 1}', now())`, uuid.Must(uuid.NewV7()), a.ID)
	require.NoError(t, err, "inserting an event for the account waited for the status change's lock")
	// The status change itself still serializes with another one.
	_, err = account.SetStatus(ctx, other, a.ID, "gold")
	require.Error(t, err, "two status changes of one account must not run at once")
}
