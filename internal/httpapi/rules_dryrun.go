package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/rule"
)

// TestEvent is an event described for a rule test. It is checked as a posted
// event is, and stored nowhere.
type TestEvent struct {
	Type       string         `json:"type" minLength:"1" maxLength:"100" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:-]*$" doc:"Event type; won events must carry a numeric payload.amount" example:"won"`
	Payload    map[string]any `json:"payload,omitempty" doc:"JSON object, at most 32 KiB encoded and 32 levels deep" example:"{\"amount\": 1500}"`
	OccurredAt *time.Time     `json:"occurred_at,omitempty" doc:"RFC 3339 time; defaults to now; at most 24 hours ahead"`
	Depth      int            `json:"depth,omitempty" minimum:"0" maximum:"1000" doc:"Where the event sits in a chain of follow-ups (0 for a posted event); at MAX_EVENT_DEPTH its emit_event actions are skipped"`
}

// TestAccount is an account described for a rule test, stored nowhere.
type TestAccount struct {
	Name      string         `json:"name,omitempty" maxLength:"200" example:"John Doe"`
	Status    string         `json:"status,omitempty" maxLength:"32" doc:"Defaults to active" example:"active"`
	WonCount  int64          `json:"won_count,omitempty" minimum:"0" example:"3"`
	WonTotal  Decimal        `json:"won_total,omitempty" doc:"Before the event: a won event's amount is added to it, as the events worker does" example:"2500"`
	Metadata  map[string]any `json:"metadata,omitempty" doc:"JSON object, at most 16 KiB encoded" example:"{\"region\": \"EU\"}"`
	CreatedAt *time.Time     `json:"created_at,omitempty" doc:"Defaults to now"`
}

// RuleTestSample is what a rule is tested against, given one way: event_id
// alone; event with account_id or account; or account_id or account alone.
type RuleTestSample struct {
	EventID   string       `json:"event_id,omitempty" format:"uuid" doc:"A stored event, tested against its own account as the account stands now (with the event's won amount added if the event is still pending)"`
	Event     *TestEvent   `json:"event,omitempty" doc:"An event described here; give account_id or account with it"`
	AccountID string       `json:"account_id,omitempty" format:"uuid" doc:"A stored account: the event's account, or without an event an evaluation such as scheduled and manual ones make"`
	Account   *TestAccount `json:"account,omitempty" doc:"An account described here, instead of account_id"`
}

func (s *RuleTestSample) domain() engine.Sample {
	out := engine.Sample{}
	// The schema has checked the formats; the nil id names nothing.
	out.EventID, _ = uuid.Parse(s.EventID)
	out.AccountID, _ = uuid.Parse(s.AccountID)
	if e := s.Event; e != nil {
		out.Event = &engine.SampleEvent{Type: e.Type, Payload: e.Payload, OccurredAt: e.OccurredAt, Depth: e.Depth}
	}
	if a := s.Account; a != nil {
		out.Account = &engine.SampleAccount{Name: a.Name, Status: a.Status, WonCount: a.WonCount, WonTotal: a.WonTotal.Decimal,
			Metadata: a.Metadata, CreatedAt: a.CreatedAt}
	}
	return out
}

// check refuses the nil id, which the service takes for "not given".
func (s *RuleTestSample) check() error {
	isNil := func(id string) bool {
		parsed, err := uuid.Parse(id)
		return id != "" && err == nil && parsed == uuid.Nil
	}
	switch {
	case isNil(s.EventID):
		return engine.ErrUnknownEvent
	case isNil(s.AccountID):
		return engine.ErrUnknownAccount
	}
	return nil
}

// RuleTest is what testing a rule found. Nothing was written, queued or sent.
type RuleTest struct {
	Matched      bool             `json:"matched" doc:"Whether the condition matched"`
	Error        string           `json:"error,omitempty" doc:"Why the condition could not be evaluated (a missing key, the cost limit, the time limit); matched is then false" example:"no such key: region"`
	Cost         uint64           `json:"cost" doc:"CEL cost units the condition used; an evaluation stops at 1,000,000" example:"7"`
	DurationMS   float64          `json:"duration_ms" doc:"Time the condition took, in milliseconds; an evaluation stops at 1,000" example:"0.021"`
	Trigger      string           `json:"trigger" enum:"event,manual" doc:"event with an event; manual without one, as a manual or scheduled evaluation"`
	Applies      bool             `json:"applies" doc:"false when the rule is not evaluated for events of this type (its event_types, or scheduled with none); the condition is evaluated anyway"`
	DepthLimited bool             `json:"depth_limited" doc:"The event is at the maximum depth: emit_event actions are skipped"`
	RuleID       string           `json:"rule_id,omitempty" format:"uuid" doc:"The stored rule tested; absent for a rule given in the request"`
	RuleVersion  int              `json:"rule_version,omitempty" doc:"The version tested; absent for a rule given in the request"`
	Event        *Event           `json:"event,omitempty" doc:"The event evaluated; one described in the request has an id made for the test"`
	Account      Account          `json:"account" doc:"The account as the condition saw it; one described in the request has an id made for the test"`
	Actions      []RuleTestAction `json:"actions" doc:"What the matched rule would do, in the rule's order; empty when it did not match"`
}

