// Package account is the account domain: what an account is, how it is stored,
// and the operations clients perform on it.
package account

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/jsonvalue"
	"github.com/ctrader/ctrader/internal/page"
)

// Statuses an account moves through. Rules may set others (such as "vip").
const (
	StatusPending = "pending" // created; the provisioning job has not run yet
	StatusActive  = "active"  // provisioned
)

// Limits on input.
const (
	MaxNameLength    = 200       // characters
	MaxMetadataBytes = 16 * 1024 // encoded JSON
)

// ErrNotFound is returned when no account has the given id.
var ErrNotFound = apperr.New(apperr.NotFound, "account not found")

// Account is a client's account.
type Account struct {
	ID          uuid.UUID
	Name        string
	Status      string
	Metadata    map[string]any
	WonCount    int64           // number of won events applied
	WonTotal    decimal.Decimal // sum of their amounts, exactly
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ActivatedAt *time.Time
}

// Service performs account operations.
type Service struct {
	pool *pgxpool.Pool
	jobs jobs.Inserter
}

// NewService returns a Service writing to pool and enqueuing through jobs.
func NewService(pool *pgxpool.Pool, jobs jobs.Inserter) *Service {
	return &Service{pool: pool, jobs: jobs}
}

// CreateInput is what a client gives to open an account.
type CreateInput struct {
	Name     string
	Metadata map[string]any
}

func (in *CreateInput) normalize() error {
	in.Name = strings.TrimSpace(in.Name)
	var fields []apperr.FieldError
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		fields = append(fields, apperr.FieldError{Location: "body.name", Message: "must not be blank"})
	case n > MaxNameLength:
		fields = append(fields, apperr.FieldError{Location: "body.name", Message: fmt.Sprintf("must be at most %d characters", MaxNameLength)})
	}
	if in.Metadata == nil {
		in.Metadata = map[string]any{}
	}
	if msg := jsonvalue.Check(in.Metadata); msg != "" {
		fields = append(fields, apperr.FieldError{Location: "body.metadata", Message: msg})
	} else if b, err := json.Marshal(in.Metadata); err != nil || len(b) > MaxMetadataBytes {
		fields = append(fields, apperr.FieldError{Location: "body.metadata", Message: fmt.Sprintf("must encode to at most %d bytes of JSON", MaxMetadataBytes)})
	}
	if len(fields) > 0 {
		return apperr.InvalidFields("invalid account", fields...)
	}
	return nil
}

// Create stores a pending account and its provisioning job in one
// transaction: both are committed or neither is.
func (s *Service) Create(ctx context.Context, in CreateInput) (*Account, error) {
	if err := in.normalize(); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	var acct *Account
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		if acct, err = insert(ctx, tx, id, in); err != nil {
			return err
		}
		if _, err := s.jobs.InsertTx(ctx, tx, jobs.AccountProvision{AccountID: id}, nil); err != nil {
			return err
		}
		return nil
	})
	if err != nil {
		return nil, wrap("create account", err)
	}
	return acct, nil
}

// Get returns one account.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Account, error) {
	return Get(ctx, s.pool, id)
}

// List returns one page of accounts, newest first.
func (s *Service) List(ctx context.Context, p page.Params) (page.Page[*Account], error) {
	return List(ctx, s.pool, p)
}
