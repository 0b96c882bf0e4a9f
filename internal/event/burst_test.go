package event

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/queue"
)

func TestBurstRouterSendsJobsToTheBurstQueueOnlyAboveTheRate(t *testing.T) {
	t.Parallel()
	r := &burstRouter{rate: 400}
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

	// 200 events a second, one every 5 ms, for two seconds: a steady stream
	// under the rate keeps its jobs on the events queue.
	for range 400 {
		require.Equal(t, queue.Events, r.queue(now, 1))
		now = now.Add(5 * time.Millisecond)
	}
	// A stream that fell behind and catches up at once is no burst.
	for range 100 {
		require.Equal(t, queue.Events, r.queue(now, 1))
	}
	now = now.Add(500 * time.Millisecond)
	// 1,000 a second for a second: past the rate before the second ends.
	var burst []string
	for range 1000 {
		burst = append(burst, r.queue(now, 1))
		now = now.Add(time.Millisecond)
	}
	require.Equal(t, queue.Events, burst[0], "the first events of a burst are under the rate")
	require.Equal(t, queue.EventsBurst, burst[999])
	// A batch counts as its events.
	require.Equal(t, queue.EventsBurst, r.queue(now, 100))
	// Two quiet windows later the rate is measured afresh.
	now = now.Add(2 * burstWindow)
	require.Equal(t, queue.Events, r.queue(now, 1))
	// One batch larger than a window's share of the rate is a burst of
	// its own.
	require.Equal(t, queue.EventsBurst, r.queue(now, 400))
	// A clock that steps back starts the measure again.
	require.Equal(t, queue.Events, r.queue(now.Add(-time.Hour), 1))
}

func TestBurstRouterWithoutARateNeverRoutes(t *testing.T) {
	t.Parallel()
	now := time.Now()
	var none *burstRouter
	require.Equal(t, queue.Events, none.queue(now, 1_000_000))
	require.Equal(t, queue.Events, (&burstRouter{}).queue(now, 1_000_000))
}