// RuleTestAction is what one action of a tested rule would do.
type RuleTestAction struct {
	Type           string          `json:"type" enum:"emit_event,set_account_status,webhook" example:"emit_event"`
	EventType      string          `json:"event_type,omitempty" doc:"emit_event: the type it would emit" example:"vip_candidate"`
	Event          *Event          `json:"event,omitempty" doc:"emit_event: the follow-up event that would be posted, its payload rendered, with an id made for the test"`
	Status         string          `json:"status,omitempty" doc:"set_account_status: the status it would set" example:"vip"`
	PreviousStatus string          `json:"previous_status,omitempty" doc:"set_account_status: the status before" example:"active"`
	EndpointID     string          `json:"endpoint_id,omitempty" format:"uuid" doc:"webhook: the endpoint"`
	EndpointURL    string          `json:"endpoint_url,omitempty" doc:"webhook: where the delivery would go" example:"https://example.com/hooks/ctrader"`
	Body           json.RawMessage `json:"body,omitempty" doc:"webhook: the message that would be signed and sent, as it would be sent (a test signs nothing); the evaluation id in it is made for the test, and a rule given in the request has the nil id and version 0"`
	Skipped        string          `json:"skipped,omitempty" doc:"Why the action would not be taken: depth_limit, cascade_limit or endpoint_disabled, as in evaluations" example:"endpoint_disabled"`
	Error          string          `json:"error,omitempty" doc:"Why the action would fail, such as a payload expression error"`
}

func toRuleTest(res *engine.Result) RuleTest {
	ev := res.Evaluation
	out := RuleTest{
		Matched: ev.Matched, Cost: res.Cost, DurationMS: float64(res.Duration.Microseconds()) / 1000,
		Trigger: ev.Trigger, Applies: res.Applies, DepthLimited: ev.DepthLimited,
		Account: toAccount(res.Account), Actions: make([]RuleTestAction, len(ev.Actions)),
	}
	if ev.Error != nil {
		out.Error = *ev.Error
	}
	if res.Rule.ID != uuid.Nil {
		out.RuleID, out.RuleVersion = res.Rule.ID.String(), res.Rule.Version
	}
	if res.Event != nil {
		e := toEvent(res.Event)
		out.Event = &e
	}
	for i, a := range ev.Actions {
		planned := res.Actions[i]
		act := RuleTestAction{Type: a.Type, EventType: a.EventType, Status: a.Status, PreviousStatus: a.PreviousStatus,
			EndpointID: a.EndpointID, Skipped: a.Skipped, Error: a.Error, Body: planned.Body}
		if planned.Event != nil {
			e := toEvent(planned.Event)
			act.Event = &e
		}
		if planned.Endpoint != nil {
			act.EndpointURL = planned.Endpoint.URL
		}
		out.Actions[i] = act
	}
	return out
}

type ruleTestOutput struct {
	Body RuleTest
}

