package db_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/partition"
)

// v7At is a UUIDv7 made at at.
func v7At(at time.Time) uuid.UUID {
	id := uuid.New()
	bound := partition.Bound(at)
	copy(id[:6], bound[:6])
	id[6] = 0x70 | id[6]&0x0f
	return id
}

func texts(t *testing.T, q db.Querier, sql string, args ...any) []string {
	t.Helper()
	rows, err := q.Query(context.Background(), sql, args...)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return out
}

func count(t *testing.T, q db.Querier, sql string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, q.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// populated is a database at migration 7 with rows in every table the
// partitioning touches.
type populated struct {
	pool                    *pgxpool.Pool
	migrator                *db.Migrator
	account, rule           uuid.UUID
	posted, followUp        uuid.UUID
	eventEval, scheduleEval uuid.UUID
}

func setupPopulated(t *testing.T) *populated {
	t.Helper()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.EmptyURL(t))
	m, err := db.NewMigrator(pool, dbtest.Logger(t))
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })
	require.NoError(t, m.UpTo(ctx, 7))

	p := &populated{pool: pool, migrator: m, account: uuid.New(), rule: uuid.New()}
	weekAgo := time.Now().Add(-7 * 24 * time.Hour)
	p.posted, p.followUp = v7At(weekAgo), v7At(weekAgo.Add(time.Second))
	p.eventEval, p.scheduleEval = v7At(weekAgo.Add(time.Second)), v7At(weekAgo.Add(2*time.Second))
	endpoint, delivery := uuid.New(), v7At(weekAgo.Add(time.Second))
	for _, s := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO accounts (id, name) VALUES ($1, 'a')`, []any{p.account}},
		{`INSERT INTO rules (id, name, condition) VALUES ($1, 'r', 'true')`, []any{p.rule}},
		{`INSERT INTO events (id, account_id, type, payload, occurred_at, status) VALUES ($1, $2, 'won', '{"amount": 1}', now(), 'processed')`,
			[]any{p.posted, p.account}},
		{`INSERT INTO events (id, account_id, type, payload, occurred_at, causation_id, root_id, depth) VALUES ($1, $2, 'pong', '{}', now(), $3, $3, 1)`,
			[]any{p.followUp, p.account, p.posted}},
		{`INSERT INTO evaluations (id, rule_id, rule_version, account_id, event_id, trigger, matched, started_at, evaluated_at)
		  VALUES ($1, $2, 1, $3, $4, 'event', true, now(), now())`, []any{p.eventEval, p.rule, p.account, p.posted}},
		{`INSERT INTO evaluations (id, rule_id, rule_version, account_id, trigger, run_id, matched, started_at, evaluated_at)
		  VALUES ($1, $2, 1, $3, 'schedule', 'schedule:2026-01-05T10:00:00Z', false, now(), now())`, []any{p.scheduleEval, p.rule, p.account}},
		{`INSERT INTO webhook_endpoints (id, url) VALUES ($1, 'https://example.com/hook')`, []any{endpoint}},
		{`INSERT INTO webhook_deliveries (id, endpoint_id, evaluation_id, event_type, body, status) VALUES ($1, $2, $3, 'rule.matched', '{}', 'succeeded')`,
			[]any{delivery, endpoint, p.eventEval}},
		{`INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms) VALUES ($1, $2, 1, now(), 5)`, []any{uuid.New(), delivery}},
	} {
		_, err := pool.Exec(ctx, s.sql, s.args...)
		require.NoError(t, err, s.sql)
	}
	return p
}

// Migration 8 turns a populated database's events and evaluations into
// partitioned tables in place: every row stays, in the legacy partition;
// constraint and index names stay; new ids have partitions of their own.
func TestPartitionMigrationKeepsAPopulatedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupPopulated(t)
	pool := p.pool
	before := count(t, pool, `SELECT (SELECT count(*) FROM events) * 100 + (SELECT count(*) FROM evaluations)`)

	// A run killed half-way left a constraint for another week's bound and
	// an index whose build failed: the migration replaces both.
	_, err := pool.Exec(ctx, `ALTER TABLE events ADD CONSTRAINT events_partition_bound CHECK (id < '01000000-0000-0000-0000-000000000000') NOT VALID`)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `INSERT INTO evaluations (id, rule_id, rule_version, account_id, trigger, run_id, matched, started_at, evaluated_at)
		VALUES ($1, $2, 1, $3, 'manual', 'manual:x', false, now(), now())`, v7At(time.Now().Add(-time.Hour)), p.rule, p.account)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `CREATE UNIQUE INDEX CONCURRENTLY evaluations_legacy_event_idx ON evaluations (rule_id)`)
	require.Error(t, err, "duplicate rule ids fail the build and leave the index invalid")
	before++

	err = p.migrator.UpTo(ctx, 8)
	require.NoError(t, err)

	for _, table := range partition.Tables {
		var kind string
		require.NoError(t, pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = $1::regclass`, table).Scan(&kind))
		require.Equal(t, "p", kind, table)
	}
	require.Equal(t, before, count(t, pool, `SELECT (SELECT count(*) FROM events) * 100 + (SELECT count(*) FROM evaluations)`))
	require.Equal(t, 2, count(t, pool, `SELECT count(*) FROM events_legacy`), "no row was copied: the old table is a partition")
	require.Equal(t, 2, count(t, pool, `SELECT count(*) FROM ONLY events_legacy WHERE id IN ($1, $2)`, p.posted, p.followUp))

	require.ElementsMatch(t, []string{"events_pkey", "events_account_id_fkey", "events_type_check", "events_payload_check",
		"events_status_check", "events_depth_check"},
		texts(t, pool, `SELECT conname::text FROM pg_constraint WHERE conrelid = 'events'::regclass`))
	require.ElementsMatch(t, []string{"evaluations_pkey", "evaluations_rule_id_fkey", "evaluations_account_id_fkey",
		"evaluations_trigger_check", "evaluations_check", "evaluations_check1"},
		texts(t, pool, `SELECT conname::text FROM pg_constraint WHERE conrelid = 'evaluations'::regclass`))
	require.ElementsMatch(t, []string{"events_pkey", "events_account_idx", "events_type_idx", "events_status_idx", "events_causation_idx"},
		texts(t, pool, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'events'::regclass AND indisvalid`))
	require.ElementsMatch(t, []string{"evaluations_pkey", "evaluations_account_idx", "evaluations_rule_idx", "evaluations_event_idx", "evaluations_run_idx"},
		texts(t, pool, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'evaluations'::regclass AND indisvalid`))
	require.Empty(t, texts(t, pool, `SELECT conname::text FROM pg_constraint WHERE conname LIKE '%partition_bound'`))
	require.Empty(t, texts(t, pool, `
		SELECT conname::text FROM pg_constraint
		WHERE contype = 'f' AND confrelid IN ('events'::regclass, 'evaluations'::regclass, 'events_legacy'::regclass, 'evaluations_legacy'::regclass)`),
		"nothing references a partitioned table: its partitions can be dropped")
	require.Equal(t, 1, count(t, pool, `SELECT count(*) FROM webhook_deliveries WHERE evaluation_id = $1`, p.eventEval))

	// Reads find the old rows through the new indexes, with the migrations
	// after this one applied too.
	_, err = p.migrator.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, db.CheckSchema(ctx, pool))
	evals, err := evaluation.ForEvent(ctx, pool, p.posted)
	require.NoError(t, err)
	require.Len(t, evals, 1)
	require.Equal(t, p.eventEval, evals[0].ID)

	// New rows have partitions: the legacy one up to the week after next,
	// a week each after it, the DEFAULT partition beyond.
	legacy := partition.Start(time.Now()).Add(2 * partition.Period)
	for at, want := range map[time.Time]string{
		time.Now():                            "events_legacy",
		legacy.Add(time.Hour):                 partition.Name("events", legacy),
		legacy.Add(partition.Period + 1):      partition.Name("events", legacy.Add(partition.Period)),
		time.Now().Add(50 * partition.Period): "events_default",
	} {
		id := v7At(at)
		_, err := pool.Exec(ctx, `INSERT INTO events (id, account_id, type, payload, occurred_at) VALUES ($1, $2, 'x', '{}', now())`, id, p.account)
		require.NoError(t, err)
		var got string
		require.NoError(t, pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM events WHERE id = $1`, id).Scan(&got))
		require.Equal(t, want, got, "%s", at)
	}
}

// Migration 8 goes down to plain tables with every row, and up again; the
// later ones apply on top of it.
func TestPartitionMigrationGoesDownAndUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupPopulated(t)
	err := p.migrator.UpTo(ctx, 8)
	require.NoError(t, err)
	_, err = p.migrator.Down(ctx)
	require.NoError(t, err)
	var kind string
	require.NoError(t, p.pool.QueryRow(ctx, `SELECT relkind::text FROM pg_class WHERE oid = 'events'::regclass`).Scan(&kind))
	require.Equal(t, "r", kind)
	require.Equal(t, 2, count(t, p.pool, `SELECT count(*) FROM events`))
	require.Equal(t, 2, count(t, p.pool, `SELECT count(*) FROM evaluations`))
	require.Contains(t, texts(t, p.pool, `SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = 'evaluations'::regclass`),
		"evaluations_event_key")
	err = p.migrator.UpTo(ctx, 8)
	require.NoError(t, err)
	require.Equal(t, 2, count(t, p.pool, `SELECT count(*) FROM events`))

	// The migrations after it apply to the partitioned tables.
	_, err = p.migrator.Up(ctx)
	require.NoError(t, err)
	require.NoError(t, db.CheckSchema(ctx, p.pool))
	require.Equal(t, 2, count(t, p.pool, `SELECT count(*) FROM evaluations`))
}

// An id made by a clock far ahead does not fail the migration: the legacy
// partition reaches past it.
func TestPartitionMigrationTakesIDsFromAhead(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	p := setupPopulated(t)
	ahead := v7At(time.Now().Add(60 * 24 * time.Hour))
	_, err := p.pool.Exec(ctx, `INSERT INTO events (id, account_id, type, payload, occurred_at) VALUES ($1, $2, 'x', '{}', now())`,
		ahead, p.account)
	require.NoError(t, err)
	_, err = p.migrator.Up(ctx)
	require.NoError(t, err)
	var where string
	require.NoError(t, p.pool.QueryRow(ctx, `SELECT tableoid::regclass::text FROM events WHERE id = $1`, ahead).Scan(&where))
	require.Equal(t, "events_legacy", where)
}
