package worker_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/partition"
	"github.com/ctrader/ctrader/internal/worker"
)

// The retention job deletes finished webhook deliveries past retention with
// their attempts, in batches, and keeps pending ones and recent ones; it
// keeps the partitions of events and evaluations ahead of time.
func TestRetentionDeletesFinishedDeliveriesPastRetention(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	endpoint := uuid.New()
	_, err := pool.Exec(ctx, `INSERT INTO webhook_endpoints (id, url) VALUES ($1, 'https://example.com/hook')`, endpoint)
	require.NoError(t, err)
	const retention = 30 * 24 * time.Hour
	old := time.Now().Add(-retention - time.Hour)
	// deliveries stores n deliveries made at at, with an attempt each.
	deliveries := func(n int, at time.Time, status string) []uuid.UUID {
		t.Helper()
		ids, attempts := make([]uuid.UUID, n), make([]uuid.UUID, n)
		bound := partition.Bound(at)
		for i := range ids {
			ids[i], attempts[i] = uuid.New(), uuid.New()
			copy(ids[i][:6], bound[:6])
		}
		_, err := pool.Exec(ctx, `
			INSERT INTO webhook_deliveries (id, endpoint_id, event_type, body, status)
			SELECT id, $2, 'rule.matched', '{}', $3 FROM unnest($1::uuid[]) id`, ids, endpoint, status)
		require.NoError(t, err)
		_, err = pool.Exec(ctx, `
			INSERT INTO webhook_attempts (id, delivery_id, attempt, started_at, duration_ms)
			SELECT a, d, 1, now(), 5 FROM unnest($1::uuid[], $2::uuid[]) AS x(a, d)`, attempts, ids)
		require.NoError(t, err)
		return ids
	}
	delivery := func(at time.Time, status string) uuid.UUID { return deliveries(1, at, status)[0] }
	deliveries(2500, old, "succeeded") // several batches
	oldFailed := delivery(old, "failed")
	oldPending := delivery(old, "pending")
	recent := delivery(time.Now().Add(-retention+time.Hour), "succeeded")

	w := worker.NewRetentionWorker(pool, worker.Retention{WebhookDeliveries: retention}, slog.New(slog.DiscardHandler))
	require.NoError(t, w.Work(ctx, &river.Job[jobs.Retention]{}))

	left := func(id uuid.UUID) bool {
		var n int
		require.NoError(t, pool.QueryRow(ctx, `SELECT count(*) FROM webhook_deliveries WHERE id = $1`, id).Scan(&n))
		return n == 1
	}
	require.False(t, left(oldFailed))
	require.True(t, left(oldPending), "a delivery still being tried stays")
	require.True(t, left(recent))
	var remaining, attempts int
	require.NoError(t, pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM webhook_deliveries), (SELECT count(*) FROM webhook_attempts)`).
		Scan(&remaining, &attempts))
	require.Equal(t, 2, remaining)
	require.Equal(t, 2, attempts, "attempts go with their delivery")

	parts, err := partition.List(ctx, pool, "events")
	require.NoError(t, err)
	week := partition.Week(partition.Start(time.Now().Add(partition.DefaultAhead - time.Hour)))
	var ahead bool
	for _, p := range parts {
		ahead = ahead || (!p.Default && p.Range.Overlaps(week))
	}
	require.True(t, ahead, "the weeks ahead have partitions")
}

// A zero period keeps River's jobs forever, which River spells -1 (its 0
// is its default); River accepts what the settings allow.
func TestJobRetentionIsRiversOwn(t *testing.T) {
	t.Parallel()
	require.Equal(t, time.Duration(-1), worker.RiverRetention(0))
	require.Equal(t, time.Hour, worker.RiverRetention(time.Hour))
	_, err := worker.NewClient(dbtest.New(t), dbtest.Logger(t), worker.Options{
		JobRetention: worker.JobRetention{Completed: 0, Cancelled: time.Hour, Discarded: 7 * 24 * time.Hour}})
	require.NoError(t, err)
}
