package liveness_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/liveness"
)

// probeArgs is a job that records who worked it.
type probeArgs struct{}

func (probeArgs) Kind() string { return "probe" }

type probeWorker struct {
	river.WorkerDefaults[probeArgs]
}

func (probeWorker) Work(context.Context, *river.Job[probeArgs]) error { return nil }

type testBundle struct {
	pool   *pgxpool.Pool
	client *river.Client[pgx.Tx] // inserts only
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	pool := dbtest.New(t)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	return &testBundle{pool: pool, client: client}
}

// runningJob inserts a job and fetches it as clientID's producer does, which
// leaves it running with clientID last in attempted_by. Nothing works it: the
// process is gone.
func runningJob(t *testing.T, b *testBundle, clientID string, opts *river.InsertOpts) int64 {
	t.Helper()
	ctx := context.Background()
	res, err := b.client.Insert(ctx, probeArgs{}, opts)
	require.NoError(t, err)
	queue := river.QueueDefault
	if opts != nil && opts.Queue != "" {
		queue = opts.Queue
	}
	fetched, err := riverpgxv5.New(b.pool).GetExecutor().JobGetAvailable(ctx, &riverdriver.JobGetAvailableParams{
		ClientID: clientID, MaxAttemptedBy: 100, MaxToLock: 1, Queue: queue, Kind: []string{probeArgs{}.Kind()},
	})
	require.NoError(t, err)
	require.Len(t, fetched.Jobs, 1)
	require.Equal(t, res.Job.ID, fetched.Jobs[0].ID)
	require.Equal(t, rivertype.JobStateRunning, fetched.Jobs[0].State)
	require.Equal(t, []string{clientID}, fetched.Jobs[0].AttemptedBy)
	return res.Job.ID
}

