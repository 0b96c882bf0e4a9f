// Package webhook delivers signed notifications to endpoints clients
// register, following the Standard Webhooks specification
// (standardwebhooks.com): every delivery has a stable webhook-id, a
// webhook-timestamp and a webhook-signature any Standard Webhooks library
// verifies. Deliveries are River jobs on their own queue, retried on a
// schedule, with every attempt recorded.
package webhook

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/egress"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/patch"
)

// Limits and policies.
const (
	MaxDescriptionLength = 2000
	// DisableAfterFailures disables an endpoint after this many failed
	// attempts in a row, across its deliveries.
	DisableAfterFailures = 50
	// DefaultSecretGrace is how long a rotated-out secret keeps signing.
	DefaultSecretGrace = 24 * time.Hour
)

// Reasons an endpoint is disabled.
const (
	DisabledGone     = "the endpoint answered 410 Gone"
	DisabledFailures = "too many failed attempts in a row"
)

// Errors.
var (
	ErrNotFound         = apperr.New(apperr.NotFound, "webhook endpoint not found")
	ErrDeleted          = apperr.New(apperr.Conflict, "the webhook endpoint is deleted")
	ErrDeliveryNotFound = apperr.New(apperr.NotFound, "webhook delivery not found")
)

// Endpoint is a URL that receives deliveries.
type Endpoint struct {
	ID                  uuid.UUID
	URL                 string
	Description         string
	Enabled             bool
	DisabledReason      *string
	DisabledAt          *time.Time
	ConsecutiveFailures int
	CreatedAt           time.Time
	UpdatedAt           time.Time
	DeletedAt           *time.Time
}

// Service manages endpoints and deliveries.
type Service struct {
	pool   *pgxpool.Pool
	sealer *Sealer
	grace  time.Duration
	now    func() time.Time
}

// Option configures a Service.
type Option func(*Service)

// WithClock makes a Service read the time from now instead of time.Now, so
// that a test can place a secret rotation in the past instead of sleeping.
func WithClock(now func() time.Time) Option {
	return func(s *Service) { s.now = now }
}

// NewService returns a Service. sealer may be nil (secrets stored as they
// are); grace is how long a rotated-out secret keeps signing.
func NewService(pool *pgxpool.Pool, sealer *Sealer, grace time.Duration, opts ...Option) *Service {
	if grace <= 0 {
		grace = DefaultSecretGrace
	}
	s := &Service{pool: pool, sealer: sealer, grace: grace, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Input is an endpoint's writable fields.
type Input struct {
	URL         string
	Description string
	Enabled     bool
}

func (in *Input) check() error {
	var fields []apperr.FieldError
	in.URL = strings.TrimSpace(in.URL)
	if err := egress.ValidateURL(in.URL); err != nil {
		fields = append(fields, apperr.FieldError{Location: "body.url", Message: err.Error()})
	}
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLength || strings.ContainsRune(in.Description, 0) {
		fields = append(fields, apperr.FieldError{Location: "body.description", Message: "at most 2000 characters, no NUL"})
	}
	if len(fields) > 0 {
		return apperr.InvalidFields("invalid webhook endpoint", fields...)
	}
	return nil
}

// Create stores an endpoint and its first signing secret, which it returns:
// this is the only time the secret is shown.
func (s *Service) Create(ctx context.Context, in Input) (*Endpoint, string, error) {
	if err := in.check(); err != nil {
		return nil, "", err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, "", err
	}
	var (
		ep     *Endpoint
		secret string
	)
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		ep, err = scanEndpoint(tx.QueryRow(ctx, `
			INSERT INTO webhook_endpoints (id, url, description, enabled) VALUES ($1, $2, $3, $4)
			RETURNING `+endpointColumns, id, in.URL, in.Description, in.Enabled))
		if err != nil {
			return err
		}
		secret, err = s.addSecret(ctx, tx, id)
		return err
	})
	if err != nil {
		return nil, "", db.Wrap("create webhook endpoint", err, ErrNotFound)
	}
	return ep, secret, nil
}

// Get returns an endpoint, deleted or not.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Endpoint, error) {
	return getEndpoint(ctx, s.pool, id, false)
}

// List returns one page of endpoints that are not deleted, newest first.
func (s *Service) List(ctx context.Context, p page.Params) (page.Page[*Endpoint], error) {
	var c db.Conditions
	c.AddFixed("deleted_at IS NULL")
	query, args := c.Page(`SELECT `+endpointColumns+` FROM webhook_endpoints`, p)
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return page.Page[*Endpoint]{}, db.Wrap("list webhook endpoints", err, nil)
	}
	items, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return page.Page[*Endpoint]{}, db.Wrap("list webhook endpoints", err, nil)
	}
	return page.Build(items, p.Limit, func(e *Endpoint) uuid.UUID { return e.ID }), nil
}

// Patch changes some fields; nil fields stay.
type Patch struct {
	URL         *string
	Description *string
	Enabled     *bool
}

