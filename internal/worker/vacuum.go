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
// is inserted and updated several times.
var VacuumTables = []string{"river_job", "events", "evaluations", "accounts", "webhook_deliveries", "idempotency_keys"}

// VacuumWorker keeps the queue and event tables from bloating on a server
// whose autovacuum is off: dead rows in river_job slow every fetch. With
// autovacuum on it does nothing.
type VacuumWorker struct {
	river.WorkerDefaults[jobs.Vacuum]
	pool   *pgxpool.Pool
	logger *slog.Logger
}

// Work vacuums and analyzes each table. VACUUM cannot run in a transaction;
// it takes no lock that blocks inserts, updates or deletes.
func (w *VacuumWorker) Work(ctx context.Context, _ *river.Job[jobs.Vacuum]) error {
	var autovacuum string
	if err := w.pool.QueryRow(ctx, `SELECT current_setting('autovacuum')`).Scan(&autovacuum); err != nil {
		return fmt.Errorf("read autovacuum setting: %w", err)
	}
	if autovacuum == "on" {
		return nil
	}
	for _, table := range VacuumTables {
		start := time.Now()
		if _, err := w.pool.Exec(ctx, "VACUUM (ANALYZE) "+pgx.Identifier{table}.Sanitize()); err != nil {
			return fmt.Errorf("vacuum %s: %w", table, err)
		}
		w.logger.DebugContext(ctx, "vacuumed", slog.String("table", table), slog.Duration("took", time.Since(start)))
	}
	return nil
}

// Timeout leaves vacuuming large tables time to finish.
func (w *VacuumWorker) Timeout(*river.Job[jobs.Vacuum]) time.Duration { return 10 * time.Minute }
