// Package idempotency makes writes safe to retry. A client sends an
// Idempotency-Key header; the first request with a key stores its response in
// the same transaction as its effects, and a retry with the same key and body
// gets that response back without doing anything again.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
)

// TTL is how long a key is remembered.
const TTL = 24 * time.Hour

// MaxKeyLength bounds the header's value.
const MaxKeyLength = 255

// ErrMismatch is returned when a key is reused with a different request.
var ErrMismatch = apperr.InvalidFields("Idempotency-Key was already used with a different request",
	apperr.FieldError{Location: "header.Idempotency-Key", Message: "reused with a different body"})

// Request identifies one idempotent request. A key is the subject's own:
// another caller using the same key neither sees nor spends it.
type Request struct {
	Subject string // the caller: its token's subject, "" without authentication
	Scope   string // the operation, such as "events.create"
	Key     string // the client's Idempotency-Key
	Hash    []byte // fingerprint of the request body
}

// NewRequest fingerprints body (any JSON-encodable value; encoding/json sorts
// map keys, so equal bodies hash equally).
func NewRequest(subject, scope, key string, body any) (*Request, error) {
	if key == "" {
		return nil, nil
	}
	if len(key) > MaxKeyLength {
		return nil, apperr.InvalidFields("Idempotency-Key is too long",
			apperr.FieldError{Location: "header.Idempotency-Key", Message: fmt.Sprintf("must be at most %d characters", MaxKeyLength)})
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("fingerprint request: %w", err)
	}
	sum := sha256.Sum256(b)
	return &Request{Subject: subject, Scope: scope, Key: key, Hash: sum[:]}, nil
}

const (
	claimSQL = `
		INSERT INTO idempotency_keys (subject, scope, key, request_hash, expires_at)
		VALUES ($1, $2, $3, $4, now() + $5::interval)
		ON CONFLICT (subject, scope, key) DO NOTHING`
	completeSQL = `UPDATE idempotency_keys SET response_body = $4 WHERE subject = $1 AND scope = $2 AND key = $3`
)

// Claim records r in tx. It returns the stored response when r was already
// completed (the caller returns it and rolls back), nil when the caller owns
// the key and must call Complete in the same transaction, and ErrMismatch when
// the key was used with another body. A concurrent request with the same key
// waits for the first to commit or roll back.
func Claim(ctx context.Context, tx pgx.Tx, r *Request) (json.RawMessage, error) {
	tag, err := tx.Exec(ctx, claimSQL, r.Subject, r.Scope, r.Key, r.Hash, TTL.String())
	if err != nil {
		return nil, fmt.Errorf("claim idempotency key: %w", db.Translate(err))
	}
	if tag.RowsAffected() == 1 {
		return nil, nil
	}
	var (
		hash []byte
		body []byte
	)
	err = tx.QueryRow(ctx, `SELECT request_hash, response_body FROM idempotency_keys WHERE subject = $1 AND scope = $2 AND key = $3`,
		r.Subject, r.Scope, r.Key).Scan(&hash, &body)
	if err != nil {
		return nil, fmt.Errorf("read idempotency key: %w", db.Translate(err))
	}
	if !bytes.Equal(hash, r.Hash) {
		return nil, ErrMismatch
	}
	if body == nil {
		return nil, errors.New("idempotency key claimed without a response")
	}
	return body, nil
}

// Complete stores the response of the request that claimed r.
func Complete(ctx context.Context, tx pgx.Tx, r *Request, response any) error {
	b, err := json.Marshal(response)
	if err != nil {
		return fmt.Errorf("encode idempotent response: %w", err)
	}
	if _, err := tx.Exec(ctx, completeSQL, r.Subject, r.Scope, r.Key, b); err != nil {
		return fmt.Errorf("store idempotent response: %w", db.Translate(err))
	}
	return nil
}

// DeleteExpired removes keys past their TTL and reports how many.
func DeleteExpired(ctx context.Context, q db.Querier) (int64, error) {
	tag, err := q.Exec(ctx, `DELETE FROM idempotency_keys WHERE expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("delete expired idempotency keys: %w", db.Translate(err))
	}
	return tag.RowsAffected(), nil
}

// ClaimMany claims every request of rs in tx, in one round trip, and reports
// which it claimed. A request not claimed was completed before, is in flight
// in another transaction, or repeats a key of rs: its caller handles it with
// Claim, alone.
func ClaimMany(ctx context.Context, tx pgx.Tx, rs []*Request) ([]bool, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	b := &pgx.Batch{}
	for _, r := range rs {
		b.Queue(claimSQL, r.Subject, r.Scope, r.Key, r.Hash, TTL.String())
	}
	res := tx.SendBatch(ctx, b)
	defer res.Close()
	claimed := make([]bool, len(rs))
	for i := range rs {
		tag, err := res.Exec()
		if err != nil {
			return nil, fmt.Errorf("claim idempotency keys: %w", db.Translate(err))
		}
		claimed[i] = tag.RowsAffected() == 1
	}
	return claimed, res.Close()
}

// CompleteMany stores responses[i] as the response of rs[i], which tx
// claimed, in one round trip.
func CompleteMany(ctx context.Context, tx pgx.Tx, rs []*Request, responses []any) error {
	if len(rs) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for i, r := range rs {
		body, err := json.Marshal(responses[i])
		if err != nil {
			return fmt.Errorf("encode idempotent response: %w", err)
		}
		b.Queue(completeSQL, r.Subject, r.Scope, r.Key, body)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("store idempotent responses: %w", db.Translate(err))
	}
	return nil
}
