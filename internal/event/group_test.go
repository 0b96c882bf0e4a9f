package event_test

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/idempotency"
	"github.com/ctrader/ctrader/internal/worker"
)

type groupBundle struct {
	pool    *pgxpool.Pool
	svc     *event.Service
	account uuid.UUID
}

func setupGroup(t *testing.T) *groupBundle {
	t.Helper()
	pool := dbtest.New(t)
	client, err := worker.NewClient(pool, dbtest.Logger(t), worker.Options{})
	require.NoError(t, err)
	id := uuid.Must(uuid.NewV7())
	_, err = pool.Exec(context.Background(), `INSERT INTO accounts (id, name, status, activated_at) VALUES ($1, 'group', 'active', now())`, id)
	require.NoError(t, err)
	return &groupBundle{pool: pool, svc: event.NewService(pool, client), account: id}
}

type posted struct {
	events   []*event.Event
	replayed bool
	err      error
}

// post ingests one event in the background.
func (b *groupBundle) post(in event.Input, idem *idempotency.Request) chan posted {
	out := make(chan posted, 1)
	go func() {
		events, replayed, err := b.svc.Ingest(context.Background(), []event.Input{in}, func(int) string { return "body" }, idem)
		out <- posted{events, replayed, err}
	}()
	return out
}

// hold blocks every insert into events until release is called, so that the
// test can line requests up behind a group in progress.
func (b *groupBundle) hold(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := b.pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `LOCK TABLE events IN EXCLUSIVE MODE`)
	require.NoError(t, err)
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release) // a failed test must not leave its requests hanging
	return release
}

// waitBlocked waits until a transaction of this database waits for hold's
// lock.
func (b *groupBundle) waitBlocked(t *testing.T) {
	t.Helper()
	require.Eventually(t, func() bool {
		return b.count(t, `
			SELECT count(*) FROM pg_locks
			WHERE database = (SELECT oid FROM pg_database WHERE datname = current_database())
			  AND relation = 'events'::regclass AND NOT granted`) > 0
	}, 10*time.Second, 5*time.Millisecond)
}

func (b *groupBundle) waitFor(t *testing.T, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return b.svc.Waiting() == n }, 10*time.Second, 5*time.Millisecond)
}

func (b *groupBundle) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	require.NoError(t, b.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func won(account uuid.UUID) event.Input {
	return event.Input{AccountID: account, Type: "won", Payload: map[string]any{"amount": json.Number("10")}}
}

// Single events posted while a transaction is committing share the next one,
// with one job for all of them; each request gets its own event.
func TestSingleEventsShareATransaction(t *testing.T) {
	t.Parallel()
	b := setupGroup(t)
	release := b.hold(t)
	first := b.post(won(b.account), nil)
	// The first leads a group at once and waits for the lock; the others
	// line up behind it.
	b.waitBlocked(t)
	var rest []chan posted
	for range 3 {
		rest = append(rest, b.post(won(b.account), nil))
	}
	b.waitFor(t, 3)
	release()

	ids := map[uuid.UUID]bool{}
	for _, c := range append([]chan posted{first}, rest...) {
		p := <-c
		require.NoError(t, p.err)
		require.Len(t, p.events, 1)
		ids[p.events[0].ID] = true
	}
	require.Len(t, ids, 4)
	require.Equal(t, 4, b.count(t, `SELECT count(*) FROM events`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM river_job WHERE kind = 'events.process'`), "one job for the first, one for the group")
	require.Equal(t, 3, b.count(t, `SELECT max(jsonb_array_length(args->'event_ids')) FROM river_job WHERE kind = 'events.process'`))
}

// One request's bad input does not fail the others of its group: an unknown
// account is answered 422 alone, the others are stored.
func TestGroupIsolatesABadRequest(t *testing.T) {
	t.Parallel()
	b := setupGroup(t)
	release := b.hold(t)
	first := b.post(won(b.account), nil)
	b.waitBlocked(t)
	good := b.post(won(b.account), nil)
	bad := b.post(won(uuid.Must(uuid.NewV7())), nil)
	b.waitFor(t, 2)
	release()

	require.NoError(t, (<-first).err)
	require.NoError(t, (<-good).err)
	p := <-bad
	require.Error(t, p.err)
	require.Equal(t, apperr.Invalid, apperr.CodeOf(p.err))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM events`))
}

// Requests with Idempotency-Keys in one group: each key is claimed and
// completed once; a second request with a key already in the group replays
// the first's response after it commits.
func TestGroupKeepsIdempotencyKeys(t *testing.T) {
	t.Parallel()
	b := setupGroup(t)
	in := won(b.account)
	key := func(k string) *idempotency.Request {
		r, err := idempotency.NewRequest("alice", "events.create", k, in)
		require.NoError(t, err)
		return r
	}
	release := b.hold(t)
	first := b.post(in, nil)
	b.waitBlocked(t)
	a1 := b.post(in, key("a"))
	b.waitFor(t, 1)
	a2 := b.post(in, key("a"))
	b.waitFor(t, 2)
	other := b.post(in, key("b"))
	b.waitFor(t, 3)
	release()

	require.NoError(t, (<-first).err)
	p1, p2, po := <-a1, <-a2, <-other
	require.NoError(t, p1.err)
	require.NoError(t, p2.err)
	require.NoError(t, po.err)
	require.False(t, p1.replayed)
	require.True(t, p2.replayed, "the same key again replays")
	require.Equal(t, p1.events[0].ID, p2.events[0].ID)
	require.False(t, po.replayed)
	require.Equal(t, 3, b.count(t, `SELECT count(*) FROM events`))
	require.Equal(t, 2, b.count(t, `SELECT count(*) FROM idempotency_keys WHERE response_body IS NOT NULL`))
}
