package event

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/partition"
	"github.com/ctrader/ctrader/internal/queue"
)

const columns = `id, account_id, type, payload, occurred_at, received_at, status, processed_at, failure_reason, causation_id, depth`

func scan(row pgx.Row) (*Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.AccountID, &e.Type, &e.Payload, &e.OccurredAt, &e.ReceivedAt, &e.Status,
		&e.ProcessedAt, &e.FailureReason, &e.CausationID, &e.Depth)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// Insert stores events and the jobs that process them in tx: one job per
// jobs.EventsPerJob events. Up to copyThreshold events go in one INSERT
// from arrays, a round trip; more are copied in bulk, which costs a round
// trip more to describe the table but less to encode.
func Insert(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, events []*Event) error {
	return insert(ctx, tx, inserter, events, queue.Events)
}

// insert is Insert with the jobs on queue q.
func insert(ctx context.Context, tx pgx.Tx, inserter jobs.Inserter, events []*Event, q string) error {
	if len(events) <= copyThreshold {
		if err := insertArrays(ctx, tx, events); err != nil {
			return err
		}
	} else {
		rows := make([][]any, len(events))
		for i, e := range events {
			rows[i] = []any{e.ID, e.AccountID, e.Type, e.Payload, e.OccurredAt, e.ReceivedAt, e.CausationID, e.Depth, e.RootID}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
			[]string{"id", "account_id", "type", "payload", "occurred_at", "received_at", "causation_id", "depth", "root_id"},
			pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("copy events: %w", err)
		}
	}
	chunks := Chunks(events)
	params := make([]river.InsertManyParams, len(chunks))
	for i, ids := range chunks {
		params[i] = river.InsertManyParams{Args: jobs.EventsProcess{EventIDs: ids}, InsertOpts: &river.InsertOpts{Queue: q}}
	}
	// One INSERT from arrays, where the COPY-based insert would take a
	// round trip more; a batch of 1,000 events has ten jobs.
	if _, err := inserter.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("insert event jobs: %w", err)
	}
	return nil
}

// copyThreshold is the most events Insert stores with one INSERT.
const copyThreshold = 64

// insertArrays stores events with one INSERT of their columns as arrays.
func insertArrays(ctx context.Context, tx pgx.Tx, events []*Event) error {
	n := len(events)
	ids, accounts := make([]uuid.UUID, n), make([]uuid.UUID, n)
	types := make([]string, n)
	payloads := make([]map[string]any, n)
	occurred, received := make([]time.Time, n), make([]time.Time, n)
	causes, roots := make([]*uuid.UUID, n), make([]*uuid.UUID, n)
	depths := make([]int32, n)
	for i, e := range events {
		ids[i], accounts[i], types[i], payloads[i] = e.ID, e.AccountID, e.Type, e.Payload
		occurred[i], received[i], causes[i], roots[i] = e.OccurredAt, e.ReceivedAt, e.CausationID, e.RootID
		depths[i] = int32(e.Depth) //nolint:gosec // depth is bounded by the follow-up limit
	}
	if _, err := tx.Exec(ctx, `
		INSERT INTO events (id, account_id, type, payload, occurred_at, received_at, causation_id, depth, root_id)
		SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::timestamptz[], $6::timestamptz[],
			$7::uuid[], $8::int[], $9::uuid[])`,
		ids, accounts, types, payloads, occurred, received, causes, depths, roots); err != nil {
		return fmt.Errorf("insert events: %w", err)
	}
	return nil
}

