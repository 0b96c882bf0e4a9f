// Package db owns ctrader's access to Postgres: the connection pool, the
// transaction helper, the translation of Postgres errors into application
// errors, and the migration runner.
package db

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Querier runs SQL. Both *pgxpool.Pool and pgx.Tx satisfy it, so data
// functions take a Querier and let the caller decide the transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
	CopyFrom(ctx context.Context, table pgx.Identifier, columns []string, src pgx.CopyFromSource) (int64, error)
}

// Open parses a libpq-style URL or key=value string and returns a pool. It
// does not connect: the first query does, so a process can start, report
// itself unready and answer 503 while Postgres is away.
func Open(ctx context.Context, url string, maxConns int32, logger *slog.Logger) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's parse errors can echo the password; say only what is wrong.
		return nil, errors.New("DATABASE_URL is not a valid Postgres connection string")
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ctrader"
	}
	cfg.AfterConnect = func(_ context.Context, conn *pgx.Conn) error {
		registerTypes(conn.TypeMap())
		return nil
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	logger.Debug("database pool created",
		slog.String("host", cfg.ConnConfig.Host),
		slog.String("database", cfg.ConnConfig.Database),
		slog.Int("max_conns", int(cfg.MaxConns)))
	return pool, nil
}

// genericPlans begins a transaction whose prepared statements use their
// generic plans and read by index, in the same round trip as BEGIN.
var genericPlans = pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; SET LOCAL enable_seqscan = off"}

// InTxGenericPlans is InTx for a transaction that runs the same few
// statements over and over, each reading rows by key, as the events worker
// does. Postgres judges a generic plan for `id = ANY($1)` dearer than one
// made for the array at hand, and then plans every execution again, which
// costs as much as running these statements; the generic plans are the same
// index scans. A generic plan stays cached as a table grows, so one made
// while the table was nearly empty must not be a sequential scan: the
// transaction turns those off.
func InTxGenericPlans(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginTxFunc(ctx, pool, genericPlans, fn); err != nil {
		return Translate(err)
	}
	return nil
}

// customPlans begins a transaction whose statements are planned for their
// parameters every time they run, in the same round trip as BEGIN.
var customPlans = pgx.TxOptions{BeginQuery: "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan"}

// InTxCustomPlans is InTx for a transaction whose statements need plans made
// for their parameters, such as a backfill page's walk over the events of a
// type: Postgres may otherwise settle on a generic plan after a few runs,
// and a generic plan cannot tell a rare value from a common one. Planning
// costs a few milliseconds a statement, little beside the work of a page.
func InTxCustomPlans(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginTxFunc(ctx, pool, customPlans, fn); err != nil {
		return Translate(err)
	}
	return nil
}

// InTx runs fn in a transaction on pool, committing when fn returns nil and
// rolling back otherwise.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(tx pgx.Tx) error) error {
	if err := pgx.BeginFunc(ctx, pool, fn); err != nil {
		return Translate(err)
	}
	return nil
}
