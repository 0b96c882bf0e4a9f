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

func TestVacuumRunsOnlyWhenAutovacuumIsOff(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	var autovacuum string
	require.NoError(t, pool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&autovacuum))

	lastVacuum := func() *time.Time {
		var t0 *time.Time
		require.NoError(t, pool.QueryRow(ctx, `SELECT last_vacuum FROM pg_stat_user_tables WHERE relname = 'river_job'`).Scan(&t0))
		return t0
	}
	before := lastVacuum()
	require.NoError(t, worker.NewVacuumWorker(pool).Work(ctx, &river.Job[jobs.Vacuum]{}))

	// The statistics collector reports asynchronously.
	if autovacuum == "off" {
		require.Eventually(t, func() bool {
			after := lastVacuum()
			return after != nil && (before == nil || after.After(*before))
		}, 5*time.Second, 50*time.Millisecond, "river_job was vacuumed")
	} else {
		time.Sleep(200 * time.Millisecond)
		require.Equal(t, before, lastVacuum(), "with autovacuum on, ctrader leaves vacuuming to Postgres")
	}
}
