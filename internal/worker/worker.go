// Package worker runs ctrader's background work on River: the workers for each
// job kind, the queues they serve, the periodic jobs, and the River client
// that ties them together.
package worker

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"

	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/metrics"
	"github.com/ctrader/ctrader/internal/queue"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Options configures the River client.
type Options struct {
	// Work makes the client fetch and work jobs. Without it the client only
	// inserts jobs (and serves River UI's queries).
	Work bool
	// Concurrency is the number of jobs worked at once per queue, unless
	// QueueConcurrency names the queue.
	Concurrency      int
	QueueConcurrency map[string]int
	// BackfillWorkers is the number of backfill pages worked at once; the
	// backfill queue takes no other setting.
	BackfillWorkers int
	// FetchCooldown is the least time between two fetches of a queue, which
	// caps a queue at Concurrency jobs per cooldown; zero keeps River's
	// default. FetchPollInterval is how often queues are polled when no
	// notification arrives.
	FetchCooldown     time.Duration
	FetchPollInterval time.Duration
	// BurstFetchCooldown is the fetch cooldown of queue.EventsBurst; zero
	// is FetchCooldown.
	BurstFetchCooldown time.Duration
	// JobTimeout bounds a single job's run.
	JobTimeout time.Duration
	// RescueAfter is how long a job may sit in running before it is
	// considered abandoned by a dead process and retried.
	RescueAfter time.Duration
	// Engine evaluates rules; required to work jobs.
	Engine *engine.Engine
	// Webhooks sends webhook deliveries; required to work jobs.
	Webhooks *webhook.Sender
	// WebhookTimeout bounds one delivery attempt.
	WebhookTimeout time.Duration
	// VacuumInterval is how often the busiest tables are vacuumed when the
	// server's autovacuum is off; 0 never.
	VacuumInterval time.Duration
	// RulesInterval is the period of scheduled rule evaluation; 0 disables it.
	RulesInterval time.Duration
	// ID names this client in River's tables and in its heartbeats; empty
	// picks a new one (NewClientID) for a client that works jobs, and lets
	// River pick one otherwise.
	ID string
	// Metrics, when set, records every job's outcome, run time and queue
	// latency.
	Metrics *metrics.Metrics
	// Retention is how long events, evaluations and webhook deliveries are
	// kept, and how often the job that removes them runs.
	Retention Retention
	// JobRetention is how long River keeps finished jobs before its job
	// cleaner deletes them, a zero period forever; the zero JobRetention
	// keeps River's defaults (a day, a day and a week).
	JobRetention JobRetention
}

// JobRetention is how long River keeps finished jobs of each final state.
type JobRetention struct {
	Completed, Cancelled, Discarded time.Duration
}

// riverRetention turns a period where 0 means forever into River's, where
// -1 means forever and 0 means its default.
func riverRetention(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}

// BurstWorkersPerEventsWorker is how many workers queue.EventsBurst has for
// each of queue.Events.
const BurstWorkersPerEventsWorker = 4

// SchedulePageSize is how many accounts one scheduled evaluation job covers.
const SchedulePageSize = 1000

