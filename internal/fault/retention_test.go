package fault_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/partition"
)

// A process killed while its retention job waits to detach an expired
// partition (a long reader holds the partition) leaves the schema working;
// once the process is back, the job runs again and finishes: the expired
// week is gone, the weeks ahead exist, and events go on being stored.
func TestKillDuringPartitionMaintenance(t *testing.T) {
	skipShort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := newTestDB(t)

	// A week long past the retention, full of events, where the empty
	// partition the migration made of the table was.
	old := partition.Start(time.Now()).Add(-10 * partition.Period)
	name := partition.Name("events", old)
	account := uuid.New()
	for _, sql := range []string{
		`DROP TABLE events_legacy`,
		`CREATE TABLE ` + name + ` PARTITION OF events ` + partition.Week(old).ForValues(),
		`INSERT INTO accounts (id, name) VALUES ('` + account.String() + `', 'old')`,
		`INSERT INTO events (id, account_id, type, payload, occurred_at, status)
		 SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7' ||
		         substr(md5(i::text), 1, 3) || '8' || substr(md5(i::text), 4, 15))::uuid,
		        '` + account.String() + `', 'won', '{"amount": 1}', t, 'processed'
		 FROM generate_series(1, 50000) i,
		      LATERAL (SELECT '` + old.Format(time.RFC3339) + `'::timestamptz + i * interval '10 seconds' AS t) x`,
	} {
		_, err := d.pool.Exec(ctx, sql)
		require.NoError(t, err, sql)
	}
	reader, err := d.pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = reader.Rollback(ctx) }()
	_, err = reader.Exec(ctx, `SELECT count(*) FROM `+name)
	require.NoError(t, err)

	settings := map[string]string{"EVENTS_RETENTION": "30d", "EVALUATIONS_RETENTION": "30d"}
	serve := startProc(t, "serve", d.url, settings, "serve")
	require.Eventually(t, func() bool {
		var waiting bool
		err := d.pool.QueryRow(ctx, `
			SELECT EXISTS (SELECT FROM pg_stat_activity
			               WHERE datname = $1 AND wait_event_type = 'Lock' AND query LIKE '%DETACH PARTITION%')`,
			d.name).Scan(&waiting)
		return err == nil && waiting
	}, time.Minute, 10*time.Millisecond, "the retention job waits to detach %s", name)
	serve.kill()
	require.NoError(t, reader.Rollback(ctx))

	var exists bool
	require.NoError(t, d.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists))
	require.True(t, exists, "the killed step changed nothing")

	serve.start()
	// One run drops the expired week, and then makes the weeks ahead (the
	// legacy partition, dropped above, held the current ones): wait for both.
	require.EventuallyWithT(t, func(c *assert.CollectT) {
		var left bool
		err := d.pool.QueryRow(ctx, `
			SELECT EXISTS (SELECT FROM pg_class WHERE relname = $1 OR relname LIKE '%\_expired')`, name).Scan(&left)
		require.NoError(c, err)
		require.False(c, left, "the job ran again and dropped %s", name)
		for _, table := range partition.Tables {
			parts, err := partition.List(ctx, d.pool, table)
			require.NoError(c, err)
			for start := partition.Start(time.Now()); start.Before(time.Now().Add(partition.DefaultAhead)); start = start.Add(partition.Period) {
				week, covered := partition.Week(start), false
				for _, p := range parts {
					covered = covered || (!p.Default && p.Range.Overlaps(week))
				}
				require.True(c, covered, "%s has a partition for the week of %s", table, start.Format(time.DateOnly))
			}
		}
	}, time.Minute, 100*time.Millisecond)
	c := newClient(t, serve.Addr())
	accounts := c.createAccounts(ctx, 1)
	d.waitProvisioned(ctx, t, len(accounts))
	require.NoError(t, c.postEvents(ctx, []eventIn{won(accounts[0], 5)}))
	d.waitProcessed(ctx, t, 30*time.Second)
}
