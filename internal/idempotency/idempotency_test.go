package idempotency_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/dbtest"
	"github.com/ctrader/ctrader/internal/idempotency"
)

type response struct {
	ID string `json:"id"`
}

func request(t *testing.T, subject, key string, body any) *idempotency.Request {
	t.Helper()
	r, err := idempotency.NewRequest(subject, "events.create", key, body)
	require.NoError(t, err)
	return r
}

// claim runs Claim, and Complete when the caller owns the key, in one
// committed transaction, as a handler does.
func claim(t *testing.T, pool *pgxpool.Pool, r *idempotency.Request, resp response) (json.RawMessage, error) {
	t.Helper()
	var stored json.RawMessage
	err := pgx.BeginFunc(context.Background(), pool, func(tx pgx.Tx) error {
		var err error
		stored, err = idempotency.Claim(context.Background(), tx, r)
		if err != nil || stored != nil {
			return err
		}
		return idempotency.Complete(context.Background(), tx, r, resp)
	})
	return stored, err
}

// The first request owns the key; a retry with the same body gets the stored
// response; the same key with another body is refused.
func TestClaimCompleteReplayMismatch(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	body := map[string]any{"type": "login", "account_id": "a1"}

	stored, err := claim(t, pool, request(t, "alice", "k1", body), response{ID: "e1"})
	require.NoError(t, err)
	require.Nil(t, stored, "the first request owns the key")

	stored, err = claim(t, pool, request(t, "alice", "k1", body), response{ID: "e2"})
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"e1"}`, string(stored), "a retry replays the first response")

	_, err = claim(t, pool, request(t, "alice", "k1", map[string]any{"type": "logout"}), response{ID: "e3"})
	require.ErrorIs(t, err, idempotency.ErrMismatch)
}

// A key claimed in a transaction that rolls back is free again.
func TestRolledBackClaimFreesTheKey(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	r := request(t, "alice", "k1", "body")
	tx, err := pool.Begin(ctx)
	require.NoError(t, err)
	stored, err := idempotency.Claim(ctx, tx, r)
	require.NoError(t, err)
	require.Nil(t, stored)
	require.NoError(t, tx.Rollback(ctx))

	stored, err = claim(t, pool, r, response{ID: "e1"})
	require.NoError(t, err)
	require.Nil(t, stored, "the key was never spent")
}

// A key is its subject's and its operation's: another caller, or another
// operation, using the same key owns its own.
func TestKeysAreScopedBySubjectAndOperation(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	_, err := claim(t, pool, request(t, "alice", "k1", "body"), response{ID: "e1"})
	require.NoError(t, err)

	stored, err := claim(t, pool, request(t, "bob", "k1", "body"), response{ID: "e2"})
	require.NoError(t, err)
	require.Nil(t, stored, "bob does not see alice's response")

	other, err := idempotency.NewRequest("alice", "accounts.create", "k1", "body")
	require.NoError(t, err)
	stored, err = claim(t, pool, other, response{ID: "a1"})
	require.NoError(t, err)
	require.Nil(t, stored, "another operation's key is its own")
}

// DeleteExpired removes keys past their TTL only; an expired key can then be
// used afresh.
func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	pool := dbtest.New(t)
	ctx := context.Background()
	old, fresh := request(t, "alice", "old", "body"), request(t, "alice", "fresh", "body")
	for _, r := range []*idempotency.Request{old, fresh} {
		_, err := claim(t, pool, r, response{ID: r.Key})
		require.NoError(t, err)
	}
	// Only SQL can age a key: the TTL is fixed.
	_, err := pool.Exec(ctx, `UPDATE idempotency_keys SET expires_at = now() - interval '1 second' WHERE key = 'old'`)
	require.NoError(t, err)

	n, err := idempotency.DeleteExpired(ctx, pool)
	require.NoError(t, err)
	require.EqualValues(t, 1, n)

	stored, err := claim(t, pool, old, response{ID: "again"})
	require.NoError(t, err)
	require.Nil(t, stored, "an expired key is free")
	stored, err = claim(t, pool, fresh, response{ID: "other"})
	require.NoError(t, err)
	require.JSONEq(t, `{"id":"fresh"}`, string(stored), "an unexpired key still replays")
}

func TestNewRequest(t *testing.T) {
	t.Parallel()
	r, err := idempotency.NewRequest("alice", "events.create", "", "body")
	require.NoError(t, err)
	require.Nil(t, r, "no key, no idempotency")

	_, err = idempotency.NewRequest("alice", "events.create", string(make([]byte, idempotency.MaxKeyLength+1)), "body")
	require.Error(t, err)

	a := request(t, "alice", "k", map[string]any{"a": 1, "b": 2})
	b := request(t, "alice", "k", map[string]any{"b": 2, "a": 1})
	require.Equal(t, a.Hash, b.Hash, "equal bodies fingerprint equally")
	require.NotEqual(t, a.Hash, request(t, "alice", "k", map[string]any{"a": 2}).Hash)
}
