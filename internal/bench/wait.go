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

// waitProcessed polls every 100ms until none of ids is pending, or ctx ends
// (timedOut); remaining is then at most that many events. Accepted events
// are committed before their requests are answered, so none is pending only
// once all are processed. A poll looks up the oldest unfinished ids by
// primary key, a window at a time, so its cost stays bounded however large
// the run or the table, and it barely competes with the server it measures.
func (r *runner) waitProcessed(ctx context.Context, ids []uuid.UUID, what string) (remaining int, timedOut bool, err error) {
	// UUIDv7 ids sort by creation, close to the order workers take them.
	left := slices.Clone(ids)
	slices.SortFunc(left, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	lastLog := time.Now()
	for {
		for len(left) > 0 {
			window := left[:min(pollWindow, len(left))]
			// The status is tested here rather than in SQL: with it in the
			// WHERE clause, Postgres may walk the status index over every
			// pending event, comparing each with the whole window.
			rows, err := r.pool.Query(ctx, `SELECT id, status = 'pending' FROM events WHERE id = ANY($1)`, window)
			if err != nil {
				if ctx.Err() != nil {
					return len(left), true, nil
				}
				return len(left), false, fmt.Errorf("poll pending events: %w", err)
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
				if ctx.Err() != nil {
					return len(left), true, nil
				}
				return len(left), false, fmt.Errorf("poll pending events: %w", err)
			}
			if len(pending) == 0 {
				left = left[len(window):]
				continue
			}
			slices.SortFunc(pending, func(a, b uuid.UUID) int { return bytes.Compare(a[:], b[:]) })
			left = append(pending, left[len(window):]...)
			break
		}
		if len(left) == 0 {
			return 0, false, nil
		}
		if time.Since(lastLog) >= 2*time.Second {
			r.log.Info("waiting for "+what, slog.Int("left", len(left)))
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return len(left), true, nil
		case <-tick.C:
		}
	}
}
