package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/engine"
	"github.com/ctrader/ctrader/internal/rule"
)

// RuleAction is one thing a rule does when it matches. type selects the
// fields that apply.
type RuleAction struct {
	Type        string         `json:"type" enum:"emit_event,set_account_status,webhook" doc:"emit_event posts a follow-up event for the same account; set_account_status changes the account's status; webhook delivers a signed message to a webhook endpoint"`
	EventType   string         `json:"event_type,omitempty" maxLength:"100" doc:"emit_event: the follow-up event's type" example:"vip_candidate"`
	Payload     map[string]any `json:"payload,omitempty" doc:"emit_event: a static payload, at most 32 KiB encoded and 32 levels deep"`
	PayloadExpr string         `json:"payload_expr,omitempty" maxLength:"4096" doc:"emit_event: a CEL expression over event, account and now that returns the payload object, instead of payload" example:"{'amount': event.payload.amount}"`
	Status      string         `json:"status,omitempty" maxLength:"32" doc:"set_account_status: the new status" example:"vip"`
	EndpointID  string         `json:"endpoint_id,omitempty" maxLength:"64" doc:"webhook: the id of a webhook endpoint"`
}

func (a RuleAction) domain() rule.Action {
	return rule.Action{Type: a.Type, EventType: a.EventType, Payload: a.Payload, PayloadExpr: a.PayloadExpr, Status: a.Status, EndpointID: a.EndpointID}
}

func domainActions(in []RuleAction) []rule.Action {
	if in == nil {
		return nil
	}
	out := make([]rule.Action, len(in))
	for i, a := range in {
		out[i] = a.domain()
	}
	return out
}

// Rule is a rule as clients see it.
type Rule struct {
	ID          string       `json:"id" format:"uuid"`
	Name        string       `json:"name" example:"big win"`
	Description string       `json:"description"`
	EventTypes  []string     `json:"event_types" doc:"Event types the rule is evaluated for; empty means every type (for rules that are not scheduled)"`
	Scheduled   bool         `json:"scheduled" doc:"Evaluated against every provisioned account on the RULES_EVAL_INTERVAL schedule"`
	Condition   string       `json:"condition" doc:"CEL expression over event, account and now" example:"event.payload.amount > 1000"`
	Actions     []RuleAction `json:"actions"`
	Enabled     bool         `json:"enabled"`
	Version     int          `json:"version" doc:"Starts at 1; every change adds one"`
	CreatedAt   time.Time    `json:"created_at"`
	UpdatedAt   time.Time    `json:"updated_at"`
	DeletedAt   *time.Time   `json:"deleted_at,omitempty" doc:"Set when the rule was deleted; a deleted rule is disabled and kept for history"`
}

func toRule(r *rule.Rule) Rule {
	out := Rule{
		ID: r.ID.String(), Name: r.Name, Description: r.Description, EventTypes: r.EventTypes,
		Scheduled: r.Scheduled, Condition: r.Condition, Enabled: r.Enabled, Version: r.Version,
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt, DeletedAt: r.DeletedAt,
		Actions: make([]RuleAction, len(r.Actions)),
	}
	if out.EventTypes == nil {
		out.EventTypes = []string{}
	}
	for i, a := range r.Actions {
		out.Actions[i] = RuleAction{Type: a.Type, EventType: a.EventType, Payload: a.Payload, PayloadExpr: a.PayloadExpr, Status: a.Status, EndpointID: a.EndpointID}
	}
	return out
}

