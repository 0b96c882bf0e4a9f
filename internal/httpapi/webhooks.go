package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// WebhookEndpoint is an endpoint as clients see it. The signing secret is
// shown only when it is created or rotated.
type WebhookEndpoint struct {
	ID                  string     `json:"id" format:"uuid"`
	URL                 string     `json:"url" format:"uri" example:"https://example.com/hooks/ctrader"`
	Description         string     `json:"description"`
	Enabled             bool       `json:"enabled"`
	DisabledReason      string     `json:"disabled_reason,omitempty" doc:"Why ctrader disabled the endpoint: a 410 answer, or too many failed attempts in a row"`
	DisabledAt          *time.Time `json:"disabled_at,omitempty"`
	ConsecutiveFailures int        `json:"consecutive_failures" doc:"Failed attempts since the last success; at 50 the endpoint is disabled"`
	CreatedAt           time.Time  `json:"created_at"`
	UpdatedAt           time.Time  `json:"updated_at"`
	DeletedAt           *time.Time `json:"deleted_at,omitempty"`
}

func toEndpoint(e *webhook.Endpoint) WebhookEndpoint {
	out := WebhookEndpoint{
		ID: e.ID.String(), URL: e.URL, Description: e.Description, Enabled: e.Enabled, DisabledAt: e.DisabledAt,
		ConsecutiveFailures: e.ConsecutiveFailures, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, DeletedAt: e.DeletedAt,
	}
	if e.DisabledReason != nil {
		out.DisabledReason = *e.DisabledReason
	}
	return out
}

