package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/backfill"
)

// BackfillProgress counts what a backfill's pages have done.
type BackfillProgress struct {
	Pages           int   `json:"pages" doc:"Pages run so far" example:"12"`
	EventsScanned   int64 `json:"events_scanned" doc:"Stored events walked, in range or not" example:"24000"`
	EventsEvaluated int64 `json:"events_evaluated" doc:"Events in range evaluated" example:"21840"`
	EventsSkipped   int64 `json:"events_skipped" doc:"Events in range not evaluated: not yet processed or failed, or (apply) already acted on by this rule version" example:"160"`
	EventsDone      int64 `json:"events_done" doc:"events_evaluated plus events_skipped" example:"22000"`
	EventsMatched   int64 `json:"events_matched" doc:"Evaluations that matched" example:"1312"`
	Errors          int64 `json:"errors" doc:"Evaluations whose condition failed (see each evaluation's error)" example:"0"`
	EventsEstimated int64 `json:"events_estimated" doc:"Events in range when the backfill was created, as Postgres's statistics estimate them: an estimate, which can be well off" example:"250000"`
	EventsToDo      int64 `json:"events_to_do_estimate" doc:"events_estimated less events_done, at least 0 while the backfill is active and 0 once it has finished: an estimate" example:"228000"`
}

// Backfill is a backfill as clients see it.
type Backfill struct {
	ID             string           `json:"id" format:"uuid" example:"019ad3f2-7c41-7d0e-9a51-2b7c8e9f0a1b"`
	RuleID         string           `json:"rule_id" format:"uuid" example:"019ad3e0-1b2c-7a3d-8e4f-5a6b7c8d9e0f"`
	RuleVersion    int              `json:"rule_version" doc:"The rule's version when the backfill was created; every evaluation uses it" example:"3"`
	Mode           string           `json:"mode" enum:"dry_run,apply" doc:"dry_run records evaluations and takes no actions; apply takes the actions of matches, once per rule version and event"`
	State          string           `json:"state" enum:"pending,running,succeeded,cancelled,failed"`
	From           time.Time        `json:"from" doc:"Events that occurred at or after this (inclusive)" example:"2026-11-01T00:00:00Z"`
	To             time.Time        `json:"to" doc:"Events that occurred before this (exclusive)" example:"2026-12-01T00:00:00Z"`
	EventTypes     []string         `json:"event_types" doc:"Event types evaluated" example:"[\"won\"]"`
	AccountID      string           `json:"account_id,omitempty" format:"uuid" doc:"Only this account's events, when set"`
	Progress       BackfillProgress `json:"progress"`
	FailureReason  string           `json:"failure_reason,omitempty" doc:"Why a failed backfill stopped, or why an apply backfill was cancelled when its rule was disabled or deleted; pages before stay done"`
	CreatedAt      time.Time        `json:"created_at"`
	StartedAt      *time.Time       `json:"started_at,omitempty" doc:"When its first page committed"`
	FinishedAt     *time.Time       `json:"finished_at,omitempty" doc:"When it succeeded, was cancelled or failed"`
	EvaluationsURL string           `json:"evaluations_url" doc:"Where its evaluations are listed" example:"/v1/evaluations?backfill_id=019ad3f2-7c41-7d0e-9a51-2b7c8e9f0a1b"`
}

func toBackfill(b *backfill.Backfill) Backfill {
	out := Backfill{
		ID: b.ID.String(), RuleID: b.RuleID.String(), RuleVersion: b.RuleVersion, Mode: b.Mode, State: b.State,
		From: b.From, To: b.To, EventTypes: b.EventTypes, CreatedAt: b.CreatedAt, StartedAt: b.StartedAt,
		FinishedAt: b.FinishedAt, EvaluationsURL: "/v1/evaluations?backfill_id=" + b.ID.String(),
		Progress: BackfillProgress{
			Pages: b.Pages, EventsScanned: b.Scanned, EventsEvaluated: b.Evaluated, EventsSkipped: b.Skipped,
			EventsDone: b.Evaluated + b.Skipped, EventsMatched: b.Matched, Errors: b.Errors, EventsEstimated: b.Estimated,
		},
	}
	if b.Active() {
		out.Progress.EventsToDo = max(b.Estimated-out.Progress.EventsDone, 0)
	}
	if out.EventTypes == nil {
		out.EventTypes = []string{}
	}
	if b.AccountID != nil {
		out.AccountID = b.AccountID.String()
	}
	if b.FailureReason != nil {
		out.FailureReason = *b.FailureReason
	}
	return out
}

