// Package worker runs ctrader's background work on River: the workers for each
// job kind, the queues they serve and the River client that ties them together.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/ctrader/ctrader/internal/jobs"
)

// Options configures the River client.
type Options struct {
	// Work makes the client fetch and work jobs. Without it the client only
	// inserts jobs (and serves River UI's queries).
	Work bool
	// Concurrency is the number of jobs worked at once per queue.
	Concurrency int
	// JobTimeout bounds a single job's run.
	JobTimeout time.Duration
	// RescueAfter is how long a job may sit in running before it is
	// considered abandoned by a dead process and retried.
	RescueAfter time.Duration
	// ID names this client in River's tables; empty lets River pick one.
	ID string
}

// NewClient returns a River client over pool with every ctrader worker
// registered. It is not started.
func NewClient(pool *pgxpool.Pool, logger *slog.Logger, opts Options) (*river.Client[pgx.Tx], error) {
	if logger == nil {
		return nil, errors.New("logger is required")
	}
	cfg := &river.Config{
		ID:     opts.ID,
		Logger: logger.With(slog.String("component", "river")),
	}
	if opts.Work {
		if opts.Concurrency < 1 {
			return nil, errors.New("concurrency must be at least 1")
		}
		if opts.JobTimeout <= 0 || opts.RescueAfter <= opts.JobTimeout {
			return nil, errors.New("rescue-after must be longer than the job timeout")
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, NewAccountWorker(pool))

		cfg.Workers = workers
		cfg.Queues = make(map[string]river.QueueConfig, len(jobs.Queues()))
		for _, q := range jobs.Queues() {
			cfg.Queues[q] = river.QueueConfig{MaxWorkers: opts.Concurrency}
		}
		cfg.JobTimeout = opts.JobTimeout
		cfg.RescueStuckJobsAfter = opts.RescueAfter
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}
