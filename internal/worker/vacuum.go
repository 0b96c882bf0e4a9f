package worker

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/jobs"
)

// VacuumTables are the tables whose rows churn fastest: every job and event
// is inserted and updated several times. Of a partitioned table (events,
// evaluations) each partition is looked at on its own, as autovacuum does.
var VacuumTables = []string{"river_job", "events", "evaluations", "accounts", "webhook_deliveries", "idempotency_keys"}

// VacuumWorker does autovacuum's work on the tables autovacuum leaves alone,
// those of a server whose autovacuum is off or with autovacuum_enabled = false
// of their own: dead rows in river_job slow every fetch, and tables never
// analyzed get poor plans. Tables autovacuum looks after are only analyzed,
// sooner than autovacuum would (see dueForVacuum).
type VacuumWorker struct {
	river.WorkerDefaults[jobs.Vacuum]
	pool   *pgxpool.Pool
	logger *slog.Logger
	// serverAutovacuum reports whether the server's autovacuum is on; nil
	// reads the setting. Tests set it: the setting needs a superuser and a
	// reload to change, and would reach every other database.
	serverAutovacuum func(context.Context) (bool, error)
}

// Work vacuums and analyzes the tables that need it. VACUUM cannot run in a
// transaction; it takes no lock that blocks inserts, updates or deletes.
func (w *VacuumWorker) Work(ctx context.Context, _ *river.Job[jobs.Vacuum]) error {
	serverAutovacuum := w.serverAutovacuum
	if serverAutovacuum == nil {
		serverAutovacuum = w.readServerAutovacuum
	}
	on, err := serverAutovacuum(ctx)
	if err != nil {
		return err
	}
	due, err := dueForVacuum(ctx, w.pool, on)
	if err != nil || len(due) == 0 {
		return err
	}
	conn, err := w.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("vacuum: %w", err)
	}
	// A pooled connection must not keep the throttle.
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `RESET vacuum_cost_delay; RESET vacuum_cost_limit`); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx))
		}
		conn.Release()
	}()
	// Throttled as autovacuum is, so a large table's turn does not take the
	// CPU from the work it cleans up after.
	if _, err := conn.Exec(ctx, `
		SELECT set_config('vacuum_cost_delay', current_setting('autovacuum_vacuum_cost_delay'), false),
		       set_config('vacuum_cost_limit', CASE WHEN current_setting('autovacuum_vacuum_cost_limit') = '-1'
		           THEN current_setting('vacuum_cost_limit') ELSE current_setting('autovacuum_vacuum_cost_limit') END, false)`); err != nil {
		return fmt.Errorf("vacuum: throttle: %w", err)
	}
	for _, d := range due {
		stmt := "VACUUM "
		switch {
		case d.vacuum && d.analyze:
			stmt = "VACUUM (ANALYZE) "
		case d.analyze:
			stmt = "ANALYZE "
		}
		start := time.Now()
		if _, err := conn.Exec(ctx, stmt+pgx.Identifier{d.table}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum %s: %w", d.table, err)
		}
		w.logger.DebugContext(ctx, "vacuumed", slog.String("table", d.table), slog.Bool("vacuum", d.vacuum),
			slog.Bool("analyze", d.analyze), slog.Duration("took", time.Since(start)))
	}
	return nil
}

func (w *VacuumWorker) readServerAutovacuum(ctx context.Context) (bool, error) {
	var on bool
	if err := w.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')::bool`).Scan(&on); err != nil {
		return false, fmt.Errorf("read autovacuum setting: %w", err)
	}
	return on, nil
}

type vacuumDue struct {
	table           string
	vacuum, analyze bool
}

// dueForVacuum applies the server's own autovacuum thresholds to the
// VacuumTables: a table is analyzed once enough of its rows have changed, and
// vacuumed once enough are dead or newly inserted where autovacuum does not
// look after it (serverAutovacuum is false, or the table's
// autovacuum_enabled is), so a run over tables that barely changed costs
// almost nothing.
//
// Analyzing is not left to autovacuum, which looks at a database once a
// minute: Postgres caches the plans of prepared statements, River's among
// them, for a table as its statistics last described it, so a plan made
// while river_job held a few rows scans the whole table on every job's
// completion until the statistics change (on a fresh database that was a
// minute of completions slowing as the table grew, seen as stalls). An
// ANALYZE as soon as the thresholds are crossed has the plans made again
// for the table's size; between two of them the table grew by at most a
// tenth. Analyzing takes no lock that blocks writes.
func dueForVacuum(ctx context.Context, pool *pgxpool.Pool, serverAutovacuum bool) ([]vacuumDue, error) {
	rows, err := pool.Query(ctx, `
		SELECT relname, due_vacuum, due_analyze FROM (
			SELECT s.relname,
			       (n_dead_tup > current_setting('autovacuum_vacuum_threshold')::float8
			                    + current_setting('autovacuum_vacuum_scale_factor')::float8 * n_live_tup
			        OR n_ins_since_vacuum > current_setting('autovacuum_vacuum_insert_threshold')::float8
			                    + current_setting('autovacuum_vacuum_insert_scale_factor')::float8 * n_live_tup)
			       AND NOT ($2::bool AND NOT EXISTS (
			           SELECT FROM pg_class c, pg_options_to_table(c.reloptions) o
			           WHERE c.oid = s.relid AND o.option_name = 'autovacuum_enabled' AND NOT o.option_value::bool)) AS due_vacuum,
			       n_mod_since_analyze > current_setting('autovacuum_analyze_threshold')::float8
			                    + current_setting('autovacuum_analyze_scale_factor')::float8 * n_live_tup AS due_analyze,
			       array_position($1, root::text) AS pos
			FROM pg_stat_user_tables s
			JOIN (SELECT t.relname AS root, coalesce(p.relid, t.oid) AS relid
			      FROM pg_class t LEFT JOIN LATERAL pg_partition_tree(t.oid) p ON true
			      WHERE t.relnamespace = current_schema()::regnamespace AND t.relname = ANY($1)
			        AND coalesce(p.isleaf, true)) tree
			  ON tree.relid = s.relid) t
		WHERE due_vacuum OR due_analyze
		ORDER BY pos, relname`, VacuumTables, serverAutovacuum)
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (vacuumDue, error) {
		var d vacuumDue
		err := r.Scan(&d.table, &d.vacuum, &d.analyze)
		return d, err
	})
	if err != nil {
		return nil, fmt.Errorf("read table statistics: %w", err)
	}
	return due, nil
}

// Timeout leaves vacuuming large tables time to finish.
func (w *VacuumWorker) Timeout(*river.Job[jobs.Vacuum]) time.Duration { return 10 * time.Minute }
