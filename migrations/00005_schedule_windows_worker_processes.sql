-- +goose Up
-- Every window of scheduled rule evaluation that has been scheduled, so that
-- each window is scheduled exactly once whichever process schedules it and
-- whenever the leader changes. A window covers [window_start, window_end);
-- the next window due starts at or after the newest window's end.
CREATE TABLE rule_schedule_windows (
    window_start timestamptz PRIMARY KEY,
    window_end   timestamptz NOT NULL CHECK (window_end > window_start),
    scheduled_at timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE rule_schedule_windows IS 'Windows of scheduled rule evaluation already scheduled; the newest row says where the next window starts.';

-- +goose Down
DROP TABLE rule_schedule_windows;
