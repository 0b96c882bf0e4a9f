// Package dbtest gives each test its own Postgres database, cloned from a
// template that has every migration applied, so tests run in parallel without
// seeing each other's rows. The server is CTRADER_TEST_DATABASE_URL (default:
// postgres://postgres@localhost:5432/postgres?sslmode=disable); test
// databases are dropped when their test passes and kept for inspection when it
// fails.
package dbtest

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver pgtestdb uses
	"github.com/peterldowns/pgtestdb"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/migrations"
)

// DefaultURL is the server tests use when CTRADER_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres@localhost:5432/postgres?sslmode=disable"

// TB is what URL and EmptyURL need of a test. A *testing.T has it; so can a
// TestMain that shares one database among the examples of a package, which
// have no *testing.T of their own.
type TB = pgtestdb.TB

func serverConfig(t TB) pgtestdb.Config {
	t.Helper()
	url := os.Getenv("CTRADER_TEST_DATABASE_URL")
	if url == "" {
		url = DefaultURL
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatalf("CTRADER_TEST_DATABASE_URL: %v", err)
	}
	return pgtestdb.Config{
		DriverName:                "pgx",
		Host:                      cfg.Host,
		Port:                      strconv.Itoa(int(cfg.Port)),
		User:                      cfg.User,
		Password:                  cfg.Password,
		Database:                  cfg.Database,
		Options:                   "sslmode=disable",
		ForceTerminateConnections: true,
		TestRole: &pgtestdb.Role{
			Username:     "ctrader_test",
			Password:     "ctrader_test",
			Capabilities: "NOSUPERUSER NOCREATEDB NOCREATEROLE",
		},
	}
}

// URL returns the connection URL of a new database with every migration
// applied.
func URL(t TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), migrator{}).URL()
}

// EmptyURL returns the connection URL of a new database with nothing in it.
func EmptyURL(t TB) string {
	t.Helper()
	return pgtestdb.Custom(t, serverConfig(t), pgtestdb.NoopMigrator{}).URL()
}

// New returns a pool on a new migrated database, closed when the test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	return Pool(t, URL(t))
}

// Pool opens a pool on url, closed when the test ends.
func Pool(t testing.TB, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := db.Open(context.Background(), url, 10, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Logger returns a logger that writes to the test's output.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// migrator builds the template database with ctrader's own migration runner.
type migrator struct{}

// Hash changes whenever a migration does, so a new template is built.
func (migrator) Hash() (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "river:%d;target:%d;", migrations.RiverSchemaVersion, db.TargetVersion())
	err := fs.WalkDir(migrations.SQL, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.SQL, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s:%d:", path, len(b))
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

func (migrator) Migrate(ctx context.Context, _ *sql.DB, conf pgtestdb.Config) error {
	pool, err := db.Open(ctx, conf.URL(), 4, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer pool.Close()
	m, err := db.NewMigrator(pool, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = m.Up(ctx)
	return err
}
