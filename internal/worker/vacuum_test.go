package worker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/worker"
)

// vacuumBundle is a database with dead rows in river_job and statistics that
// show them.
type vacuumBundle struct {
	pool  *pgxpool.Pool
	stats func(table string) vacuumStats
}

type vacuumStats struct{ vacuumed, analyzed *time.Time }

// setupVacuum gives river_job 200 dead rows: over the default threshold of 50
// plus 20% of no live rows. idempotency_keys gets nothing. autovacuumOff
// turns autovacuum off for every VacuumTable (the database's owner may; the
// server's setting needs a superuser and would reach other tests).
func setupVacuum(t *testing.T, autovacuumOff bool) vacuumBundle {
	t.Helper()
	pool := dbtest.New(t)
	ctx := context.Background()
	if autovacuumOff {
		// A partitioned table has no storage: its partitions have.
		rows, err := pool.Query(ctx, `
			SELECT coalesce(p.relid, t::regclass)::text
			FROM unnest($1::text[]) t LEFT JOIN LATERAL pg_partition_tree(t::regclass) p ON true
			WHERE coalesce(p.isleaf, true)`,
			worker.VacuumTables)
		require.NoError(t, err)
		leaves, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		for _, table := range leaves {
			_, err := pool.Exec(ctx, `ALTER TABLE `+table+` SET (autovacuum_enabled = off)`)
			require.NoError(t, err)
		}
	}
	// Rows made and deleted in SQL: no River API leaves dead tuples on demand.
	_, err := pool.Exec(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, queue, state)
		SELECT '{}', 'probe', 1, 'probe', 'available' FROM generate_series(1, 200);
		DELETE FROM river_job WHERE kind = 'probe'`)
	require.NoError(t, err)
	// Backends report their statistics asynchronously.
	require.Eventually(t, func() bool {
		var dead int
		require.NoError(t, pool.QueryRow(ctx, `SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'river_job'`).Scan(&dead))
		return dead >= 200
	}, 5*time.Second, 50*time.Millisecond)
	return vacuumBundle{pool: pool, stats: func(table string) vacuumStats {
		var s vacuumStats
		require.NoError(t, pool.QueryRow(ctx, `SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = $1`,
			table).Scan(&s.vacuumed, &s.analyzed))
		return s
	}}
}

// ctrader vacuums a table with enough dead rows where autovacuum does not:
// the server's autovacuum is off, or the table's own autovacuum_enabled is.
// A table that barely changed is left alone either way, and so is a table
// autovacuum looks after.
func TestVacuumRunsWhereAutovacuumDoesNot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                 string
		serverOn, tablesOff  bool
		wantRiverJobVacuumed bool
	}{
		{"server off", false, false, true},
		{"server on, tables off", true, true, true},
		{"server on", true, false, false},
	}
	// Analyzing is done either way: see TestVacuumAnalyzesWhatAutovacuumWouldLater.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setupVacuum(t, tt.tablesOff)
			jobBefore, keysBefore := b.stats("river_job"), b.stats("idempotency_keys")

			w := worker.NewVacuumWorkerOnServer(b.pool, tt.serverOn)
			require.NoError(t, w.Work(context.Background(), &river.Job[jobs.Vacuum]{}))

			if !tt.wantRiverJobVacuumed {
				b.requireAnalyzed(t, "river_job", jobBefore)
				time.Sleep(200 * time.Millisecond) // time for statistics a vacuum would report
				require.Equal(t, jobBefore.vacuumed, b.stats("river_job").vacuumed,
					"a table autovacuum looks after is left to it to vacuum")
				return
			}
			b.requireVacuumedAndAnalyzed(t, "river_job", jobBefore)
			require.Equal(t, keysBefore, b.stats("idempotency_keys"), "a table that did not change is left alone")
		})
	}
}

// The worker as River runs it reads the server's setting: with autovacuum off
// for its tables it vacuums them on any server.
func TestVacuumReadsTheServersSetting(t *testing.T) {
	t.Parallel()
	b := setupVacuum(t, true)
	jobBefore := b.stats("river_job")
	require.NoError(t, worker.NewVacuumWorker(b.pool).Work(context.Background(), &river.Job[jobs.Vacuum]{}))
	b.requireVacuumedAndAnalyzed(t, "river_job", jobBefore)
}

func (b vacuumBundle) requireAnalyzed(t *testing.T, table string, before vacuumStats) {
	t.Helper()
	require.Eventually(t, func() bool {
		after := b.stats(table)
		return after.analyzed != nil && (before.analyzed == nil || after.analyzed.After(*before.analyzed))
	}, 5*time.Second, 50*time.Millisecond, "%s was analyzed", table)
}

// A plan Postgres caches for a prepared statement (pgx prepares every
// statement it runs, River's too) is made for the table as its statistics
// last described it. Made while river_job was nearly empty, a join on job ids
// reads the whole table, and keeps reading it as the table grows, until the
// table's statistics change: on a fresh database that was every job's
// completion scanning river_job for up to a minute, which showed as stalls.
// ctrader analyzes its busiest tables as soon as autovacuum's thresholds say
// they changed, also where autovacuum would, since autovacuum looks only
// once a minute; the cached plans are then made again.
func TestVacuumAnalyzesWhatAutovacuumWouldLater(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	conn, err := pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	_, err = conn.Exec(ctx, `
		SET plan_cache_mode = force_generic_plan;
		PREPARE by_ids(bigint[]) AS SELECT j.id FROM river_job j JOIN unnest($1) AS i(id) ON j.id = i.id`)
	require.NoError(t, err)
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `DEALLOCATE by_ids; RESET plan_cache_mode`) }()
	plan := func() string {
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE by_ids('{1,2,3}')`)
		require.NoError(t, err)
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		require.NoError(t, err)
		return strings.Join(lines, "\n")
	}
	require.Contains(t, plan(), "Seq Scan on river_job", "the plan made for an empty table")

	_, err = pool.Exec(ctx, `
		INSERT INTO river_job (args, kind, max_attempts, queue, state, finalized_at)
		SELECT '{}', 'probe', 1, 'probe', 'completed', now() FROM generate_series(1, 20000)`)
	require.NoError(t, err)
	require.Contains(t, plan(), "Seq Scan on river_job", "the cached plan outlives the table it was made for")

	// Backends report their statistics asynchronously.
	require.Eventually(t, func() bool {
		var changed int
		require.NoError(t, pool.QueryRow(ctx, `SELECT n_mod_since_analyze FROM pg_stat_user_tables WHERE relname = 'river_job'`).Scan(&changed))
		return changed >= 20000
	}, 5*time.Second, 50*time.Millisecond)
	w := worker.NewVacuumWorkerOnServer(pool, true)
	require.NoError(t, w.Work(ctx, &river.Job[jobs.Vacuum]{}))
	got := plan()
	require.NotContains(t, got, "Seq Scan on river_job", "analyzed, the table gets a plan for its size")
	require.Contains(t, got, "river_job_pkey")
}

