package db

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/ctrader/ctrader/migrations"
)

// ErrSchemaBehind means the database has migrations this binary needs that
// have not been applied.
var ErrSchemaBehind = errors.New("database schema is behind this binary: run `ctrader migrate up` (or start with --migrate)")

// Migrator applies the embedded migrations. Two processes migrating at once
// serialize on a Postgres advisory lock instead of colliding.
type Migrator struct {
	provider *goose.Provider
	sqlDB    *sql.DB
}

// NewMigrator returns a Migrator over pool. Close it when done.
func NewMigrator(pool *pgxpool.Pool, logger *slog.Logger) (*Migrator, error) {
	sqlFS, err := fs.Sub(migrations.SQL, ".")
	if err != nil {
		return nil, fmt.Errorf("migrations folder: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, fmt.Errorf("migration lock: %w", err)
	}
	sqlDB := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, sqlDB, sqlFS,
		goose.WithGoMigrations(migrations.Go()...),
		goose.WithDisableGlobalRegistry(true),
		goose.WithSessionLocker(locker),
		goose.WithSlog(logger.With(slog.String("component", "migrate"))),
	)
	if err != nil {
		_ = sqlDB.Close()
		return nil, fmt.Errorf("migration provider: %w", err)
	}
	return &Migrator{provider: provider, sqlDB: sqlDB}, nil
}

// Close releases the migrator's handle on the pool; the pool stays open.
func (m *Migrator) Close() error { return m.sqlDB.Close() }

// Up applies every pending migration.
func (m *Migrator) Up(ctx context.Context) ([]*goose.MigrationResult, error) {
	res, err := m.provider.Up(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate up: %w", Translate(err))
	}
	return res, nil
}

// Down rolls back the most recent migration.
func (m *Migrator) Down(ctx context.Context) (*goose.MigrationResult, error) {
	res, err := m.provider.Down(ctx)
	if err != nil {
		return res, fmt.Errorf("migrate down: %w", Translate(err))
	}
	return res, nil
}

// Status lists every migration and whether it is applied.
func (m *Migrator) Status(ctx context.Context) ([]*goose.MigrationStatus, error) {
	res, err := m.provider.Status(ctx)
	if err != nil {
		return res, fmt.Errorf("migration status: %w", Translate(err))
	}
	return res, nil
}

// TargetVersion is the newest migration embedded in this binary.
func TargetVersion() int64 {
	var target int64
	entries, _ := fs.Glob(migrations.SQL, "*.sql")
	for _, name := range entries {
		if v, err := goose.NumericComponent(name); err == nil && v > target {
			target = v
		}
	}
	for _, m := range migrations.Go() {
		target = max(target, m.Version)
	}
	return target
}

// SchemaVersion returns the newest applied migration, or 0 on an empty database.
func SchemaVersion(ctx context.Context, q Querier) (int64, error) {
	var v int64
	err := q.QueryRow(ctx, `SELECT coalesce(max(version_id), 0) FROM goose_db_version`).Scan(&v)
	if code, _ := ConstraintOf(err); code == CodeUndefinedTable {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", Translate(err))
	}
	return v, nil
}

// CheckSchema returns nil when the database has every migration this binary
// knows, ErrSchemaBehind (wrapped) when it lacks some, and ErrUnavailable
// (wrapped) when it cannot be read. A database ahead of the binary passes:
// migrations are written to be compatible with the previous release, so an
// older process keeps working during a rolling deploy.
func CheckSchema(ctx context.Context, q Querier) error {
	v, err := SchemaVersion(ctx, q)
	if err != nil {
		return err
	}
	if target := TargetVersion(); v < target {
		return fmt.Errorf("%w (database at %d, binary needs %d)", ErrSchemaBehind, v, target)
	}
	return nil
}
