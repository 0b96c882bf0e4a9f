-- +goose Up
ALTER TABLE accounts
    ADD COLUMN won_count bigint  NOT NULL DEFAULT 0,
    ADD COLUMN won_total numeric NOT NULL DEFAULT 0;

-- Provisioned accounts, which scheduled evaluation walks in id order.
CREATE INDEX accounts_provisioned_idx ON accounts (id) WHERE activated_at IS NOT NULL;

CREATE TABLE events (
    id             uuid PRIMARY KEY,
    account_id     uuid        NOT NULL REFERENCES accounts (id),
    type           text        NOT NULL CHECK (char_length(type) BETWEEN 1 AND 100),
    payload        jsonb       NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    occurred_at    timestamptz NOT NULL,
    received_at    timestamptz NOT NULL DEFAULT now(),
    status         text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'processed', 'failed')),
    processed_at   timestamptz,
    failure_reason text,
    causation_id   uuid REFERENCES events (id),
    depth          integer     NOT NULL DEFAULT 0 CHECK (depth >= 0),
    -- Set by the won-event worker in the transaction that adds the event to the
    -- account's totals, so the addition happens once per event.
    won_applied_at timestamptz
);

COMMENT ON TABLE events IS 'Events posted by clients or emitted by rules. id is a UUIDv7.';

CREATE INDEX events_account_idx ON events (account_id, id DESC);
CREATE INDEX events_type_idx ON events (type, id DESC);
CREATE INDEX events_status_idx ON events (status, id DESC);
CREATE INDEX events_causation_idx ON events (causation_id) WHERE causation_id IS NOT NULL;

CREATE TABLE rules (
    id          uuid PRIMARY KEY,
    name        text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description text        NOT NULL DEFAULT '',
    event_types text[]      NOT NULL DEFAULT '{}',
    scheduled   boolean     NOT NULL DEFAULT false,
    condition   text        NOT NULL,
    actions     jsonb       NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(actions) = 'array'),
    enabled     boolean     NOT NULL DEFAULT true,
    version     integer     NOT NULL DEFAULT 1,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz
);

-- Names are unique among rules that are not deleted.
CREATE UNIQUE INDEX rules_name_key ON rules (name) WHERE deleted_at IS NULL;
CREATE INDEX rules_active_idx ON rules (id) WHERE enabled AND deleted_at IS NULL;

-- Every version a rule has had, so an evaluation can always be read against
-- the rule it used.
CREATE TABLE rule_versions (
    rule_id     uuid        NOT NULL REFERENCES rules (id),
    version     integer     NOT NULL,
    name        text        NOT NULL,
    description text        NOT NULL,
    event_types text[]      NOT NULL,
    scheduled   boolean     NOT NULL,
    condition   text        NOT NULL,
    actions     jsonb       NOT NULL,
    enabled     boolean     NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (rule_id, version)
);

CREATE TABLE evaluations (
    id            uuid PRIMARY KEY,
    rule_id       uuid        NOT NULL REFERENCES rules (id),
    rule_version  integer     NOT NULL,
    account_id    uuid        NOT NULL REFERENCES accounts (id),
    event_id      uuid REFERENCES events (id),
    trigger       text        NOT NULL CHECK (trigger IN ('event', 'schedule', 'manual')),
    -- The scheduled window or manual run an evaluation without an event belongs to.
    run_id        text,
    matched       boolean     NOT NULL,
    error         text,
    actions       jsonb       NOT NULL DEFAULT '[]',
    depth_limited boolean     NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    CHECK ((event_id IS NULL) = (trigger <> 'event')),
    CHECK ((run_id IS NULL) = (trigger = 'event'))
);

-- One evaluation per rule version and event, or per rule version, account and run.
CREATE UNIQUE INDEX evaluations_event_key ON evaluations (event_id, rule_id, rule_version) WHERE event_id IS NOT NULL;
CREATE UNIQUE INDEX evaluations_run_key ON evaluations (run_id, rule_id, rule_version, account_id) WHERE run_id IS NOT NULL;
CREATE INDEX evaluations_account_idx ON evaluations (account_id, id DESC);
CREATE INDEX evaluations_rule_idx ON evaluations (rule_id, id DESC);

-- Responses to writes made with an Idempotency-Key header.
CREATE TABLE idempotency_keys (
    scope           text        NOT NULL,
    key             text        NOT NULL,
    request_hash    bytea       NOT NULL,
    response_body   jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idempotency_keys_expires_idx ON idempotency_keys (expires_at);

-- +goose Down
DROP TABLE idempotency_keys;
DROP TABLE evaluations;
DROP TABLE rule_versions;
DROP TABLE rules;
DROP TABLE events;
DROP INDEX accounts_provisioned_idx;
ALTER TABLE accounts DROP COLUMN won_total, DROP COLUMN won_count;
