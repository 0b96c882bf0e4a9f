// Package liveness records that each working process is alive and retries at
// once the jobs a dead process left running, so that recovery after a crash
// does not wait for River's rescuer (JOB_RESCUE_AFTER).
//
// Every working process heartbeats into worker_processes under its River
// client id. A process whose heartbeat is older than a threshold is dead: the
// jobs in state running whose latest attempt is its (the last entry of
// river_job.attempted_by) go back to available, and another process works
// them within seconds. Jobs of a client with no row (one that died over an
// hour before the next process started: that process forgets the row before
// it may judge it) are left to River's rescuer.
package liveness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/logging"
)

// Beat records that clientID is alive now. A heartbeat that comes more than
// deadAfter/2 after the previous one starts a new unbroken run: whatever kept
// this process from heartbeating (a Postgres outage, most likely) kept the
// others from it too, so it must not judge them until it has watched them for
// deadAfter again.
func Beat(ctx context.Context, q db.Querier, clientID string, deadAfter time.Duration) error {
	_, err := q.Exec(ctx, `
		INSERT INTO worker_processes AS p (client_id) VALUES ($1)
		ON CONFLICT (client_id) DO UPDATE SET
			heartbeat_at = now(),
			alive_since = CASE WHEN p.heartbeat_at < now() - $2::interval THEN now() ELSE p.alive_since END`,
		clientID, deadAfter/2)
	if err != nil {
		return fmt.Errorf("heartbeat: %w", err)
	}
	return nil
}

// Forget deletes clientID's row, as a process stopping cleanly does once its
// jobs are finished.
func Forget(ctx context.Context, q db.Querier, clientID string) error {
	if _, err := q.Exec(ctx, `DELETE FROM worker_processes WHERE client_id = $1`, clientID); err != nil {
		return fmt.Errorf("delete heartbeat: %w", err)
	}
	return nil
}

