-- +goose Up
-- The event a chain of follow-ups started from; NULL for posted events.
ALTER TABLE events ADD COLUMN root_id uuid;

-- How many follow-up events each root event has caused, so a cascade is
-- bounded in total and not only in depth (MAX_CASCADE_EVENTS).
CREATE TABLE event_cascades (
    root_id    uuid PRIMARY KEY,
    follow_ups integer     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX event_cascades_updated_idx ON event_cascades (updated_at);

-- +goose Down
DROP TABLE event_cascades;
ALTER TABLE events DROP COLUMN root_id;
