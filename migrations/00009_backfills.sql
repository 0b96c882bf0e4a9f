-- +goose Up
-- A backfill evaluates one rule version over stored events whose occurred_at
-- falls in [occurred_from, occurred_to). Its page jobs walk the events by id,
-- from scan_from up to scan_to (fixed when it is created), and record how far
-- they got in scan_after, in the transaction that stores each page's
-- evaluations and completes its job.
CREATE TABLE backfills (
    id               uuid PRIMARY KEY,
    rule_id          uuid        NOT NULL,
    rule_version     integer     NOT NULL,
    mode             text        NOT NULL CHECK (mode IN ('dry_run', 'apply')),
    state            text        NOT NULL DEFAULT 'pending'
                                 CHECK (state IN ('pending', 'running', 'succeeded', 'cancelled', 'failed')),
    occurred_from    timestamptz NOT NULL,
    occurred_to      timestamptz NOT NULL,
    event_types      text[]      NOT NULL,
    account_id       uuid REFERENCES accounts (id),
    scan_from        uuid        NOT NULL,
    scan_to          uuid        NOT NULL,
    scan_after       uuid,
    pages            integer     NOT NULL DEFAULT 0,
    events_scanned   bigint      NOT NULL DEFAULT 0,
    events_evaluated bigint      NOT NULL DEFAULT 0,
    events_matched   bigint      NOT NULL DEFAULT 0,
    events_skipped   bigint      NOT NULL DEFAULT 0,
    errors           bigint      NOT NULL DEFAULT 0,
    events_estimated bigint      NOT NULL DEFAULT 0,
    failure_reason   text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    FOREIGN KEY (rule_id, rule_version) REFERENCES rule_versions (rule_id, version),
    CHECK (occurred_to > occurred_from)
);

COMMENT ON TABLE backfills IS 'Evaluations of one rule version over stored events; see docs/backfills.md.';

CREATE INDEX backfills_rule_idx ON backfills (rule_id, id DESC);
-- One apply backfill of a rule at a time: with the events locked page by page,
-- this keeps two of them from taking turns at the same events.
CREATE UNIQUE INDEX backfills_active_apply_key ON backfills (rule_id)
    WHERE mode = 'apply' AND state IN ('pending', 'running');

-- Not a foreign key: evaluations lives in partitions that retention drops,
-- and Postgres cannot add one to a partitioned table without scanning it.
ALTER TABLE evaluations ADD COLUMN backfill_id uuid;

-- The trigger checks gain 'backfill'; a backfill's evaluation names its event.
-- They are found by what they check rather than by name, so this applies to
-- the table however it was created. The new checks are NOT VALID: every row
-- already stored satisfies the stricter checks they replace, so nothing is
-- scanned under the table's lock, and they hold for every row written from now.
-- +goose StatementBegin
DO $$
DECLARE c record;
BEGIN
    FOR c IN SELECT conname FROM pg_constraint
             WHERE conrelid = 'evaluations'::regclass AND contype = 'c' AND conparentid = 0
               AND pg_get_constraintdef(oid) LIKE '%trigger%'
    LOOP
        EXECUTE format('ALTER TABLE evaluations DROP CONSTRAINT %I', c.conname);
    END LOOP;
END $$;
-- +goose StatementEnd
ALTER TABLE evaluations
    ADD CONSTRAINT evaluations_trigger_check CHECK (trigger IN ('event', 'schedule', 'manual', 'backfill')) NOT VALID,
    ADD CONSTRAINT evaluations_event_check CHECK ((event_id IS NULL) = (trigger NOT IN ('event', 'backfill'))) NOT VALID,
    ADD CONSTRAINT evaluations_run_check CHECK ((run_id IS NULL) = (trigger IN ('event', 'backfill'))) NOT VALID,
    ADD CONSTRAINT evaluations_backfill_check CHECK ((backfill_id IS NULL) = (trigger <> 'backfill')) NOT VALID;

-- A dry run and then an apply evaluate the same rule version and event twice,
-- so that pair is not unique. The partition that holds the evaluations from
-- before partitioning kept its unique index on it; it goes, or a backfill over
-- that history could not record its evaluations. The events worker evaluates
-- an event only while it is pending, under a lock, and marks it processed in
-- the same transaction; a backfill applies only to processed events and skips
-- those already acted on (see internal/engine/backfill.go), found through
-- evaluations_event_idx.
DROP INDEX IF EXISTS evaluations_legacy_event_key;
-- A new column holds no value yet, but the index is built over every
-- partition: a scan of the table (about 0.3 s per million evaluations here),
-- during which evaluations wait.
CREATE INDEX evaluations_backfill_idx ON evaluations (backfill_id, id DESC)
    WHERE backfill_id IS NOT NULL;

-- +goose Down
DELETE FROM river_job WHERE kind = 'backfill.page';
UPDATE webhook_deliveries SET evaluation_id = NULL
WHERE evaluation_id IN (SELECT id FROM evaluations WHERE trigger = 'backfill');
DELETE FROM evaluations WHERE trigger = 'backfill';
DROP INDEX IF EXISTS evaluations_backfill_idx;
-- The legacy partition's unique index is not rebuilt: the primary key keeps
-- evaluations unique.
ALTER TABLE evaluations
    DROP CONSTRAINT evaluations_backfill_check,
    DROP CONSTRAINT evaluations_run_check,
    DROP CONSTRAINT evaluations_event_check,
    DROP CONSTRAINT evaluations_trigger_check,
    DROP COLUMN backfill_id;
ALTER TABLE evaluations
    ADD CONSTRAINT evaluations_trigger_check CHECK (trigger IN ('event', 'schedule', 'manual')),
    ADD CONSTRAINT evaluations_check CHECK ((event_id IS NULL) = (trigger <> 'event')),
    ADD CONSTRAINT evaluations_check1 CHECK ((run_id IS NULL) = (trigger = 'event'));
DROP TABLE backfills;