// Rescue moves the jobs of dead processes back to available, if self has
// heartbeated without a break for longer than deadAfter, and returns their ids.
//
// A job on its last attempt, or whose cancellation was requested, is left to
// River's rescuer, which discards or cancels it as River does.
func Rescue(ctx context.Context, q db.Querier, self string, deadAfter time.Duration) ([]int64, error) {
	// The one statement by which ctrader changes River's table itself. It does
	// what River's rescuer (JobRescueMany) does to a stuck job, with no
	// backoff: the error entry, the rescue count in metadata, and a state
	// outside River's running, here available. WHERE state = 'running' is
	// evaluated again on each row a concurrent rescue already updated, so two
	// processes never rescue the same attempt twice.
	rows, err := q.Query(ctx, `
		WITH dead AS (
			SELECT client_id FROM worker_processes
			WHERE heartbeat_at < now() - $2::interval
			  AND EXISTS (SELECT FROM worker_processes
			              WHERE client_id = $1
			                AND heartbeat_at >= now() - $2::interval
			                AND alive_since <= now() - $2::interval)
		)
		UPDATE river_job SET
			state = 'available',
			scheduled_at = now(),
			errors = array_append(errors, jsonb_build_object(
				'at', now(), 'attempt', greatest(attempt, 0), 'trace', '',
				'error', format('process %s stopped heartbeating; job rescued by %s', to_json(dead.client_id), to_json($1::text)))),
			metadata = metadata || jsonb_build_object('river:rescue_count',
				coalesce(CASE WHEN jsonb_typeof(metadata -> 'river:rescue_count') = 'number'
				              THEN (metadata ->> 'river:rescue_count')::int END, 0) + 1)
		FROM dead
		WHERE river_job.state = 'running'
		  AND river_job.attempted_by[array_length(river_job.attempted_by, 1)] = dead.client_id
		  AND river_job.attempt < river_job.max_attempts
		  AND NOT river_job.metadata ? 'cancel_attempted_at'
		RETURNING river_job.id`, self, deadAfter)
	if err != nil {
		return nil, fmt.Errorf("rescue jobs of dead processes: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("rescue jobs of dead processes: %w", err)
	}
	slices.Sort(ids)
	return ids, nil
}

// forgetAfter is how long the row of a process that died stays: long after
// its jobs were rescued, short enough that the table stays small.
const forgetAfter = time.Hour

// Options configures a Heartbeat.
type Options struct {
	// ClientID is the River client id of this process; required.
	ClientID string
	// Interval is the time between two heartbeats.
	Interval time.Duration
	// DeadAfter is how old a heartbeat is when its process is dead. It must
	// be at least five intervals, so that a live process is never judged dead
	// after a short Postgres outage.
	DeadAfter time.Duration
	// Logger is required.
	Logger *slog.Logger
}

func (o Options) validate() error {
	switch {
	case o.ClientID == "":
		return errors.New("client id is required")
	case o.Logger == nil:
		return errors.New("logger is required")
	case o.Interval <= 0 || o.DeadAfter < 5*o.Interval:
		return errors.New("dead-after must be at least five heartbeat intervals")
	}
	return nil
}

// Heartbeat beats for one process and rescues the jobs of dead ones, every
// Interval, until stopped. It holds a connection of its own, outside the
// pool, so that jobs holding every pooled connection cannot delay its
// heartbeats long enough for others to judge this process dead.
type Heartbeat struct {
	opts   Options
	cfg    *pgx.ConnConfig
	cancel context.CancelFunc
	done   chan struct{}
}

// Start records the first heartbeat, so the process is known before it works
// any job, then keeps beating in a goroutine.
func Start(ctx context.Context, pool *pgxpool.Pool, opts Options) (*Heartbeat, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := Beat(ctx, pool, opts.ClientID, opts.DeadAfter); err != nil {
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h := &Heartbeat{opts: opts, cfg: pool.Config().ConnConfig.Copy(), cancel: cancel, done: make(chan struct{})}
	go h.run(runCtx)
	return h, nil
}

// Stop ends the heartbeats and deletes this process's row; call it once River
// has stopped, so that no job of this process is left running.
func (h *Heartbeat) Stop(ctx context.Context, pool *pgxpool.Pool) error {
	h.cancel()
	<-h.done
	return Forget(ctx, pool, h.opts.ClientID)
}

func (h *Heartbeat) run(ctx context.Context) {
	defer close(h.done)
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			_ = conn.Close(context.Background())
		}
	}()
	ticker := time.NewTicker(h.opts.Interval)
	defer ticker.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		err := func() error {
			beatCtx, cancel := context.WithTimeout(ctx, h.opts.Interval)
			defer cancel()
			if conn == nil || conn.IsClosed() {
				c, err := pgx.ConnectConfig(beatCtx, h.cfg)
				if err != nil {
					return fmt.Errorf("connect: %w", err)
				}
				conn = c
			}
			return h.beat(beatCtx, conn)
		}()
		switch {
		case err != nil && ctx.Err() == nil:
			if conn != nil {
				_ = conn.Close(context.Background())
				conn = nil
			}
			if !failing {
				h.opts.Logger.Warn("heartbeat failed; retrying every interval", logging.ErrorAttr(err))
			}
			failing = true
		case err == nil && failing:
			h.opts.Logger.Info("heartbeat recovered")
			failing = false
		}
	}
}

// beat records a heartbeat, rescues the jobs of dead processes and forgets
// processes long dead.
func (h *Heartbeat) beat(ctx context.Context, conn *pgx.Conn) error {
	if err := Beat(ctx, conn, h.opts.ClientID, h.opts.DeadAfter); err != nil {
		return err
	}
	ids, err := Rescue(ctx, conn, h.opts.ClientID, h.opts.DeadAfter)
	if err != nil {
		return err
	}
	if len(ids) > 0 {
		h.opts.Logger.Info("jobs of dead processes rescued", slog.Int("jobs", len(ids)), slog.Any("job_ids", ids))
	}
	if _, err := conn.Exec(ctx, `DELETE FROM worker_processes WHERE heartbeat_at < now() - $1::interval`, forgetAfter); err != nil {
		return fmt.Errorf("forget dead processes: %w", err)
	}
	return nil
}
