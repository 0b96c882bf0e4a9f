package evaluation

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/partition"
)

// IDAt returns a new evaluation id of the event eventID: a UUIDv7 whose
// 48-bit millisecond timestamp is the event id's, and whose other bits are
// random (version 7, RFC 9562 variant). An evaluation of a stored event then
// sorts, and is stored, beside its event rather than at the time it was made.
func IDAt(eventID uuid.UUID) (uuid.UUID, error) {
	var random [10]byte
	if _, err := rand.Read(random[:]); err != nil {
		return uuid.Nil, fmt.Errorf("evaluation id: %w", err)
	}
	return at(eventID, random), nil
}

// ClockSkew is how far behind an event's id the id of an evaluation of it
// may be: ids are made on different hosts, whose clocks differ a little.
const ClockSkew = time.Hour

// ActedOn returns which of eventIDs already have an evaluation of the rule
// version that may have acted: one the events worker made (trigger event),
// or one of the backfills named by applied. An apply backfill skips them, so
// that a rule version acts on an event at most once.
//
// An evaluation is made after its event was received (or, by a backfill,
// with its event's time: IDAt), so none has an id from more than ClockSkew
// before the earliest of the events: the lower bound on id spares a table
// partitioned by id the partitions before it.
func ActedOn(ctx context.Context, q db.Querier, ruleID uuid.UUID, version int, applied, eventIDs []uuid.UUID) (map[uuid.UUID]bool, error) {
	if len(eventIDs) == 0 {
		return nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT DISTINCT event_id FROM evaluations
		WHERE event_id = ANY($1) AND rule_id = $2 AND rule_version = $3
		  AND (trigger = 'event' OR backfill_id = ANY($4)) AND id >= $5`,
		eventIDs, ruleID, version, applied, lowestID(eventIDs, ClockSkew))
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

// lowestID is the lowest UUIDv7 of the millisecond skew before the earliest
// time among ids.
func lowestID(ids []uuid.UUID, skew time.Duration) uuid.UUID {
	least, _ := partition.Span(ids)
	return partition.Bound(partition.TimeOf(least).Add(-skew))
}
