package partition_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/partition"
)

type bundle struct {
	pool    *pgxpool.Pool
	account uuid.UUID
	now     time.Time
}

func setup(t *testing.T) *bundle {
	t.Helper()
	pool := dbtest.New(t)
	b := &bundle{pool: pool, account: uuid.New(), now: time.Now().UTC()}
	_, err := pool.Exec(context.Background(), `INSERT INTO accounts (id, name) VALUES ($1, 'a')`, b.account)
	require.NoError(t, err)
	return b
}

// maintainer returns a Maintainer that takes now to be at.
func (b *bundle) maintainer(t *testing.T, at time.Time) *partition.Maintainer {
	return partition.New(b.pool, dbtest.Logger(t)).At(func() time.Time { return at })
}

// eventAt stores an event whose id was made at at and returns the id.
func (b *bundle) eventAt(t *testing.T, at time.Time) uuid.UUID {
	t.Helper()
	id := uuid.New()
	bound := partition.Bound(at)
	copy(id[:6], bound[:6]) // a UUIDv7 of at
	id[6] = 0x70 | id[6]&0x0f
	_, err := b.pool.Exec(context.Background(), `
		INSERT INTO events (id, account_id, type, payload, occurred_at) VALUES ($1, $2, 'probe', '{}', $3)`, id, b.account, at)
	require.NoError(t, err)
	return id
}

// where returns the partition that holds the event id, or "" for none.
func (b *bundle) where(t *testing.T, id uuid.UUID) string {
	t.Helper()
	var name string
	err := b.pool.QueryRow(context.Background(), `SELECT tableoid::regclass::text FROM events WHERE id = $1`, id).Scan(&name)
	if errors.Is(err, pgx.ErrNoRows) {
		return ""
	}
	require.NoError(t, err)
	return name
}

func (b *bundle) partitions(t *testing.T, table string) []partition.Partition {
	t.Helper()
	parts, err := partition.List(context.Background(), b.pool, table)
	require.NoError(t, err)
	return parts
}

func names(parts []partition.Partition) []string {
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.Name
	}
	return out
}

var policies = func(retention time.Duration) []partition.Policy {
	return []partition.Policy{{Table: "events", Retention: retention}, {Table: "evaluations", Retention: retention}}
}

// requireShape checks that table has a partition for every week from the
// one of at to DefaultAhead past it, and none entirely older than at less
// retention.
func (b *bundle) requireShape(t *testing.T, table string, at time.Time, retention time.Duration) {
	t.Helper()
	parts := b.partitions(t, table)
	for start := partition.Start(at); start.Before(at.Add(partition.DefaultAhead)); start = start.Add(partition.Period) {
		week := partition.Week(start)
		require.True(t, slices.ContainsFunc(parts, func(p partition.Partition) bool {
			return !p.Default && p.Range.Overlaps(week)
		}), "%s has a partition for the week of %s", table, start)
	}
	cutoff := partition.Bound(at.Add(-retention))
	for _, p := range parts {
		if p.Default {
			continue
		}
		require.True(t, p.Range.Overlaps(partition.Range{From: &cutoff}), "%s is past retention and still there", p.Name)
	}
	require.Contains(t, names(parts), partition.DefaultName(table))
	var leftovers int
	require.NoError(t, b.pool.QueryRow(context.Background(),
		`SELECT count(*) FROM pg_class WHERE relname LIKE $1`, table+`\_%\_expired`).Scan(&leftovers))
	require.Zero(t, leftovers, "every detached partition was dropped")
}

// A run creates the weeks ahead; as time passes, later runs create the next
// ones and drop the weeks entirely past retention, with their rows, keeping
// every row within it.
func TestRunCreatesAheadAndDropsPastRetention(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	const retention = 30 * 24 * time.Hour

	_, err := b.maintainer(t, b.now).Run(ctx, policies(retention))
	require.NoError(t, err)
	b.requireShape(t, "events", b.now, retention)
	b.requireShape(t, "evaluations", b.now, retention)
	again, err := b.maintainer(t, b.now).Run(ctx, policies(retention))
	require.NoError(t, err)
	require.Equal(t, partition.Report{}, again, "a second run has nothing to do")

	old := b.eventAt(t, b.now)
	later := b.now.Add(8 * partition.Period)
	kept := b.eventAt(t, later.Add(-retention+time.Hour))
	require.Equal(t, partition.Name("events", partition.Start(later.Add(-retention+time.Hour))), b.where(t, kept))

	report, err := b.maintainer(t, later).Run(ctx, policies(retention))
	require.NoError(t, err)
	require.Contains(t, report.Dropped, "events_legacy", "the table the migration started from goes like any week")
	require.NotEmpty(t, report.Created)
	b.requireShape(t, "events", later, retention)
	b.requireShape(t, "evaluations", later, retention)
	require.Empty(t, b.where(t, old), "a row of a dropped week is gone")
	require.NotEmpty(t, b.where(t, kept), "a row within retention stays")

	forever, err := b.maintainer(t, later.Add(100*partition.Period)).Run(ctx, policies(0))
	require.NoError(t, err)
	require.Empty(t, forever.Dropped, "a zero retention keeps everything")
	require.NotEmpty(t, b.where(t, kept))
}

