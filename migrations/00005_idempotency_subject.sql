-- +goose Up
-- An Idempotency-Key belongs to the caller that sent it: the subject of its
-- bearer token ('' when the API runs without authentication).
ALTER TABLE idempotency_keys ADD COLUMN subject text NOT NULL DEFAULT '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (subject, scope, key);

-- +goose Down
DELETE FROM idempotency_keys WHERE subject <> '';
ALTER TABLE idempotency_keys DROP CONSTRAINT idempotency_keys_pkey;
ALTER TABLE idempotency_keys ADD PRIMARY KEY (scope, key);
ALTER TABLE idempotency_keys DROP COLUMN subject;
