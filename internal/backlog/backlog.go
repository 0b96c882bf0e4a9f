// Package backlog watches how far event processing lags behind ingest, so
// that the API can push back before the lag grows without bound: a client
// told to retry later is better served than one whose events wait minutes.
package backlog

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/queue"
)

// DefaultInterval is how often a Watcher samples the lag.
const DefaultInterval = 250 * time.Millisecond

// lagSQL is the age of the oldest events job not yet done, over the queues
// named by $1: due and waiting to be fetched (available, or scheduled or
// retryable and due, which River makes available shortly), or fetched and
// not finished (running, a few per worker). Each probe is one step of the
// index River fetches with, per queue. It reads River's table, as the queue
// depth metric does.
const lagSQL = `
SELECT coalesce(max(extract(epoch FROM now() - least(
	(SELECT min(scheduled_at) FROM river_job WHERE state = 'available' AND queue = q.name AND priority = 1),
	(SELECT min(scheduled_at) FROM river_job WHERE state = 'scheduled' AND queue = q.name AND priority = 1 AND scheduled_at <= now()),
	(SELECT min(scheduled_at) FROM river_job WHERE state = 'retryable' AND queue = q.name AND priority = 1 AND scheduled_at <= now()),
	(SELECT min(created_at) FROM river_job WHERE state = 'running' AND queue = q.name)))), 0)::float8
FROM unnest($1::text[]) AS q(name)`

// eventQueues are the queues whose jobs process events.
var eventQueues = []string{queue.Events, queue.EventsBurst}

// Watcher knows the current processing lag of events. Its zero value reads
// no lag.
type Watcher struct {
	pool     *pgxpool.Pool
	interval time.Duration
	logger   *slog.Logger
	lag      atomic.Int64 // nanoseconds
}

// NewWatcher returns a Watcher sampling through pool every interval
// (DefaultInterval when not positive).
func NewWatcher(pool *pgxpool.Pool, interval time.Duration, logger *slog.Logger) *Watcher {
	if interval <= 0 {
		interval = DefaultInterval
	}
	return &Watcher{pool: pool, interval: interval, logger: logger}
}

// Lag is how long the oldest unprocessed event job has waited, as last
// sampled.
func (w *Watcher) Lag() time.Duration {
	if w == nil {
		return 0
	}
	return time.Duration(w.lag.Load())
}

// Sample reads the lag now.
func (w *Watcher) Sample(ctx context.Context) error {
	var secs float64
	if err := w.pool.QueryRow(ctx, lagSQL, eventQueues).Scan(&secs); err != nil {
		return err
	}
	w.lag.Store(int64(max(secs, 0) * float64(time.Second)))
	return nil
}

// Run samples until ctx ends. A failed sample keeps the last value: when the
// database is away, requests fail on their own.
func (w *Watcher) Run(ctx context.Context) {
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := w.Sample(qctx); err != nil && ctx.Err() == nil {
			w.logger.DebugContext(ctx, "backlog sample failed", slog.String("error", err.Error()))
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