var opCreateWebhookEndpoint = huma.Operation{
	OperationID:   "createWebhookEndpoint",
	Method:        http.MethodPost,
	Path:          "/v1/webhook-endpoints",
	Summary:       "Register a webhook endpoint",
	Description:   "Returns the endpoint and its signing secret. The secret is shown only here (and when rotated): store it to verify deliveries.",
	Tags:          []string{"webhooks"},
	DefaultStatus: http.StatusCreated,
	MaxBodyBytes:  16 * 1024,
	Errors:        []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type createWebhookEndpointInput struct {
	Body struct {
		URL         string `json:"url" minLength:"1" maxLength:"2048" doc:"Absolute http or https URL without credentials"`
		Description string `json:"description,omitempty" maxLength:"2000"`
		Enabled     *bool  `json:"enabled,omitempty" doc:"Defaults to true"`
	}
}

// WebhookEndpointWithSecret is a new endpoint and its signing secret.
type WebhookEndpointWithSecret struct {
	WebhookEndpoint
	Secret string `json:"secret" doc:"Signing secret: whsec_ followed by base64. Shown once."`
}

type createWebhookEndpointOutput struct {
	Location string `header:"Location"`
	Body     WebhookEndpointWithSecret
}

func (h *handlers) createWebhookEndpoint(ctx context.Context, in *createWebhookEndpointInput) (*createWebhookEndpointOutput, error) {
	enabled := in.Body.Enabled == nil || *in.Body.Enabled
	ep, secret, err := h.Webhooks.Create(ctx, webhook.Input{URL: in.Body.URL, Description: in.Body.Description, Enabled: enabled})
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &createWebhookEndpointOutput{
		Location: "/v1/webhook-endpoints/" + ep.ID.String(),
		Body:     WebhookEndpointWithSecret{WebhookEndpoint: toEndpoint(ep), Secret: secret},
	}, nil
}

// EndpointPath is the path parameter of operations on one endpoint.
type EndpointPath struct {
	ID string `path:"id" format:"uuid" doc:"Webhook endpoint id"`
}

func (p EndpointPath) id() uuid.UUID {
	id, _ := uuid.Parse(p.ID)
	return id
}

type webhookEndpointOutput struct {
	Body WebhookEndpoint
}

var opGetWebhookEndpoint = huma.Operation{
	OperationID: "getWebhookEndpoint",
	Method:      http.MethodGet,
	Path:        "/v1/webhook-endpoints/{id}",
	Summary:     "Get a webhook endpoint",
	Tags:        []string{"webhooks"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) getWebhookEndpoint(ctx context.Context, in *EndpointPath) (*webhookEndpointOutput, error) {
	ep, err := h.Webhooks.Get(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &webhookEndpointOutput{Body: toEndpoint(ep)}, nil
}

var opListWebhookEndpoints = huma.Operation{
	OperationID: "listWebhookEndpoints",
	Method:      http.MethodGet,
	Path:        "/v1/webhook-endpoints",
	Summary:     "List webhook endpoints",
	Description: "Newest first; deleted endpoints are not listed.",
	Tags:        []string{"webhooks"},
	Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listWebhookEndpointsOutput struct {
	Body struct {
		Items      []WebhookEndpoint `json:"items"`
		NextCursor string            `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listWebhookEndpoints(ctx context.Context, in *PageQuery) (*listWebhookEndpointsOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Webhooks.List(ctx, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listWebhookEndpointsOutput{}
	out.Body.Items = make([]WebhookEndpoint, len(res.Items))
	for i, e := range res.Items {
		out.Body.Items[i] = toEndpoint(e)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

var opUpdateWebhookEndpoint = huma.Operation{
	OperationID:  "updateWebhookEndpoint",
	Method:       http.MethodPatch,
	Path:         "/v1/webhook-endpoints/{id}",
	Summary:      "Change a webhook endpoint",
	Description:  "Fields that are present replace the endpoint's. Enabling a disabled endpoint clears its failure streak.",
	Tags:         []string{"webhooks"},
	MaxBodyBytes: 16 * 1024,
	Errors:       []int{http.StatusBadRequest, http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type updateWebhookEndpointInput struct {
	EndpointPath
	Body struct {
		URL         *string `json:"url,omitempty" minLength:"1" maxLength:"2048"`
		Description *string `json:"description,omitempty" maxLength:"2000"`
		Enabled     *bool   `json:"enabled,omitempty"`
	}
}

func (h *handlers) updateWebhookEndpoint(ctx context.Context, in *updateWebhookEndpointInput) (*webhookEndpointOutput, error) {
	ep, err := h.Webhooks.Update(ctx, in.id(), webhook.Patch{URL: in.Body.URL, Description: in.Body.Description, Enabled: in.Body.Enabled})
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &webhookEndpointOutput{Body: toEndpoint(ep)}, nil
}

var opDeleteWebhookEndpoint = huma.Operation{
	OperationID:   "deleteWebhookEndpoint",
	Method:        http.MethodDelete,
	Path:          "/v1/webhook-endpoints/{id}",
	Summary:       "Delete a webhook endpoint",
	Description:   "Refused with 409, naming the rules, while rules still send to the endpoint. Its deliveries stay readable.",
	Tags:          []string{"webhooks"},
	DefaultStatus: http.StatusNoContent,
	Errors:        []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

func (h *handlers) deleteWebhookEndpoint(ctx context.Context, in *EndpointPath) (*struct{}, error) {
	if err := h.Webhooks.Delete(ctx, in.id(), rule.NamesSendingTo); err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return nil, nil
}

var opRotateWebhookSecret = huma.Operation{
	OperationID: "rotateWebhookSecret",
	Method:      http.MethodPost,
	Path:        "/v1/webhook-endpoints/{id}/rotate-secret",
	Summary:     "Rotate a webhook endpoint's signing secret",
	Description: "Issues a new secret. The previous ones keep signing alongside it (several signatures in webhook-signature) until previous_expires_at (WEBHOOK_SECRET_GRACE after the rotation, 24 hours by default).",
	Tags:        []string{"webhooks"},
	Errors:      []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type rotateWebhookSecretOutput struct {
	Body struct {
		Secret            string    `json:"secret" doc:"The new signing secret. Shown once."`
		PreviousExpiresAt time.Time `json:"previous_expires_at" doc:"Until then the previous secrets also sign every delivery"`
	}
}

func (h *handlers) rotateWebhookSecret(ctx context.Context, in *EndpointPath) (*rotateWebhookSecretOutput, error) {
	secret, expires, err := h.Webhooks.RotateSecret(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &rotateWebhookSecretOutput{}
	out.Body.Secret, out.Body.PreviousExpiresAt = secret, expires
	return out, nil
}

// WebhookDelivery is one message to one endpoint and what became of it.
type WebhookDelivery struct {
	ID            string          `json:"id" format:"uuid" doc:"Also the webhook-id header of every attempt"`
	EndpointID    string          `json:"endpoint_id" format:"uuid"`
	EvaluationID  string          `json:"evaluation_id,omitempty" format:"uuid"`
	Type          string          `json:"type" example:"rule.matched"`
	Status        string          `json:"status" enum:"pending,succeeded,failed"`
	Attempts      int             `json:"attempts"`
	NextAttemptAt *time.Time      `json:"next_attempt_at,omitempty" doc:"When the next attempt is due (pending deliveries)"`
	LastStatus    *int            `json:"last_status,omitempty" doc:"HTTP status of the last attempt"`
	LastError     string          `json:"last_error,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	FinishedAt    *time.Time      `json:"finished_at,omitempty"`
	Body          json.RawMessage `json:"body,omitempty" doc:"The message, exactly as sent (on GET of one delivery)"`
}

// WebhookAttempt is one HTTP request of a delivery.
type WebhookAttempt struct {
	Attempt        int       `json:"attempt"`
	StartedAt      time.Time `json:"started_at"`
	LatencyMS      int       `json:"latency_ms"`
	ResponseStatus *int      `json:"response_status,omitempty"`
	ResponseBody   string    `json:"response_body,omitempty" doc:"The first 1 KiB of the response body"`
	Error          string    `json:"error,omitempty"`
}

func toDelivery(d *webhook.Delivery, withBody bool) WebhookDelivery {
	out := WebhookDelivery{
		ID: d.ID.String(), EndpointID: d.EndpointID.String(), Type: d.EventType, Status: d.Status, Attempts: d.Attempts,
		NextAttemptAt: d.NextAttemptAt, LastStatus: d.LastStatus, CreatedAt: d.CreatedAt, FinishedAt: d.FinishedAt,
	}
	if d.EvaluationID != nil {
		out.EvaluationID = d.EvaluationID.String()
	}
	if d.LastError != nil {
		out.LastError = *d.LastError
	}
	if withBody {
		out.Body = d.Body
	}
	return out
}

var opListWebhookDeliveries = huma.Operation{
	OperationID: "listWebhookDeliveries",
	Method:      http.MethodGet,
	Path:        "/v1/webhook-endpoints/{id}/deliveries",
	Summary:     "List an endpoint's deliveries",
	Tags:        []string{"webhooks"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type listWebhookDeliveriesInput struct {
	EndpointPath
	PageQuery
	Status string `query:"status" enum:"pending,succeeded,failed" doc:"Only deliveries in this status"`
}

type listWebhookDeliveriesOutput struct {
	Body struct {
		Items      []WebhookDelivery `json:"items"`
		NextCursor string            `json:"next_cursor,omitempty" doc:"Cursor of the next page; absent on the last page"`
	}
}

func (h *handlers) listWebhookDeliveries(ctx context.Context, in *listWebhookDeliveriesInput) (*listWebhookDeliveriesOutput, error) {
	p, err := in.params()
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	res, err := h.Webhooks.ListDeliveries(ctx, in.id(), in.Status, p)
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &listWebhookDeliveriesOutput{}
	out.Body.Items = make([]WebhookDelivery, len(res.Items))
	for i, d := range res.Items {
		out.Body.Items[i] = toDelivery(d, false)
	}
	out.Body.NextCursor = res.NextCursor
	return out, nil
}

// DeliveryPath is the path parameter of operations on one delivery.
type DeliveryPath struct {
	ID string `path:"id" format:"uuid" doc:"Webhook delivery id"`
}

func (p DeliveryPath) id() uuid.UUID {
	id, _ := uuid.Parse(p.ID)
	return id
}

var opGetWebhookDelivery = huma.Operation{
	OperationID: "getWebhookDelivery",
	Method:      http.MethodGet,
	Path:        "/v1/webhook-deliveries/{id}",
	Summary:     "Get a webhook delivery and its attempts",
	Tags:        []string{"webhooks"},
	Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

// WebhookDeliveryDetail is a delivery with every attempt.
type WebhookDeliveryDetail struct {
	WebhookDelivery
	AttemptList []WebhookAttempt `json:"attempt_list" doc:"Every attempt, oldest first"`
}

type getWebhookDeliveryOutput struct {
	Body WebhookDeliveryDetail
}

func (h *handlers) getWebhookDelivery(ctx context.Context, in *DeliveryPath) (*getWebhookDeliveryOutput, error) {
	d, attempts, err := h.Webhooks.GetDelivery(ctx, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	out := &getWebhookDeliveryOutput{Body: WebhookDeliveryDetail{WebhookDelivery: toDelivery(d, true), AttemptList: make([]WebhookAttempt, len(attempts))}}
	for i, a := range attempts {
		wa := WebhookAttempt{Attempt: a.Attempt, StartedAt: a.StartedAt, LatencyMS: a.DurationMS, ResponseStatus: a.ResponseStatus}
		if a.ResponseBody != nil {
			wa.ResponseBody = *a.ResponseBody
		}
		if a.Error != nil {
			wa.Error = *a.Error
		}
		out.Body.AttemptList[i] = wa
	}
	return out, nil
}

var opRetryWebhookDelivery = huma.Operation{
	OperationID:   "retryWebhookDelivery",
	Method:        http.MethodPost,
	Path:          "/v1/webhook-deliveries/{id}/retry",
	Summary:       "Deliver again now",
	Description:   "A pending delivery's next attempt is brought forward; a finished one is sent again with the same webhook-id. 409 when the endpoint is disabled or deleted.",
	Tags:          []string{"webhooks"},
	DefaultStatus: http.StatusAccepted,
	Errors:        []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
}

type webhookDeliveryOutput struct {
	Body WebhookDelivery
}

func (h *handlers) retryWebhookDelivery(ctx context.Context, in *DeliveryPath) (*webhookDeliveryOutput, error) {
	d, err := h.Webhooks.Retry(ctx, h.JobRetrier, in.id())
	if err != nil {
		return nil, fail(ctx, h.Logger, err)
	}
	return &webhookDeliveryOutput{Body: toDelivery(d, false)}, nil
}