// heartbeat sets clientID's row: its last heartbeat age ago, beating without
// a break for aliveFor before that.
func heartbeat(t *testing.T, b *testBundle, clientID string, age, aliveFor time.Duration) {
	t.Helper()
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO worker_processes (client_id, started_at, heartbeat_at, alive_since)
		VALUES ($1, now() - $2::interval - $3::interval, now() - $2::interval, now() - $2::interval - $3::interval)
		ON CONFLICT (client_id) DO UPDATE SET heartbeat_at = EXCLUDED.heartbeat_at, alive_since = EXCLUDED.alive_since`,
		clientID, age, aliveFor)
	require.NoError(t, err)
}

func jobRow(t *testing.T, b *testBundle, id int64) *rivertype.JobRow {
	t.Helper()
	row, err := b.client.JobGet(context.Background(), id)
	require.NoError(t, err)
	return row
}

const deadAfter = 10 * time.Second

func TestRescueRetriesTheJobsOfADeadProcessOnly(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	heartbeat(t, b, "rescuer", 0, time.Minute)
	heartbeat(t, b, "dead", time.Minute, time.Hour)
	heartbeat(t, b, "live", time.Second, time.Hour)

	dead := runningJob(t, b, "dead", nil)
	live := runningJob(t, b, "live", nil)
	unknown := runningJob(t, b, "unknown", nil) // no heartbeat row: River's rescuer decides
	lastAttempt := runningJob(t, b, "dead", &river.InsertOpts{MaxAttempts: 1})
	cancelled := runningJob(t, b, "dead", &river.InsertOpts{Queue: "other"})
	_, err := b.pool.Exec(ctx, `UPDATE river_job SET metadata = metadata || '{"cancel_attempted_at": "2026-01-01T00:00:00Z"}' WHERE id = $1`, cancelled)
	require.NoError(t, err)

	ids, err := liveness.Rescue(ctx, b.pool, "rescuer", deadAfter)
	require.NoError(t, err)
	require.Equal(t, []int64{dead}, ids)

	row := jobRow(t, b, dead)
	require.Equal(t, rivertype.JobStateAvailable, row.State)
	require.WithinDuration(t, time.Now(), row.ScheduledAt, 5*time.Second, "retried at once, not after a backoff")
	require.Nil(t, row.FinalizedAt)
	require.Equal(t, 1, row.Attempt, "the next fetch counts the next attempt")
	require.Len(t, row.Errors, 1)
	require.Equal(t, 1, row.Errors[0].Attempt)
	require.Contains(t, row.Errors[0].Error, `process "dead" stopped heartbeating`)
	var metadata map[string]any
	require.NoError(t, json.Unmarshal(row.Metadata, &metadata))
	require.EqualValues(t, 1, metadata["river:rescue_count"])

	for _, id := range []int64{live, unknown, lastAttempt, cancelled} {
		row := jobRow(t, b, id)
		require.Equal(t, rivertype.JobStateRunning, row.State, "job %d", id)
		require.Empty(t, row.Errors)
	}

	// Another rescuer at the same time finds nothing left.
	heartbeat(t, b, "rescuer-2", 0, time.Minute)
	ids, err = liveness.Rescue(ctx, b.pool, "rescuer-2", deadAfter)
	require.NoError(t, err)
	require.Empty(t, ids)
}

// A process that has not heartbeated without a break for deadAfter judges
// nobody: after a Postgres outage every heartbeat is stale at once.
func TestRescueWaitsUntilTheRescuerHasWatchedLongEnough(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	heartbeat(t, b, "dead", time.Minute, time.Hour)
	job := runningJob(t, b, "dead", nil)

	// Just started.
	heartbeat(t, b, "rescuer", 0, deadAfter/2)
	ids, err := liveness.Rescue(ctx, b.pool, "rescuer", deadAfter)
	require.NoError(t, err)
	require.Empty(t, ids)

	// Beating for an hour, but Postgres was unreachable for the last 30 s:
	// the first heartbeat after the outage starts a new run.
	heartbeat(t, b, "rescuer", 30*time.Second, time.Hour)
	require.NoError(t, liveness.Beat(ctx, b.pool, "rescuer", deadAfter))
	ids, err = liveness.Rescue(ctx, b.pool, "rescuer", deadAfter)
	require.NoError(t, err)
	require.Empty(t, ids)
	require.Equal(t, rivertype.JobStateRunning, jobRow(t, b, job).State)

	// A rescuer whose own heartbeat is stale judges nobody either.
	heartbeat(t, b, "stale-rescuer", time.Minute, time.Hour)
	ids, err = liveness.Rescue(ctx, b.pool, "stale-rescuer", deadAfter)
	require.NoError(t, err)
	require.Empty(t, ids)

	// A short gap keeps the run.
	heartbeat(t, b, "steady", deadAfter/4, time.Hour)
	require.NoError(t, liveness.Beat(ctx, b.pool, "steady", deadAfter))
	ids, err = liveness.Rescue(ctx, b.pool, "steady", deadAfter)
	require.NoError(t, err)
	require.Equal(t, []int64{job}, ids)
}

// End to end: a process died with a job running; a live process with a
// heartbeat retries and completes it within the threshold, far sooner than
// River's rescuer would (an hour here).
func TestHeartbeatRescuesAndCompletesAJobOfADeadProcess(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const (
		interval = 100 * time.Millisecond
		dead     = 2 * time.Second
	)
	heartbeat(t, b, "dead", dead, time.Hour)
	job := runningJob(t, b, "dead", nil)

	workers := river.NewWorkers()
	river.AddWorker(workers, probeWorker{})
	client, err := river.NewClient(riverpgxv5.New(b.pool), &river.Config{
		ID: "survivor", Logger: dbtest.Logger(t), Workers: workers, FetchPollInterval: 100 * time.Millisecond,
		Queues: map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
	})
	require.NoError(t, err)
	started := time.Now()
	h, err := liveness.Start(ctx, b.pool, liveness.Options{ClientID: "survivor", Interval: interval, DeadAfter: dead, Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	require.NoError(t, client.Start(ctx))

	require.Eventually(t, func() bool { return jobRow(t, b, job).State == rivertype.JobStateCompleted },
		dead+5*time.Second, 50*time.Millisecond)
	row := jobRow(t, b, job)
	require.Equal(t, []string{"dead", "survivor"}, row.AttemptedBy)
	require.Len(t, row.Errors, 1)
	require.GreaterOrEqual(t, row.Errors[0].At, started.Add(dead-time.Second), "not before the survivor watched for the threshold")
	t.Logf("rescued and completed %s after the survivor started (threshold %s)", row.FinalizedAt.Sub(started).Round(time.Millisecond), dead)

	stopCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	require.NoError(t, client.Stop(stopCtx))
	require.NoError(t, h.Stop(stopCtx, b.pool))
	var rows int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM worker_processes WHERE client_id = 'survivor'`).Scan(&rows))
	require.Zero(t, rows, "a clean stop deletes the row")
}

// A job running under a live heartbeat is never touched, however long it runs.
func TestHeartbeatNeverRescuesALiveProcessesJob(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	opts := func(id string) liveness.Options {
		return liveness.Options{ClientID: id, Interval: 50 * time.Millisecond, DeadAfter: 500 * time.Millisecond, Logger: dbtest.Logger(t)}
	}
	live, err := liveness.Start(ctx, b.pool, opts("live"))
	require.NoError(t, err)
	job := runningJob(t, b, "live", nil)
	rescuer, err := liveness.Start(ctx, b.pool, opts("rescuer"))
	require.NoError(t, err)

	time.Sleep(2 * time.Second) // four thresholds
	row := jobRow(t, b, job)
	require.Equal(t, rivertype.JobStateRunning, row.State)
	require.Empty(t, row.Errors)

	require.NoError(t, live.Stop(ctx, b.pool))
	require.NoError(t, rescuer.Stop(ctx, b.pool))
}

func TestOptionsAreValidated(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	for _, opts := range []liveness.Options{
		{Interval: time.Second, DeadAfter: 10 * time.Second, Logger: dbtest.Logger(t)},
		{ClientID: "a", Interval: time.Second, DeadAfter: 10 * time.Second},
		{ClientID: "a", Interval: time.Second, DeadAfter: 4 * time.Second, Logger: dbtest.Logger(t)},
	} {
		_, err := liveness.Start(ctx, b.pool, opts)
		require.Error(t, err)
	}
}
