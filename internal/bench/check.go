package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// endToEnd reads processing rates and latencies of the run's events from the
// database: processed_at is stamped by Postgres when the rules worker
// finishes, received_at by the server when it accepts the event.
func (r *runner) endToEnd(ctx context.Context, accounts []uuid.UUID, start time.Time) (EndToEnd, error) {
	var (
		e            EndToEnd
		lastDone     *time.Time
		percentiles  []float64
		maxProcessed float64
	)
	err := r.pool.QueryRow(ctx, `
		SELECT count(*),
		       count(*) FILTER (WHERE status = 'processed'),
		       count(*) FILTER (WHERE status = 'failed'),
		       count(*) FILTER (WHERE status = 'pending'),
		       max(processed_at),
		       coalesce(percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
		           (ORDER BY extract(epoch FROM processed_at - received_at)::float8)
		           FILTER (WHERE processed_at IS NOT NULL), '{}'),
		       coalesce(max(extract(epoch FROM processed_at - received_at)::float8), 0)
		FROM events WHERE type = 'won' AND account_id = ANY($1)`, accounts).
		Scan(&e.Stored, &e.Processed, &e.Failed, &e.Pending, &lastDone, &percentiles, &maxProcessed)
	if err != nil {
		return e, fmt.Errorf("read processing times: %w", err)
	}
	if lastDone != nil {
		e.Seconds = lastDone.Sub(start).Seconds()
		e.EventsPerSecond = perSecond(e.Processed, e.Seconds)
	}
	if len(percentiles) == 3 {
		e.Latency = Latency{Samples: e.Processed + e.Failed, P50: percentiles[0] * 1000, P95: percentiles[1] * 1000,
			P99: percentiles[2] * 1000, Max: maxProcessed * 1000}
	}
	return e, nil
}

// checkChunk bounds the ids sent in one query.
const checkChunk = 50_000

// check verifies the events the HTTP run posted: every accepted id is stored
// and processed, none failed, and each has exactly one evaluation per rule.
func (r *runner) check(ctx context.Context, ids []uuid.UUID, expected int) (Check, error) {
	c := Check{Events: len(ids), ExpectedPerEvent: expected}
	for start := 0; start < len(ids); start += checkChunk {
		chunk := ids[start:min(start+checkChunk, len(ids))]
		var found, processed, failed int
		err := r.pool.QueryRow(ctx, `
			SELECT count(e.id), count(*) FILTER (WHERE e.status = 'processed'), count(*) FILTER (WHERE e.status = 'failed')
			FROM unnest($1::uuid[]) AS v(id) LEFT JOIN events e ON e.id = v.id`, chunk).Scan(&found, &processed, &failed)
		if err != nil {
			return c, fmt.Errorf("check events: %w", err)
		}
		c.Missing += len(chunk) - found
		c.Processed += processed
		c.Failed += failed

		var evaluations, mismatched int64
		err = r.pool.QueryRow(ctx, `
			SELECT coalesce(sum(n), 0)::bigint, count(*) FILTER (WHERE n <> $2)
			FROM (SELECT v.id, count(ev.event_id) AS n
			      FROM unnest($1::uuid[]) AS v(id) LEFT JOIN evaluations ev ON ev.event_id = v.id
			      GROUP BY v.id) per_event`, chunk, expected).Scan(&evaluations, &mismatched)
		if err != nil {
			return c, fmt.Errorf("check evaluations: %w", err)
		}
		c.Evaluations += evaluations
		c.Mismatched += mismatched
	}
	if c.Missing > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d accepted events are not in the database", c.Missing))
	}
	if c.Failed > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d events failed", c.Failed))
	}
	if notDone := c.Events - c.Missing - c.Processed - c.Failed; notDone > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d events not processed", notDone))
	}
	if want := int64(c.Events) * int64(expected); c.Evaluations != want || c.Mismatched > 0 {
		c.Problems = append(c.Problems, fmt.Sprintf("%d evaluations, want %d (%d per event); %d events have another count",
			c.Evaluations, want, expected, c.Mismatched))
	}
	if c.Events == 0 {
		c.Problems = append(c.Problems, "no event was accepted")
	}
	return c, nil
}
