package metrics

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultQueueDepthInterval is the refresh period RunQueueDepth uses when
// given none.
const DefaultQueueDepthInterval = 15 * time.Second

// queueStates are the river_job states counted by ctrader_queue_jobs: every
// state a job is in before it is finalized.
var queueStates = []string{"available", "running", "retryable", "scheduled", "pending"}

const queueDepthSQL = `
SELECT queue, state::text, count(*)
FROM river_job
WHERE state IN ('available', 'running', 'retryable', 'scheduled', 'pending')
GROUP BY 1, 2`

// RunQueueDepth refreshes ctrader_queue_jobs{queue,state} from river_job now
// and then every every (DefaultQueueDepthInterval when not positive), so
// scrapes never query the database. It blocks until ctx is done; run it in its
// own goroutine. Run it once per Metrics.
//
// Each refresh sets every state of every queue seen so far, so a queue whose
// jobs are all finalized reads zero rather than keeping its last value. A
// failed refresh is logged, counted in
// ctrader_queue_depth_refresh_errors_total and leaves the previous values.
// The numbers are the database's, the same in every process that runs this.
func (m *Metrics) RunQueueDepth(ctx context.Context, pool *pgxpool.Pool, every time.Duration, logger *slog.Logger) {
	if m == nil || pool == nil {
		return
	}
	if every <= 0 {
		every = DefaultQueueDepthInterval
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	timeout := max(every, 5*time.Second)
	seen := make(map[string]struct{})

	refresh := func() {
		qctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		counts, err := queueDepth(qctx, pool)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			m.queueDepthErrors.Inc()
			logger.WarnContext(ctx, "queue depth refresh failed", slog.String("error", err.Error()))
			return
		}
		for k := range counts {
			seen[k.queue] = struct{}{}
		}
		for q := range seen {
			for _, s := range queueStates {
				m.queueJobs.WithLabelValues(q, s).Set(float64(counts[queueState{q, s}]))
			}
		}
		m.queueDepthRefresh.SetToCurrentTime()
	}

	refresh()
	ticker := time.NewTicker(every)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			refresh()
		}
	}
}

type queueState struct{ queue, state string }

func queueDepth(ctx context.Context, pool *pgxpool.Pool) (map[queueState]int64, error) {
	rows, err := pool.Query(ctx, queueDepthSQL)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := make(map[queueState]int64)
	for rows.Next() {
		var k queueState
		var n int64
		if err := rows.Scan(&k.queue, &k.state, &n); err != nil {
			return nil, err
		}
		counts[k] = n
	}
	return counts, rows.Err()
}
