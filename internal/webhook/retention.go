package webhook

import (
	"context"
	"fmt"
	"time"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/partition"
)

// DeleteFinishedBefore deletes up to limit finished deliveries (succeeded
// or failed) created before t, oldest first, with their attempts, and
// returns how many deliveries went. A pending delivery stays whatever its
// age, and so does one being worked on or redelivered right now (its row is
// locked; it is skipped, not waited for). Deliveries are picked by id, a
// UUIDv7, so each batch is a walk of the primary key.
func DeleteFinishedBefore(ctx context.Context, q db.Querier, t time.Time, limit int) (int64, error) {
	tag, err := q.Exec(ctx, `
		WITH d AS (
			SELECT id FROM webhook_deliveries
			WHERE id < $1 AND status <> 'pending'
			ORDER BY id LIMIT $2
			FOR UPDATE SKIP LOCKED),
		a AS (DELETE FROM webhook_attempts WHERE delivery_id IN (SELECT id FROM d))
		DELETE FROM webhook_deliveries WHERE id IN (SELECT id FROM d)`, partition.Bound(t), limit)
	if err != nil {
		return 0, fmt.Errorf("delete finished webhook deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}
