package partition

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DefaultAhead is how far past now partitions are created.
const DefaultAhead = 4 * Period

// DefaultLockTimeout bounds how long one step waits for a lock. Detaching a
// partition needs an exclusive lock on its table for an instant; waiting
// behind a long transaction would queue every insert behind the step, so
// the step gives up instead and the next run tries again.
const DefaultLockTimeout = 2 * time.Second

// defaultBatch is how many rows of a DEFAULT partition one step deletes.
const defaultBatch = 5000

// lockKey is the advisory lock that keeps two runs apart ("ctrpart" in ASCII).
const lockKey = int64(0x63747270617274)

// ErrBusy is returned by Run when another run holds the maintenance lock.
var ErrBusy = errors.New("partition maintenance is running elsewhere")

// Policy is what to keep of one table.
type Policy struct {
	Table string
	// Retention is how long rows are kept: a partition is dropped once all
	// of it is older than this. Zero keeps every partition.
	Retention time.Duration
}

// Maintainer creates and drops partitions.
type Maintainer struct {
	pool        *pgxpool.Pool
	logger      *slog.Logger
	ahead       time.Duration
	lockTimeout time.Duration
	now         func() time.Time
	// afterStep, when set, runs after every step that changed something;
	// an error from it ends the run. Tests interrupt runs with it.
	afterStep func(step string) error
}

// New returns a Maintainer working through pool.
func New(pool *pgxpool.Pool, logger *slog.Logger) *Maintainer {
	return &Maintainer{pool: pool, logger: logger, ahead: DefaultAhead, lockTimeout: DefaultLockTimeout, now: time.Now}
}

// Report is what one run did.
type Report struct {
	Created []string // partitions created
	Dropped []string // partitions dropped
	Moved   int64    // rows moved out of DEFAULT partitions into new ones
	Deleted int64    // rows past retention deleted from DEFAULT partitions
}

// Run brings every policy's table to its wanted shape: a partition for each
// period from the current one to DefaultAhead past now, none entirely older
// than the retention, and nothing past the retention in the DEFAULT
// partition. Each step is one short transaction that changes one partition,
// so a run that is killed or cancelled at any point leaves a consistent
// schema, and the next run, which reads the catalog afresh, does what is
// left. Two runs at once are kept apart by a session advisory lock, which a
// killed process's session gives up with it; the second gets ErrBusy.
func (m *Maintainer) Run(ctx context.Context, policies []Policy) (Report, error) {
	var r Report
	conn, err := m.pool.Acquire(ctx)
	if err != nil {
		return r, fmt.Errorf("partition maintenance: %w", err)
	}
	var locked bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, lockKey).Scan(&locked); err != nil {
		conn.Release()
		return r, fmt.Errorf("partition maintenance lock: %w", err)
	}
	if !locked {
		conn.Release()
		return r, ErrBusy
	}
	defer func() {
		// A connection that cannot say it is done goes, and its lock with it.
		if _, err := conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockKey); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	for _, p := range policies {
		if err := m.table(ctx, conn.Conn(), p, &r); err != nil {
			return r, err
		}
	}
	return r, nil
}

// Querier runs queries: a pool, a connection or a transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// List returns table's partitions.
func List(ctx context.Context, q Querier, table string) ([]Partition, error) {
	rows, err := q.Query(ctx, `
		SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = to_regclass($1)
		ORDER BY c.relname`, table)
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	type row struct{ name, bound string }
	raw, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.name, &x.bound)
		return x, err
	})
	if err != nil {
		return nil, fmt.Errorf("list partitions of %s: %w", table, err)
	}
	out := make([]Partition, 0, len(raw))
	for _, x := range raw {
		p, err := parseBound(x.bound)
		if err != nil {
			return nil, fmt.Errorf("partition %s: %w", x.name, err)
		}
		p.Name = x.name
		out = append(out, p)
	}
	return out, nil
}

func (m *Maintainer) table(ctx context.Context, conn *pgx.Conn, p Policy, r *Report) error {
	parts, err := List(ctx, conn, p.Table)
	if err != nil {
		return err
	}
	if len(parts) == 0 {
		return fmt.Errorf("%s is not partitioned", p.Table)
	}
	now := m.now()
	var def *Partition
	for i := range parts {
		if parts[i].Default {
			def = &parts[i]
		}
	}

	// Old partitions go first, then new ones are made. A partition is
	// detached (an instant under an exclusive lock of the parent) and then
	// dropped apart: dropping deletes its files, which takes longer the
	// larger it is, and by then nothing waits for it. Between the two steps
	// it is named as expired, so that a run killed in between leaves a table
	// the next run knows to drop.
	expired, err := m.expired(ctx, conn, p.Table)
	if err != nil {
		return err
	}
	if p.Retention > 0 {
		cutoff := Bound(now.Add(-p.Retention))
		for _, part := range parts {
			if part.Default || part.Range.To == nil || compare(*part.Range.To, cutoff) > 0 {
				continue
			}
			name := pgx.Identifier{part.Name}.Sanitize()
			if err := m.step(ctx, conn, "detach "+part.Name, `
				ALTER TABLE `+pgx.Identifier{p.Table}.Sanitize()+` DETACH PARTITION `+name+`;
				ALTER TABLE `+name+` RENAME TO `+pgx.Identifier{part.Name + expiredSuffix}.Sanitize()); err != nil {
				return err
			}
			expired = append(expired, part.Name+expiredSuffix)
			r.Dropped = append(r.Dropped, part.Name)
		}
		if def != nil {
			n, err := m.trimDefault(ctx, conn, def.Name, cutoff)
			r.Deleted += n
			if err != nil {
				return err
			}
		}
	}

	for _, name := range expired {
		if err := m.step(ctx, conn, "drop "+name, `DROP TABLE IF EXISTS `+pgx.Identifier{name}.Sanitize()); err != nil {
			return err
		}
	}

	for start := Start(now); start.Before(now.Add(m.ahead)); start = start.Add(Period) {
		week := Week(start)
		covered := false
		for _, part := range parts {
			if !part.Default && part.Range.Overlaps(week) {
				covered = true
				break
			}
		}
		if covered {
			continue
		}
		name := Name(p.Table, start)
		moved, err := m.create(ctx, conn, p.Table, name, week, def)
		r.Moved += moved
		if err != nil {
			return err
		}
		r.Created = append(r.Created, name)
	}
	return nil
}

