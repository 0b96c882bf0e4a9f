package evaluation

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/db"
)

// IDAt returns a new evaluation id of the event eventID: a UUIDv7 whose
// 48-bit millisecond timestamp is the event id's, and whose other bits are
// random (version 7, RFC 9562 variant). An evaluation of a stored event then
// sorts, and is stored, beside its event rather than at the time it was made.
func IDAt(eventID uuid.UUID) (uuid.UUID, error) {
	var id uuid.UUID
	if _, err := rand.Read(id[6:]); err != nil {
		return uuid.Nil, fmt.Errorf("evaluation id: %w", err)
	}
	copy(id[:6], eventID[:6])
	id[6] = 0x70 | id[6]&0x0f // version 7
	id[8] = 0x80 | id[8]&0x3f // variant 10
	return id, nil
}

// ActedOn returns which of eventIDs already have an evaluation of the rule
// version that may have acted: one the events worker made (trigger event),
// or one of the backfills named by applied. An apply backfill skips them, so
// that a rule version acts on an event at most once.
func ActedOn(ctx context.Context, q db.Querier, ruleID uuid.UUID, version int, applied, eventIDs []uuid.UUID) (map[uuid.UUID]bool, error) {
	if len(eventIDs) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT DISTINCT event_id FROM evaluations
		WHERE event_id = ANY($1) AND rule_id = $2 AND rule_version = $3
		  AND (trigger = 'event' OR backfill_id = ANY($4))`, eventIDs, ruleID, version, applied)
	if err != nil {
		return nil, translate("evaluations acted on", err)
	}
	out := map[uuid.UUID]bool{}
	var id uuid.UUID
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return nil, translate("evaluations acted on", err)
		}
		out[id] = true
	}
	if err := rows.Err(); err != nil {
		return nil, translate("evaluations acted on", err)
	}
	return out, nil
}