// Chunks splits events into the id lists of their jobs: at most
// jobs.EventsPerJob each, an account's events together and in order unless
// they are more than a chunk holds. An account's bucket is chosen by a hash
// of its id, so batches of the same size put an account in the same bucket,
// and their jobs from different buckets share no account and never wait for
// each other's locks.
func Chunks(events []*Event) [][]uuid.UUID {
	n := (len(events) + jobs.EventsPerJob - 1) / jobs.EventsPerJob
	type bucket struct {
		accounts []uuid.UUID // in order of first appearance
		events   map[uuid.UUID][]uuid.UUID
	}
	buckets := make([]bucket, n)
	for _, e := range events {
		h := fnv.New32a()
		h.Write(e.AccountID[:])
		b := &buckets[h.Sum32()%uint32(n)]
		if b.events == nil {
			b.events = make(map[uuid.UUID][]uuid.UUID)
		}
		if _, ok := b.events[e.AccountID]; !ok {
			b.accounts = append(b.accounts, e.AccountID)
		}
		b.events[e.AccountID] = append(b.events[e.AccountID], e.ID)
	}
	var out [][]uuid.UUID
	for _, b := range buckets {
		var chunk []uuid.UUID
		for _, a := range b.accounts {
			ids := b.events[a]
			if len(chunk) > 0 && len(chunk)+len(ids) > jobs.EventsPerJob {
				out = append(out, chunk)
				chunk = nil
			}
			for len(ids) > jobs.EventsPerJob {
				out = append(out, ids[:jobs.EventsPerJob:jobs.EventsPerJob])
				ids = ids[jobs.EventsPerJob:]
			}
			chunk = append(chunk, ids...)
		}
		if len(chunk) > 0 {
			out = append(out, chunk)
		}
	}
	return out
}

