// Package migrations holds ctrader's database schema as goose migrations,
// embedded in the binary. River's own schema sits on the same version line as
// a Go migration, so one `ctrader migrate up` brings everything current.
package migrations

import (
	"context"
	"database/sql"
	"embed"
	"fmt"

	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/rivermigrate"
)

// SQL is the folder of SQL migrations.
//
//go:embed *.sql
var SQL embed.FS

// GoSource is the source of the migrations written in Go, so that a test
// template built from an older version of them is not reused.
//
//go:embed *.go
var GoSource embed.FS

// RiverSchemaVersion is the River migration that goose version 1 brings the
// database to. It is pinned: upgrading River to a version with new migrations
// means adding a goose migration that moves River to the new number.
const RiverSchemaVersion = 8

// Go returns the migrations written in Go. River's migrations cannot all run
// inside one transaction (a later one adds an enum value and then uses it), so
// they run from RunDB, where rivermigrate opens a transaction per River version.
func Go() []*goose.Migration {
	return []*goose.Migration{
		goose.NewGoMigration(1,
			&goose.GoFunc{RunDB: riverTo(RiverSchemaVersion, rivermigrate.DirectionUp)},
			&goose.GoFunc{RunDB: riverTo(-1, rivermigrate.DirectionDown)},
		),
		partitionMigration(),
	}
}

// GoName names a migration written in Go, which has no file to be named by.
func GoName(version int64) string {
	switch version {
	case 1:
		return fmt.Sprintf("00001_river_schema (River migrations 1-%d)", RiverSchemaVersion)
	case partitionVersion:
		return fmt.Sprintf("%05d_partition_events_evaluations (Go)", version)
	}
	return fmt.Sprintf("%05d (Go)", version)
}

func riverTo(target int, direction rivermigrate.Direction) func(context.Context, *sql.DB) error {
	return func(ctx context.Context, db *sql.DB) error {
		migrator, err := rivermigrate.New(riverdatabasesql.New(db), nil)
		if err != nil {
			return fmt.Errorf("river migrator: %w", err)
		}
		if _, err := migrator.Migrate(ctx, direction, &rivermigrate.MigrateOpts{TargetVersion: target}); err != nil {
			return fmt.Errorf("river migrate %s to %d: %w", direction, target, err)
		}
		return nil
	}
}
