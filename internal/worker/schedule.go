package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/jobs"
)

// MaxCatchUpWindows is the most windows one tick schedules. After a longer
// time without any process running, the newest windows are scheduled and the
// older ones are skipped, with a warning that names them: evaluating a rule
// reads the accounts as they are now, so a hundred windows caught up at once
// would repeat one evaluation a hundred times.
const MaxCatchUpWindows = 12

// windowLead is how long before its start a window is due. River's periodic
// enqueuer fires up to 100 ms early, and the process that works a tick may
// read a clock slightly behind the leader's.
const windowLead = time.Second

// WindowSchedule fires at every boundary of interval (boundaries are
// multiples of interval since Go's zero time, so every process agrees on
// them), where the plain interval schedule fires interval after the leader
// started.
func WindowSchedule(interval time.Duration) river.PeriodicSchedule {
	return windowSchedule{interval: interval}
}

type windowSchedule struct{ interval time.Duration }

func (s windowSchedule) Next(t time.Time) time.Time {
	return t.Truncate(s.interval).Add(s.interval)
}

// ScheduleTickWorker schedules every window of scheduled evaluation that is
// due and not yet scheduled. The windows scheduled are recorded in
// rule_schedule_windows in the same transaction as their rules.schedule jobs,
// under a lock that serializes ticks, so each window is scheduled exactly
// once: a tick that runs late, after the leader died or while no process ran,
// schedules the windows missed since the newest recorded one, and a tick that
// races another finds nothing left to do.
type ScheduleTickWorker struct {
	river.WorkerDefaults[jobs.RulesScheduleTick]
	pool     *pgxpool.Pool
	interval time.Duration // when the tick does not say
	now      func() time.Time
	logger   *slog.Logger
}

// Work records the due windows and inserts their jobs, then completes the
// tick, in one transaction.
func (w *ScheduleTickWorker) Work(ctx context.Context, job *river.Job[jobs.RulesScheduleTick]) error {
	interval := cmp.Or(job.Args.Interval, w.interval)
	if interval <= 0 {
		return river.JobCancel(errors.New("tick without an interval"))
	}
	now := w.now().UTC()
	if job.Args.At.After(now) {
		now = job.Args.At.UTC()
	}
	current := now.Add(windowLead).Truncate(interval)
	return db.InTx(ctx, w.pool, func(tx pgx.Tx) error {
		// EXCLUSIVE lets readers in but no other tick: the second of two
		// racing ticks reads the windows the first recorded.
		if _, err := tx.Exec(ctx, `LOCK TABLE rule_schedule_windows IN EXCLUSIVE MODE`); err != nil {
			return fmt.Errorf("lock schedule windows: %w", err)
		}
		var lastEnd *time.Time
		err := tx.QueryRow(ctx, `SELECT window_end FROM rule_schedule_windows ORDER BY window_start DESC LIMIT 1`).Scan(&lastEnd)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("read newest schedule window: %w", err)
		}
		windows, skipped := dueWindows(lastEnd, current, interval)
		if skipped > 0 {
			w.logger.WarnContext(ctx, "scheduled evaluation windows skipped: more were due than one tick catches up",
				slog.Int("skipped", skipped),
				slog.Time("first_skipped", windows[0].Add(-time.Duration(skipped)*interval)),
				slog.Time("last_skipped", windows[0].Add(-interval)),
				slog.Int("max_catch_up_windows", MaxCatchUpWindows))
		}
		if len(windows) > 0 {
			ends := make([]time.Time, len(windows))
			params := make([]river.InsertManyParams, len(windows))
			for i, start := range windows {
				ends[i] = start.Add(interval)
				params[i] = river.InsertManyParams{Args: jobs.RulesSchedule{WindowStart: start}}
			}
			if _, err := tx.Exec(ctx, `
				INSERT INTO rule_schedule_windows (window_start, window_end)
				SELECT * FROM unnest($1::timestamptz[], $2::timestamptz[])`, windows, ends); err != nil {
				return fmt.Errorf("record schedule windows: %w", err)
			}
			if _, err := inserter(ctx).InsertManyTx(ctx, tx, params); err != nil {
				return fmt.Errorf("insert schedule jobs: %w", err)
			}
			// Only the newest window is needed to know what is due next; the
			// rest is a month of history for operators.
			if _, err := tx.Exec(ctx, `DELETE FROM rule_schedule_windows WHERE window_start < $1`,
				windows[len(windows)-1].Add(-30*24*time.Hour)); err != nil {
				return fmt.Errorf("prune schedule windows: %w", err)
			}
		}
		return complete(ctx, tx, job)
	})
}

// dueWindows returns the starts of the windows of interval that begin at or
// after lastEnd (the end of the newest window scheduled, nil when none ever
// was) and no later than current, at most MaxCatchUpWindows of them, newest
// kept, and how many older ones it left out. With no window scheduled before,
// only current is due.
func dueWindows(lastEnd *time.Time, current time.Time, interval time.Duration) (windows []time.Time, skipped int) {
	if lastEnd == nil {
		return []time.Time{current}, 0
	}
	first := lastEnd.UTC().Truncate(interval)
	if first.Before(*lastEnd) {
		first = first.Add(interval)
	}
	if first.After(current) {
		return nil, 0
	}
	n := int(current.Sub(first)/interval) + 1
	if n > MaxCatchUpWindows {
		skipped = n - MaxCatchUpWindows
		first = first.Add(time.Duration(skipped) * interval)
		n = MaxCatchUpWindows
	}
	windows = make([]time.Time, n)
	for i := range windows {
		windows[i] = first.Add(time.Duration(i) * interval)
	}
	return windows, skipped
}
