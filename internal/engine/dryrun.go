package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/decimal"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jsonvalue"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// Tester tests rules: it evaluates a rule as the engine does and reports what
// its actions would do, without doing any of it. Nothing is written, queued
// or sent: every read is in one read-only transaction, which Postgres would
// refuse to write in and which ends before the rule is evaluated, and the
// actions go through the engine's own code with effects that only take notes.
type Tester struct {
	pool   *pgxpool.Pool
	engine *Engine
}

// NewTester returns a Tester reading through pool and evaluating as eng
// does, with its compiler, depth and cascade limits.
func NewTester(pool *pgxpool.Pool, eng *Engine) *Tester {
	return &Tester{pool: pool, engine: eng}
}

// Sample is what a rule is tested against, given one way only: a stored
// event (with its account), an event described here with a stored account or
// one described here, or an account alone (stored or described), which is
// evaluated as manual and scheduled evaluations are, with no event.
type Sample struct {
	EventID   uuid.UUID
	Event     *SampleEvent
	AccountID uuid.UUID
	Account   *SampleAccount
}

// SampleEvent is an event as a test describes it. It is checked as a posted
// event is; Depth places it in a chain of follow-ups.
type SampleEvent struct {
	Type       string
	Payload    map[string]any
	OccurredAt *time.Time
	Depth      int
}

// SampleAccount is an account as a test describes it.
type SampleAccount struct {
	Name      string
	Status    string // empty: active
	WonCount  int64
	WonTotal  decimal.Decimal // a won event's amount is added to it
	Metadata  map[string]any
	CreatedAt *time.Time // empty: now
}

// MaxSampleDepth bounds the depth a test's event may claim.
const MaxSampleDepth = 1000

// Result is what a test found: the evaluation as it would be recorded, and
// what each of its actions would do.
type Result struct {
	// Evaluation is never stored: its id and those of the follow-up events
	// and deliveries it names are made for the test.
	Evaluation *evaluation.Evaluation
	Cost       uint64        // CEL cost of the condition
	Duration   time.Duration // time the condition took
	// Applies says whether the rule is evaluated for events of the sample
	// event's type at all; the condition is evaluated either way.
	Applies bool
	Rule    *rule.Rule
	Event   *event.Event     // nil when the sample has none
	Account *account.Account // as the condition saw it
	Actions []Planned        // one per Evaluation.Actions entry
}

// Planned is what one action would have done besides its ActionResult.
type Planned struct {
	Event    *event.Event      // emit_event: the follow-up that would be posted
	Endpoint *webhook.Endpoint // webhook: the endpoint named, nil if none has its id
	Body     json.RawMessage   // webhook: the message that would be signed and sent
}

// Draft tests a rule that is not stored. It is checked as creating it would
// be, so a bad rule fails with the same errors, except that it needs no
// name.
func (t *Tester) Draft(ctx context.Context, in rule.Input, s Sample) (*Result, error) {
	r, compiled, err := t.engine.compiler.Draft(in)
	if err != nil {
		return nil, err
	}
	prepared, err := s.prepare(event.Now())
	if err != nil {
		return nil, err
	}
	return t.run(ctx, func(tx pgx.Tx) (*trial, error) {
		endpoints, err := webhook.EndpointsAmong(ctx, tx, endpointsOf(r.Actions))
		if err != nil {
			return nil, err
		}
		referable := func(_ context.Context, _ db.Querier, id uuid.UUID) (bool, error) {
			return endpoints[id].Referable(), nil
		}
		if err := rule.RequireEndpoints(ctx, tx, r.Actions, referable); err != nil {
			return nil, err
		}
		return t.read(ctx, tx, r, compiled, endpoints, prepared)
	})
}

// Stored tests version of a stored rule, or its current version when
// version is 0, deleted or disabled as it may be.
func (t *Tester) Stored(ctx context.Context, id uuid.UUID, version int, s Sample) (*Result, error) {
	prepared, err := s.prepare(event.Now())
	if err != nil {
		return nil, err
	}
	return t.run(ctx, func(tx pgx.Tx) (*trial, error) {
		var (
			r   *rule.Rule
			err error
		)
		if version == 0 {
			r, err = rule.Get(ctx, tx, id)
		} else {
			r, err = rule.GetVersion(ctx, tx, id, version)
		}
		if err != nil {
			return nil, err
		}
		endpoints, err := webhook.EndpointsAmong(ctx, tx, endpointsOf(r.Actions))
		if err != nil {
			return nil, err
		}
		return t.read(ctx, tx, r, nil, endpoints, prepared)
	})
}

// run reads what a test needs with read in a read-only transaction, which it
// rolls back, then evaluates: the connection is not held while the rule
// runs.
func (t *Tester) run(ctx context.Context, read func(tx pgx.Tx) (*trial, error)) (*Result, error) {
	tr, err := t.readOnly(ctx, read)
	if err != nil {
		return nil, db.Wrap("test rule", err, nil)
	}
	return t.engine.dryRun(ctx, tr)
}

