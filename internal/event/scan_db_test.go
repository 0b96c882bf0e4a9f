package event_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/partition"
)

// captured is a transaction that remembers the last statement read through
// QueryRow, so a test can ask Postgres how it ran it.
type captured struct {
	pgx.Tx
	sql  string
	args []any
}

func (c *captured) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	c.sql, c.args = sql, args
	return c.Tx.QueryRow(ctx, sql, args...)
}

// A walk over a rare type reads that type's index entries, not every event:
// a plan made without the type walked the primary key and filtered out the
// others.
func TestWalkOverARareTypeReadsItsIndex(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.New(t)
	accountID := uuid.Must(uuid.NewV7())
	_, err := pool.Exec(ctx, `INSERT INTO accounts (id, name) VALUES ($1, 'walker')`, accountID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `
		INSERT INTO events (id, account_id, type, payload, occurred_at, status)
		SELECT CAST(encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid())
				placing substring(int8send(floor(extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
				52, 1), 53, 1), 'hex') AS uuid),
			$1, CASE WHEN i % 20000 = 0 THEN 'rare' ELSE 'common' END, '{}', now() - interval '1 hour', 'processed'
		FROM generate_series(1, 100000) i`, accountID)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, `ANALYZE events`)
	require.NoError(t, err)

	now := time.Now()
	r := event.Range{Types: []string{"rare", "missing"}, From: now.Add(-2 * time.Hour), To: now,
		After: event.IDFloor(now.Add(-2 * time.Hour)), Below: partition.Bound(now.Add(time.Minute))}
	// The index is the type's in whichever partition holds the events
	// (events_type_idx on the parent, <partition>_type_idx on each).
	for range 8 { // more than the runs after which Postgres may settle on a generic plan
		require.NoError(t, db.InTxCustomPlans(ctx, pool, func(tx pgx.Tx) error {
			c := &captured{Tx: tx}
			w, err := event.Walk(ctx, c, r, 2000)
			require.NoError(t, err)
			require.Len(t, w.IDs, 5)
			require.Equal(t, 5, w.Count)
			var plan string
			require.NoError(t, tx.QueryRow(ctx, `EXPLAIN (FORMAT JSON) `+c.sql, c.args...).Scan(&plan))
			require.True(t, strings.Contains(plan, "type_idx"), "the walk reads the type's index")
			require.False(t, strings.Contains(plan, "pkey"), "the walk reads no other type's events")
			return nil
		}))
	}
}