func (b vacuumBundle) requireVacuumedAndAnalyzed(t *testing.T, table string, before vacuumStats) {
	t.Helper()
	require.Eventually(t, func() bool {
		after := b.stats(table)
		return after.vacuumed != nil && (before.vacuumed == nil || after.vacuumed.After(*before.vacuumed)) &&
			after.analyzed != nil && (before.analyzed == nil || after.analyzed.After(*before.analyzed))
	}, 5*time.Second, 50*time.Millisecond, "%s was vacuumed and analyzed", table)
}

// A vacuum run is not queued while another waits or runs.
func TestVacuumRunsOneAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	first, err := b.client.Insert(ctx, jobs.Vacuum{}, nil)
	require.NoError(t, err)
	require.False(t, first.UniqueSkippedAsDuplicate)
	second, err := b.client.Insert(ctx, jobs.Vacuum{}, nil)
	require.NoError(t, err)
	require.True(t, second.UniqueSkippedAsDuplicate)

	res, err := work(ctx, t, b, worker.NewVacuumWorker(b.pool), first.Job)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
	third, err := b.client.Insert(ctx, jobs.Vacuum{}, nil)
	require.NoError(t, err)
	require.False(t, third.UniqueSkippedAsDuplicate, "a finished run does not block the next")
}