var opCreateBackfill = huma.Operation{
	OperationID: "createBackfill",
	Method:      http.MethodPost,
	Path:        "/v1/rules/{id}/backfills",
	Summary:     "Backfill a rule over stored events",
	Description: "Evaluates the rule's current version over the stored events that occurred in [from, to), in background jobs on the backfill queue, and answers 202 with the backfill. " +
		"Only processed events are evaluated; the condition sees each event as stored and its account as it is now. " +
		"mode dry_run records evaluations (trigger backfill) and takes no actions. mode apply takes the actions of matches, once per rule version and event: " +
		"events this rule version already evaluated live, or acted on in an earlier apply backfill, are skipped. " +
		"One apply backfill of a rule may be pending or running at a time (409), and at most 10 backfills in all. A deleted rule, or applying a disabled one, is a 409.",
	Tags:          []string{"backfills"},
	DefaultStatus: http.StatusAccepted,
	MaxBodyBytes:  8 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

// createBackfillOp is opCreateBackfill with examples of whole bodies. It is
// built anew for each API: Huma fills the request body's schema in place.
func createBackfillOp() huma.Operation {
	op := opCreateBackfill
	op.RequestBody = &huma.RequestBody{Content: map[string]*huma.MediaType{"application/json": {
		Examples: map[string]*huma.Example{
			"dry_run": {
				Summary: "What the rule would have matched in November",
				Value:   map[string]any{"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z", "mode": "dry_run"},
			},
			"apply": {
				Summary: "Act on one account's won events since November 1",
				Value: map[string]any{"from": "2026-11-01T00:00:00Z", "event_types": []string{"won"},
					"account_id": "019ad3d1-0a1b-7c2d-8e3f-4a5b6c7d8e9f", "mode": "apply"},
			},
		},
	}}}
	return op
}

type createBackfillInput struct {
	RulePath
	Body struct {
		From       time.Time  `json:"from" doc:"Evaluate events that occurred at or after this (inclusive)" example:"2026-11-01T00:00:00Z"`
		To         *time.Time `json:"to,omitempty" doc:"Evaluate events that occurred before this (exclusive); at most now, which is the default" example:"2026-12-01T00:00:00Z"`
		EventTypes []string   `json:"event_types,omitempty" minItems:"1" maxItems:"20" doc:"Only events of these types, each one the rule is evaluated for; absent: every type the rule is evaluated for" example:"[\"won\"]"`
		AccountID  string     `json:"account_id,omitempty" format:"uuid" doc:"Only this account's events; absent: every account's" example:"019ad3d1-0a1b-7c2d-8e3f-4a5b6c7d8e9f"`
		Mode       string     `json:"mode" enum:"dry_run,apply" doc:"dry_run records evaluations and takes no actions; apply takes the actions of matches" example:"dry_run"`
	}
}

type backfillOutput struct {
	Body Backfill
}

type createBackfillOutput struct {
	Location string `header:"Location" doc:"URL of the backfill"`
	Body     Backfill
}

func (h *handlers) createBackfill(ctx context.Context, in *createBackfillInput) (*createBackfillOutput, error) {
	b := in.Body
	bin := backfill.Input{RuleID: in.id(), From: b.From, To: b.To, EventTypes: b.EventTypes, Mode: b.Mode}
	if b.AccountID != "" {
		bin.AccountID, _ = uuid.Parse(b.AccountID)
		if bin.AccountID == uuid.Nil {
			// uuid.Nil means every account to the service; no account has it.
			return nil, fail(ctx, h.Logger, backfill.ErrUnknownAccount)
		}
	}
	res, err := h.Backfills.Create(ctx, bin)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &createBackfillOutput{Location: "/v1/backfills/" + res.ID.String(), Body: toBackfill(res)}, nil
}

// BackfillPath is the path parameter of operations on one backfill.
type BackfillPath struct {
	ID string `path:"id" format:"uuid" doc:"Backfill id"`
}

func (in BackfillPath) id() uuid.UUID {
	id, _ := uuid.Parse(in.ID)
	return id
}

var opGetBackfill = huma.Operation{
	OperationID: "getBackfill",
	Method:      http.MethodGet,
	Path:        "/v1/backfills/{id}",
	Summary:     "Get a backfill",
	Description: "Its state and progress. events_estimated and events_to_do_estimate come from Postgres's statistics and are estimates; the other counts are exact.",
	Tags:        []string{"backfills"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) getBackfill(ctx context.Context, in *BackfillPath) (*backfillOutput, error) {
	b, err := h.Backfills.Get(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &backfillOutput{Body: toBackfill(b)}, nil
}

var opListBackfills = huma.Operation{
	OperationID: "listBackfills",
	Method:      http.MethodGet,
	Path:        "/v1/backfills",
	Summary:     "List backfills",
	Description: "Newest first, optionally filtered. Pass next_cursor back as cursor to read the following page; it is absent on the last page.",
	Tags:        []string{"backfills"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listBackfillsInput struct {
	PageQuery
	RuleID string `query:"rule_id" format:"uuid" doc:"Only backfills of this rule"`
	State  string `query:"state" enum:"pending,running,succeeded,cancelled,failed" doc:"Only backfills in this state"`
}

type listBackfillsOutput struct {
	Body struct {
		Items      []Backfill `json:"items"`
		NextCursor string     `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listBackfills(ctx context.Context, in *listBackfillsInput) (*listBackfillsOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	f := backfill.Filter{State: in.State}
	f.RuleID, _ = uuid.Parse(in.RuleID)
	res, err := h.Backfills.List(ctx, f, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listBackfillsOutput{}
	out.Body.Items = make([]Backfill, len(res.Items))
	for i, b := range res.Items {
		out.Body.Items[i] = toBackfill(b)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

var opCancelBackfill = huma.Operation{
	OperationID: "cancelBackfill",
	Method:      http.MethodPost,
	Path:        "/v1/backfills/{id}/cancel",
	Summary:     "Cancel a backfill",
	Description: "A pending or running backfill becomes cancelled: a page running now finishes first (the answer waits for it), and no page runs after it. " +
		"Evaluations and actions of the pages already run stay. Cancelling a cancelled backfill answers it unchanged; a succeeded or failed one is a 409.",
	Tags:   []string{"backfills"},
	Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) cancelBackfill(ctx context.Context, in *BackfillPath) (*backfillOutput, error) {
	b, err := h.Backfills.Cancel(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &backfillOutput{Body: toBackfill(b)}, nil
}
