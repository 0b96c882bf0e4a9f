-- +goose Up
-- An evaluation's rule and account are the rows the worker read in the
-- transaction that writes it, and neither can disappear afterwards: rules
-- are soft-deleted and their versions (rule_versions) reference them, and an
-- account with events cannot be deleted while events reference it. The two
-- foreign keys checked that again for every row, a sub-query each, and cost
-- about 30% of inserting an evaluation, the hottest write of event
-- processing (five rows per event). Dropping them takes a brief lock on
-- evaluations, rules and accounts and scans nothing.
ALTER TABLE evaluations
    DROP CONSTRAINT IF EXISTS evaluations_rule_id_fkey,
    DROP CONSTRAINT IF EXISTS evaluations_account_id_fkey;

-- +goose Down
-- Adding them back checks every stored evaluation, under a lock that blocks
-- writes to evaluations until it ends.
ALTER TABLE evaluations
    ADD CONSTRAINT evaluations_rule_id_fkey FOREIGN KEY (rule_id) REFERENCES rules (id),
    ADD CONSTRAINT evaluations_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id);