var opCreateRule = huma.Operation{
	OperationID:   "createRule",
	Method:        http.MethodPost,
	Path:          "/v1/rules",
	Summary:       "Create a rule",
	Description:   "The condition and payload expressions are compiled now: a syntax or type error is a 422 that gives the line and column.",
	Tags:          []string{"rules"},
	DefaultStatus: http.StatusCreated,
	MaxBodyBytes:  256 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type createRuleInput struct {
	Body struct {
		Name        string       `json:"name" minLength:"1" maxLength:"200" doc:"Unique among rules that are not deleted" example:"big win"`
		Description string       `json:"description,omitempty" maxLength:"2000"`
		EventTypes  []string     `json:"event_types,omitempty" maxItems:"20" doc:"Event types to evaluate the rule for; empty or absent means every type (unless scheduled)" example:"[\"won\"]"`
		Scheduled   bool         `json:"scheduled,omitempty" doc:"Also evaluate against every provisioned account on the schedule"`
		Condition   string       `json:"condition" minLength:"1" maxLength:"4096" example:"event.payload.amount > 1000"`
		Actions     []RuleAction `json:"actions,omitempty" maxItems:"10"`
		Enabled     *bool        `json:"enabled,omitempty" doc:"Defaults to true"`
	}
}

type ruleOutput struct {
	Body Rule
}

type createRuleOutput struct {
	Location string `header:"Location" doc:"URL of the rule"`
	Body     Rule
}

func (h *handlers) createRule(ctx context.Context, in *createRuleInput) (*createRuleOutput, error) {
	b := in.Body
	enabled := b.Enabled == nil || *b.Enabled
	r, err := h.Rules.Create(ctx, rule.Input{
		Name: b.Name, Description: b.Description, EventTypes: b.EventTypes, Scheduled: b.Scheduled,
		Condition: b.Condition, Actions: domainActions(b.Actions), Enabled: enabled,
	})
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &createRuleOutput{Location: "/v1/rules/" + r.ID.String(), Body: toRule(r)}, nil
}

// RulePath is the path parameter of operations on one rule.
type RulePath struct {
	ID string `path:"id" format:"uuid" doc:"Rule id"`
}

func (in RulePath) id() uuid.UUID {
	id, _ := uuid.Parse(in.ID)
	return id
}

var opGetRule = huma.Operation{
	OperationID: "getRule",
	Method:      http.MethodGet,
	Path:        "/v1/rules/{id}",
	Summary:     "Get a rule",
	Description: "Deleted rules are still returned, with deleted_at set.",
	Tags:        []string{"rules"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) getRule(ctx context.Context, in *RulePath) (*ruleOutput, error) {
	r, err := h.Rules.Get(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &ruleOutput{Body: toRule(r)}, nil
}

var opListRules = huma.Operation{
	OperationID: "listRules",
	Method:      http.MethodGet,
	Path:        "/v1/rules",
	Summary:     "List rules",
	Description: "Newest first; deleted rules only with include_deleted=true. Pass next_cursor back as cursor to read the following page; it is absent on the last page.",
	Tags:        []string{"rules"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listRulesInput struct {
	PageQuery
	IncludeDeleted bool   `query:"include_deleted" doc:"Include deleted rules"`
	Enabled        string `query:"enabled" enum:"true,false" doc:"Only enabled (true) or disabled (false) rules"`
	Scheduled      string `query:"scheduled" enum:"true,false" doc:"Only scheduled (true) or unscheduled (false) rules"`
}

type listRulesOutput struct {
	Body struct {
		Items      []Rule `json:"items"`
		NextCursor string `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func optionalBool(s string) *bool {
	if s == "" {
		return nil
	}
	b := s == "true"
	return &b
}

func (h *handlers) listRules(ctx context.Context, in *listRulesInput) (*listRulesOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Rules.List(ctx, rule.Filter{IncludeDeleted: in.IncludeDeleted, Enabled: optionalBool(in.Enabled), Scheduled: optionalBool(in.Scheduled)}, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listRulesOutput{}
	out.Body.Items = make([]Rule, len(res.Items))
	for i, r := range res.Items {
		out.Body.Items[i] = toRule(r)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

var opUpdateRule = huma.Operation{
	OperationID:  "updateRule",
	Method:       http.MethodPatch,
	Path:         "/v1/rules/{id}",
	Summary:      "Change a rule",
	Description:  "Fields that are present replace the rule's; absent fields stay. A change makes a new version; evaluations record the version they used. Deleted rules cannot be changed (409).",
	Tags:         []string{"rules"},
	MaxBodyBytes: 256 * 1024,
	Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type updateRuleInput struct {
	RulePath
	Body struct {
		Name        *string       `json:"name,omitempty" minLength:"1" maxLength:"200"`
		Description *string       `json:"description,omitempty" maxLength:"2000"`
		EventTypes  *[]string     `json:"event_types,omitempty" maxItems:"20"`
		Scheduled   *bool         `json:"scheduled,omitempty"`
		Condition   *string       `json:"condition,omitempty" minLength:"1" maxLength:"4096"`
		Actions     *[]RuleAction `json:"actions,omitempty" maxItems:"10"`
		Enabled     *bool         `json:"enabled,omitempty"`
	}
}

func (h *handlers) updateRule(ctx context.Context, in *updateRuleInput) (*ruleOutput, error) {
	b := in.Body
	p := rule.Patch{Name: b.Name, Description: b.Description, EventTypes: b.EventTypes, Scheduled: b.Scheduled,
		Condition: b.Condition, Enabled: b.Enabled}
	if b.Actions != nil {
		actions := domainActions(*b.Actions)
		if actions == nil {
			actions = []rule.Action{}
		}
		p.Actions = &actions
	}
	r, err := h.Rules.Update(ctx, in.id(), p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &ruleOutput{Body: toRule(r)}, nil
}

var opDeleteRule = huma.Operation{
	OperationID:   "deleteRule",
	Method:        http.MethodDelete,
	Path:          "/v1/rules/{id}",
	Summary:       "Delete a rule",
	Description:   "Disables the rule and marks it deleted; it stays readable with its versions and evaluations, and its name becomes free. Deleting it again changes nothing.",
	Tags:          []string{"rules"},
	DefaultStatus: http.StatusNoContent,
	Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) deleteRule(ctx context.Context, in *RulePath) (*struct{}, error) {
	if err := h.Rules.Delete(ctx, in.id()); err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return nil, nil
}

var opEvaluateRule = huma.Operation{
	OperationID:   "evaluateRule",
	Method:        http.MethodPost,
	Path:          "/v1/rules/{id}/evaluations",
	Summary:       "Evaluate a rule now",
	Description:   "Queues the evaluation of the rule against one account, or every provisioned account, with trigger manual, and answers 202. Read the results with GET /v1/evaluations?run_id=….",
	Tags:          []string{"rules"},
	DefaultStatus: http.StatusAccepted,
	MaxBodyBytes:  4 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type evaluateRuleInput struct {
	RulePath
	Body *struct {
		AccountID string `json:"account_id,omitempty" format:"uuid" doc:"Evaluate against this account only (whatever its status); absent: every provisioned account"`
	} `required:"false"`
}

// EvaluationRun is a manual evaluation that was queued.
type EvaluationRun struct {
	RunID          string `json:"run_id" doc:"Filter GET /v1/evaluations by this to see the results"`
	RuleID         string `json:"rule_id" format:"uuid"`
	RuleVersion    int    `json:"rule_version" doc:"The version current when the run was queued; the evaluations record the version they used"`
	AccountID      string `json:"account_id,omitempty" format:"uuid"`
	Trigger        string `json:"trigger" enum:"manual"`
	EvaluationsURL string `json:"evaluations_url" doc:"Where the results appear"`
}

type evaluateRuleOutput struct {
	Body EvaluationRun
}

func (h *handlers) evaluateRule(ctx context.Context, in *evaluateRuleInput) (*evaluateRuleOutput, error) {
	var accountID uuid.UUID
	if in.Body != nil && in.Body.AccountID != "" {
		accountID, _ = uuid.Parse(in.Body.AccountID)
		if accountID == uuid.Nil {
			// uuid.Nil means every account to the service; no account has it.
			return nil, fail(ctx, h.Logger, engine.ErrUnknownAccount)
		}
	}
	run, err := h.Manual.EvaluateNow(ctx, in.id(), accountID)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &evaluateRuleOutput{Body: EvaluationRun{
		RunID: run.RunID, RuleID: run.RuleID.String(), RuleVersion: run.RuleVersion, Trigger: "manual",
		EvaluationsURL: "/v1/evaluations?run_id=" + run.RunID,
	}}
	if accountID != uuid.Nil {
		out.Body.AccountID = accountID.String()
	}
	return out, nil
}