// expiredSuffix ends the name of a partition detached to be dropped.
const expiredSuffix = "_expired"

// expired lists the tables detached from table to be dropped and not
// dropped yet.
func (m *Maintainer) expired(ctx context.Context, conn *pgx.Conn, table string) ([]string, error) {
	rows, err := conn.Query(ctx, `
		SELECT relname::text FROM pg_class
		WHERE relnamespace = current_schema()::regnamespace AND relkind = 'r' AND NOT relispartition
		  AND starts_with(relname, $1) AND right(relname, $2) = $3
		ORDER BY relname`, table+"_", len(expiredSuffix), expiredSuffix)
	if err != nil {
		return nil, fmt.Errorf("list expired partitions of %s: %w", table, err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list expired partitions of %s: %w", table, err)
	}
	return names, nil
}

// create adds the partition name for week: a table made like the parent,
// then attached. CREATE TABLE … PARTITION OF would lock the parent
// exclusively, and every insert would queue behind it while it waits;
// ATTACH takes a lock that lets inserts and updates go on, and checks an
// empty table in no time. Rows of the week that reached the DEFAULT
// partition meanwhile (ATTACH would refuse them there) are moved into the
// new table first, in the same transaction.
func (m *Maintainer) create(ctx context.Context, conn *pgx.Conn, table, name string, week Range, def *Partition) (int64, error) {
	parent, child := pgx.Identifier{table}.Sanitize(), pgx.Identifier{name}.Sanitize()
	var moved int64
	err := m.tx(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `CREATE TABLE `+child+` (LIKE `+parent+` INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`); err != nil {
			return err
		}
		if def != nil {
			tag, err := tx.Exec(ctx, `
				WITH moved AS (DELETE FROM `+pgx.Identifier{def.Name}.Sanitize()+` WHERE id >= $1 AND id < $2 RETURNING *)
				INSERT INTO `+child+` SELECT * FROM moved`, week.From, week.To)
			if err != nil {
				return err
			}
			moved = tag.RowsAffected()
		}
		_, err := tx.Exec(ctx, `ALTER TABLE `+parent+` ATTACH PARTITION `+child+` `+week.ForValues())
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("create partition %s: %w", name, err)
	}
	m.logger.InfoContext(ctx, "partition created", slog.String("partition", name), slog.Int64("moved", moved))
	return moved, m.after("create " + name)
}

// trimDefault deletes the rows of the DEFAULT partition older than cutoff,
// a batch per transaction. It has rows only when inserts ran ahead of the
// partitions or behind the oldest one.
func (m *Maintainer) trimDefault(ctx context.Context, conn *pgx.Conn, name string, cutoff uuid.UUID) (int64, error) {
	var total int64
	for {
		var n int64
		err := m.tx(ctx, conn, func(tx pgx.Tx) error {
			tag, err := tx.Exec(ctx, `DELETE FROM `+pgx.Identifier{name}.Sanitize()+` WHERE id IN (
				SELECT id FROM `+pgx.Identifier{name}.Sanitize()+` WHERE id < $1 ORDER BY id LIMIT $2)`, cutoff, defaultBatch)
			n = tag.RowsAffected()
			return err
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("trim %s: %w", name, err)
		}
		if n == 0 {
			return total, nil
		}
		if err := m.after("trim " + name); err != nil {
			return total, err
		}
		if n < defaultBatch {
			return total, nil
		}
	}
}

// step runs one statement in a transaction of its own.
func (m *Maintainer) step(ctx context.Context, conn *pgx.Conn, name, sql string) error {
	err := m.tx(ctx, conn, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, sql)
		return err
	})
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	m.logger.InfoContext(ctx, "partition maintenance step", slog.String("step", name))
	return m.after(name)
}

// tx runs f in a transaction whose lock waits are bounded.
func (m *Maintainer) tx(ctx context.Context, conn *pgx.Conn, f func(pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('lock_timeout', $1, true)`,
			fmt.Sprintf("%dms", m.lockTimeout.Milliseconds())); err != nil {
			return err
		}
		return f(tx)
	})
}

func (m *Maintainer) after(step string) error {
	if m.afterStep == nil {
		return nil
	}
	return m.afterStep(step)
}
