package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/worker"
)

// With autovacuum off, a table with enough dead rows is vacuumed and analyzed
// and a table that barely changed is left alone; with autovacuum on, nothing
// is done.
func TestVacuumRunsOnlyWhereAutovacuumWould(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	var autovacuum string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&autovacuum))

	type stats struct{ vacuumed, analyzed *time.Time }
	statsOf := func(table string) stats {
		var s stats
		require.NoError(t, pool.QueryRow(ctx, `SELECT last_vacuum, last_analyze FROM pg_stat_user_tables WHERE relname = $1`,
			table).Scan(&s.vacuumed, &s.analyzed))
		return s
	}
	// 200 dead rows in river_job: over the default threshold of 50 plus 20%
	// of no live rows. idempotency_keys gets nothing.
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
	jobBefore, keysBefore := statsOf("river_job"), statsOf("idempotency_keys")

	require.NoError(t, worker.NewVacuumWorker(pool).Work(ctx, &river.Job[jobs.Vacuum]{}))

	if autovacuum == "on" {
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, jobBefore, statsOf("river_job"), "with autovacuum on, ctrader leaves vacuuming to Postgres")
		return
	}
	require.Eventually(t, func() bool {
		after := statsOf("river_job")
		return after.vacuumed != nil && (jobBefore.vacuumed == nil || after.vacuumed.After(*jobBefore.vacuumed)) &&
			after.analyzed != nil && (jobBefore.analyzed == nil || after.analyzed.After(*jobBefore.analyzed))
	}, 5*time.Second, 50*time.Millisecond, "river_job was vacuumed and analyzed")
	require.Equal(t, keysBefore, statsOf("idempotency_keys"), "a table that did not change is left alone")
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

	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE id = $1`, first.Job.ID)
	require.NoError(t, err)
	third, err := b.client.Insert(ctx, jobs.Vacuum{}, nil)
	require.NoError(t, err)
	require.False(t, third.UniqueSkippedAsDuplicate, "a finished run does not block the next")
}
