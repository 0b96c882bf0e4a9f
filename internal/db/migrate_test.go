package db_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/dbtest"
)

func tableExists(t *testing.T, q db.Querier, name string) bool {
	t.Helper()
	var exists bool
	require.NoError(t, q.QueryRow(context.Background(), `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists))
	return exists
}

func TestMigrateUpDownUp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := dbtest.Pool(t, dbtest.EmptyURL(t))
	logger := dbtest.Logger(t)

	m, err := db.NewMigrator(pool, logger)
	require.NoError(t, err)
	t.Cleanup(func() { _ = m.Close() })

	require.ErrorIs(t, db.CheckSchema(ctx, pool), db.ErrSchemaBehind, "an empty database is behind")

	res, err := m.Up(ctx)
	require.NoError(t, err)
	require.Len(t, res, int(db.TargetVersion()))
	require.NoError(t, db.CheckSchema(ctx, pool))
	require.True(t, tableExists(t, pool, "river_job"))
	require.True(t, tableExists(t, pool, "accounts"))

	// Down one step at a time to nothing.
	for v := db.TargetVersion(); v > 0; v-- {
		r, err := m.Down(ctx)
		require.NoError(t, err)
		require.Equal(t, v, r.Source.Version)
		got, err := db.SchemaVersion(ctx, pool)
		require.NoError(t, err)
		require.Equal(t, v-1, got)
	}
	require.False(t, tableExists(t, pool, "accounts"))
	require.False(t, tableExists(t, pool, "river_job"))
	require.False(t, tableExists(t, pool, "river_migration"))

	res, err = m.Up(ctx)
	require.NoError(t, err)
	require.Len(t, res, int(db.TargetVersion()))
	require.NoError(t, db.CheckSchema(ctx, pool))
}

func TestMigrateConcurrentProcessesSerialize(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := dbtest.EmptyURL(t)

	const processes = 3
	var wg sync.WaitGroup
	errs := make([]error, processes)
	applied := make([]int, processes)
	for i := range processes {
		// Each "process" has its own pool, as separate binaries would.
		pool := dbtest.Pool(t, url)
		m, err := db.NewMigrator(pool, dbtest.Logger(t))
		require.NoError(t, err)
		t.Cleanup(func() { _ = m.Close() })
		wg.Go(func() {
			res, err := m.Up(ctx)
			errs[i] = err
			applied[i] = len(res)
		})
	}
	wg.Wait()

	total := 0
	for i := range processes {
		require.NoError(t, errs[i])
		total += applied[i]
	}
	require.Equal(t, int(db.TargetVersion()), total, "every migration applied exactly once across processes")
	require.NoError(t, db.CheckSchema(ctx, dbtest.Pool(t, url)))
}

func TestCheckSchemaUnreachable(t *testing.T) {
	t.Parallel()
	pool := dbtest.Pool(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=2")
	err := db.CheckSchema(context.Background(), pool)
	require.ErrorIs(t, err, db.ErrUnavailable)
}
