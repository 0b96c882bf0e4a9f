package app_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/worker"
)

// A process was killed while it held a job; a worker started afterwards
// retries it after PROCESS_DEAD_AFTER, not JOB_RESCUE_AFTER, and on a clean
// stop removes its own heartbeat.
func TestWorkerRetriesTheJobsOfAKilledProcessSoon(t *testing.T) {
	t.Parallel()
	url := dbtest.URL(t)
	pool := dbtest.Pool(t, url)
	ctx := context.Background()
	inserter, err := worker.NewClient(pool, dbtest.Logger(t), worker.Options{})
	require.NoError(t, err)
	a, err := account.NewService(pool, inserter).Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)

	// The killed process fetched the provisioning job and beat for the last
	// time a minute ago.
	fetched, err := riverpgxv5.New(pool).GetExecutor().JobGetAvailable(ctx, &riverdriver.JobGetAvailableParams{
		ClientID: "killed-process", MaxAttemptedBy: 100, MaxToLock: 1, Queue: queue.Accounts,
	})
	require.NoError(t, err)
	require.Len(t, fetched.Jobs, 1)
	_, err = pool.Exec(ctx, `INSERT INTO worker_processes (client_id, started_at, heartbeat_at, alive_since)
		VALUES ('killed-process', now() - interval '1 hour', now() - interval '1 minute', now() - interval '1 hour')`)
	require.NoError(t, err)

	vars := baseEnv(url)
	vars["PROCESS_HEARTBEAT_INTERVAL"] = "100ms"
	vars["PROCESS_DEAD_AFTER"] = "1s"
	p := start(t, []string{"worker"}, vars)
	require.Eventually(t, func() bool {
		got, err := account.NewService(pool, inserter).Get(ctx, a.ID)
		return err == nil && got.Status == account.StatusActive
	}, 10*time.Second, 50*time.Millisecond, "the killed process's job was not retried")

	var ids []string
	rows, err := pool.Query(ctx, `SELECT client_id FROM worker_processes WHERE client_id <> 'killed-process'`)
	require.NoError(t, err)
	for rows.Next() {
		var id string
		require.NoError(t, rows.Scan(&id))
		ids = append(ids, id)
	}
	require.NoError(t, rows.Err())
	require.Len(t, ids, 1, "the worker heartbeats under its client id")
	host, _ := os.Hostname()
	require.True(t, strings.HasPrefix(ids[0], strings.ReplaceAll(host, ".", "_")+"_"), ids[0])
	var attemptedBy []string
	require.NoError(t, pool.QueryRow(ctx, `SELECT attempted_by FROM river_job WHERE id = $1`, fetched.Jobs[0].ID).Scan(&attemptedBy))
	require.Equal(t, []string{"killed-process", ids[0]}, attemptedBy)

	p.stop()
	<-p.done
	require.NoError(t, p.err)
	var left int
	require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM worker_processes WHERE client_id = $1`, ids[0]).Scan(&left))
	require.Zero(t, left, "a clean stop deletes the heartbeat")
}
