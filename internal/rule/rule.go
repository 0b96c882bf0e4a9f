// Package rule is the rule domain: conditions written in CEL over an event,
// its account and the time, with actions to take when they match. Rules are
// versioned; every change makes a new version and evaluations record the
// version they used.
package rule

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/db"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/jsonvalue"
	"github.com/ctrader/ctrader/internal/page"
	"github.com/ctrader/ctrader/internal/patch"
)

// Action types.
const (
	ActionEmitEvent        = "emit_event"         // post a follow-up event for the same account
	ActionSetAccountStatus = "set_account_status" // change the account's status
	ActionWebhook          = "webhook"            // deliver a signed message to a webhook endpoint
)

// ActionTypes lists every action type, in the order the API documents them.
var ActionTypes = []string{ActionEmitEvent, ActionSetAccountStatus, ActionWebhook}

// Limits on input.
const (
	MaxNameLength        = 200
	MaxDescriptionLength = 2000
	MaxEventTypes        = 20
	MaxActions           = 10
)

// StatusPattern is what an account status set by a rule may look like.
var StatusPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Errors.
var (
	ErrNotFound  = apperr.New(apperr.NotFound, "rule not found")
	ErrNameTaken = apperr.New(apperr.Conflict, "a rule with this name exists")
	ErrDeleted   = apperr.New(apperr.Conflict, "the rule is deleted")
	ErrDisabled  = apperr.New(apperr.Conflict, "the rule is disabled; enable it to evaluate it")
)

// Action is one thing a rule does when it matches. Type selects which fields
// apply; new action types add fields without changing existing ones.
type Action struct {
	Type string `json:"type"`
	// emit_event
	EventType   string         `json:"event_type,omitempty"`
	Payload     map[string]any `json:"payload,omitempty"`
	PayloadExpr string         `json:"payload_expr,omitempty"`
	// set_account_status
	Status string `json:"status,omitempty"`
	// webhook
	EndpointID string `json:"endpoint_id,omitempty"`
}

// Rule is one version of a rule.
type Rule struct {
	ID          uuid.UUID
	Name        string
	Description string
	EventTypes  []string // empty: any type (for unscheduled rules)
	Scheduled   bool
	Condition   string
	Actions     []Action
	Enabled     bool
	Version     int
	CreatedAt   time.Time
	UpdatedAt   time.Time
	DeletedAt   *time.Time
}

// Input is a rule's writable fields.
type Input struct {
	Name        string
	Description string
	EventTypes  []string
	Scheduled   bool
	Condition   string
	Actions     []Action
	Enabled     bool
}

// Patch changes some fields; nil fields stay as they are.
type Patch struct {
	Name        *string
	Description *string
	EventTypes  *[]string
	Scheduled   *bool
	Condition   *string
	Actions     *[]Action
	Enabled     *bool
}

func (p Patch) apply(r *Rule) Input {
	in := Input{Name: r.Name, Description: r.Description, EventTypes: r.EventTypes, Scheduled: r.Scheduled,
		Condition: r.Condition, Actions: r.Actions, Enabled: r.Enabled}
	patch.Set(&in.Name, p.Name)
	patch.Set(&in.Description, p.Description)
	patch.Set(&in.EventTypes, p.EventTypes)
	patch.Set(&in.Scheduled, p.Scheduled)
	patch.Set(&in.Condition, p.Condition)
	patch.Set(&in.Actions, p.Actions)
	patch.Set(&in.Enabled, p.Enabled)
	return in
}

func (in Input) equal(r *Rule) bool {
	a, _ := json.Marshal(in.Actions)
	b, _ := json.Marshal(r.Actions)
	return in.Name == r.Name && in.Description == r.Description && slices.Equal(in.EventTypes, r.EventTypes) &&
		in.Scheduled == r.Scheduled && in.Condition == r.Condition && string(a) == string(b) && in.Enabled == r.Enabled
}

