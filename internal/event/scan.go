package event

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/partition"
)

// Range selects stored events by what a backfill covers: occurred_at in
// [From, To), of one of Types (every type when empty) and of AccountID (every
// account when uuid.Nil), among the events with ids in (After, Below).
//
// An event's id holds the time it was received, and occurred_at is at most
// MaxFutureSkew after that, so no event that occurred at From or later has an
// id from before From minus MaxFutureSkew: IDFloor(From) is the lowest After
// that misses none, and the walk over ids grows with the events received
// since then, not with all of history. Events that occurred in the range can
// have been received any time later (occurred_at may lie far in the past),
// so Below is where the walk ends: the time the backfill was created.
type Range struct {
	Types     []string
	AccountID uuid.UUID
	From, To  time.Time
	After     uuid.UUID
	Below     uuid.UUID
}

// IDFloor is the lowest id an event that occurred at t or later can have:
// the partition bound of t minus MaxFutureSkew.
func IDFloor(t time.Time) uuid.UUID {
	return partition.Bound(t.Add(-MaxFutureSkew))
}

// Walked is one page of a walk over a Range.
type Walked struct {
	// IDs are the events of the page that are in the range, in id order.
	IDs []uuid.UUID
	// Last is the highest id walked, where the next page starts; Count is
	// how many events were walked. A page of fewer than asked for is the
	// last.
	Last  uuid.UUID
	Count int
}

// The inner walks read one index in id order and stop after $5 rows: by
// account (events_account_idx), by type (events_type_idx, one walk per type,
// each with its type as a parameter of its own, merged) or by id (the
// primary key). The outer query keeps what is in range. Walk's statement
// must be planned for its parameters (db.InTxCustomPlans): a plan made
// without them cannot tell a rare type, whose walk must read the type's
// index, from a common one.
const (
	walkByAccount = `SELECT id, type, account_id, occurred_at FROM events
		WHERE account_id = $2 AND id > $3 AND id < $4 ORDER BY id LIMIT $5`
	walkOneType = `(SELECT id, type, account_id, occurred_at FROM events
		WHERE type = $%d AND id > $3 AND id < $4 ORDER BY id LIMIT $5)`
	walkByID = `SELECT id, type, account_id, occurred_at FROM events
		WHERE id > $3 AND id < $4 ORDER BY id LIMIT $5`
	walkSQL = `
		WITH walked AS MATERIALIZED (%s)
		SELECT count(*)::int, (array_agg(id ORDER BY id DESC))[1],
			coalesce(array_agg(id ORDER BY id) FILTER (
				WHERE occurred_at >= $6 AND occurred_at < $7
				  AND (cardinality($1::text[]) = 0 OR type = ANY($1::text[]))
				  AND ($2::uuid IS NULL OR account_id = $2::uuid)), '{}')
		FROM walked`
)

// Walk reads the next page of at most n events of r through q.
func Walk(ctx context.Context, q db.Querier, r Range, n int) (Walked, error) {
	var account *uuid.UUID
	if r.AccountID != uuid.Nil {
		account = &r.AccountID
	}
	types := r.Types
	if types == nil {
		types = []string{}
	}
	args := []any{types, account, r.After, r.Below, n, r.From, r.To}
	inner := walkByID
	switch {
	case r.AccountID != uuid.Nil:
		inner = walkByAccount
	case len(r.Types) > 0:
		walks := make([]string, len(r.Types))
		for i, t := range r.Types {
			args = append(args, t)
			walks[i] = fmt.Sprintf(walkOneType, len(args))
		}
		inner = `SELECT * FROM (` + strings.Join(walks, " UNION ALL ") + `) w ORDER BY id LIMIT $5`
	}
	var (
		w    Walked
		last *uuid.UUID
	)
	if err := q.QueryRow(ctx, fmt.Sprintf(walkSQL, inner), args...).Scan(&w.Count, &last, &w.IDs); err != nil {
		return Walked{}, wrap("walk events", err)
	}
	if last != nil {
		w.Last = *last
	}
	return w, nil
}

// Estimate is Postgres's estimate of how many events r holds, from its
// statistics: it reads no events, and can be far off.
func Estimate(ctx context.Context, q db.Querier, r Range) (int64, error) {
	var c db.Conditions
	c.Add("id > $%d", r.After)
	c.Add("id < $%d", r.Below)
	c.Add("occurred_at >= $%d", r.From)
	c.Add("occurred_at < $%d", r.To)
	if len(r.Types) > 0 {
		c.Add("type = ANY($%d)", r.Types)
	}
	if r.AccountID != uuid.Nil {
		c.Add("account_id = $%d", r.AccountID)
	}
	where, args := c.Where()
	var plan []byte
	if err := q.QueryRow(ctx, `EXPLAIN (FORMAT JSON) SELECT 1 FROM events`+where, args...).Scan(&plan); err != nil {
		return 0, wrap("estimate events", err)
	}
	var out []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	if err := json.Unmarshal(plan, &out); err != nil || len(out) == 0 {
		return 0, fmt.Errorf("estimate events: unexpected plan %q", strings.TrimSpace(string(plan)))
	}
	return int64(out[0].Plan.Rows), nil
}