// Update applies a patch. Enabling an endpoint clears its failure streak.
func (s *Service) Update(ctx context.Context, id uuid.UUID, p Patch) (*Endpoint, error) {
	var out *Endpoint
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := getEndpoint(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if cur.DeletedAt != nil {
			return ErrDeleted
		}
		in := Input{URL: cur.URL, Description: cur.Description, Enabled: cur.Enabled}
		patch.Set(&in.URL, p.URL)
		patch.Set(&in.Description, p.Description)
		patch.Set(&in.Enabled, p.Enabled)
		if err := in.check(); err != nil {
			return err
		}
		out, err = scanEndpoint(tx.QueryRow(ctx, `
			UPDATE webhook_endpoints SET url = $2, description = $3, enabled = $4, updated_at = now(),
				disabled_reason = CASE WHEN $4 THEN NULL ELSE disabled_reason END,
				disabled_at = CASE WHEN $4 THEN NULL WHEN NOT enabled THEN disabled_at ELSE now() END,
				consecutive_failures = CASE WHEN $4 AND NOT enabled THEN 0 ELSE consecutive_failures END
			WHERE id = $1
			RETURNING `+endpointColumns, id, in.URL, in.Description, in.Enabled))
		return err
	})
	if err != nil {
		return nil, db.Wrap("update webhook endpoint", err, ErrNotFound)
	}
	return out, nil
}

// InUseError names the rules that still send to an endpoint.
type InUseError struct{ Rules []string }

// Senders names the rules that send to an endpoint, through q, the
// transaction that deletes it. rule.NamesSendingTo is one.
type Senders func(ctx context.Context, q db.Querier, endpointID uuid.UUID) ([]string, error)

// Delete removes an endpoint from use; its deliveries stay readable. An
// endpoint that rules still send to, as senders names them, cannot be
// deleted: the problem names them. senders runs after the endpoint's row is
// locked, so a rule written meanwhile either committed first and is named, or
// waits for the deletion and then finds the endpoint gone (see Referable).
func (s *Service) Delete(ctx context.Context, id uuid.UUID, senders Senders) error {
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		ep, err := getEndpoint(ctx, tx, id, true)
		if err != nil {
			return err
		}
		if ep.DeletedAt != nil {
			return nil
		}
		names, err := senders(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(names) > 0 {
			return apperr.New(apperr.Conflict, "rules still send to this endpoint: %s; remove their webhook actions or delete them first", strings.Join(names, ", "))
		}
		_, err = tx.Exec(ctx, `UPDATE webhook_endpoints SET deleted_at = now(), enabled = false, updated_at = now() WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return db.Wrap("delete webhook endpoint", err, ErrNotFound)
	}
	return nil
}

const endpointColumns = `id, url, description, enabled, disabled_reason, disabled_at, consecutive_failures, created_at, updated_at, deleted_at`

func scanEndpoint(row pgx.Row) (*Endpoint, error) {
	var e Endpoint
	err := row.Scan(&e.ID, &e.URL, &e.Description, &e.Enabled, &e.DisabledReason, &e.DisabledAt,
		&e.ConsecutiveFailures, &e.CreatedAt, &e.UpdatedAt, &e.DeletedAt)
	if err != nil {
		return nil, err
	}
	return &e, nil
}

func getEndpoint(ctx context.Context, q db.Querier, id uuid.UUID, forUpdate bool) (*Endpoint, error) {
	query := `SELECT ` + endpointColumns + ` FROM webhook_endpoints WHERE id = $1`
	if forUpdate {
		// Deliveries and secrets referencing the endpoint may be written
		// meanwhile; Referable's FOR SHARE still waits for a change.
		query += ` FOR NO KEY UPDATE`
	}
	e, err := scanEndpoint(q.QueryRow(ctx, query, id))
	if err != nil {
		return nil, db.Wrap("get webhook endpoint", err, ErrNotFound)
	}
	return e, nil
}

// Referable reports whether a rule may send to id: the endpoint exists and is
// not deleted (it may be disabled). Rules check their webhook actions with it,
// in the transaction that writes the rule. The endpoint's row is locked until that transaction ends,
// so a deletion in progress is waited for (and seen), and one that starts
// later waits for the rule and then refuses because of it.
func Referable(ctx context.Context, q db.Querier, id uuid.UUID) (bool, error) {
	var one int
	err := q.QueryRow(ctx, `SELECT 1 FROM webhook_endpoints WHERE id = $1 AND deleted_at IS NULL FOR SHARE`, id).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up webhook endpoint: %w", err)
	}
	return true, nil
}

// DeliverableAmong reports, in one query, which of ids name endpoints that
// can receive deliveries now: they exist, are enabled and are not deleted.
func DeliverableAmong(ctx context.Context, q db.Querier, ids []uuid.UUID) (map[uuid.UUID]bool, error) {
	out := make(map[uuid.UUID]bool, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT id FROM webhook_endpoints WHERE id = ANY($1) AND enabled AND deleted_at IS NULL`, ids)
	if err != nil {
		return nil, fmt.Errorf("look up webhook endpoints: %w", err)
	}
	found, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("look up webhook endpoints: %w", err)
	}
	for _, id := range found {
		out[id] = true
	}
	return out, nil
}

// EndpointsAmong reads the endpoints among ids, whatever their state, without
// locking them: what a dry run of webhook actions reports.
func EndpointsAmong(ctx context.Context, q db.Querier, ids []uuid.UUID) (map[uuid.UUID]*Endpoint, error) {
	out := make(map[uuid.UUID]*Endpoint, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, `SELECT `+endpointColumns+` FROM webhook_endpoints WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("read webhook endpoints: %w", err)
	}
	found, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*Endpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, fmt.Errorf("read webhook endpoints: %w", err)
	}
	for _, e := range found {
		out[e.ID] = e
	}
	return out, nil
}

// Referable reports whether a rule may send to e, as the function Referable
// does for an endpoint's id: e is not deleted.
func (e *Endpoint) Referable() bool { return e != nil && e.DeletedAt == nil }

// Deliverable reports whether e can receive deliveries now, as
// DeliverableAmong does in SQL: it is enabled and not deleted.
func (e *Endpoint) Deliverable() bool { return e != nil && e.Enabled && e.DeletedAt == nil }