// normalize trims and checks in, compiling its expressions.
func (c *Compiler) normalize(in *Input) error {
	var fields []apperr.FieldError
	bad := func(location, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: location, Message: msg, Value: value})
	}
	in.Name = strings.TrimSpace(in.Name)
	switch n := utf8.RuneCountInString(in.Name); {
	case n == 0:
		bad("body.name", "must not be blank", nil)
	case n > MaxNameLength:
		bad("body.name", fmt.Sprintf("must be at most %d characters", MaxNameLength), nil)
	}
	if utf8.RuneCountInString(in.Description) > MaxDescriptionLength {
		bad("body.description", fmt.Sprintf("must be at most %d characters", MaxDescriptionLength), nil)
	}
	if in.EventTypes == nil {
		in.EventTypes = []string{}
	}
	if len(in.EventTypes) > MaxEventTypes {
		bad("body.event_types", fmt.Sprintf("at most %d types", MaxEventTypes), nil)
	}
	for i, t := range in.EventTypes {
		if len(t) == 0 || len(t) > event.MaxTypeLength || !event.TypePattern.MatchString(t) {
			bad(fmt.Sprintf("body.event_types[%d]", i), "not a valid event type", t)
		}
	}
	slices.Sort(in.EventTypes)
	in.EventTypes = slices.Compact(in.EventTypes)
	if in.Actions == nil {
		in.Actions = []Action{}
	}
	if len(in.Actions) > MaxActions {
		bad("body.actions", fmt.Sprintf("at most %d actions", MaxActions), nil)
	}
	for i := range in.Actions {
		fields = append(fields, checkAction(&in.Actions[i], fmt.Sprintf("body.actions[%d]", i))...)
	}
	_, celFields := c.compile(in.Condition, in.Actions, "body", true)
	fields = append(fields, celFields...)
	if len(fields) > 0 {
		return apperr.InvalidFields("invalid rule", fields...)
	}
	return nil
}

func checkAction(a *Action, location string) []apperr.FieldError {
	var fields []apperr.FieldError
	bad := func(field, msg string, value any) {
		fields = append(fields, apperr.FieldError{Location: location + field, Message: msg, Value: value})
	}
	switch a.Type {
	case ActionEmitEvent:
		switch {
		case a.EventType == "":
			bad(".event_type", "emit_event needs an event_type", nil)
		case len(a.EventType) > event.MaxTypeLength || !event.TypePattern.MatchString(a.EventType):
			bad(".event_type", "not a valid event type", a.EventType)
		}
		if a.Payload != nil && a.PayloadExpr != "" {
			bad("", "give payload or payload_expr, not both", nil)
		}
		if msg := jsonvalue.Check(a.Payload); msg != "" {
			bad(".payload", msg, nil)
		} else if b, _ := json.Marshal(a.Payload); len(b) > event.MaxPayloadBytes {
			bad(".payload", fmt.Sprintf("must encode to at most %d bytes of JSON", event.MaxPayloadBytes), nil)
		}
		if a.EventType == event.TypeWon && a.PayloadExpr == "" {
			if _, ok := jsonvalue.Amount(a.Payload["amount"]); !ok {
				bad(".payload.amount", "a won event needs a numeric amount", nil)
			}
		}
		if a.Status != "" {
			bad(".status", "only for set_account_status", nil)
		}
		if a.EndpointID != "" {
			bad(".endpoint_id", "only for webhook", nil)
		}
	case ActionSetAccountStatus:
		switch {
		case a.Status == "":
			bad(".status", "set_account_status needs a status", nil)
		case a.Status == account.StatusPending || !StatusPattern.MatchString(a.Status):
			bad(".status", "must match "+StatusPattern.String()+" and not be pending", a.Status)
		}
		if a.EventType != "" || a.Payload != nil || a.PayloadExpr != "" || a.EndpointID != "" {
			bad("", "set_account_status takes only a status", nil)
		}
	case ActionWebhook:
		if id, err := uuid.Parse(a.EndpointID); err != nil {
			bad(".endpoint_id", "webhook needs the id of a webhook endpoint", a.EndpointID)
		} else {
			a.EndpointID = id.String()
		}
		if a.EventType != "" || a.Payload != nil || a.PayloadExpr != "" || a.Status != "" {
			bad("", "webhook takes only an endpoint_id", nil)
		}
	default:
		bad(".type", "unknown action type; one of "+strings.Join(ActionTypes, ", "), a.Type)
	}
	return fields
}

