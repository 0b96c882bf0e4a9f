package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/jobs"
)

// PgbenchScript is the pgbench script a run wrote.
type PgbenchScript struct {
	Path     string `json:"path"`
	Accounts int    `json:"accounts"`
	Batch    int    `json:"batch"`
	Command  string `json:"command"`
}

// pgbenchScript returns a pgbench script whose every transaction writes what
// the raw ingest reference writes: batch won events (one when batch is 0)
// with UUIDv7 ids over accounts, and their events.process jobs of up to
// jobs.EventsPerJob events each, as River writes them, on RawIngestQueue.
// Each transaction is one statement. It contains no "::", which pgbench
// would read as the start of a variable.
func pgbenchScript(runID string, accounts []uuid.UUID, batch int) string {
	quoted := make([]string, len(accounts))
	for i, id := range accounts {
		quoted[i] = "'" + id.String() + "'"
	}
	per := max(batch, 1)
	var b strings.Builder
	fmt.Fprintf(&b, `-- ctrader's ingest transaction for pgbench (ctrader bench, run %[1]s): %[2]d won
-- event row(s) and their events.process River job(s), one per %[3]d events, on
-- queue %[4]s, which no ctrader worker serves. Run it with the bench's clients:
--
--   pgbench -n -M prepared -f this.sql -c 8 -j 2 -T 30 "$DATABASE_URL"
--
-- and remove what it wrote afterwards:
--
--   DELETE FROM river_job WHERE queue = '%[4]s';
--   DELETE FROM events WHERE account_id IN (SELECT id FROM accounts WHERE metadata @> '{"bench_run": "%[1]s", "pgbench": true}');
--
-- River also sends a NOTIFY with inserts, at most once per queue per short
-- interval; a worker-less queue needs none, so this script sends none.
WITH e AS (
	INSERT INTO events (id, account_id, type, payload, occurred_at, received_at)
	SELECT %[5]s,
	       CAST((ARRAY[%[6]s])[1 + CAST(floor(random() * %[7]d) AS int)] AS uuid),
	       'won', jsonb_build_object('amount', 1 + CAST(floor(random() * %[8]d) AS int)), now(), now()
	FROM generate_series(1, %[2]d)
	RETURNING id
), chunks AS (
	SELECT id, (row_number() OVER () - 1) / %[3]d AS chunk FROM e
)
INSERT INTO river_job (args, kind, max_attempts, priority, queue, state, scheduled_at, created_at, metadata, tags)
SELECT jsonb_build_object('event_ids', jsonb_agg(id)), '%[9]s', %[10]d, 1, '%[4]s', 'available', now(), now(), '{}', '{}'
FROM chunks GROUP BY chunk;
`, runID, per, jobs.EventsPerJob, RawIngestQueue, uuid7SQL("clock_timestamp()"), strings.Join(quoted, ", "),
		len(accounts), maxAmount, jobs.EventsProcess{}.Kind(), jobs.EventMaxAttempts)
	return b.String()
}

// writePgbenchScript creates the script's accounts and writes the script
// to o.PgbenchScript.
func (r *runner) writePgbenchScript(ctx context.Context) error {
	accounts, err := rawAccounts(ctx, r.pool, r.o.Accounts, r.runID, "pgbench")
	if err != nil {
		return err
	}
	path := r.o.PgbenchScript
	if err := os.WriteFile(path, []byte(pgbenchScript(r.runID, accounts, r.o.Batch)), 0o644); err != nil {
		return fmt.Errorf("write the pgbench script: %w", err)
	}
	c := r.o.Concurrency
	r.rep.Pgbench = &PgbenchScript{
		Path: path, Accounts: len(accounts), Batch: r.o.Batch,
		Command: fmt.Sprintf(`pgbench -n -M prepared -f %s -c %d -j %d -T 30 "$DATABASE_URL"`, path, c, min(c, runtime.NumCPU())),
	}
	r.log.Info("pgbench script written", slog.String("path", path), slog.String("command", r.rep.Pgbench.Command))
	return nil
}
