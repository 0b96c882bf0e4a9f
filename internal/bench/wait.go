package bench

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
)

// pollWindow bounds the ids one poll looks up.
const pollWindow = 1000

// poll calls check at once and then every interval until it reports done or
// fails. done is false with no error when ctx ended first.
func poll(ctx context.Context, interval time.Duration, check func() (done bool, err error)) (bool, error) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if done, err := check(); done || err != nil {
			return done, err
		}
		select {
		case <-ctx.Done():
			return false, nil
		case <-tick.C:
		}
	}
}

// waitProcessed polls every 100ms until none of ids is pending, or ctx ends
// (timedOut); remaining is then at most that many events. Accepted events
// are committed before their requests are answered, so none is pending only
// once all are processed. A poll looks up the oldest unfinished ids by
// primary key, a window at a time, so its cost stays bounded however large
// the run or the table, and it barely competes with the server it measures.
func (r *runner) waitProcessed(ctx context.Context, ids []uuid.UUID, what string) (remaining int, timedOut bool, err error) {
	// UUIDv7 ids sort by creation, close to the order workers take them.
	left := slices.Clone(ids)
	sortIDs(left)
	lastLog := time.Now()
	done, err := poll(ctx, 100*time.Millisecond, func() (bool, error) {
		var err error
		if left, err = r.unfinished(ctx, left); err != nil || len(left) == 0 {
			return len(left) == 0, err
		}
		if time.Since(lastLog) >= 2*time.Second {
			r.log.Info("waiting for "+what, slog.Int("left", len(left)))
			lastLog = time.Now()
		}
		return false, nil
	})
	switch {
	case done:
		return 0, false, nil
	case err == nil || ctx.Err() != nil:
		return len(left), true, nil
	default:
		return len(left), false, fmt.Errorf("poll pending events: %w", err)
	}
}

// unfinished looks up left, sorted by id, a window at a time, and drops
// finished events from its front: it returns the pending ones of the first
// window that has any, sorted, followed by the windows after it. On error it
// returns what it has not yet dropped.
func (r *runner) unfinished(ctx context.Context, left []uuid.UUID) ([]uuid.UUID, error) {
	for len(left) > 0 {
		window := left[:min(pollWindow, len(left))]
		// The status is tested here rather than in SQL: with it in the
		// WHERE clause, Postgres may walk the status index over every
		// pending event, comparing each with the whole window.
		rows, err := r.pool.Query(ctx, `SELECT id, status = 'pending' FROM events WHERE id = ANY($1)`, window)
		if err != nil {
			return left, err
		}
		var (
			pending []uuid.UUID
			id      uuid.UUID
			waiting bool
		)
		_, err = pgx.ForEachRow(rows, []any{&id, &waiting}, func() error {
			if waiting {
				pending = append(pending, id)
			}
			return nil
		})
		if err != nil {
			return left, err
		}
		if len(pending) > 0 {
			sortIDs(pending)
			return append(pending, left[len(window):]...), nil
		}
		left = left[len(window):]
	}
	return left, nil
}

// sortIDs sorts UUIDv7 ids into the order they were made in.
func sortIDs(ids []uuid.UUID) {
	slices.SortFunc(ids, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
}
