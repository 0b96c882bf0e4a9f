// Package event is the event domain: what clients and rules post about
// accounts, how events are validated and stored, and the jobs each event
// starts.
package event

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/idempotency"
	"github.com/ctrader/ctrader/internal/jobs"
	"github.com/ctrader/ctrader/internal/jsonvalue"
	"github.com/ctrader/ctrader/internal/page"
)

// Statuses of an event.
const (
	StatusPending   = "pending"   // waiting for its jobs
	StatusProcessed = "processed" // every matching rule was evaluated
	StatusFailed    = "failed"    // its job was discarded; see FailureReason
)

// Types ctrader itself gives meaning to.
const (
	TypeWon            = "won"             // payload.amount is added to the account's totals
	TypeAccountCreated = "account.created" // recorded when an account is provisioned
)

// Limits on input.
const (
	MaxTypeLength   = 100
	MaxPayloadBytes = 32 * 1024      // encoded JSON, per event
	MaxFutureSkew   = 24 * time.Hour // occurred_at may be at most this far ahead
	// A won amount has at most this many digits before and after the point;
	// Postgres adds amounts exactly whatever their size, this keeps them sane.
	MaxAmountIntegerDigits  = 30
	MaxAmountFractionDigits = 20
)

// TypePattern is what an event type may look like: "won", "account.created",
// "trade:closed".
var TypePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:-]*$`)

// ErrNoEvents is returned when there is nothing to ingest.
var ErrNoEvents = apperr.New(apperr.Invalid, "no events to ingest")

// ErrNotFound is returned when no event has the given id.
var ErrNotFound = apperr.New(apperr.NotFound, "event not found")

// Event is something that happened to an account.
type Event struct {
	ID            uuid.UUID      `json:"id"`
	AccountID     uuid.UUID      `json:"account_id"`
	Type          string         `json:"type"`
	Payload       map[string]any `json:"payload"`
	OccurredAt    time.Time      `json:"occurred_at"`
	ReceivedAt    time.Time      `json:"received_at"`
	Status        string         `json:"status"`
	ProcessedAt   *time.Time     `json:"processed_at,omitempty"`
	FailureReason *string        `json:"failure_reason,omitempty"`
	CausationID   *uuid.UUID     `json:"causation_id,omitempty"`
	Depth         int            `json:"depth"`
	// RootID is the posted event a chain of follow-ups started from; nil for
	// posted events. Only BatchLock reads it.
	RootID *uuid.UUID `json:"-"`
	// WonApplied says a won event's amount is in its account's totals. Only
	// BatchLock reads it.
	WonApplied bool `json:"-"`
}

// Input is one event as a client posts it.
type Input struct {
	AccountID  uuid.UUID      `json:"account_id"`
	Type       string         `json:"type"`
	Payload    map[string]any `json:"payload"`
	OccurredAt *time.Time     `json:"occurred_at,omitempty"`
}

// Validate checks one event's fields, naming bad ones under prefix (such as
// "body" or "body.events[3]").
func (in *Input) Validate(prefix string, now time.Time) []apperr.FieldError {
	var fields []apperr.FieldError
	bad := func(field, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: prefix + "." + field, Message: msg, Value: value})
	}
	if in.AccountID == uuid.Nil {
		bad("account_id", "is required", nil)
	}
	switch {
	case in.Type == "":
		bad("type", "must not be empty", nil)
	case len(in.Type) > MaxTypeLength:
		bad("type", fmt.Sprintf("must be at most %d characters", MaxTypeLength), nil)
	case !TypePattern.MatchString(in.Type):
		bad("type", "may contain letters, digits and . _ : - and must start with a letter or digit", in.Type)
	}
	if in.Payload == nil {
		in.Payload = map[string]any{}
	}
	if msg := jsonvalue.Check(in.Payload); msg != "" {
		bad("payload", msg, nil)
	}
	if in.Type == TypeWon {
		v := in.Payload["amount"]
		amount, ok := jsonvalue.Amount(v)
		integer, fraction := amount.Digits()
		_, isNumber := v.(json.Number)
		switch {
		case !ok && !isNumber:
			bad("payload.amount", "a won event needs a numeric amount", v)
		case !ok || integer > MaxAmountIntegerDigits || fraction > MaxAmountFractionDigits:
			bad("payload.amount", fmt.Sprintf("must have at most %d digits before the point and %d after",
				MaxAmountIntegerDigits, MaxAmountFractionDigits), nil)
		}
	}
	if in.OccurredAt != nil && in.OccurredAt.After(now.Add(MaxFutureSkew)) {
		bad("occurred_at", fmt.Sprintf("must not be more than %d hours in the future", int(MaxFutureSkew.Hours())), in.OccurredAt)
	}
	return fields
}

// PayloadTooLarge reports whether the encoded payload is over MaxPayloadBytes.
func (in *Input) PayloadTooLarge() bool {
	b, err := json.Marshal(in.Payload)
	return err != nil || len(b) > MaxPayloadBytes
}

// New builds an event from a validated input.
func New(in Input, now time.Time) (*Event, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	occurred := now
	if in.OccurredAt != nil {
		// Postgres keeps microseconds; answer the time as it is stored.
		occurred = in.OccurredAt.UTC().Truncate(time.Microsecond)
	}
	return &Event{
		ID: id, AccountID: in.AccountID, Type: in.Type, Payload: in.Payload,
		OccurredAt: occurred, ReceivedAt: now, Status: StatusPending,
	}, nil
}

// Service ingests and reads events.
type Service struct {
	pool  *pgxpool.Pool
	jobs  jobs.Inserter
	now   func() time.Time
	group *committer
	burst *burstRouter
}

// Option configures a Service.
type Option func(*Service)

// BurstRate sends the jobs of the events this Service ingests to
// queue.EventsBurst while it ingests more than perSecond events a second
// (see burstRouter); 0, the default, never.
func BurstRate(perSecond float64) Option {
	return func(s *Service) { s.burst = &burstRouter{rate: perSecond} }
}

// NewService returns a Service writing to pool and enqueuing through inserter.
func NewService(pool *pgxpool.Pool, inserter jobs.Inserter, opts ...Option) *Service {
	s := &Service{pool: pool, jobs: inserter, now: Now}
	s.group = &committer{s: s, max: jobs.EventsPerJob, leaders: GroupLeaders}
	for _, o := range opts {
		o(s)
	}
	return s
}

// insert stores events ingested by s and their jobs in tx, on the queue the
// ingest rate calls for.
func (s *Service) insert(ctx context.Context, tx pgx.Tx, events []*Event) error {
	return insert(ctx, tx, s.jobs, events, s.burst.queue(time.Now(), len(events)))
}

// GroupLeaders is how many groups of single events one process commits at
// once. One keeps ingest in step with processing on a small machine: with
// two or three, 8 clients posted 6–18% faster and processing, sharing the
// same cores, fell to half its rate (docs/performance.md).
const GroupLeaders = 1

// Now is the clock events are stamped with: UTC at Postgres's precision.
func Now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

// Ingest validates every input, then stores the events and their jobs in one
// transaction. location(i) names input i in errors ("body" for a single event,
// "body.events[i]" for a batch). With an idempotency request, a retry returns
// the first response (replayed is true) and stores nothing. Single events
// posted at the same time share transactions (see committer); each is
// answered after the commit that stores it.
func (s *Service) Ingest(ctx context.Context, inputs []Input, location func(i int) string, idem *idempotency.Request) (events []*Event, replayed bool, err error) {
	now := s.now()
	if err := validate(inputs, location, now); err != nil {
		return nil, false, err
	}
	events = make([]*Event, 0, len(inputs))
	for _, in := range inputs {
		ev, err := New(in, now)
		if err != nil {
			return nil, false, err
		}
		events = append(events, ev)
	}
	if len(inputs) == 1 {
		return s.group.ingest(ctx, &single{ev: events[0], in: inputs[0], location: location(0), idem: idem,
			done: make(chan groupResult, 1), lead: make(chan struct{})})
	}
	return s.ingestTx(ctx, inputs, events, location, idem)
}

// ingestTx stores events, built from inputs, and their jobs in a
// transaction of their own.
func (s *Service) ingestTx(ctx context.Context, inputs []Input, events []*Event, location func(i int) string, idem *idempotency.Request) (out []*Event, replayed bool, err error) {
	out = events
	// On the request's path: BEGIN goes with the idempotency claim, the
	// accounts of a batch or the events' INSERT, which goes with River's
	// job insert, and River's NOTIFY with COMMIT.
	err = db.InTxPipelined(ctx, s.pool, func(tx pgx.Tx) error {
		if idem != nil {
			stored, err := idempotency.Claim(ctx, tx, idem)
			if err != nil {
				return err
			}
			if stored != nil {
				replayed = true
				out = nil
				return jsonvalue.Decode(stored, &out)
			}
		}
		// One event's account is checked by the foreign key, which saves a
		// query per request; a batch's are checked first, so that every
		// unknown one is named.
		if len(inputs) > 1 {
			if err := requireAccounts(ctx, tx, inputs, location); err != nil {
				return err
			}
		}
		if err := s.insert(db.DeferExec(ctx), tx, events); err != nil {
			if len(inputs) == 1 && isAccountFK(err) {
				return unknownAccount(inputs[0], location(0))
			}
			return err
		}
		if idem != nil {
			return idempotency.Complete(ctx, tx, idem, events)
		}
		return nil
	})
	if err != nil {
		return nil, false, wrap("ingest events", err)
	}
	return out, replayed, nil
}

func validate(inputs []Input, location func(i int) string, now time.Time) error {
	if len(inputs) == 0 {
		return ErrNoEvents
	}
	var invalid, tooLarge []apperr.FieldError
	for i := range inputs {
		invalid = append(invalid, inputs[i].Validate(location(i), now)...)
		if inputs[i].PayloadTooLarge() {
			tooLarge = append(tooLarge, apperr.FieldError{Location: location(i) + ".payload",
				Message: fmt.Sprintf("must encode to at most %d bytes of JSON", MaxPayloadBytes)})
		}
	}
	switch {
	case len(invalid) > 0:
		return apperr.InvalidFields("invalid event", append(invalid, tooLarge...)...)
	case len(tooLarge) > 0:
		return &apperr.Error{Code: apperr.TooLarge, Message: "event payload too large", Fields: tooLarge}
	}
	return nil
}

// requireAccounts reports every input whose account does not exist.
func requireAccounts(ctx context.Context, tx pgx.Tx, inputs []Input, location func(i int) string) error {
	ids := make([]uuid.UUID, 0, len(inputs))
	seen := make(map[uuid.UUID]bool, len(inputs))
	for _, in := range inputs {
		if !seen[in.AccountID] {
			seen[in.AccountID] = true
			ids = append(ids, in.AccountID)
		}
	}
	exists, err := account.Existing(ctx, tx, ids)
	if err != nil {
		return err
	}
	var fields []apperr.FieldError
	for i, in := range inputs {
		if !exists[in.AccountID] {
			fields = append(fields, unknownAccountField(in, location(i)))
		}
	}
	if len(fields) > 0 {
		return apperr.InvalidFields("unknown account", fields...)
	}
	return nil
}

func unknownAccountField(in Input, location string) apperr.FieldError {
	return apperr.FieldError{Location: location + ".account_id", Message: "no account has this id", Value: in.AccountID.String()}
}

func unknownAccount(in Input, location string) error {
	return apperr.InvalidFields("unknown account", unknownAccountField(in, location))
}

// Get returns one event.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Event, error) {
	return Get(ctx, s.pool, id)
}

// Filter narrows a list of events; zero fields match everything.
type Filter struct {
	AccountID uuid.UUID
	Type      string
	Status    string
}

// List returns one page of events, newest first.
func (s *Service) List(ctx context.Context, f Filter, p page.Params) (page.Page[*Event], error) {
	return List(ctx, s.pool, f, p)
}

func wrap(action string, err error) error {
	return db.Wrap(action, err, ErrNotFound)
}

// isAccountFK reports whether err is the events table refusing an account id
// that names no account.
func isAccountFK(err error) bool {
	code, constraint := db.ConstraintOf(err)
	return code == db.CodeForeignKeyViolation && constraint == "events_account_id_fkey"
}
