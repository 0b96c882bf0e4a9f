package backlog_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/backlog"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/queue"
)

// The lag is the age of the oldest events job waiting on either queue that
// processes events; jobs of other queues do not count.
func TestLagIsTheOldestEventsJobOfEitherQueue(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{Logger: dbtest.Logger(t)})
	require.NoError(t, err)
	w := backlog.NewWatcher(pool, 0, dbtest.Logger(t))
	insert := func(q string, age time.Duration) {
		t.Helper()
		_, err := client.Insert(ctx, jobs.EventsProcess{EventIDs: []uuid.UUID{uuid.Must(uuid.NewV7())}},
			&river.InsertOpts{Queue: q, ScheduledAt: time.Now().Add(-age)})
		require.NoError(t, err)
	}

	require.NoError(t, w.Sample(ctx))
	require.Zero(t, w.Lag(), "nothing waits")

	insert(queue.Rules, time.Minute)
	insert(queue.Events, 3*time.Second)
	require.NoError(t, w.Sample(ctx))
	require.InDelta(t, 3, w.Lag().Seconds(), 1)

	insert(queue.EventsBurst, 10*time.Second)
	require.NoError(t, w.Sample(ctx))
	require.InDelta(t, 10, w.Lag().Seconds(), 1)

	_, err = pool.Exec(ctx, `DELETE FROM river_job WHERE queue IN ($1, $2)`, queue.Events, queue.EventsBurst)
	require.NoError(t, err)
	require.NoError(t, w.Sample(ctx))
	require.Zero(t, w.Lag())
}
