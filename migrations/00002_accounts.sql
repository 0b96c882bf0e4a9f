-- +goose Up
CREATE TABLE accounts (
    id           uuid PRIMARY KEY,
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    status       text        NOT NULL DEFAULT 'pending' CHECK (status ~ '^[a-z][a-z0-9_]{0,31}$'),
    metadata     jsonb       NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz
);

COMMENT ON TABLE accounts IS 'Clients'' accounts. id is a UUIDv7, so ordering by id is ordering by creation.';

-- +goose Down
DROP TABLE accounts;
