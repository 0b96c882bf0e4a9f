package httpapi

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/apperr"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/idempotency"
)

// Event is an event as clients see it.
type Event struct {
	ID            string         `json:"id" format:"uuid" doc:"Event id (a UUIDv7)"`
	AccountID     string         `json:"account_id" format:"uuid"`
	Type          string         `json:"type" example:"won"`
	Payload       map[string]any `json:"payload" doc:"The JSON object posted with the event, its numbers exactly as sent"`
	OccurredAt    time.Time      `json:"occurred_at" doc:"When it happened, as the client said; defaults to when it was received"`
	ReceivedAt    time.Time      `json:"received_at"`
	Status        string         `json:"status" enum:"pending,processed,failed" doc:"pending until every matching rule has been evaluated"`
	ProcessedAt   *time.Time     `json:"processed_at,omitempty"`
	FailureReason *string        `json:"failure_reason,omitempty" doc:"Why processing was given up (status failed)"`
	CausationID   *string        `json:"causation_id,omitempty" format:"uuid" doc:"For follow-up events: the event whose rule emitted this one"`
	Depth         int            `json:"depth" doc:"0 for posted events; the causing event's depth + 1 for follow-ups"`
}

func toEvent(e *event.Event) Event {
	out := Event{
		ID: e.ID.String(), AccountID: e.AccountID.String(), Type: e.Type, Payload: e.Payload,
		OccurredAt: e.OccurredAt, ReceivedAt: e.ReceivedAt, Status: e.Status, ProcessedAt: e.ProcessedAt,
		FailureReason: e.FailureReason, Depth: e.Depth,
	}
	if e.CausationID != nil {
		id := e.CausationID.String()
		out.CausationID = &id
	}
	return out
}

// EventInput is one event to post.
type EventInput struct {
	AccountID  string         `json:"account_id" format:"uuid" doc:"The account the event is about"`
	Type       string         `json:"type" minLength:"1" maxLength:"100" pattern:"^[A-Za-z0-9][A-Za-z0-9_.:-]*$" doc:"Event type; won events must carry a numeric payload.amount" example:"won"`
	Payload    map[string]any `json:"payload,omitempty" doc:"JSON object, at most 32 KiB encoded and 32 levels deep; numbers are kept exactly as sent" example:"{\"amount\": 1500}"`
	OccurredAt *time.Time     `json:"occurred_at,omitempty" doc:"RFC 3339 time; defaults to now; at most 24 hours ahead"`
}

func (in EventInput) domain() event.Input {
	id, _ := uuid.Parse(in.AccountID) // the schema has checked the format
	return event.Input{AccountID: id, Type: in.Type, Payload: in.Payload, OccurredAt: in.OccurredAt}
}

// IdempotencyHeader lets a client retry a write safely.
type IdempotencyHeader struct {
	IdempotencyKey string `header:"Idempotency-Key" maxLength:"255" doc:"Makes the request safe to retry: a retry with the same key and body gets the first response and creates nothing; keys are kept at least 24 hours"`
}

const idempotencyDoc = " Send an Idempotency-Key header to make retries safe; a replayed response carries Idempotent-Replayed: true."