// Get reads one event through q.
func Get(ctx context.Context, q db.Querier, id uuid.UUID) (*Event, error) {
	e, err := scan(q.QueryRow(ctx, `SELECT `+columns+` FROM events WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get event", err)
	}
	return e, nil
}

// engineColumns are columns with what only the engine reads: whether a won
// event's amount is applied, and the root of its chain.
const engineColumns = columns + `, won_applied_at IS NOT NULL, root_id`

func scanForEngine(row pgx.Row) (*Event, error) {
	var e Event
	err := row.Scan(&e.ID, &e.AccountID, &e.Type, &e.Payload, &e.OccurredAt, &e.ReceivedAt, &e.Status,
		&e.ProcessedAt, &e.FailureReason, &e.CausationID, &e.Depth, &e.WonApplied, &e.RootID)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

// GetForEngine reads one event through q as BatchLock does, with
// WonApplied and RootID set, but without locking it: for a dry run, which
// changes nothing.
func GetForEngine(ctx context.Context, q db.Querier, id uuid.UUID) (*Event, error) {
	e, err := scanForEngine(q.QueryRow(ctx, `SELECT `+engineColumns+` FROM events WHERE id = $1`, id))
	if err != nil {
		return nil, wrap("get event", err)
	}
	return e, nil
}

// BatchLock adds to b the read of the events among ids, locked until the
// transaction ends so that two runs of the same job serialize on them (FOR
// NO KEY UPDATE: foreign keys that point at an event still see it), and
// sets *out when b runs. They come in the order of their ids, which is the
// order they were received in; WonApplied is set.
func BatchLock(b *pgx.Batch, ids []uuid.UUID, out *[]*Event) {
	batchRead(b, ids, " FOR NO KEY UPDATE", out)
}

// BatchRead adds to b the read of the events among ids in the order of
// their ids, as BatchLock does, without locking them.
func BatchRead(b *pgx.Batch, ids []uuid.UUID, out *[]*Event) {
	batchRead(b, ids, "", out)
}

func batchRead(b *pgx.Batch, ids []uuid.UUID, lock string, out *[]*Event) {
	lo, hi := partition.Span(ids)
	b.Queue(`
		SELECT `+engineColumns+` FROM events
		WHERE id = ANY($1) AND id BETWEEN $2 AND $3 ORDER BY id`+lock, ids, lo, hi).Query(func(rows pgx.Rows) error {
		events, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Event, error) { return scanForEngine(r) })
		if err != nil {
			return wrap("read events", err)
		}
		*out = events
		return nil
	})
}

// AccountIDsOf selects the account ids of the events among ids, for a
// statement about those accounts to embed.
func AccountIDsOf(ids []uuid.UUID) db.Subquery {
	lo, hi := partition.Span(ids)
	return db.Subquery{SQL: `SELECT account_id FROM events WHERE id = ANY($1) AND id BETWEEN $2 AND $3`, Args: []any{ids, lo, hi}}
}

// TypesOf selects the distinct types of the events among ids, for a
// statement about those types to embed.
func TypesOf(ids []uuid.UUID) db.Subquery {
	lo, hi := partition.Span(ids)
	return db.Subquery{SQL: `SELECT DISTINCT type FROM events WHERE id = ANY($1) AND id BETWEEN $2 AND $3`, Args: []any{ids, lo, hi}}
}

// List reads one page of events through q, newest first.
func List(ctx context.Context, q db.Querier, f Filter, p page.Params) (page.Page[*Event], error) {
	var c db.Conditions
	if f.AccountID != uuid.Nil {
		c.Add("account_id = $%d", f.AccountID)
	}
	if f.Type != "" {
		c.Add("type = $%d", f.Type)
	}
	if f.Status != "" {
		c.Add("status = $%d", f.Status)
	}
	query, args := c.Page(`SELECT `+columns+` FROM events`, p)
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Event]{}, wrap("list events", err)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Event, error) { return scan(r) })
	if err != nil {
		return page.Page[*Event]{}, wrap("list events", err)
	}
	return page.Build(items, p.Limit, func(e *Event) uuid.UUID { return e.ID }), nil
}

// BatchMarkProcessed adds to b the record that every matching rule has
// been evaluated for the events among ids, and that the amounts of the won
// ones among them have been added to their accounts' totals. The caller has
// locked them (BatchLock) and passes only pending ones: the statement selects
// by id alone, since a condition on the status would let Postgres walk the
// status index over every pending event.
func BatchMarkProcessed(b *pgx.Batch, ids []uuid.UUID) {
	lo, hi := partition.Span(ids)
	b.Queue(`
		UPDATE events SET status = 'processed', processed_at = clock_timestamp(),
			won_applied_at = CASE WHEN type = 'won' THEN coalesce(won_applied_at, clock_timestamp()) END
		WHERE id = ANY($1) AND id BETWEEN $2 AND $3`, ids, lo, hi)
}

// MarkFailed records that the pending events among ids were given up on, and
// why.
func MarkFailed(ctx context.Context, q db.Querier, ids []uuid.UUID, reason string) error {
	// Postgres rejects text that is not UTF-8, so the cut must not split a
	// character.
	reason = strings.ToValidUTF8(reason, "\uFFFD")
	if len(reason) > 2000 {
		reason = strings.ToValidUTF8(reason[:2000], "")
	}
	lo, hi := partition.Span(ids)
	if _, err := q.Exec(ctx, `
		UPDATE events SET status = 'failed', processed_at = clock_timestamp(), failure_reason = $2
		WHERE id = ANY($1) AND id BETWEEN $3 AND $4 AND status = 'pending'`, ids, reason, lo, hi); err != nil {
		return wrap("mark events failed", err)
	}
	return nil
}

// Root is the posted event e's chain started from: e itself when it was
// posted.
func (e *Event) Root() uuid.UUID {
	if e.RootID != nil {
		return *e.RootID
	}
	return e.ID
}

// ClaimFollowUp counts one more follow-up event of root's cascade in tx and
// reports whether the cascade may have it: false once it has limit. The
// count's row stays locked until tx ends; the events of one cascade are one
// account's, whose row the caller holds anyway.
func ClaimFollowUp(ctx context.Context, tx pgx.Tx, root uuid.UUID, limit int) (bool, error) {
	var n int
	err := tx.QueryRow(ctx, `
		INSERT INTO event_cascades AS c (root_id, follow_ups) VALUES ($1, 1)
		ON CONFLICT (root_id) DO UPDATE SET follow_ups = c.follow_ups + 1, updated_at = now()
		WHERE c.follow_ups < $2
		RETURNING follow_ups`, root, limit).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case err != nil:
		return false, wrap("count follow-up event", err)
	}
	return n <= limit, nil
}

// FollowUps returns how many follow-up events root's cascade has had, as
// ClaimFollowUp counts them, through q and without claiming one.
func FollowUps(ctx context.Context, q db.Querier, root uuid.UUID) (int, error) {
	var n int
	err := q.QueryRow(ctx, `SELECT follow_ups FROM event_cascades WHERE root_id = $1`, root).Scan(&n)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, wrap("count follow-up events", err)
	}
	return n, nil
}

// DeleteSettledCascades forgets the follow-up counts of cascades that have
// not grown for olderThan: their events were processed long ago.
func DeleteSettledCascades(ctx context.Context, q db.Querier, olderThan time.Duration) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM event_cascades WHERE updated_at < now() - $1::interval`, olderThan.String())
	if err != nil {
		return 0, wrap("delete settled cascades", err)
	}
	return tag.RowsAffected(), nil
}