// NewClient returns a River client over pool with every ctrader worker
// registered. It is not started.
func NewClient(pool *pgxpool.Pool, logger *slog.Logger, opts Options) (*river.Client[pgx.Tx], error) {
	if logger == nil {
		return nil, errors.New("logger is required")
	}
	cfg := &river.Config{
		ID:         opts.ID,
		Logger:     logger.With(slog.String("component", "river")),
		Middleware: []rivertype.Middleware{&traceMiddleware{}},
	}
	if opts.JobRetention != (JobRetention{}) {
		cfg.CompletedJobRetentionPeriod = riverRetention(opts.JobRetention.Completed)
		cfg.CancelledJobRetentionPeriod = riverRetention(opts.JobRetention.Cancelled)
		cfg.DiscardedJobRetentionPeriod = riverRetention(opts.JobRetention.Discarded)
	}
	if opts.Work {
		if cfg.ID == "" {
			cfg.ID = NewClientID()
		}
		if opts.Concurrency < 1 {
			return nil, errors.New("concurrency must be at least 1")
		}
		if opts.JobTimeout <= 0 || opts.RescueAfter <= opts.JobTimeout {
			return nil, errors.New("rescue-after must be longer than the job timeout")
		}
		if opts.Engine == nil || opts.Webhooks == nil {
			return nil, errors.New("engine and webhook sender are required to work jobs")
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, NewAccountWorker(pool))
		river.AddWorker(workers, newEventsWorker(pool, opts.Engine, BatchLeaders))
		river.AddWorker(workers, &ScheduleWorker{pool: pool})
		river.AddWorker(workers, &ScheduleTickWorker{pool: pool, interval: opts.RulesInterval, now: time.Now,
			logger: logger.With(slog.String("component", "schedule"))})
		river.AddWorker(workers, &FanOutWorker{pool: pool})
		river.AddWorker(workers, &EvaluateAccountsWorker{pool: pool, engine: opts.Engine})
		river.AddWorker(workers, &IdempotencyCleanupWorker{pool: pool})
		river.AddWorker(workers, &VacuumWorker{pool: pool, logger: logger.With(slog.String("component", "vacuum"))})
		river.AddWorker(workers, NewRetentionWorker(pool, opts.Retention, logger.With(slog.String("component", "retention"))))
		river.AddWorker(workers, &BackfillWorker{pool: pool, engine: opts.Engine})
		river.AddWorker(workers, &WebhookWorker{pool: pool, sender: opts.Webhooks, timeout: opts.WebhookTimeout, metrics: opts.Metrics})
		river.AddWorker(workers, &WebhookBatchWorker{pool: pool, sender: opts.Webhooks, timeout: opts.WebhookTimeout, metrics: opts.Metrics})

		cfg.Workers = workers
		concurrency := func(q string) int {
			if c, ok := opts.QueueConcurrency[q]; ok {
				return c
			}
			return opts.Concurrency
		}
		cfg.Queues = make(map[string]river.QueueConfig, len(queue.Names()))
		for _, q := range queue.Names() {
			qc := river.QueueConfig{MaxWorkers: concurrency(q)}
			switch q {
			case queue.Backfill:
				qc.MaxWorkers = max(opts.BackfillWorkers, 1)
			case queue.EventsBurst:
				// A fetch brings at most MaxWorkers jobs, and a burst's jobs
				// may hold one event each: with more workers than the events
				// queue, its longer cooldown caps no rate that the shared
				// transactions could keep up with. A job waiting to join
				// one holds no connection.
				qc.MaxWorkers = BurstWorkersPerEventsWorker * concurrency(queue.Events)
				qc.FetchCooldown = opts.BurstFetchCooldown
			}
			cfg.Queues[q] = qc
		}
		cfg.FetchCooldown = opts.FetchCooldown
		cfg.FetchPollInterval = opts.FetchPollInterval
		cfg.JobTimeout = opts.JobTimeout
		cfg.RescueStuckJobsAfter = opts.RescueAfter
		cfg.PeriodicJobs = periodicJobs(opts.RulesInterval, opts.VacuumInterval, opts.Retention.Interval)
		if opts.Metrics != nil {
			cfg.Middleware = append(cfg.Middleware, opts.Metrics.JobMiddleware())
		}
	}
	client, err := river.NewClient(riverpgxv5.New(pool), cfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	return client, nil
}

// NewClientID returns a River client id that no other process has used: the
// host name (as River's default id has it) and a random suffix. River's
// default adds the start time instead, which two processes on one host can
// share; a heartbeat must never speak for two processes.
func NewClientID() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown_host"
	}
	host = strings.ReplaceAll(host, ".", "_")
	if len(host) > 60 {
		host = host[:60]
	}
	return host + "_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
}

// periodicJobs are scheduled by whichever process holds River's leadership.
func periodicJobs(rulesInterval, vacuumInterval, retentionInterval time.Duration) []*river.PeriodicJob {
	periodic := []*river.PeriodicJob{
		river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.IdempotencyCleanup{}, nil },
			&river.PeriodicJobOpts{ID: "idempotency_cleanup"}),
	}
	if vacuumInterval > 0 {
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(vacuumInterval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.Vacuum{}, nil },
			&river.PeriodicJobOpts{ID: "vacuum"}))
	}
	if retentionInterval > 0 {
		// Also when a process becomes leader: partitions are made ahead
		// before anything needs them, whenever the last run was.
		periodic = append(periodic, river.NewPeriodicJob(river.PeriodicInterval(retentionInterval),
			func() (river.JobArgs, *river.InsertOpts) { return jobs.Retention{}, nil },
			&river.PeriodicJobOpts{ID: "retention", RunOnStart: true}))
	}
	if rulesInterval > 0 {
		// A tick at every window boundary, and one when a process becomes
		// leader; the tick schedules each window once, including windows
		// missed while no leader ran (see ScheduleTickWorker).
		periodic = append(periodic, river.NewPeriodicJob(WindowSchedule(rulesInterval),
			func() (river.JobArgs, *river.InsertOpts) {
				return jobs.RulesScheduleTick{At: time.Now().UTC(), Interval: rulesInterval}, nil
			},
			&river.PeriodicJobOpts{ID: "rules_schedule_tick", RunOnStart: true}))
	}
	return periodic
}
