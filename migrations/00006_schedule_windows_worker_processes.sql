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

-- One row per working process (its River client id), refreshed every few
-- seconds. A process whose heartbeat is stale is dead, and the jobs it left
-- running are retried at once instead of after JOB_RESCUE_AFTER. alive_since
-- is when the process's current unbroken run of heartbeats began: it moves
-- forward after a gap (a Postgres outage stalls every heartbeat at once), and
-- a process declares others dead only once its own run is long enough.
CREATE TABLE worker_processes (
    client_id    text PRIMARY KEY,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    alive_since  timestamptz NOT NULL DEFAULT now()
);

COMMENT ON TABLE worker_processes IS 'Heartbeats of working processes, by River client id; see internal/liveness.';

-- +goose Down
DROP TABLE worker_processes;
DROP TABLE rule_schedule_windows;