// Examples of the test operations' request bodies.
var (
	testRuleExamples = map[string]*huma.Example{
		"inline":        {Summary: "An event and an account described here", Value: exampleInlineTest},
		"stored-event":  {Summary: "A stored event and its account", Value: exampleStoredEventTest},
		"account-alone": {Summary: "An account without an event, as a scheduled evaluation sees it", Value: exampleAccountTest},
	}
	testStoredRuleExamples = map[string]*huma.Example{
		"stored-event": {Summary: "A stored event and its account", Value: map[string]any{"event_id": "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"}},
		"earlier-version": {Summary: "Version 1 of the rule, against an event described here", Value: map[string]any{
			"version": 1, "event": map[string]any{"type": "won", "payload": map[string]any{"amount": 1500}},
			"account_id": "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"}},
		"account-alone": {Summary: "An account without an event", Value: map[string]any{"account_id": "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b"}},
	}
	exampleInlineTest = map[string]any{
		"event_types": []string{"won"},
		"condition":   "event.payload.amount > 1000",
		"actions": []map[string]any{
			{"type": "emit_event", "event_type": "vip_candidate", "payload_expr": "{'amount': event.payload.amount}"},
			{"type": "set_account_status", "status": "vip"},
		},
		"event":   map[string]any{"type": "won", "payload": map[string]any{"amount": 1500}},
		"account": map[string]any{"name": "John Doe", "status": "active", "won_count": 2, "won_total": 800},
	}
	exampleStoredEventTest = map[string]any{
		"condition": "account.won_total >= 10000",
		"actions":   []map[string]any{{"type": "set_account_status", "status": "vip"}},
		"event_id":  "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b",
	}
	exampleAccountTest = map[string]any{
		"scheduled":  true,
		"condition":  "account.status == 'active' && account.won_count == 0",
		"actions":    []map[string]any{{"type": "webhook", "endpoint_id": "0192a8e4-7a2b-7c3a-9d2b-3c4d5e6f7a8b"}},
		"account_id": "0192a8e4-6f1e-7c3a-9d2b-3c4d5e6f7a8b",
	}
)

// withExamples returns op with examples of its JSON request body. Each
// registration needs a request body of its own: Huma fills in its schema from
// the registry of the API it is registered with.
func withExamples(op huma.Operation, examples map[string]*huma.Example) huma.Operation {
	op.RequestBody = &huma.RequestBody{Content: map[string]*huma.MediaType{"application/json": {Examples: examples}}}
	return op
}

var opTestRule = huma.Operation{
	OperationID: "testRule",
	Method:      http.MethodPost,
	Path:        "/v1/rules/test",
	Summary:     "Test a rule without storing it",
	Description: "Evaluates a rule given as in createRule (the name may be left out) against an event and an account, " +
		"described here or stored, or against an account alone, with the bounds of a real evaluation, and answers what its " +
		"actions would do: follow-up events with their payloads, status changes, webhook bodies and where they would go. " +
		"Nothing is written, queued or sent. A rule that createRule would refuse is refused with the same 422.",
	Tags:         []string{"rules"},
	MaxBodyBytes: 320 * 1024,
	Errors:       []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type testRuleInput struct {
	Body struct {
		Name        string       `json:"name,omitempty" maxLength:"200" doc:"Optional here; webhook bodies carry it" example:"big win"`
		Description string       `json:"description,omitempty" maxLength:"2000"`
		EventTypes  []string     `json:"event_types,omitempty" maxItems:"20" doc:"Event types the rule is for; applies says whether the event's type is one of them" example:"[\"won\"]"`
		Scheduled   bool         `json:"scheduled,omitempty"`
		Condition   string       `json:"condition" minLength:"1" maxLength:"4096" example:"event.payload.amount > 1000"`
		Actions     []RuleAction `json:"actions,omitempty" maxItems:"10"`
		Enabled     *bool        `json:"enabled,omitempty" doc:"Accepted so that a createRule body can be tested as it is; a test evaluates the rule either way"`
		RuleTestSample
	}
}

func (h *handlers) testRule(ctx context.Context, in *testRuleInput) (*ruleTestOutput, error) {
	b := &in.Body
	if err := b.check(); err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Tester.Draft(ctx, rule.Input{
		Name: b.Name, Description: b.Description, EventTypes: b.EventTypes, Scheduled: b.Scheduled,
		Condition: b.Condition, Actions: domainActions(b.Actions), Enabled: b.Enabled == nil || *b.Enabled,
	}, b.domain())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &ruleTestOutput{Body: toRuleTest(res)}, nil
}

var opTestStoredRule = huma.Operation{
	OperationID: "testStoredRule",
	Method:      http.MethodPost,
	Path:        "/v1/rules/{id}/test",
	Summary:     "Test a stored rule",
	Description: "testRule for a stored rule, at its current version or at an earlier one (version), enabled, disabled or deleted. " +
		"Nothing is written, queued or sent.",
	Tags:         []string{"rules"},
	MaxBodyBytes: 64 * 1024,
	Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type testStoredRuleInput struct {
	RulePath
	Body struct {
		Version int `json:"version,omitempty" minimum:"1" doc:"The version to test; defaults to the current one" example:"1"`
		RuleTestSample
	}
}

func (h *handlers) testStoredRule(ctx context.Context, in *testStoredRuleInput) (*ruleTestOutput, error) {
	b := &in.Body
	if err := b.check(); err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Tester.Stored(ctx, in.id(), b.Version, b.domain())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &ruleTestOutput{Body: toRuleTest(res)}, nil
}
