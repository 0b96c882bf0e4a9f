package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/evaluation"
)

// ActionResult is what one action of a matched rule did.
type ActionResult struct {
	Type           string `json:"type" example:"emit_event"`
	EventType      string `json:"event_type,omitempty" doc:"emit_event: the type emitted"`
	EventID        string `json:"event_id,omitempty" format:"uuid" doc:"emit_event: the follow-up event"`
	Status         string `json:"status,omitempty" doc:"set_account_status: the new status"`
	PreviousStatus string `json:"previous_status,omitempty" doc:"set_account_status: the status before"`
	EndpointID     string `json:"endpoint_id,omitempty" format:"uuid" doc:"webhook: the endpoint"`
	DeliveryID     string `json:"delivery_id,omitempty" format:"uuid" doc:"webhook: the delivery queued"`
	Skipped        string `json:"skipped,omitempty" doc:"Why the action was not taken: depth_limit when the event is at the maximum depth, cascade_limit when the posted event its chain started from has caused the most follow-ups allowed, endpoint_disabled for a disabled webhook endpoint"`
	Error          string `json:"error,omitempty" doc:"Why the action failed, such as a payload expression error"`
}

// Evaluation is one evaluation of one rule version.
type Evaluation struct {
	ID           string         `json:"id" format:"uuid"`
	RuleID       string         `json:"rule_id" format:"uuid"`
	RuleVersion  int            `json:"rule_version" doc:"The version of the rule that was evaluated"`
	AccountID    string         `json:"account_id" format:"uuid"`
	EventID      string         `json:"event_id,omitempty" format:"uuid" doc:"The event evaluated (trigger event or backfill)"`
	Trigger      string         `json:"trigger" enum:"event,schedule,manual,backfill"`
	RunID        string         `json:"run_id,omitempty" doc:"The scheduled window or manual run (trigger schedule or manual)"`
	BackfillID   string         `json:"backfill_id,omitempty" format:"uuid" doc:"The backfill (trigger backfill)"`
	Matched      bool           `json:"matched"`
	Error        string         `json:"error,omitempty" doc:"Why the condition could not be evaluated (a missing key, the cost limit); matched is then false"`
	Actions      []ActionResult `json:"actions" doc:"What the matched rule did, in the rule's order"`
	DepthLimited bool           `json:"depth_limited" doc:"The event is at the maximum depth: emit_event actions were skipped"`
	StartedAt    time.Time      `json:"started_at"`
	EvaluatedAt  time.Time      `json:"evaluated_at"`
}

func toEvaluation(e *evaluation.Evaluation) Evaluation {
	out := Evaluation{
		ID: e.ID.String(), RuleID: e.RuleID.String(), RuleVersion: e.RuleVersion, AccountID: e.AccountID.String(),
		Trigger: e.Trigger, Matched: e.Matched, DepthLimited: e.DepthLimited, StartedAt: e.StartedAt,
		EvaluatedAt: e.EvaluatedAt, Actions: make([]ActionResult, len(e.Actions)),
	}
	if e.EventID != nil {
		out.EventID = e.EventID.String()
	}
	if e.RunID != nil {
		out.RunID = *e.RunID
	}
	if e.BackfillID != nil {
		out.BackfillID = e.BackfillID.String()
	}
	if e.Error != nil {
		out.Error = *e.Error
	}
	for i, a := range e.Actions {
		out.Actions[i] = ActionResult{Type: a.Type, EventType: a.EventType, Status: a.Status,
			PreviousStatus: a.PreviousStatus, Skipped: a.Skipped, Error: a.Error, EndpointID: a.EndpointID}
		if a.EventID != nil {
			out.Actions[i].EventID = a.EventID.String()
		}
		if a.DeliveryID != nil {
			out.Actions[i].DeliveryID = a.DeliveryID.String()
		}
	}
	return out
}

var opListEvaluations = huma.Operation{
	OperationID: "listEvaluations",
	Method:      http.MethodGet,
	Path:        "/v1/evaluations",
	Summary:     "List evaluations",
	Description: "Newest first, optionally filtered. Pass next_cursor back as cursor to read the following page; it is absent on the last page.",
	Tags:        []string{"evaluations"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listEvaluationsInput struct {
	PageQuery
	AccountID  string `query:"account_id" format:"uuid" doc:"Only evaluations against this account"`
	RuleID     string `query:"rule_id" format:"uuid" doc:"Only evaluations of this rule"`
	EventID    string `query:"event_id" format:"uuid" doc:"Only evaluations of this event"`
	RunID      string `query:"run_id" maxLength:"100" doc:"Only evaluations of this scheduled window or manual run"`
	Trigger    string `query:"trigger" enum:"event,schedule,manual,backfill" doc:"Only evaluations with this trigger"`
	BackfillID string `query:"backfill_id" format:"uuid" doc:"Only evaluations of this backfill"`
	Matched    string `query:"matched" enum:"true,false" doc:"Only evaluations that matched (true) or did not (false)"`
}

type listEvaluationsOutput struct {
	Body struct {
		Items      []Evaluation `json:"items"`
		NextCursor string       `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listEvaluations(ctx context.Context, in *listEvaluationsInput) (*listEvaluationsOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	f := evaluation.Filter{RunID: in.RunID, Trigger: in.Trigger}
	f.BackfillID, _ = uuid.Parse(in.BackfillID)
	f.AccountID, _ = uuid.Parse(in.AccountID)
	f.RuleID, _ = uuid.Parse(in.RuleID)
	f.EventID, _ = uuid.Parse(in.EventID)
	if in.Matched != "" {
		m := in.Matched == "true"
		f.Matched = &m
	}
	res, err := h.Evaluations.List(ctx, f, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listEvaluationsOutput{}
	out.Body.Items = make([]Evaluation, len(res.Items))
	for i, e := range res.Items {
		out.Body.Items[i] = toEvaluation(e)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}
