package worker_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/queue"
)

// Events ingested faster than the burst rate have their jobs on the burst
// queue, which the workers serve like the events queue: every event is
// processed once, its won amount counted once.
func TestEventsOfABurstAreProcessedFromTheBurstQueue(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	// Any rate at all is above this one.
	b.events = event.NewService(b.pool, b.client, event.BurstRate(1e-9))
	a, err := b.svc.Create(ctx, account.CreateInput{Name: "John Doe"})
	require.NoError(t, err)

	const singles = 12
	var wg sync.WaitGroup
	for range singles {
		wg.Go(func() { ingest(t, b, a.ID, event.TypeWon, map[string]any{"amount": 10.0}) })
	}
	wg.Wait()
	batch := make([]event.Input, 30)
	for i := range batch {
		batch[i] = event.Input{AccountID: a.ID, Type: event.TypeWon, Payload: map[string]any{"amount": 1.0}}
	}
	_, _, err = b.events.Ingest(ctx, batch, func(int) string { return "body" }, nil)
	require.NoError(t, err)

	require.Zero(t, countRows(t, b, `SELECT count(*) FROM river_job WHERE kind = 'events.process' AND queue <> $1`, queue.EventsBurst))
	require.Positive(t, countRows(t, b, `SELECT count(*) FROM river_job WHERE kind = 'events.process' AND queue = $1`, queue.EventsBurst))

	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.Stop(stopCtx))
	})
	waitIdle(t, b, func() bool {
		return countRows(t, b, `SELECT count(*) FROM events WHERE status <> 'processed'`) == 0
	})
	got := getAccount(t, b, a.ID)
	require.Equal(t, int64(singles+len(batch)), got.WonCount)
	require.Equal(t, "150", got.WonTotal.String())
}
