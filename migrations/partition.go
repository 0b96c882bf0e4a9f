package migrations

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"

	"github.com/ctrader/ctrader/internal/partition"
)

// partitionVersion turns events and evaluations into tables partitioned by
// week of their UUIDv7 ids (see package partition).
const partitionVersion = 8

func partitionMigration() *goose.Migration {
	return goose.NewGoMigration(partitionVersion,
		&goose.GoFunc{RunDB: partitionUp},
		&goose.GoFunc{RunTx: partitionDown},
	)
}

// partitionUp converts events and evaluations in place, copying no row.
// Each existing table becomes the first partition of a new partitioned table
// of the same name, covering every id below the start of the week after
// next; later weeks get partitions of their own, and a DEFAULT partition
// takes anything else.
//
// The slow work runs first and blocks no writes: a CHECK constraint that
// proves every existing row lies below the bound is added NOT VALID and then
// validated (a scan that takes only a SHARE UPDATE EXCLUSIVE lock), and the
// two indexes the partitioned evaluations need that the table lacks are
// built CONCURRENTLY. Then one short transaction swaps the tables: ATTACH
// finds the bound proven by the constraint and the indexes already built,
// so it scans nothing. Every step can be repeated, so a migration killed
// half-way is finished by running it again.
func partitionUp(ctx context.Context, db *sql.DB) error {
	var done bool
	if err := db.QueryRowContext(ctx, `SELECT relkind = 'p' FROM pg_class WHERE oid = 'events'::regclass`).Scan(&done); err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	if done {
		return nil
	}
	now := time.Now()
	first := partition.Start(now).Add(2 * partition.Period)
	// Ids are made by the servers' clocks; one made by a clock far ahead
	// pushes the bound past it, rather than failing the migration.
	for _, table := range partition.Tables {
		var newest uuid.UUID
		err := db.QueryRowContext(ctx, `SELECT id FROM `+table+` ORDER BY id DESC LIMIT 1`).Scan(&newest)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("read the newest id of %s: %w", table, err)
		default:
			if after := partition.Start(partition.TimeOf(newest)).Add(partition.Period); after.After(first) {
				first = after
			}
		}
	}
	bound := partition.Bound(first)
	for _, table := range partition.Tables {
		if err := proveBound(ctx, db, table, bound.String()); err != nil {
			return err
		}
	}
	for _, idx := range []struct{ name, def string }{
		{"evaluations_legacy_event_idx", "ON evaluations (event_id, id) WHERE event_id IS NOT NULL"},
		{"evaluations_legacy_run_idx", "ON evaluations (run_id, id) WHERE run_id IS NOT NULL"},
	} {
		if err := buildConcurrently(ctx, db, idx.name, idx.def); err != nil {
			return err
		}
	}

	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmts := []string{strings.ReplaceAll(partitionSwapSQL, "{{bound}}", bound.String())}
	for start := first; start.Before(now.Add(partition.DefaultAhead)); start = start.Add(partition.Period) {
		stmts = append(stmts, fmt.Sprintf(`
			CREATE TABLE %[1]s PARTITION OF events %[2]s;
			CREATE TABLE %[3]s PARTITION OF evaluations %[2]s;`,
			partition.Name("events", start), partition.Week(start).ForValues(), partition.Name("evaluations", start)))
	}
	for _, s := range stmts {
		if _, err := tx.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("partition events and evaluations: %w", err)
		}
	}
	return tx.Commit()
}

// proveBound leaves table with a validated CHECK constraint that every id is
// below bound, adding it NOT VALID and validating it apart: the validating
// scan lets inserts, updates and deletes go on.
func proveBound(ctx context.Context, db *sql.DB, table, bound string) error {
	name := table + "_partition_bound"
	var def sql.NullString
	var valid sql.NullBool
	err := db.QueryRowContext(ctx, `
		SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint
		WHERE conrelid = $1::regclass AND conname = $2`, table, name).Scan(&def, &valid)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if def.Valid && !strings.Contains(def.String, bound) {
		// Left by a run in an earlier week: prove the current bound instead.
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s DROP CONSTRAINT %s`, table, name)); err != nil {
			return fmt.Errorf("drop %s: %w", name, err)
		}
		def.Valid, valid.Bool = false, false
	}
	if !def.Valid {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s ADD CONSTRAINT %s CHECK (id < '%s') NOT VALID`,
			table, name, bound)); err != nil {
			return fmt.Errorf("add %s: %w", name, err)
		}
	}
	if !valid.Bool {
		if _, err := db.ExecContext(ctx, fmt.Sprintf(`ALTER TABLE %s VALIDATE CONSTRAINT %s`, table, name)); err != nil {
			return fmt.Errorf("validate %s: %w", name, err)
		}
	}
	return nil
}