func (t *Tester) readOnly(ctx context.Context, read func(tx pgx.Tx) (*trial, error)) (*trial, error) {
	tx, err := t.pool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	return read(tx)
}

// endpointsOf is the endpoints of actions' webhooks.
func endpointsOf(actions []rule.Action) []uuid.UUID {
	var ids []uuid.UUID
	for _, a := range actions {
		if a.Type == rule.ActionWebhook {
			ids = append(ids, uuid.MustParse(a.EndpointID))
		}
	}
	return ids
}

// trial is what a test evaluates, all read before it evaluates.
type trial struct {
	rule     *rule.Rule
	compiled *rule.Compiled // a draft's; nil for a stored rule
	event    *event.Event   // nil for none
	account  *account.Account
	fx       *dryEffects
}

// read reads what the sample names and what the actions need.
func (t *Tester) read(ctx context.Context, tx pgx.Tx, r *rule.Rule, compiled *rule.Compiled, endpoints map[uuid.UUID]*webhook.Endpoint, s *prepared) (*trial, error) {
	if err := s.resolve(ctx, tx); err != nil {
		return nil, err
	}
	fx := &dryEffects{endpoints: endpoints, room: t.engine.maxCascade,
		events: map[uuid.UUID]*event.Event{}, deliveries: map[uuid.UUID]webhook.Outbound{}}
	if s.event != nil {
		n, err := event.FollowUps(ctx, tx, s.event.Root())
		if err != nil {
			return nil, err
		}
		fx.room -= n
	}
	return &trial{rule: r, compiled: compiled, event: s.event, account: s.account, fx: fx}, nil
}

// dryRun evaluates a trial's rule against its event (if any) and account as
// the live path does, taking the actions of a match through its effects,
// which only take notes.
func (e *Engine) dryRun(ctx context.Context, tr *trial) (*Result, error) {
	r, ev, acct, fx := tr.rule, tr.event, tr.account, tr.fx
	trigger, runID := evaluation.TriggerEvent, (*string)(nil)
	if ev != nil {
		if _, _, err := addWon(acct, ev); err != nil {
			return nil, err
		}
	} else {
		id, err := uuid.NewV7()
		if err != nil {
			return nil, err
		}
		run := evaluation.TriggerManual + ":" + id.String()
		trigger, runID = evaluation.TriggerManual, &run
	}
	before, seen := *acct, *acct
	s := subject{rule: r, account: acct, seen: &seen, event: ev}
	vars := &rule.Vars{Event: eventVar(ev), Account: accountVar(acct), Now: event.Now()}
	p, took, err := e.evaluate(ctx, s, tr.compiled, vars, trigger, runID)
	if err != nil {
		return nil, err
	}
	if p.acts() {
		if err := e.act(ctx, p, fx); err != nil {
			return nil, err
		}
	}
	res := &Result{Evaluation: p.eval, Cost: p.cost, Duration: took, Applies: ev == nil || r.AppliesTo(ev.Type),
		Rule: r, Event: ev, Account: &before, Actions: make([]Planned, len(p.eval.Actions))}
	for i, a := range p.eval.Actions {
		if a.EventID != nil {
			res.Actions[i].Event = fx.events[*a.EventID]
		}
		if a.EndpointID != "" {
			res.Actions[i].Endpoint = fx.endpoints[uuid.MustParse(a.EndpointID)]
		}
		if a.DeliveryID != nil {
			if res.Actions[i].Body, err = fx.deliveries[*a.DeliveryID].Body(); err != nil {
				return nil, err
			}
		}
	}
	return res, nil
}

// dryEffects notes what actions would do. It counts the follow-ups of the
// one cascade a test has, as event_cascades would, and takes an account's
// status as the evaluation holds it.
type dryEffects struct {
	endpoints  map[uuid.UUID]*webhook.Endpoint
	room       int // follow-ups the cascade may still have
	events     map[uuid.UUID]*event.Event
	deliveries map[uuid.UUID]webhook.Outbound
}

func (fx *dryEffects) claimFollowUp(context.Context, uuid.UUID) (bool, error) {
	if fx.room <= 0 {
		return false, nil
	}
	fx.room--
	return true, nil
}

func (fx *dryEffects) emit(_ context.Context, ev *event.Event) error {
	fx.events[ev.ID] = ev
	return nil
}

func (fx *dryEffects) setStatus(_ context.Context, a *account.Account, _ string) (string, error) {
	return a.Status, nil
}

func (fx *dryEffects) deliverable(endpoint uuid.UUID) bool {
	return fx.endpoints[endpoint].Deliverable()
}

func (fx *dryEffects) deliver(out webhook.Outbound) { fx.deliveries[out.ID] = out }

// prepared is a checked sample: what it describes is built, what it names is
// read by resolve.
type prepared struct {
	eventID, accountID uuid.UUID
	event              *event.Event
	account            *account.Account
}

// ErrUnknownEvent is returned when a test names an event that does not
// exist. A test that names an unknown account gets ErrUnknownAccount.
var ErrUnknownEvent = apperr.InvalidFields("unknown event",
	apperr.FieldError{Location: "body.event_id", Message: "no event has this id"})