// An insert at any time has a partition: outside the weekly ones the DEFAULT
// partition takes it, and the run that creates its week moves it there. A
// row in the DEFAULT partition past retention is deleted.
func TestEveryInsertHasAPartition(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.maintainer(t, b.now).Run(ctx, policies(0))
	require.NoError(t, err)

	future := b.now.Add(20 * partition.Period)
	ahead := b.eventAt(t, future)
	require.Equal(t, "events_default", b.where(t, ahead))
	report, err := b.maintainer(t, future).Run(ctx, policies(0))
	require.NoError(t, err)
	require.Equal(t, int64(1), report.Moved)
	require.Equal(t, partition.Name("events", partition.Start(future)), b.where(t, ahead))

	// Its week dropped, a row of long ago lands in the DEFAULT partition,
	// and goes once past retention.
	const retention = 60 * 24 * time.Hour
	_, err = b.maintainer(t, future).Run(ctx, policies(retention))
	require.NoError(t, err)
	stray := b.eventAt(t, b.now)
	require.Equal(t, "events_default", b.where(t, stray))
	report, err = b.maintainer(t, future).Run(ctx, policies(retention))
	require.NoError(t, err)
	require.Equal(t, int64(1), report.Deleted)
	require.Empty(t, b.where(t, stray))
}

// A run stopped between any two steps leaves a schema that works, and the
// next run finishes the job: each step is one transaction.
func TestInterruptedRunIsFinishedByTheNext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.maintainer(t, b.now).Run(ctx, policies(0))
	require.NoError(t, err)
	later := b.now.Add(30 * partition.Period)
	const retention = 14 * 24 * time.Hour

	// Each attempt is stopped one step later than the one before, until a
	// run gets through.
	stop := errors.New("stopped")
	var steps []string
	for n := 1; ; n++ {
		done := 0
		_, err := b.maintainer(t, later).AfterStep(func(step string) error {
			done++
			steps = append(steps, step)
			if done == n {
				return stop
			}
			return nil
		}).Run(ctx, policies(retention))
		if err == nil {
			break
		}
		require.ErrorIs(t, err, stop)
		b.eventAt(t, later) // inserts go on meanwhile
		require.Less(t, n, 100)
	}
	require.NotEmpty(t, steps)
	b.requireShape(t, "events", later, retention)
	b.requireShape(t, "evaluations", later, retention)
	report, err := b.maintainer(t, later).Run(ctx, policies(retention))
	require.NoError(t, err)
	require.Equal(t, partition.Report{}, report)
}

// A run whose connection is killed while it waits for a lock (a process
// killed in the middle of a DETACH) leaves nothing half done; the next run
// completes. A run waits for a lock only so long, and then fails without
// having changed anything.
func TestKilledRunIsFinishedByTheNext(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	_, err := b.maintainer(t, b.now).Run(ctx, policies(0))
	require.NoError(t, err)
	later := b.now.Add(30 * partition.Period)
	const retention = 14 * 24 * time.Hour

	// A long reader of the legacy partition holds up its DROP.
	reader, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = reader.Rollback(ctx) }()
	_, err = reader.Exec(ctx, `SELECT count(*) FROM events_legacy`)
	require.NoError(t, err)

	_, err = b.maintainer(t, later).WithLockTimeout(100*time.Millisecond).Run(ctx, policies(retention))
	require.ErrorContains(t, err, "lock timeout")
	require.Contains(t, names(b.partitions(t, "events")), "events_legacy")

	errs := make(chan error, 1)
	go func() {
		_, err := b.maintainer(t, later).WithLockTimeout(time.Minute).Run(ctx, policies(retention))
		errs <- err
	}()
	var pid int
	require.Eventually(t, func() bool {
		err := b.pool.QueryRow(ctx, `
			SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%DETACH PARTITION%'`).Scan(&pid)
		return err == nil
	}, 10*time.Second, 20*time.Millisecond)
	_, err = b.pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid)
	require.NoError(t, err)
	require.Error(t, <-errs)
	require.NoError(t, reader.Rollback(ctx))
	// The killed session gives up its maintenance lock when its backend has
	// exited, which pg_terminate_backend does not wait for.
	require.Eventually(t, func() bool {
		var n int
		return b.pool.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, pid).Scan(&n) == nil && n == 0
	}, 10*time.Second, 10*time.Millisecond)

	_, err = b.maintainer(t, later).Run(ctx, policies(retention))
	require.NoError(t, err)
	b.requireShape(t, "events", later, retention)
	b.requireShape(t, "evaluations", later, retention)
}

// Two runs at once: the second leaves the work to the first.
func TestOneRunAtATime(t *testing.T) {
	t.Parallel()
	b := setup(t)
	ctx := context.Background()
	conn, err := b.pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	var got bool
	require.NoError(t, conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(x'63747270617274'::bigint)`).Scan(&got))
	require.True(t, got)
	_, err = b.maintainer(t, b.now).Run(ctx, policies(0))
	require.ErrorIs(t, err, partition.ErrBusy)
	_, err = conn.Exec(ctx, `SELECT pg_advisory_unlock(x'63747270617274'::bigint)`)
	require.NoError(t, err)
	_, err = b.maintainer(t, b.now).Run(ctx, policies(0))
	require.NoError(t, err)
}