// buildConcurrently builds an index without blocking writes, replacing an
// invalid one a killed build left behind.
func buildConcurrently(ctx context.Context, db *sql.DB, name, def string) error {
	var valid sql.NullBool
	err := db.QueryRowContext(ctx, `SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, name).Scan(&valid)
	if err != nil && err != sql.ErrNoRows {
		return fmt.Errorf("read %s: %w", name, err)
	}
	if valid.Valid && valid.Bool {
		return nil
	}
	if valid.Valid {
		if _, err := db.ExecContext(ctx, `DROP INDEX CONCURRENTLY `+name); err != nil {
			return fmt.Errorf("drop invalid %s: %w", name, err)
		}
	}
	if _, err := db.ExecContext(ctx, `CREATE INDEX CONCURRENTLY `+name+` `+def); err != nil {
		return fmt.Errorf("build %s: %w", name, err)
	}
	return nil
}

// partitionSwapSQL replaces events and evaluations by partitioned tables of
// the same names, columns, defaults, constraints and indexes, with the old
// tables as their first partitions.
//
// Three foreign keys go: evaluations.event_id, events.causation_id and
// webhook_deliveries.evaluation_id. A partition cannot be dropped while rows
// elsewhere reference it, and Postgres checks that by joining the referencing
// table against the partition, a scan as long as the history it is meant to
// remove. The rows stay written as before, in the transaction that reads or
// locks what they point at; an id that retention has removed now names
// nothing.
//
// A unique index of a partitioned table must hold the partition key, so
// evaluations_event_key and evaluations_run_key cannot stay: an evaluation's
// id is now derived from what those keys held (see evaluation.EventID), and
// the primary key holds them unique. On the old table, now the legacy
// partition, they stay as they were, so that an event still pending when the
// migration ran is not evaluated twice.
const partitionSwapSQL = `
LOCK TABLE events, evaluations, webhook_deliveries IN ACCESS EXCLUSIVE MODE;

ALTER TABLE evaluations DROP CONSTRAINT evaluations_event_id_fkey;
ALTER TABLE events DROP CONSTRAINT events_causation_id_fkey;
ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_evaluation_id_fkey;

ALTER TABLE events RENAME TO events_legacy;
ALTER TABLE events_legacy RENAME CONSTRAINT events_pkey TO events_legacy_pkey;
ALTER INDEX events_account_idx RENAME TO events_legacy_account_idx;
ALTER INDEX events_type_idx RENAME TO events_legacy_type_idx;
ALTER INDEX events_status_idx RENAME TO events_legacy_status_idx;
ALTER INDEX events_causation_idx RENAME TO events_legacy_causation_idx;

CREATE TABLE events (
    id             uuid        NOT NULL,
    account_id     uuid        NOT NULL,
    type           text        NOT NULL,
    payload        jsonb       NOT NULL,
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    status         text        NOT NULL DEFAULT 'pending',
    processed_at   timestamptz,
    failure_reason text,
    causation_id   uuid,
    depth          integer     NOT NULL DEFAULT 0,
    won_applied_at timestamptz,
    root_id        uuid,
    CONSTRAINT events_pkey PRIMARY KEY (id),
    CONSTRAINT events_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT events_type_check CHECK (char_length(type) BETWEEN 1 AND 100),
    CONSTRAINT events_payload_check CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT events_status_check CHECK (status IN ('pending', 'processed', 'failed')),
    CONSTRAINT events_depth_check CHECK (depth >= 0)
) PARTITION BY RANGE (id);

COMMENT ON TABLE events IS 'Events posted by clients or emitted by rules. id is a UUIDv7; partitioned by week of it (see internal/partition).';

CREATE INDEX events_account_idx ON events (account_id, id DESC);
CREATE INDEX events_type_idx ON events (type, id DESC);
CREATE INDEX events_status_idx ON events (status, id DESC);
CREATE INDEX events_causation_idx ON events (causation_id) WHERE causation_id IS NOT NULL;

ALTER TABLE events ATTACH PARTITION events_legacy FOR VALUES FROM (MINVALUE) TO ('{{bound}}');
ALTER TABLE events_legacy DROP CONSTRAINT events_partition_bound;
CREATE TABLE events_default PARTITION OF events DEFAULT;

ALTER TABLE evaluations RENAME TO evaluations_legacy;
ALTER TABLE evaluations_legacy RENAME CONSTRAINT evaluations_pkey TO evaluations_legacy_pkey;
ALTER INDEX evaluations_event_key RENAME TO evaluations_legacy_event_key;
ALTER INDEX evaluations_run_key RENAME TO evaluations_legacy_run_key;
ALTER INDEX evaluations_account_idx RENAME TO evaluations_legacy_account_idx;
ALTER INDEX evaluations_rule_idx RENAME TO evaluations_legacy_rule_idx;

CREATE TABLE evaluations (
    id            uuid        NOT NULL,
    rule_id       uuid        NOT NULL,
    rule_version  integer     NOT NULL,
    account_id    uuid        NOT NULL,
    event_id      uuid,
    trigger       text        NOT NULL,
    run_id        text,
    matched       boolean     NOT NULL,
    error         text,
    actions       jsonb       NOT NULL DEFAULT '[]',
    depth_limited boolean     NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    CONSTRAINT evaluations_pkey PRIMARY KEY (id),
    CONSTRAINT evaluations_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES rules (id),
    CONSTRAINT evaluations_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id),
    CONSTRAINT evaluations_trigger_check CHECK (trigger IN ('event', 'schedule', 'manual')),
    CONSTRAINT evaluations_check CHECK ((event_id IS NULL) = (trigger <> 'event')),
    CONSTRAINT evaluations_check1 CHECK ((run_id IS NULL) = (trigger = 'event'))
) PARTITION BY RANGE (id);

COMMENT ON TABLE evaluations IS 'Evaluations of rules. id is a UUIDv7 derived from the event or run evaluated; partitioned by week of it (see internal/partition).';

CREATE INDEX evaluations_account_idx ON evaluations (account_id, id DESC);
CREATE INDEX evaluations_rule_idx ON evaluations (rule_id, id DESC);
CREATE INDEX evaluations_event_idx ON evaluations (event_id, id) WHERE event_id IS NOT NULL;
CREATE INDEX evaluations_run_idx ON evaluations (run_id, id) WHERE run_id IS NOT NULL;

ALTER TABLE evaluations ATTACH PARTITION evaluations_legacy FOR VALUES FROM (MINVALUE) TO ('{{bound}}');
ALTER TABLE evaluations_legacy DROP CONSTRAINT evaluations_partition_bound;
CREATE TABLE evaluations_default PARTITION OF evaluations DEFAULT;
`

// partitionDown puts plain tables back. Unlike the way up it copies every
// row, under an exclusive lock: it is for development and for undoing a
// fresh upgrade, not for a large database. The foreign keys the way up
// dropped come back NOT VALID, since retention may have removed rows that
// others still name.
func partitionDown(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, partitionDownSQL); err != nil {
		return fmt.Errorf("unpartition events and evaluations: %w", err)
	}
	return nil
}

const partitionDownSQL = `
LOCK TABLE events, evaluations, webhook_deliveries IN ACCESS EXCLUSIVE MODE;

CREATE TABLE events_plain (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO events_plain SELECT * FROM events;
CREATE TABLE evaluations_plain (LIKE evaluations INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
INSERT INTO evaluations_plain SELECT * FROM evaluations;
DROP TABLE evaluations;
DROP TABLE events;
ALTER TABLE events_plain RENAME TO events;
ALTER TABLE evaluations_plain RENAME TO evaluations;

ALTER TABLE events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id),
    ADD CONSTRAINT events_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id),
    ADD CONSTRAINT events_causation_id_fkey FOREIGN KEY (causation_id) REFERENCES events (id) NOT VALID;
COMMENT ON TABLE events IS 'Events posted by clients or emitted by rules. id is a UUIDv7.';
CREATE INDEX events_account_idx ON events (account_id, id DESC);
CREATE INDEX events_type_idx ON events (type, id DESC);
CREATE INDEX events_status_idx ON events (status, id DESC);
CREATE INDEX events_causation_idx ON events (causation_id) WHERE causation_id IS NOT NULL;

ALTER TABLE evaluations
    ADD CONSTRAINT evaluations_pkey PRIMARY KEY (id),
    ADD CONSTRAINT evaluations_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES rules (id),
    ADD CONSTRAINT evaluations_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id),
    ADD CONSTRAINT evaluations_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) NOT VALID;
CREATE UNIQUE INDEX evaluations_event_key ON evaluations (event_id, rule_id, rule_version) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX evaluations_run_key ON evaluations (run_id, rule_id, rule_version, account_id) WHERE run_id IS NOT NULL;
CREATE INDEX evaluations_account_idx ON evaluations (account_id, id DESC);
CREATE INDEX evaluations_rule_idx ON evaluations (rule_id, id DESC);

ALTER TABLE webhook_deliveries
    ADD CONSTRAINT webhook_deliveries_evaluation_id_fkey FOREIGN KEY (evaluation_id) REFERENCES evaluations (id) NOT VALID;
`