var opCreateEvent = huma.Operation{
	OperationID:   "createEvent",
	Method:        http.MethodPost,
	Path:          "/v1/events",
	Summary:       "Post an event",
	Description:   "Stores the event and the job that processes it in one transaction and answers 202: the event is pending until its rules have been evaluated." + idempotencyDoc,
	Tags:          []string{"events"},
	DefaultStatus: http.StatusAccepted,
	MaxBodyBytes:  64 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type createEventInput struct {
	IdempotencyHeader
	Body EventInput
}

type createEventOutput struct {
	Location string `header:"Location" doc:"URL of the event"`
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response to an earlier request with the same Idempotency-Key"`
	Body     Event
}

// pushBack answers 503 with Retry-After while event processing lags more
// than MaxLag behind ingest: a client asked to wait is better served than
// one whose event would wait behind an ever longer queue. Nothing is stored.
func (h *handlers) pushBack(ctx context.Context) error {
	if h.Backlog == nil || h.MaxLag <= 0 {
		return nil
	}
	lag := h.Backlog.Lag()
	if lag <= h.MaxLag {
		return nil
	}
	h.Metrics.IngestRefused()
	p := newProblem(ctx, http.StatusServiceUnavailable,
		fmt.Sprintf("event processing is %.0f s behind; retry after the time in Retry-After", lag.Seconds()), nil)
	wait := min(max(int(math.Ceil((lag-h.MaxLag).Seconds())), 1), 30)
	p.headers.Set("Retry-After", strconv.Itoa(wait))
	return p
}

func (h *handlers) createEvent(ctx context.Context, in *createEventInput) (*createEventOutput, error) {
	if err := h.pushBack(ctx); err != nil {
		return nil, err
	}
	idem, err := idempotency.NewRequest(subjectOf(ctx), "events.create", in.IdempotencyKey, in.Body)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	events, replayed, err := h.Events.Ingest(ctx, []event.Input{in.Body.domain()}, func(int) string { return "body" }, idem)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &createEventOutput{Location: "/v1/events/" + events[0].ID.String(), Body: toEvent(events[0])}
	if replayed {
		out.Replayed = "true"
	} else {
		h.Metrics.EventsIngested(len(events))
	}
	return out, nil
}

var opCreateEventBatch = huma.Operation{
	OperationID:   "createEventBatch",
	Method:        http.MethodPost,
	Path:          "/v1/events/batch",
	Summary:       "Post up to 1,000 events",
	Description:   "Validates every event first: one bad event rejects the whole batch, with one error per bad index. Then stores all events and their jobs in one transaction." + idempotencyDoc,
	Tags:          []string{"events"},
	DefaultStatus: http.StatusAccepted,
	MaxBodyBytes:  32 << 20,
	Errors:        []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type createEventBatchInput struct {
	IdempotencyHeader
	Body struct {
		Events []EventInput `json:"events" minItems:"1" maxItems:"1000" doc:"1 to 1,000 events"`
	}
}

type eventsBody struct {
	Events []Event `json:"events"`
}

type createEventBatchOutput struct {
	Replayed string `header:"Idempotent-Replayed" doc:"true when this is the stored response to an earlier request with the same Idempotency-Key"`
	Body     eventsBody
}

func (h *handlers) createEventBatch(ctx context.Context, in *createEventBatchInput) (*createEventBatchOutput, error) {
	if err := h.pushBack(ctx); err != nil {
		return nil, err
	}
	idem, err := idempotency.NewRequest(subjectOf(ctx), "events.batch", in.IdempotencyKey, in.Body)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	if len(in.Body.Events) == 0 { // null passes the schema's minItems
		return nil, fail(ctx, h.Logger, apperr.InvalidFields("no events",
			apperr.FieldError{Location: "body.events", Message: "must hold 1 to 1000 events"}))
	}
	inputs := make([]event.Input, len(in.Body.Events))
	for i, e := range in.Body.Events {
		inputs[i] = e.domain()
	}
	events, replayed, err := h.Events.Ingest(ctx, inputs, func(i int) string { return fmt.Sprintf("body.events[%d]", i) }, idem)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &createEventBatchOutput{Body: eventsBody{Events: make([]Event, len(events))}}
	for i, e := range events {
		out.Body.Events[i] = toEvent(e)
	}
	if replayed {
		out.Replayed = "true"
	} else {
		h.Metrics.EventsIngested(len(events))
	}
	return out, nil
}

var opGetEvent = huma.Operation{
	OperationID: "getEvent",
	Method:      http.MethodGet,
	Path:        "/v1/events/{id}",
	Summary:     "Get an event and its evaluations",
	Tags:        []string{"events"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type getEventInput struct {
	ID string `path:"id" format:"uuid" doc:"Event id"`
}

// EventDetail is an event with the evaluations it caused.
type EventDetail struct {
	Event
	Evaluations []Evaluation `json:"evaluations" doc:"One per rule version evaluated for this event, oldest first"`
}

type getEventOutput struct {
	Body EventDetail
}

func (h *handlers) getEvent(ctx context.Context, in *getEventInput) (*getEventOutput, error) {
	id, _ := uuid.Parse(in.ID)
	e, err := h.Events.Get(ctx, id)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	evals, err := h.Evaluations.ForEvent(ctx, id)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &getEventOutput{Body: EventDetail{Event: toEvent(e), Evaluations: make([]Evaluation, len(evals))}}
	for i, ev := range evals {
		out.Body.Evaluations[i] = toEvaluation(ev)
	}
	return out, nil
}

var opListEvents = huma.Operation{
	OperationID: "listEvents",
	Method:      http.MethodGet,
	Path:        "/v1/events",
	Summary:     "List events",
	Description: "Newest first, optionally filtered. Pass next_cursor back as cursor to read the following page; it is absent on the last page.",
	Tags:        []string{"events"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listEventsInput struct {
	PageQuery
	AccountID string `query:"account_id" format:"uuid" doc:"Only this account's events"`
	Type      string `query:"type" maxLength:"100" doc:"Only events of this type"`
	Status    string `query:"status" enum:"pending,processed,failed" doc:"Only events in this status"`
}

type listEventsOutput struct {
	Body struct {
		Items      []Event `json:"items"`
		NextCursor string  `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listEvents(ctx context.Context, in *listEventsInput) (*listEventsOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	f := event.Filter{Type: in.Type, Status: in.Status}
	f.AccountID, _ = uuid.Parse(in.AccountID)
	res, err := h.Events.List(ctx, f, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listEventsOutput{}
	out.Body.Items = make([]Event, len(res.Items))
	for i, e := range res.Items {
		out.Body.Items[i] = toEvent(e)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}
