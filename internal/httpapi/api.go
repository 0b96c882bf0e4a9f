// Package httpapi is ctrader's HTTP surface: the Huma operations for every
// resource, the problem documents errors become, the docs page, River UI's
// mount point and the middleware every request passes through.
package httpapi

import (
	"log/slog"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ctrader/ctrader/internal/account"
	"github.com/ctrader/ctrader/internal/evaluation"
	"github.com/ctrader/ctrader/internal/event"
	"github.com/ctrader/ctrader/internal/rule"
	"github.com/ctrader/ctrader/internal/webhook"
)

// APIVersion is the version of the HTTP contract in the OpenAPI document. It
// changes when the contract does, not with every build.
const APIVersion = "1.0.0"

// Deps are what the operations need. The zero value is enough to describe the
// API (for `ctrader openapi`) but not to serve it.
type Deps struct {
	Logger      *slog.Logger
	Pool        *pgxpool.Pool // readiness checks
	Accounts    *account.Service
	Events      *event.Service
	Rules       *rule.Service
	Evaluations *evaluation.Service
	Webhooks    *webhook.Service
	JobRetrier  webhook.JobRetrier
	// RiverUI, when set, is served under /riverui/.
	RiverUI http.Handler
}

// Config returns the Huma configuration. Huma's default docs page loads its
// script from a CDN and its link transformer adds a $schema field to every
// body; ctrader serves its own offline docs and keeps bodies plain.
func Config() huma.Config {
	cfg := huma.DefaultConfig("ctrader", APIVersion)
	cfg.CreateHooks = nil
	cfg.DocsPath = ""
	cfg.SchemasPath = ""
	cfg.OpenAPIPath = "/openapi"
	cfg.Info.Description = "Postgres-native event and rules service. Clients create accounts, post events about them " +
		"and define rules that act when events match. Errors are RFC 9457 problem documents; lists are cursor-paginated."
	cfg.Info.Contact = &huma.Contact{Name: "ctrader maintainers"}
	cfg.Servers = []*huma.Server{{URL: "/", Description: "the server that serves this document"}}
	cfg.Tags = []*huma.Tag{
		{Name: "accounts", Description: "Client accounts. A new account is provisioned by a background job."},
		{Name: "events", Description: "Things that happened to accounts. Each event is processed by background jobs: won events update the account's totals, then matching rules are evaluated."},
		{Name: "rules", Description: "CEL conditions with actions, evaluated on events, on a schedule or on demand."},
		{Name: "evaluations", Description: "The record of every rule evaluation: matched or not, errors, actions taken."},
		{Name: "webhooks", Description: "Endpoints that receive signed Standard Webhooks deliveries when rules with a webhook action match, and the record of every delivery."},
		{Name: "operations", Description: "Liveness and readiness probes."},
	}
	return cfg
}

// Register adds every operation to api. This function is the whole HTTP
// surface of ctrader's API.
func Register(api huma.API, d Deps) {
	h := &handlers{Deps: d}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}

	huma.Register(api, opHealthz, h.healthz)
	huma.Register(api, opReadyz, h.readyz)

	huma.Register(api, opCreateAccount, h.createAccount)
	huma.Register(api, opListAccounts, h.listAccounts)
	huma.Register(api, opGetAccount, h.getAccount)

	huma.Register(api, opCreateEvent, h.createEvent)
	huma.Register(api, opCreateEventBatch, h.createEventBatch)
	huma.Register(api, opListEvents, h.listEvents)
	huma.Register(api, opGetEvent, h.getEvent)

	huma.Register(api, opCreateRule, h.createRule)
	huma.Register(api, opListRules, h.listRules)
	huma.Register(api, opGetRule, h.getRule)
	huma.Register(api, opUpdateRule, h.updateRule)
	huma.Register(api, opDeleteRule, h.deleteRule)
	huma.Register(api, opEvaluateRule, h.evaluateRule)

	huma.Register(api, opListEvaluations, h.listEvaluations)

	huma.Register(api, opCreateWebhookEndpoint, h.createWebhookEndpoint)
	huma.Register(api, opListWebhookEndpoints, h.listWebhookEndpoints)
	huma.Register(api, opGetWebhookEndpoint, h.getWebhookEndpoint)
	huma.Register(api, opUpdateWebhookEndpoint, h.updateWebhookEndpoint)
	huma.Register(api, opDeleteWebhookEndpoint, h.deleteWebhookEndpoint)
	huma.Register(api, opRotateWebhookSecret, h.rotateWebhookSecret)
	huma.Register(api, opListWebhookDeliveries, h.listWebhookDeliveries)
	huma.Register(api, opGetWebhookDelivery, h.getWebhookDelivery)
	huma.Register(api, opRetryWebhookDelivery, h.retryWebhookDelivery)
}

type handlers struct {
	Deps
}

// NewAPI returns an API described by Register and served on mux.
func NewAPI(mux *http.ServeMux, d Deps) huma.API {
	api := humago.New(mux, Config())
	Register(api, d)
	return api
}

// Describe returns the API without serving it, for printing the spec.
func Describe() huma.API {
	return NewAPI(http.NewServeMux(), Deps{})
}

// Handler returns the complete HTTP handler of a serve process: the API, the
// spec, the docs page and River UI, behind the request middleware.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	NewAPI(mux, d)
	mountDocs(mux)
	if d.RiverUI != nil {
		mux.Handle("/riverui/", d.RiverUI)
		mux.Handle("GET /riverui", http.RedirectHandler("/riverui/", http.StatusMovedPermanently))
	}
	logger := d.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return observe(logger, mux)
}

// HealthHandler serves only /healthz and /readyz, for worker processes.
func HealthHandler(d Deps) http.Handler {
	mux := http.NewServeMux()
	api := humago.New(mux, Config())
	h := &handlers{Deps: d}
	if h.Logger == nil {
		h.Logger = slog.New(slog.DiscardHandler)
	}
	huma.Register(api, opHealthz, h.healthz)
	huma.Register(api, opReadyz, h.readyz)
	return observe(h.Logger, mux)
}
