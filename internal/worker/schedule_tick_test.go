package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/worker"
)

// testClock is a clock the test moves by hand.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// tick inserts a tick fired at the clock's time, as the leader does, and works
// it with w.
func tick(t *testing.T, b *testBundle, w *worker.ScheduleTickWorker, clock *testClock) {
	t.Helper()
	ctx := rivertest.WorkContext(context.Background(), b.client)
	res, err := b.client.Insert(ctx, jobs.RulesScheduleTick{At: clock.Now()}, nil)
	require.NoError(t, err)
	_, err = work(ctx, t, b, w, res.Job)
	require.NoError(t, err)
	requireJobState(t, b, res.Job.ID, rivertype.JobStateCompleted)
}

// scheduledWindows lists the windows of the rules.schedule jobs, oldest
// first, and requires that each was recorded once with its end.
func scheduledWindows(t *testing.T, b *testBundle, interval time.Duration) []time.Time {
	t.Helper()
	ctx := context.Background()
	// One snapshot, so a tick committing in between cannot split the reads.
	tx, err := b.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	require.NoError(t, err)
	defer func() { require.NoError(t, tx.Rollback(ctx)) }()
	scheduled, err := b.client.JobListTx(ctx, tx, river.NewJobListParams().Kinds(jobs.RulesSchedule{}.Kind()).First(10_000))
	require.NoError(t, err)
	windows := make([]time.Time, len(scheduled.Jobs))
	for i, row := range scheduled.Jobs {
		var args jobs.RulesSchedule
		require.NoError(t, json.Unmarshal(row.EncodedArgs, &args))
		windows[i] = args.WindowStart.UTC()
	}
	slices.SortFunc(windows, time.Time.Compare)
	rows, err := tx.Query(ctx, `SELECT window_start FROM rule_schedule_windows ORDER BY 1`)
	require.NoError(t, err)
	recorded, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	require.NoError(t, err)
	require.Len(t, recorded, len(windows), "every scheduled window is recorded, once")
	for i := range recorded {
		require.True(t, windows[i].Equal(recorded[i]), "window %d: job %s, recorded %s", i, windows[i], recorded[i])
	}
	if interval > 0 {
		var wrong int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM rule_schedule_windows WHERE window_end <> window_start + $1::interval`,
			interval).Scan(&wrong))
		require.Zero(t, wrong)
	}
	return windows
}

func windowsFrom(first time.Time, interval time.Duration, n int) []time.Time {
	windows := make([]time.Time, n)
	for i := range windows {
		windows[i] = first.Add(time.Duration(i) * interval)
	}
	return windows
}

func TestWindowScheduleFiresOnBoundaries(t *testing.T) {
	t.Parallel()
	at := func(s string) time.Time {
		t.Helper()
		v, err := time.Parse(time.RFC3339Nano, s)
		require.NoError(t, err)
		return v
	}
	for _, tc := range []struct {
		interval time.Duration
		now      string
		next     string
	}{
		{5 * time.Minute, "2026-03-04T10:02:17.3Z", "2026-03-04T10:05:00Z"},
		{5 * time.Minute, "2026-03-04T10:05:00Z", "2026-03-04T10:10:00Z"},
		{5 * time.Minute, "2026-03-04T10:04:59.95Z", "2026-03-04T10:05:00Z"},
		{time.Hour, "2026-03-04T10:59:59Z", "2026-03-04T11:00:00Z"},
		{time.Hour, "2026-03-04T12:30:00+02:00", "2026-03-04T11:00:00Z"},
		{20 * time.Second, "2026-03-04T10:00:41Z", "2026-03-04T10:01:00Z"},
	} {
		next := worker.WindowSchedule(tc.interval).Next(at(tc.now))
		require.True(t, next.Equal(at(tc.next)), "%s after %s: got %s, want %s", tc.interval, tc.now, next, tc.next)
	}
}

// The leader that scheduled 10:00 and 10:05 died before 10:10; no leader ran
// a tick until 10:17. That tick schedules 10:10 and 10:15, once each.
func TestScheduleTickSchedulesMissedWindowsOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const interval = 5 * time.Minute
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	clock := &testClock{now: base.Add(2*time.Minute + 30*time.Second)}
	w := worker.NewScheduleTickWorker(b.pool, interval, clock.Now, dbtest.Logger(t))

	// The first tick ever schedules only the current window.
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 1), scheduledWindows(t, b, interval))
	clock.Set(base.Add(3 * time.Minute))
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 1), scheduledWindows(t, b, interval), "nothing new is due")

	// River fires periodic jobs up to 100ms early.
	clock.Set(base.Add(5*time.Minute - 50*time.Millisecond))
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 2), scheduledWindows(t, b, interval))
	clock.Set(base.Add(5*time.Minute + 200*time.Millisecond))
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 2), scheduledWindows(t, b, interval), "a second tick for the same boundary")

	clock.Set(base.Add(17 * time.Minute))
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 4), scheduledWindows(t, b, interval))
	tick(t, b, w, clock)
	require.Equal(t, windowsFrom(base, interval, 4), scheduledWindows(t, b, interval))
}

// After a long outage the catch-up is capped: the newest windows are
// scheduled and the older ones are skipped and logged.
func TestScheduleTickCapsTheCatchUp(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const interval = 5 * time.Minute
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	clock := &testClock{now: base}
	var logs bytes.Buffer
	w := worker.NewScheduleTickWorker(b.pool, interval, clock.Now, slog.New(slog.NewJSONHandler(&logs, nil)))
	tick(t, b, w, clock)

	clock.Set(base.Add(100*interval + time.Minute))
	tick(t, b, w, clock)
	want := append(windowsFrom(base, interval, 1),
		windowsFrom(base.Add((100-worker.MaxCatchUpWindows+1)*interval), interval, worker.MaxCatchUpWindows)...)
	require.Equal(t, want, scheduledWindows(t, b, interval))

	var skipped struct {
		Msg     string    `json:"msg"`
		Skipped int       `json:"skipped"`
		First   time.Time `json:"first_skipped"`
		Last    time.Time `json:"last_skipped"`
	}
	line, _, _ := strings.Cut(logs.String(), "\n")
	require.NoError(t, json.Unmarshal([]byte(line), &skipped), logs.String())
	require.Equal(t, 100-worker.MaxCatchUpWindows, skipped.Skipped)
	require.True(t, skipped.First.Equal(base.Add(interval)))
	require.True(t, skipped.Last.Equal(base.Add((100-worker.MaxCatchUpWindows)*interval)))
}

// A window covers [start, start+interval) of the interval it was scheduled
// with; after RULES_EVAL_INTERVAL changes, the next window starts where the
// newest one ended.
func TestScheduleTickAcrossIntervalChanges(t *testing.T) {
	t.Parallel()
	b := setup(t)
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	clock := &testClock{now: base.Add(20 * time.Minute)}
	hourly := worker.NewScheduleTickWorker(b.pool, time.Hour, clock.Now, dbtest.Logger(t))
	fiveMinutes := worker.NewScheduleTickWorker(b.pool, 5*time.Minute, clock.Now, dbtest.Logger(t))

	tick(t, b, hourly, clock)
	require.Equal(t, []time.Time{base}, scheduledWindows(t, b, 0))
	// Down to five minutes: 10:00 covers the hour.
	clock.Set(base.Add(32 * time.Minute))
	tick(t, b, fiveMinutes, clock)
	require.Equal(t, []time.Time{base}, scheduledWindows(t, b, 0))
	clock.Set(base.Add(61 * time.Minute))
	tick(t, b, fiveMinutes, clock)
	require.Equal(t, []time.Time{base, base.Add(time.Hour)}, scheduledWindows(t, b, 0))
	// A tick names the leader's interval, which wins over the worker's own.
	clock.Set(base.Add(62 * time.Minute))
	ctx := rivertest.WorkContext(context.Background(), b.client)
	res, err := b.client.Insert(ctx, jobs.RulesScheduleTick{At: clock.Now(), Interval: time.Hour}, nil)
	require.NoError(t, err)
	_, err = work(ctx, t, b, fiveMinutes, res.Job)
	require.NoError(t, err)
	require.Equal(t, []time.Time{base, base.Add(time.Hour)}, scheduledWindows(t, b, 0), "11:00 is already scheduled")
	// Back up to an hour: 11:00-11:05 is covered, the next hour is 12:00.
	clock.Set(base.Add(64 * time.Minute))
	tick(t, b, hourly, clock)
	require.Equal(t, []time.Time{base, base.Add(time.Hour)}, scheduledWindows(t, b, 0))
	clock.Set(base.Add(2 * time.Hour))
	tick(t, b, hourly, clock)
	require.Equal(t, []time.Time{base, base.Add(time.Hour), base.Add(2 * time.Hour)}, scheduledWindows(t, b, 0))
}

// Ticks worked at once by different processes schedule each window once.
func TestScheduleTicksRacingScheduleEachWindowOnce(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const interval = 5 * time.Minute
	base := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	clock := &testClock{now: base}
	w := worker.NewScheduleTickWorker(b.pool, interval, clock.Now, dbtest.Logger(t))
	tick(t, b, w, clock)

	clock.Set(base.Add(31 * time.Minute))
	ctx := rivertest.WorkContext(context.Background(), b.client)
	const racers = 4
	var ticks []*rivertype.JobRow
	for range racers {
		res, err := b.client.Insert(ctx, jobs.RulesScheduleTick{At: clock.Now()}, nil)
		require.NoError(t, err)
		ticks = append(ticks, res.Job)
	}
	errs := make(chan error, racers)
	for _, job := range ticks {
		go func() {
			_, err := work(ctx, t, b, w, job)
			errs <- err
		}()
	}
	for range racers {
		require.NoError(t, <-errs)
	}
	require.Equal(t, windowsFrom(base, interval, 7), scheduledWindows(t, b, interval))
}

// A process that starts after windows went unscheduled (no process ran)
// schedules them when its leadership begins.
func TestWindowsMissedWithoutALeaderAreScheduledOnStart(t *testing.T) {
	t.Parallel()
	b := setup(t)
	current := time.Now().UTC().Truncate(time.Hour)
	// The last process stopped three hours ago.
	clock := &testClock{now: current.Add(-3*time.Hour + time.Minute)}
	tick(t, b, worker.NewScheduleTickWorker(b.pool, time.Hour, clock.Now, dbtest.Logger(t)), clock)

	startClient(t, b.pool, "process-a", time.Hour)
	var windows []time.Time
	require.Eventually(t, func() bool {
		windows = scheduledWindows(t, b, 0)
		return len(windows) >= 4
	}, 20*time.Second, 50*time.Millisecond)
	require.Equal(t, current.Add(-3*time.Hour), windows[0], "the window recorded before")
	require.Equal(t, windowsFrom(current.Add(-2*time.Hour), time.Hour, len(windows)-1), windows[1:])
	require.LessOrEqual(t, len(windows), 5, "at most the next hour, when the test runs at its boundary")
}