// EndpointCheck reports whether id names a webhook endpoint that exists and
// is not deleted, through q, the transaction that writes the rule; it should
// hold the endpoint's row until that transaction ends. webhook.Usable is one.
type EndpointCheck func(ctx context.Context, q db.Querier, id uuid.UUID) (bool, error)

// requireEndpoints checks that every webhook action names an endpoint that
// exists and is not deleted.
func (s *Service) requireEndpoints(ctx context.Context, tx pgx.Tx, actions []Action) error {
	var fields []apperr.FieldError
	for i, a := range actions {
		if a.Type != ActionWebhook {
			continue
		}
		ok, err := s.endpoints(ctx, tx, uuid.MustParse(a.EndpointID))
		if err != nil {
			return err
		}
		if !ok {
			fields = append(fields, apperr.FieldError{Location: fmt.Sprintf("body.actions[%d].endpoint_id", i),
				Message: "no webhook endpoint has this id", Value: a.EndpointID})
		}
	}
	if len(fields) > 0 {
		return apperr.InvalidFields("unknown webhook endpoint", fields...)
	}
	return nil
}

// Service manages rules.
type Service struct {
	pool      *pgxpool.Pool
	compiler  *Compiler
	endpoints EndpointCheck
}

// NewService returns a Service that checks conditions with compiler and
// the endpoints of webhook actions with endpoints, which is required.
func NewService(pool *pgxpool.Pool, compiler *Compiler, endpoints EndpointCheck) *Service {
	if endpoints == nil {
		panic("rule: an endpoint check is required")
	}
	return &Service{pool: pool, compiler: compiler, endpoints: endpoints}
}

// Create checks and stores a new rule at version 1.
func (s *Service) Create(ctx context.Context, in Input) (*Rule, error) {
	if err := s.compiler.normalize(&in); err != nil {
		return nil, err
	}
	id, err := uuid.NewV7()
	if err != nil {
		return nil, err
	}
	var r *Rule
	err = db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.requireEndpoints(ctx, tx, in.Actions); err != nil {
			return err
		}
		var err error
		r, err = insert(ctx, tx, id, in)
		return err
	})
	if err != nil {
		return nil, wrap("create rule", err)
	}
	return r, nil
}

// Get returns a rule, deleted or not.
func (s *Service) Get(ctx context.Context, id uuid.UUID) (*Rule, error) {
	return Get(ctx, s.pool, id)
}

// Filter narrows a list of rules.
type Filter struct {
	IncludeDeleted bool
	Enabled        *bool
	Scheduled      *bool
}

// List returns one page of rules, newest first.
func (s *Service) List(ctx context.Context, f Filter, p page.Params) (page.Page[*Rule], error) {
	return List(ctx, s.pool, f, p)
}

// Update applies a patch. A patch that changes anything makes a new version;
// one that changes nothing returns the rule as it is.
func (s *Service) Update(ctx context.Context, id uuid.UUID, p Patch) (*Rule, error) {
	var out *Rule
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := getForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.DeletedAt != nil {
			return ErrDeleted
		}
		in := p.apply(cur)
		if err := s.compiler.normalize(&in); err != nil {
			return err
		}
		if in.equal(cur) {
			out = cur
			return nil
		}
		if err := s.requireEndpoints(ctx, tx, in.Actions); err != nil {
			return err
		}
		out, err = update(ctx, tx, cur, in, false)
		return err
	})
	if err != nil {
		return nil, wrap("update rule", err)
	}
	return out, nil
}

// Delete disables the rule and marks it deleted; its versions and
// evaluations stay. Deleting a deleted rule changes nothing.
func (s *Service) Delete(ctx context.Context, id uuid.UUID) error {
	err := db.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		cur, err := getForUpdate(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.DeletedAt != nil {
			return nil
		}
		in := Patch{}.apply(cur)
		in.Enabled = false
		_, err = update(ctx, tx, cur, in, true)
		return err
	})
	if err != nil {
		return wrap("delete rule", err)
	}
	return nil
}

func wrap(action string, err error) error {
	if code, constraint := db.ConstraintOf(err); code == db.CodeUniqueViolation && constraint == "rules_name_key" {
		return ErrNameTaken
	}
	return db.Wrap(action, err, ErrNotFound)
}