// prepare checks that s is given one way, and what it describes as a client
// posting it would be; it builds the event and account described.
func (s Sample) prepare(now time.Time) (*prepared, error) {
	var fields []apperr.FieldError
	bad := func(location, msg string) {
		fields = append(fields, apperr.FieldError{Location: location, Message: msg})
	}
	describedEvent, describedAccount := s.Event != nil, s.Account != nil
	storedAccount := s.AccountID != uuid.Nil
	switch {
	case s.EventID != uuid.Nil:
		if describedEvent {
			bad("body.event", "give event_id or event, not both")
		}
		if describedAccount || storedAccount {
			bad("body.event_id", "a stored event is tested with its own account: leave out account and account_id")
		}
	case describedAccount && storedAccount:
		bad("body.account_id", "give account_id or account, not both")
	case !describedAccount && !storedAccount:
		if describedEvent {
			bad("body.event", "an event needs an account or an account_id")
		} else {
			bad("body", "give event_id, or an account or account_id with or without an event")
		}
	}
	if len(fields) > 0 {
		return nil, apperr.InvalidFields("invalid test", fields...)
	}
	out := &prepared{eventID: s.EventID, accountID: s.AccountID}
	if describedAccount {
		a, err := s.Account.build(now)
		if err != nil {
			return nil, err
		}
		out.account = a
	}
	if describedEvent {
		id := s.AccountID
		if out.account != nil {
			id = out.account.ID
		}
		ev, err := s.Event.build(id, now)
		if err != nil {
			return nil, err
		}
		out.event = ev
	}
	return out, nil
}

func (in *SampleAccount) build(now time.Time) (*account.Account, error) {
	var fields []apperr.FieldError
	bad := func(field, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: "body.account." + field, Message: msg, Value: value})
	}
	name := strings.TrimSpace(in.Name)
	if utf8.RuneCountInString(name) > account.MaxNameLength {
		bad("name", fmt.Sprintf("must be at most %d characters", account.MaxNameLength), nil)
	}
	status := in.Status
	if status == "" {
		status = account.StatusActive
	}
	if !rule.StatusPattern.MatchString(status) {
		bad("status", "must match "+rule.StatusPattern.String(), status)
	}
	if in.WonCount < 0 {
		bad("won_count", "must not be negative", in.WonCount)
	}
	metadata := in.Metadata
	if metadata == nil {
		metadata = map[string]any{}
	}
	if msg := jsonvalue.Check(metadata); msg != "" {
		bad("metadata", msg, nil)
	} else if b, err := json.Marshal(metadata); err != nil || len(b) > account.MaxMetadataBytes {
		bad("metadata", fmt.Sprintf("must encode to at most %d bytes of JSON", account.MaxMetadataBytes), nil)
	}
	if len(fields) > 0 {
		return nil, apperr.InvalidFields("invalid account", fields...)
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	created := now
	if in.CreatedAt != nil {
		created = in.CreatedAt.UTC().Truncate(time.Microsecond)
	}
	return &account.Account{ID: id, Name: name, Status: status, Metadata: metadata, WonCount: in.WonCount,
		WonTotal: in.WonTotal, CreatedAt: created, UpdatedAt: created, ActivatedAt: &created}, nil
}

func (in *SampleEvent) build(accountID uuid.UUID, now time.Time) (*event.Event, error) {
	ein := event.Input{AccountID: accountID, Type: in.Type, Payload: in.Payload, OccurredAt: in.OccurredAt}
	fields := ein.Validate("body.event", now)
	if in.Depth < 0 || in.Depth > MaxSampleDepth {
		fields = append(fields, apperr.FieldError{Location: "body.event.depth",
			Message: fmt.Sprintf("must be from 0 to %d", MaxSampleDepth), Value: in.Depth})
	}
	if len(fields) > 0 {
		return nil, apperr.InvalidFields("invalid event", fields...)
	}
	if ein.PayloadTooLarge() {
		return nil, &apperr.Error{Code: apperr.TooLarge, Message: "event payload too large", Fields: []apperr.FieldError{{
			Location: "body.event.payload", Message: fmt.Sprintf("must encode to at most %d bytes of JSON", event.MaxPayloadBytes)}}}
	}
	ev, err := event.New(ein, now)
	if err != nil {
		return nil, err
	}
	ev.Depth = in.Depth
	return ev, nil
}

// resolve reads the stored event or account s names.
func (s *prepared) resolve(ctx context.Context, q db.Querier) error {
	if s.eventID != uuid.Nil {
		ev, err := event.GetForEngine(ctx, q, s.eventID)
		if errors.Is(err, event.ErrNotFound) {
			return ErrUnknownEvent
		} else if err != nil {
			return err
		}
		s.event = ev
		s.accountID = ev.AccountID
	}
	if s.account == nil {
		a, err := account.Get(ctx, q, s.accountID)
		if errors.Is(err, account.ErrNotFound) {
			return ErrUnknownAccount
		} else if err != nil {
			return err
		}
		s.account = a
	}
	return nil
}
